"""Whether a runtime really is its image: the warning a job records when it is not."""

from __future__ import annotations

from .base import Runtime
from .catalog import SUPPORTED_VERSIONS, load_spec

__all__ = ["runtime_warning"]


def runtime_warning(runtime: Runtime, framework_version: str) -> str | None:
    """A warning when a job's runtime is not exactly its SageMaker image, else ``None``.

    An approximate runtime (another Python than the image's) is always worth a warning;
    otherwise the scikit-learn the job really uses is compared with the image's.
    """
    if runtime.approximate:
        return (
            f"framework_version={framework_version!r} runs on an approximate runtime (Python "
            f"{runtime.python_version}, scikit-learn {runtime.packages.get('scikit-learn')}); "
            "see docs/runtimes.md"
        )
    if runtime.framework != "scikit-learn":
        return None  # an XGBoost runtime is built from its image's own pins only
    actual = runtime.packages.get("scikit-learn")
    images = {v: load_spec(v).exact.packages.get("scikit-learn") for v in SUPPORTED_VERSIONS}
    expected = images.get(framework_version)
    if expected is None:
        if actual in images.values():
            return None
        return (
            f"framework_version={framework_version!r} runs on this environment's "
            f"scikit-learn {actual}, which matches no SageMaker scikit-learn image exactly; "
            "a model trained here may not load on SageMaker"
        )
    if actual != expected:
        return (
            f"the {framework_version} image has scikit-learn {expected}, but this job uses "
            f"{actual}; results and pickles may differ on SageMaker"
        )
    return None
