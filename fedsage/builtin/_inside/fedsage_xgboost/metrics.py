"""Evaluation metrics: which xgboost computes, which the image computes with scikit-learn.

SageMaker's XGBoost computes ``accuracy``, ``balanced_accuracy``, ``f1``, ``f1_binary``,
``f1_macro``, ``mse``, ``rmse``, ``mae``, ``precision*``, ``recall*`` and ``r2`` itself
with scikit-learn, as a custom metric passed to ``xgboost.train``; xgboost computes the
rest.  Class labels come from the predictions as in the image: ``argmax`` for one row
per class, else ``prediction > 0`` (the image reads margins; with xgboost 2 and later
it passes ``custom_metric``, which receives transformed predictions, and the same
threshold is applied to them, exactly as there).

One deliberate difference: when xgboost computes several metrics, they keep the order
the user gave (the image passes them through a ``set``, so their order varies between
runs).
"""

import logging

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    mean_absolute_error,
    mean_squared_error,
    precision_score,
    r2_score,
    recall_score,
)

from .hyperparameters import XGB_MAXIMIZE_METRICS

log = logging.getLogger(__name__)


def margin_to_class_label(preds):
    if type(preds[0]) is np.ndarray:
        return np.argmax(preds, axis=-1)
    return (preds > 0.0).astype(int)


def _classification(score):
    def metric(preds, dtrain):
        if preds.size == 0:
            return 0.0
        return score(dtrain.get_label(), margin_to_class_label(preds))

    return metric


def _regression(score):
    def metric(preds, dtrain):
        return score(dtrain.get_label(), preds)

    return metric


def _rmse(labels, preds):
    return float(np.sqrt(mean_squared_error(labels, preds)))


CUSTOM_METRICS = {
    "accuracy": _classification(accuracy_score),
    "balanced_accuracy": _classification(balanced_accuracy_score),
    "f1": _classification(lambda y, p: f1_score(y, p, average="macro")),
    "f1_binary": _classification(lambda y, p: f1_score(y, p, average="binary")),
    "f1_macro": _classification(lambda y, p: f1_score(y, p, average="macro")),
    "mse": _regression(mean_squared_error),
    "rmse": _regression(_rmse),
    "mae": _regression(mean_absolute_error),
    "precision": _classification(precision_score),
    "precision_macro": _classification(lambda y, p: precision_score(y, p, average="macro")),
    "precision_micro": _classification(lambda y, p: precision_score(y, p, average="micro")),
    "r2": _regression(r2_score),
    "recall": _classification(recall_score),
    "recall_macro": _classification(lambda y, p: recall_score(y, p, average="macro")),
    "recall_micro": _classification(lambda y, p: recall_score(y, p, average="micro")),
}


def custom_feval(names):
    """The function xgboost calls for the container-computed metrics ``names``."""

    def feval(preds, dtrain):
        return [(name, CUSTOM_METRICS[name](preds, dtrain)) for name in names]

    return feval


def _union(first, second):
    if first is None:
        return second
    if second is None:
        return first
    # The image sorts the union so that every host agrees on the order.
    return sorted(set(first) | set(second))


def eval_metrics_and_feval(tuning_objective_metric, eval_metric):
    """Split the requested metrics between xgboost and the container.

    Parameters
    ----------
    tuning_objective_metric : str or None
        ``validation:<metric>`` (from ``_tuning_objective_metric``).
    eval_metric : list of str or None

    Returns
    -------
    (list or None, callable or None, list or None)
        The metrics for xgboost's ``eval_metric``, the custom metric function, and the
        tuning metric names.
    """
    tuning = None
    if tuning_objective_metric is not None:
        tuning = tuning_objective_metric.split(":")[1].split(",")
        log.info("Setting up HPO optimized metric to be : %s", ",".join(tuning))
    union = _union(tuning, eval_metric)
    if union is None:
        return None, None, tuning
    custom = [name for name in union if name in CUSTOM_METRICS]
    if not custom:
        return union, None, tuning
    native = []
    for name in union:
        if name not in CUSTOM_METRICS and name not in native:
            native.append(name)
    return native, custom_feval(custom), tuning


def maximize(metric):
    """Whether early stopping should maximize ``metric`` (the image's list)."""
    return metric in XGB_MAXIMIZE_METRICS
