"""Algorithm-mode training of SageMaker's XGBoost, run as a training job's program.

``<runtime python> xgboost_algorithm_train.py`` (or ``-m fedsage_xgboost.train``) reads
the SageMaker contract files, validates hyperparameters and channels with the image's
rules and messages, loads the channels, trains with ``xgboost.train`` exactly as the
image calls it (same parameters, callbacks and custom metric), prints one evaluation
line per round (``[0]\\ttrain-rmse:0.35008\\tvalidation-rmse:0.35452``, xgboost's own
``EvaluationMonitor``) and saves ``xgboost-model`` in the version's default format
(legacy binary with xgboost 1.x, UBJSON with 3.x).  With ``_kfold`` it trains one model
per fold (``xgboost-model-<i>``) and writes ``predictions.csv`` to the output data folder.

Paths come from the variables SageMaker's toolkit sets (``SM_INPUT_TRAINING_CONFIG_FILE``,
``SM_INPUT_DATA_CONFIG_FILE``, ``SM_CHECKPOINT_CONFIG_FILE``, ``SM_CHANNEL_<NAME>``,
``SM_MODEL_DIR``, ``SM_OUTPUT_DIR``, ``SM_OUTPUT_DATA_DIR``, ``SM_HOSTS``); anything
unset is taken under ``SAGEMAKER_BASE_DIR`` (default ``/opt/ml``).  Command-line
arguments are ignored, as in the image.

On failure the ``output/failure`` file gets the image's text, ``framework error: ``
followed by the traceback and the message, with one change: the message, on one line,
comes right after ``framework error: `` so that it survives SageMaker's cut of the
reason at 1024 characters.  The exit code is 1.  On success ``output/success`` is
written.
"""

import contextlib
import json
import logging
import os
import re
import signal
import sys
import tempfile
import traceback

import numpy as np
import xgboost as xgb

from . import channels as channel_rules
from . import data as data_mod
from . import hyperparameters as hp_rules
from . import metrics as metrics_mod
from .errors import AlgorithmError, PlatformError, UserError

log = logging.getLogger("fedsage_xgboost")

MODEL_NAME = "xgboost-model"
CHECKPOINT_NAME = "xgboost-checkpoint"
PREDICTIONS_FILE = "predictions.csv"
_KEEP_CHECKPOINTS = 5
_REASON_CHARS = 300

# Substrings of xgboost errors that the image reports as the user's fault.
CUSTOMER_ERRORS = [
    "label must be in [0,1] for logistic regression",
    "label must be in [0, num_class)",
    "Target is multiclass but average='binary'",
    "feature_names mismatch",
    "Check failed: preds.size() == info.labels_.size()",
    "Check failed: !auc_error AUC: the dataset only contains pos or neg samples",
    "Check failed: base_score > 0.0f && base_score < 1.0f base_score must be in (0,1) "
    "for logistic loss",
    "Check failed: label_correct PoissonRegression: label must be nonnegative",
    "Check failed: label_correct TweedieRegression: label must be nonnegative",
    "Parameter reg_lambda should be greater equal to 0",
]
NON_GPU_ERROR_MSG = "Dask training is only available for `gpu_hist` training on GPU instances."
INPUT_FORMAT_ERROR_MSG = "Dask training is only supported for CSV and Parquet input."
# xgboost 1.x takes the custom metric as ``feval`` (raw margins); the 3.x image passes
# ``custom_metric`` (transformed predictions).  Each version does what its image does.
METRIC_ARGUMENT = "feval" if data_mod.XGBOOST_MAJOR < 2 else "custom_metric"


class Paths:
    """Where the contract files are, from the ``SM_*`` variables or a base folder."""

    def __init__(self, env):
        base = env.get("SAGEMAKER_BASE_DIR")
        if not base and env.get("SM_INPUT_DIR"):
            base = os.path.dirname(env["SM_INPUT_DIR"].rstrip("/"))
        self.base = base or "/opt/ml"
        self.env = env
        config = os.path.join(self.base, "input", "config")
        self.hyperparameters = env.get("SM_INPUT_TRAINING_CONFIG_FILE") or os.path.join(
            config, "hyperparameters.json"
        )
        self.data_config = env.get("SM_INPUT_DATA_CONFIG_FILE") or os.path.join(
            config, "inputdataconfig.json"
        )
        self.checkpoint_config = env.get("SM_CHECKPOINT_CONFIG_FILE") or os.path.join(
            config, "checkpointconfig.json"
        )
        self.resource_config = os.path.join(
            os.path.dirname(self.hyperparameters), "resourceconfig.json"
        )
        self.model_dir = env.get("SM_MODEL_DIR") or os.path.join(self.base, "model")
        self.output_dir = env.get("SM_OUTPUT_DIR") or os.path.join(self.base, "output")
        self.output_data_dir = env.get("SM_OUTPUT_DATA_DIR") or os.path.join(
            self.output_dir, "data"
        )

    def channel(self, name):
        return self.env.get("SM_CHANNEL_" + name.upper()) or os.path.join(
            self.base, "input", "data", name
        )

    def hosts(self):
        if self.env.get("SM_HOSTS"):
            return json.loads(self.env["SM_HOSTS"])
        if os.path.exists(self.resource_config):
            with open(self.resource_config) as handle:
                return json.load(handle).get("hosts", ["algo-1"])
        return ["algo-1"]


def _read_json(path, what):
    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError as exc:
        raise PlatformError(f"{what} not found: {path}") from exc
    except ValueError as exc:
        raise PlatformError(f"{what} is not valid JSON: {path}", caused_by=exc) from exc


# ----------------------------------------------------------------- callbacks
def load_checkpoint(checkpoint_dir):
    """``(model path, rounds done)`` of the newest ``xgboost-checkpoint.<n>``, or ``(None, 0)``."""
    if not checkpoint_dir or not os.path.isdir(checkpoint_dir):
        return None, 0
    pattern = re.compile(r"^%s\.[0-9]+$" % re.escape(CHECKPOINT_NAME))
    found = [n for n in os.listdir(checkpoint_dir) if pattern.match(n)]
    if not found:
        return None, 0
    newest = max(found, key=lambda n: int(n.split(".")[1]))
    return os.path.join(checkpoint_dir, newest), int(newest.split(".")[1]) + 1


def _save_atomically(model, folder, name):
    handle, tmp = tempfile.mkstemp(dir=folder, prefix=".%s-" % name, suffix=".sagemaker-ignore")
    os.close(handle)
    try:
        model.save_model(tmp)
        os.replace(tmp, os.path.join(folder, name))
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


class SaveCheckpoint(xgb.callback.TrainingCallback):
    """Writes ``xgboost-checkpoint.<round>`` after every round and keeps the newest five.

    The image writes one unusable checkpoint and never resumes; fedsage writes the files
    the image's own loader looks for, so a rerun with the same checkpoint folder resumes.
    """

    def __init__(self, directory):
        xgb.callback.TrainingCallback.__init__(self)
        self.directory = directory
        os.makedirs(directory, exist_ok=True)

    def after_iteration(self, model, epoch, evals_log):
        # ``epoch`` restarts at 0 in a resumed run; the booster knows the real round.
        done = model.num_boosted_rounds() - 1
        _save_atomically(model, self.directory, "%s.%d" % (CHECKPOINT_NAME, done))
        stale = os.path.join(self.directory, "%s.%d" % (CHECKPOINT_NAME, done - _KEEP_CHECKPOINTS))
        if os.path.exists(stale):
            os.remove(stale)
        return False


class SaveIntermediateModel(xgb.callback.TrainingCallback):
    """``save_model_on_termination=true``: the model file is rewritten after every round."""

    def __init__(self, model_dir, name):
        xgb.callback.TrainingCallback.__init__(self)
        self.model_dir = model_dir
        self.name = name
        os.makedirs(model_dir, exist_ok=True)

    def after_iteration(self, model, epoch, evals_log):
        _save_atomically(model, self.model_dir, self.name)
        return False


def _stop_keeping_models(model_dir):
    def handler(signum, frame):
        for name in os.listdir(model_dir):
            path = os.path.join(model_dir, name)
            if os.path.isfile(path) and not name.startswith(MODEL_NAME):
                with contextlib.suppress(OSError):
                    os.remove(path)
        os._exit(0)

    signal.signal(signal.SIGTERM, handler)


def callbacks_for(
    model_dir,
    checkpoint_dir,
    early_stopping_data_name,
    early_stopping_metric,
    early_stopping_rounds,
    save_model_on_termination,
    fold=None,
):
    """``(xgb_model, rounds done, callbacks)`` as the image sets them up."""
    if checkpoint_dir and fold is not None:
        checkpoint_dir = os.path.join(checkpoint_dir, "model-%d" % fold)
    xgb_model, iteration = load_checkpoint(checkpoint_dir)
    if xgb_model is not None:
        log.info("Checkpoint loaded from %s", xgb_model)
        log.info("Resuming from iteration %s", iteration)
    callbacks = [xgb.callback.EvaluationMonitor()]
    if checkpoint_dir:
        callbacks.append(SaveCheckpoint(checkpoint_dir))
    if save_model_on_termination == "true":
        name = "%s-%d" % (MODEL_NAME, fold) if fold is not None else MODEL_NAME
        callbacks.append(SaveIntermediateModel(model_dir, name))
        _stop_keeping_models(model_dir)
    if early_stopping_data_name and early_stopping_metric and early_stopping_rounds:
        callbacks.append(
            xgb.callback.EarlyStopping(
                rounds=early_stopping_rounds,
                data_name=early_stopping_data_name,
                metric_name=early_stopping_metric,
                maximize=metrics_mod.maximize(early_stopping_metric),
                save_best=True,
            )
        )
    return xgb_model, iteration, callbacks


# ----------------------------------------------------------------- training
def _xgb_train(params, dtrain, rounds, evals, feval, callbacks, xgb_model, evals_result=None):
    kwargs = {
        "num_boost_round": rounds,
        "evals": evals,
        "callbacks": callbacks,
        "xgb_model": xgb_model,
        "verbose_eval": False,
        METRIC_ARGUMENT: feval,
    }
    if evals_result is not None:
        kwargs["evals_result"] = evals_result
    return xgb.train(params, dtrain, **kwargs)


def _cv_report(num_round, evals_results):
    report = "[%d]" % num_round
    first = evals_results[0]
    for metric in first["train"]:
        for data_name in first:
            values = [result[data_name][metric][-1] for result in evals_results]
            report += "\t%s-%s:%.5f" % (data_name, metric, np.mean(values))
    print(report, flush=True)


class PredictionRecorder:
    """Out-of-fold predictions of ``_kfold`` training, saved as ``predictions.csv``.

    Columns: the label, then the mean prediction (regression), or the mean probability
    and the most frequent predicted class (classification).
    """

    def __init__(self, y_true, num_cv_round, classification, output_data_dir):
        self.y_true = np.array(y_true, copy=True)
        self.num_cv_round = num_cv_round
        self.classification = classification
        self.output_data_dir = output_data_dir
        self.y_pred = np.zeros((len(y_true), num_cv_round))
        self.y_prob = self.y_pred.copy() if classification else None
        self.seen = np.zeros(len(y_true), dtype=int)

    def record(self, indices, predictions):
        repeat = self.seen[indices]
        if self.classification:
            if predictions.ndim > 1:
                labels = np.argmax(predictions, axis=-1)
                proba = predictions[np.arange(len(labels)), labels]
            else:
                labels = 1 * (predictions > 0.5)
                proba = predictions
            self.y_pred[indices, repeat] = labels
            self.y_prob[indices, repeat] = proba
        else:
            self.y_pred[indices, repeat] = predictions
        self.seen[indices] += 1

    def save(self):
        columns = [self.y_true]
        if self.classification:
            from scipy import stats

            columns.append(self.y_prob.mean(axis=-1))
            mode = np.asarray(stats.mode(self.y_pred, axis=1).mode)
            columns.append(mode.reshape(len(self.y_true), -1)[:, 0])
        else:
            columns.append(self.y_pred.mean(axis=-1))
        os.makedirs(self.output_data_dir, exist_ok=True)
        path = os.path.join(self.output_data_dir, PREDICTIONS_FILE)
        log.info("Storing predictions on validation set(s) in %s", path)
        np.savetxt(path, np.vstack(columns).T, delimiter=",", fmt="%f")


def train_job(train_cfg, train_dmatrix, val_dmatrix, train_val_dmatrix, paths, checkpoint_dir):
    """Train (once, or once per fold) and save the model file(s)."""
    num_round = train_cfg.pop("num_round")
    save_model_on_termination = train_cfg.pop("save_model_on_termination", "false")
    tuning_param = train_cfg.pop("_tuning_objective_metric", None)
    eval_metric = train_cfg.get("eval_metric")
    native, feval, tuning = metrics_mod.eval_metrics_and_feval(tuning_param, eval_metric)
    if native:
        train_cfg["eval_metric"] = native
    else:
        train_cfg.pop("eval_metric", None)

    early_stopping_rounds = train_cfg.pop("early_stopping_rounds", None)
    early_stopping_data_name = "validation" if val_dmatrix else None
    early_stopping_metric = None
    if early_stopping_rounds:
        if tuning:
            early_stopping_metric = tuning[-1]
        elif eval_metric:
            early_stopping_metric = eval_metric[-1]
        if not (early_stopping_data_name and early_stopping_metric):
            log.warning(
                "early_stopping_rounds=%s has no effect: early stopping needs a validation "
                "channel and eval_metric (SageMaker's XGBoost ignores it the same way)",
                early_stopping_rounds,
            )

    log.info(
        "Train matrix has %d rows and %d columns", train_dmatrix.num_row(), train_dmatrix.num_col()
    )
    if val_dmatrix:
        log.info("Validation matrix has %d rows", val_dmatrix.num_row())

    model_dir = paths.model_dir
    kfold = train_cfg.pop("_kfold", None)
    watchlist = [(train_dmatrix, "train")]
    if val_dmatrix is not None:
        watchlist.append((val_dmatrix, "validation"))
    if kfold is not None and train_cfg.get("objective") is None and not train_cfg.get("num_class"):
        raise UserError(
            "_kfold needs the objective hyperparameter (SageMaker's XGBoost fails without it: "
            "'NoneType' object has no attribute 'startswith'); set objective"
        )
    try:
        if kfold is None:
            xgb_model, iteration, callbacks = callbacks_for(
                model_dir,
                checkpoint_dir,
                early_stopping_data_name,
                early_stopping_metric,
                early_stopping_rounds,
                save_model_on_termination,
            )
            boosters = _xgb_train(
                train_cfg,
                train_dmatrix,
                num_round - iteration,
                watchlist,
                feval,
                callbacks,
                xgb_model,
            )
        else:
            boosters = _train_folds(
                train_cfg,
                kfold,
                num_round,
                train_val_dmatrix,
                watchlist,
                feval,
                paths,
                checkpoint_dir,
                early_stopping_data_name,
                early_stopping_metric,
                early_stopping_rounds,
                save_model_on_termination,
            )
    except Exception as exc:
        text = str(exc)
        for known in CUSTOMER_ERRORS:
            if known in text:
                raise UserError(text) from exc
        raise AlgorithmError(f"XGB train call failed with exception:\n {text}") from exc

    os.makedirs(model_dir, exist_ok=True)
    if isinstance(boosters, list):
        for fold, booster in enumerate(boosters):
            booster.save_model(os.path.join(model_dir, "%s-%d" % (MODEL_NAME, fold)))
    else:
        boosters.save_model(os.path.join(model_dir, MODEL_NAME))


def _train_folds(
    train_cfg,
    kfold,
    num_round,
    train_val_dmatrix,
    watchlist,
    feval,
    paths,
    checkpoint_dir,
    early_stopping_data_name,
    early_stopping_metric,
    early_stopping_rounds,
    save_model_on_termination,
):
    from sklearn.model_selection import RepeatedKFold, RepeatedStratifiedKFold

    num_cv_round = train_cfg.pop("_num_cv_round", 1)
    log.info(
        "Run %d-round of %d-fold cross validation with %d rows",
        num_cv_round,
        kfold,
        train_val_dmatrix.num_row(),
    )
    objective = train_cfg.get("objective") or ""
    classification = bool(train_cfg.get("num_class") or objective.startswith("binary:"))
    rows = range(train_val_dmatrix.num_row())
    y = train_val_dmatrix.get_label() if classification else None
    splitter = (
        RepeatedStratifiedKFold(n_splits=kfold, n_repeats=num_cv_round)
        if y is not None
        else RepeatedKFold(n_splits=kfold, n_repeats=num_cv_round)
    )
    recorder = PredictionRecorder(
        train_val_dmatrix.get_label(), num_cv_round, classification, paths.output_data_dir
    )
    boosters, results = [], []
    for train_idx, val_idx in splitter.split(X=rows, y=y):
        fold_train = train_val_dmatrix.slice(train_idx)
        fold_val = train_val_dmatrix.slice(val_idx)
        xgb_model, iteration, callbacks = callbacks_for(
            paths.model_dir,
            checkpoint_dir,
            early_stopping_data_name,
            early_stopping_metric,
            early_stopping_rounds,
            save_model_on_termination,
            fold=len(boosters),
        )
        evals_result = {}
        log.info("Train cross validation fold %d", (len(boosters) % kfold) + 1)
        # As in the image, the rounds are evaluated on the channels, not on the fold.
        booster = _xgb_train(
            train_cfg,
            fold_train,
            num_round - iteration,
            watchlist,
            feval,
            callbacks,
            xgb_model,
            evals_result,
        )
        boosters.append(booster)
        results.append(evals_result)
        recorder.record(val_idx, booster.predict(fold_val))
        if len(boosters) % kfold == 0:
            log.info("The metrics of round %d cross validation", len(boosters) // kfold)
            _cv_report(num_round, results[-kfold:])
    recorder.save()
    if num_cv_round > 1:
        log.info("The overall metrics of %d-round cross validation", num_cv_round)
        _cv_report(num_round, results)
    return boosters


def sagemaker_train(paths):
    """Validate, load and train: the whole of algorithm mode (raises on failure)."""
    train_config = _read_json(paths.hyperparameters, "hyperparameters.json")
    data_config = _read_json(paths.data_config, "inputdataconfig.json")
    checkpoint_config = {}
    if os.path.exists(paths.checkpoint_config):
        checkpoint_config = _read_json(paths.checkpoint_config, "checkpointconfig.json")

    validated = hp_rules.validate(train_config)
    if validated.get("updater"):
        validated["updater"] = ",".join(validated["updater"])
    validated_channels = channel_rules.validate(data_config)
    log.debug("hyperparameters %s", validated)
    log.debug("channels %s", validated_channels)

    hosts = paths.hosts()
    if len(hosts) != 1:
        raise PlatformError(
            "fedsage runs algorithm mode on one host, this job lists {} ({}); use "
            "instance_count=1".format(len(hosts), ", ".join(hosts))
        )

    train_path = paths.channel("train")
    val_path = paths.channel("validation") if "validation" in validated_channels else None
    file_type = channel_rules.get_content_type(validated_channels["train"].get("ContentType"))
    csv_weights = validated.get("csv_weights", 0)
    combine_train_val = "_kfold" in validated
    if val_path is not None:
        if train_path == val_path or os.path.basename(train_path) == os.path.basename(val_path):
            log.warning(
                "Found same path for training and validation. This is not recommended and "
                "results may not be correct."
            )
        else:
            data_mod.check_data_redundancy(train_path, val_path)

    checkpoint_dir = checkpoint_config.get("LocalPath")
    if validated.pop("use_dask_gpu_training", "false") == "true":
        problems = [NON_GPU_ERROR_MSG]
        if file_type not in (channel_rules.CSV, channel_rules.PARQUET):
            problems.append(INPUT_FORMAT_ERROR_MSG)
        raise UserError(
            "Some configurations unsuitable for Dask GPU training were found: "
            + ". ".join(problems)
        )

    train_size = data_mod.get_size(train_path)
    val_size = data_mod.get_size(val_path) if val_path else 0
    log.debug(
        "File size need to be processed in the node: %smb.",
        round((train_size + val_size) / (1024 * 1024), 2),
    )
    if train_size > 0:
        data_mod.validate_data_file_path(train_path, file_type)
    if val_size > 0:
        data_mod.validate_data_file_path(val_path, file_type)
    train_dmatrix = data_mod.get_dmatrix(train_path, file_type, csv_weights) if train_size else None
    val_dmatrix = data_mod.get_dmatrix(val_path, file_type, csv_weights) if val_size else None
    train_val_dmatrix = train_dmatrix
    if combine_train_val and train_dmatrix is not None and val_dmatrix is not None:
        log.info("Read both train and validation data into one DMatrix")
        train_val_dmatrix = data_mod.get_dmatrix([train_path, val_path], file_type, csv_weights)

    if not train_dmatrix:
        raise UserError(f"No data in training channel path {train_path}")
    if "validation" in validated_channels and not val_dmatrix:
        raise UserError(f"No data in validation channel path {val_path}")
    log.info("Single node training.")
    train_job(validated, train_dmatrix, val_dmatrix, train_val_dmatrix, paths, checkpoint_dir)


def failure_text(exc, formatted_traceback):
    """The failure file's text: the image's, with the message first on one line."""
    message = str(exc)
    reason = " ".join(message.split()) or type(exc).__name__
    if len(reason) > _REASON_CHARS:
        reason = reason[: _REASON_CHARS - 3] + "..."
    return "framework error: %s\n%s\n%s" % (reason, formatted_traceback, message)


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)


def _configure_logging():
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter("[%(asctime)s:%(levelname)s] %(message)s", "%Y-%m-%d:%H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def main(argv=None, env=None):
    """Run algorithm-mode training; return the process exit code (0 or 1)."""
    _configure_logging()
    paths = Paths(os.environ if env is None else env)
    log.info("Running XGBoost Sagemaker in algorithm mode (fedsage, xgboost %s)", xgb.__version__)
    try:
        sagemaker_train(paths)
    except Exception as exc:
        text = failure_text(exc, traceback.format_exc())
        _write(os.path.join(paths.output_dir, "failure"), text)
        log.error("Reporting training FAILURE")
        log.error(text)
        code = getattr(exc, "errno", None)
        return code if isinstance(code, int) and code > 0 else 1
    _write(os.path.join(paths.output_dir, "success"), "")
    log.info("Reporting training SUCCESS")
    return 0


def run():
    """Entry point: exit with :func:`main`'s code without waiting for xgboost's threads."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
