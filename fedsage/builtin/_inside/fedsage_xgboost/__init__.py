"""SageMaker's built-in XGBoost algorithm, reproduced inside an XGBoost runtime.

This package runs under the runtime's own interpreter (Python 3.9 or 3.10 in the images
fedsage rebuilds), with only what the image has: xgboost, numpy, scipy, pandas,
scikit-learn and pyarrow.  Its modules keep Python 3.8 syntax.  The host side of fedsage
(``fedsage.builtin``) only knows where these files are and how to start them.

Modules: ``errors`` (the image's three error kinds), ``hyperparameters`` and
``channels`` (validation with the image's messages), ``recordio`` (SageMaker's
RecordIO-protobuf format), ``data`` (channel files to DMatrix), ``metrics`` (the metrics
the image computes with scikit-learn), ``train`` (algorithm-mode training) and ``serve``
(the inference handlers).
"""
