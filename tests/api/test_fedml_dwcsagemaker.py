"""fedsage's DwcSagemaker has fedml-aws 2.0.2's public signatures, read from fedml-aws's own
source: the same names, order and defaults; fedsage's additions are keyword-only."""

from __future__ import annotations

from fedsage import DwcSagemaker

from .fedml_reference import Param, public_signatures, signature_of

# fedsage's own additions come after fedml-aws's parameters and are keyword-only.
EXTRA_KINDS = ("KEYWORD_ONLY", "VAR_KEYWORD")


def _differences() -> list[str]:
    problems = []
    for name, expected in public_signatures("dwcsagemaker", "DwcSagemaker").items():
        method = getattr(DwcSagemaker, name, None)
        if method is None:
            problems.append(f"DwcSagemaker.{name} is missing")
            continue
        actual = signature_of(method)
        head, extra = actual[: len(expected)], actual[len(expected) :]
        if head != expected:
            problems.append(
                f"{name}({', '.join(map(str, head))}) != fedml-aws "
                f"{name}({', '.join(map(str, expected))})"
            )
        loose = [str(p) for p in extra if p.kind not in EXTRA_KINDS]
        if loose:
            problems.append(f"{name} adds positional parameters {loose}; make them keyword-only")
    return problems


def test_dwcsagemaker_signatures_match_fedml_aws() -> None:
    reference = public_signatures("dwcsagemaker", "DwcSagemaker")
    assert set(reference) == {
        "__init__",
        "train_sagemaker_model",
        "train_sklearn_model",
        "deploy",
        "predict",
        "deploy_to_kyma",
        "invoke_kyma_endpoint",
    }
    assert reference["predict"][2:] == (
        Param("content_type", "POSITIONAL_OR_KEYWORD", "''"),
        Param("accept", "POSITIONAL_OR_KEYWORD", "''"),
    )
    problems = _differences()
    assert not problems, "\n".join(problems)


def test_the_comparison_sees_a_difference() -> None:
    """The check is not vacuous: a changed default is caught."""
    reference = public_signatures("dwcsagemaker", "DwcSagemaker")["deploy_to_kyma"]
    changed = tuple(
        Param(p.name, p.kind, "None") if p.name == "profile_name" else p for p in reference
    )
    assert changed != signature_of(DwcSagemaker.deploy_to_kyma)[: len(reference)]
