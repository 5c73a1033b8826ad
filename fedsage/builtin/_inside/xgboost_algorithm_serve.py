"""The "user module" fedsage's model worker loads to serve an XGBoost algorithm-mode model.

Set ``SAGEMAKER_SUBMIT_DIRECTORY`` to this folder and ``SAGEMAKER_PROGRAM`` to this file's
name; the worker then calls ``model_fn`` once, ``transform_fn`` per request and
``execution_parameters_fn`` for ``GET /execution-parameters``.  See
``fedsage_xgboost.serve``.
"""

from fedsage_xgboost.serve import execution_parameters_fn, model_fn, transform_fn

__all__ = ["execution_parameters_fn", "model_fn", "transform_fn"]
