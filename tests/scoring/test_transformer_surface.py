"""The local transformer is called like the SDK's: same parameters, same order, same defaults."""

from __future__ import annotations

import inspect

import pytest

from fedsage.estimator import TrainingJobHandle
from fedsage.scoring.transformer import Transformer

sklearn = pytest.importorskip("sagemaker.sklearn", reason="the aws extra is not installed")
sdk_transformer = pytest.importorskip("sagemaker.transformer")


def _parameters(function: object) -> list[tuple[str, object]]:
    signature = inspect.signature(function)  # type: ignore[arg-type]
    return [(name, p.default) for name, p in signature.parameters.items() if name != "self"]


def test_handle_transformer_has_the_sklearn_estimators_signature() -> None:
    assert _parameters(TrainingJobHandle.transformer) == _parameters(sklearn.SKLearn.transformer)


def test_transform_has_the_sdks_signature() -> None:
    assert _parameters(Transformer.transform) == _parameters(sdk_transformer.Transformer.transform)


def test_the_sdks_public_methods_exist() -> None:
    for name in ("transform", "wait", "stop_transform_job", "delete_model"):
        assert callable(getattr(Transformer, name))
    wait = inspect.signature(Transformer.wait).parameters
    assert wait["logs"].default is True
    stop = inspect.signature(Transformer.stop_transform_job).parameters
    assert stop["wait"].default is True
