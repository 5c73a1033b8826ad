"""The serving bundle: model and code laid out as a SageMaker-style container expects.

A training job leaves ``model.tar.gz`` (the model directory) and, in script mode,
``sourcedir.tar.gz`` (the user's code).  At serving time the SageMaker containers find
them under ``/opt/ml/model`` and ``/opt/ml/code`` and learn the entry script from
``SAGEMAKER_PROGRAM``.  :func:`build_bundle` extracts both archives, checking every
member first, into a staging folder shaped like the container's root file system, so
the folder can become an image layer as is (:mod:`fedsage.kyma.cluster.image`) or be served
by local replicas.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..._archive import extract_safely
from ...errors import DeploymentError

__all__ = [
    "CODE_DIR",
    "MODEL_DIR",
    "Bundle",
    "build_bundle",
    "read_requirements",
    "safe_extract",
]

logger = logging.getLogger(__name__)

MODEL_DIR = "opt/ml/model"
CODE_DIR = "opt/ml/code"


@dataclass(frozen=True)
class Bundle:
    """A staged serving bundle.

    Attributes
    ----------
    root : pathlib.Path
        Folder standing for the container's ``/``: it holds ``opt/ml/model`` and, when
        there is code, ``opt/ml/code``.
    program : str or None
        The entry script, relative to the code folder (``SAGEMAKER_PROGRAM``).
    requirements : tuple of str
        The requirement lines of the code's ``requirements.txt`` (empty if none).
    """

    root: Path
    program: str | None = None
    requirements: tuple[str, ...] = field(default=())

    @property
    def model_dir(self) -> Path:
        """The staged ``/opt/ml/model`` folder."""
        return self.root / MODEL_DIR

    @property
    def code_dir(self) -> Path:
        """The staged ``/opt/ml/code`` folder (may not exist)."""
        return self.root / CODE_DIR

    @property
    def env(self) -> dict[str, str]:
        """The environment the model server needs inside the container."""
        env = {}
        if self.program:
            env["SAGEMAKER_PROGRAM"] = self.program
        if self.code_dir.is_dir():
            env["SAGEMAKER_SUBMIT_DIRECTORY"] = "/" + CODE_DIR
        return env


def safe_extract(archive: Path, dest: Path) -> list[str]:
    """Extract ``archive`` into ``dest`` with :func:`fedsage._archive.extract_safely`.

    Raises
    ------
    DeploymentError
        If the archive is missing, unreadable or holds an unsafe member.
    """
    return extract_safely(archive, dest, error=DeploymentError)


def read_requirements(path: Path) -> tuple[str, ...]:
    """Return the requirement lines of a ``requirements.txt`` (no comments, no blanks)."""
    if not path.is_file():
        return ()
    lines = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return tuple(lines)


def build_bundle(
    model_tar: Path,
    root: Path,
    *,
    code_tar: Path | None = None,
    program: str | None = None,
) -> Bundle:
    """Stage the model and code of a training job as the serving container expects.

    Parameters
    ----------
    model_tar : pathlib.Path
        The job's ``model.tar.gz``; its content goes to ``opt/ml/model``.
    root : pathlib.Path
        Empty (or missing) folder that becomes the bundle root; an existing
        ``opt/ml`` below it is replaced.
    code_tar : pathlib.Path, default=None
        The job's ``sourcedir.tar.gz``; its content goes to ``opt/ml/code``.
    program : str, default=None
        The entry script inside the code (``SAGEMAKER_PROGRAM``), e.g. ``train.py``.

    Returns
    -------
    Bundle
        The staged bundle; ``requirements`` comes from the code's ``requirements.txt``.

    Raises
    ------
    DeploymentError
        If an archive is missing or unsafe, or ``program`` is not in the code.

    Examples
    --------
    >>> bundle = build_bundle(Path("model.tar.gz"), Path("stage"),
    ...                       code_tar=Path("sourcedir.tar.gz"), program="train.py")
    ... # doctest: +SKIP
    >>> bundle.env  # doctest: +SKIP
    {'SAGEMAKER_PROGRAM': 'train.py', 'SAGEMAKER_SUBMIT_DIRECTORY': '/opt/ml/code'}
    """
    if program is not None and code_tar is None:
        raise DeploymentError(
            f"program {program!r} was given without code: pass code_tar "
            "(the job's sourcedir.tar.gz) too"
        )
    ml = root / "opt" / "ml"
    if ml.exists():
        shutil.rmtree(ml)
    safe_extract(model_tar, root / MODEL_DIR)
    requirements: tuple[str, ...] = ()
    if code_tar is not None:
        code = root / CODE_DIR
        safe_extract(code_tar, code)
        if program is not None:
            script = PurePosixPath(program)
            if script.is_absolute() or ".." in script.parts or not (code / script).is_file():
                raise DeploymentError(
                    f"program {program!r} is not a file in {code_tar}; pass the entry "
                    "script's path relative to the code folder"
                )
        requirements = read_requirements(code / "requirements.txt")
    logger.info("staged serving bundle in %s (program=%s)", root, program)
    return Bundle(root=root, program=program, requirements=requirements)
