"""Inference handlers for models of SageMaker's XGBoost algorithm mode.

fedsage's model worker loads ``xgboost_algorithm_serve.py`` (which re-exports this
module's ``model_fn``, ``transform_fn`` and ``execution_parameters_fn``) as the user
module.  They reproduce the image's algorithm-mode Flask app
(``reference/xgboost-builtin.md`` section 3):

- every non-dot file in the model folder is loaded (pickle first, then
  ``Booster.load_model``); several files form an ensemble (``SAGEMAKER_INFERENCE_ENSEMBLE``,
  default ``true``): mean of the predictions, or a vote for multi:softmax and binary:hinge;
- ``POST /invocations``: an empty body is 204; ``text/csv``, ``text/libsvm`` (also when
  no content type is given) and ``application/x-recordio-protobuf`` are read, anything else
  is 415 with the image's text; a payload the model cannot evaluate is 400
  (``Unable to evaluate payload provided: ...``); an Accept other than ``text/csv``,
  ``application/json``, ``application/jsonlines`` and ``application/x-recordio-protobuf``
  is 406;
- responses: CSV one prediction per line, JSON ``{"predictions": [{"score": ...}]}``,
  ``SAGEMAKER_BATCH`` newline-joined values, and with ``SAGEMAKER_INFERENCE_OUTPUT`` the
  selected keys (``predicted_label``, ``probabilities`` ...) in any of the four types;
- ``GET /execution-parameters``: ``MaxConcurrentTransforms`` (CPUs), ``MULTI_RECORD``,
  ``MaxPayloadInMB`` from ``MAX_CONTENT_LENGTH``.

Deliberate differences: ``application/jsonlines`` or RecordIO-protobuf output without
``SAGEMAKER_INFERENCE_OUTPUT`` is 406 with an explanation (the image fails with a 500);
the ensemble vote returns one value per row (the 3.x image's scipy returns only the first);
models load in file-name order; each RecordIO output record holds only its own row.
"""

import contextlib
import csv
import io
import json
import logging
import os
import pickle

os.environ.setdefault("OMP_NUM_THREADS", "1")  # as the image's serving entry point, before xgboost

import numpy as np
import xgboost as xgb

from . import recordio
from .channels import CSV, LIBSVM, RECORDIO_PROTOBUF, get_content_type

log = logging.getLogger("fedsage_xgboost.serve")

JSON = "application/json"
JSONLINES = "application/jsonlines"
RECORDIO = "application/x-recordio-protobuf"
SUPPORTED_ACCEPTS = [JSON, JSONLINES, RECORDIO, "text/csv"]
PKL_FORMAT, XGB_FORMAT = "pkl_format", "xgb_format"
HTML = "text/html; charset=utf-8"  # Flask's default type, which the image's error bodies get

PREDICTED_LABEL = "predicted_label"
LABELS = "labels"
PROBABILITY = "probability"
PROBABILITIES = "probabilities"
RAW_SCORE = "raw_score"
RAW_SCORES = "raw_scores"
PREDICTED_SCORE = "predicted_score"
_CLASSIFIER_KEYS = [PREDICTED_LABEL, LABELS, PROBABILITY, PROBABILITIES, RAW_SCORE, RAW_SCORES]
_NO_PROBABILITIES = [PREDICTED_LABEL, LABELS, RAW_SCORE, RAW_SCORES]
VALID_OBJECTIVES = {
    "reg:squarederror": [PREDICTED_SCORE],
    "reg:logistic": [PREDICTED_SCORE],
    "reg:gamma": [PREDICTED_SCORE],
    "reg:absoluteerror": [PREDICTED_SCORE],
    "reg:tweedie": [PREDICTED_SCORE],
    "binary:logistic": _CLASSIFIER_KEYS,
    "binary:logitraw": _NO_PROBABILITIES,
    "binary:hinge": _NO_PROBABILITIES,
    "multi:softmax": _NO_PROBABILITIES,
    "multi:softprob": _CLASSIFIER_KEYS,
}


class Reply:
    """A response the model worker sends as it is (status, body, content type)."""

    def __init__(self, body=b"", status=200, content_type=HTML):
        self.body = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        self.status_code = status
        self.mimetype = content_type
        self.headers = {"Content-Type": content_type}

    def get_data(self):
        return self.body


def _flask_type(mimetype):
    return mimetype + "; charset=utf-8" if mimetype.startswith("text/") else mimetype


class Model:
    """The loaded booster(s) and what the handlers need to know about them."""

    def __init__(self, boosters, formats, paths):
        self.boosters = boosters
        self.formats = formats
        self.paths = paths
        config = json.loads(boosters[0].save_config())
        self.objective = config["learner"]["objective"]["name"]
        self.num_class = config["learner"]["learner_model_param"].get("num_class", "")

    @property
    def ensemble(self):
        return len(self.boosters) > 1


# ----------------------------------------------------------------- loading
def model_files(model_dir):
    """Every file of ``model_dir`` except dotfiles (warned about), in name order."""
    paths = []
    for name in sorted(os.listdir(model_dir)):
        path = os.path.join(model_dir, name)
        if not os.path.isfile(path):
            continue
        if name.startswith("."):
            log.warning(
                "Ignoring dotfile '%s' found in model directory - please exclude dotfiles "
                "from model archives",
                path,
            )
            continue
        paths.append(path)
    return paths


def load_booster(path):
    """``(booster, format)`` from a pickled booster or an XGBoost model file."""
    # The image tries pickle first: models saved by XGBoost script-mode jobs are pickled
    # boosters, and algorithm-mode endpoints serve them.  The files are the job's own output.
    try:
        with open(path, "rb") as handle:
            booster = pickle.load(handle)
        fmt = PKL_FORMAT
    except Exception as pickle_error:
        try:
            booster = xgb.Booster()
            booster.load_model(path)
            fmt = XGB_FORMAT
        except Exception as xgb_error:
            raise RuntimeError(
                f"Model {path} cannot be loaded:\nPickle load error={pickle_error}\n"
                f"XGB load model error={xgb_error}\n"
                "(every file in the model archive is loaded as an XGBoost model; remove "
                f"{os.path.basename(path)} from it)"
            ) from xgb_error
    booster.set_param("nthread", 1)
    return booster, fmt


def _one_openmp_thread():
    """xgboost's global ``nthread`` at 1 while loading (xgboost 2 and later; else nothing).

    fedsage's server loads the model once in a zygote and forks the workers from it.
    xgboost 3 starts its OpenMP threads while it loads a model, and a forked worker has
    none of them: its first parallel region then waits for them forever (a user's
    ``OMP_NUM_THREADS=2`` hung every request).  Loading with one thread starts no pool,
    so each worker starts its own on first use.
    """
    if "nthread" in xgb.get_config():
        return xgb.config_context(nthread=1)
    return contextlib.nullcontext()


def model_fn(model_dir):
    """Load the model folder as the image does (raises when a file is not a model)."""
    paths = model_files(model_dir)
    if not paths:
        raise RuntimeError(f"Model directory {model_dir} contains no model file")
    if os.environ.get("SAGEMAKER_INFERENCE_ENSEMBLE", "true") != "true":
        paths = paths[:1]
    boosters, formats = [], []
    with _one_openmp_thread():
        for path in paths:
            log.info("Loading the model from %s", path)
            booster, fmt = load_booster(path)
            boosters.append(booster)
            formats.append(fmt)
        model = Model(boosters, formats, paths)
    log.info("Model objective : %s", model.objective)
    return model


# ----------------------------------------------------------------- request bodies
def _clean_csv_row(line, delimiter):
    return ["nan" if cell == "" else cell for cell in line.split(delimiter)]


def csv_to_dmatrix(text):
    """A CSV body (already stripped) -> DMatrix, as the image decodes it."""
    delimiter = csv.Sniffer().sniff(text.split("\n")[0][:512]).delimiter
    if delimiter.isalnum():
        delimiter = ","
    rows = [_clean_csv_row(line, delimiter) for line in text.split("\n")]
    return xgb.DMatrix(np.array(rows).astype(float))


def libsvm_to_dmatrix(text):
    """A libsvm body (already stripped) -> DMatrix; labels and weights are ignored."""
    from scipy.sparse import csr_matrix

    row, col, values = [], [], []
    for index, line in enumerate(text.split("\n")):
        for item in line.split(" "):
            if ":" in item:
                row.append(index)
                col.append(item.split(":")[0])
                values.append(item.split(":")[1])
    rows = np.array(row)
    cols = np.array(col).astype(int)
    data = np.array(values).astype(float)
    return xgb.DMatrix(csr_matrix((data, (rows, cols))))


def recordio_to_dmatrix(body):
    matrix = recordio.read_matrix([body])
    if matrix is None:
        raise ValueError("the body holds no record")
    return xgb.DMatrix(matrix[0])


class ContentError(Exception):
    """The body cannot be read as its content type (HTTP 415)."""


def parse_content(body, content_type):
    """``(DMatrix, data format)`` of a request body, or ``ContentError`` with the image's text."""
    try:
        file_type = get_content_type(content_type)
    except Exception as exc:
        raise ContentError(str(exc)) from exc
    payload = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    if file_type == CSV:
        try:
            return csv_to_dmatrix(payload.strip().decode("utf-8")), file_type
        except Exception as exc:
            raise ContentError(
                "Loading csv data failed with Exception, please ensure data is in csv format:"
                f"\n {type(exc)}\n {exc}"
            ) from exc
    if file_type == LIBSVM:
        try:
            return libsvm_to_dmatrix(payload.strip().decode("utf-8")), file_type
        except Exception as exc:
            raise ContentError(
                "Loading libsvm data failed with Exception, please ensure data is in libsvm "
                f"format:\n {type(exc)}\n {exc}"
            ) from exc
    if file_type == RECORDIO_PROTOBUF:
        try:
            return recordio_to_dmatrix(payload), file_type
        except Exception as exc:
            raise ContentError(
                "Loading recordio-protobuf data failed with Exception, please ensure data is in "
                f"recordio-protobuf format: {type(exc)} {exc}"
            ) from exc
    raise ContentError(f"Content-type {content_type} is not supported.")


# ----------------------------------------------------------------- prediction
def _check_pickled_features(booster, dtest, file_type):
    expected = booster.num_features()
    given = len(dtest.feature_names) if dtest.feature_names is not None else dtest.num_col()
    if file_type == LIBSVM:
        if given > expected + 1:
            raise ValueError(
                f"Feature size of libsvm inference data {given} is larger than feature size of "
                f"trained model {expected}."
            )
    elif not (expected == given or expected == given + 1):
        raise ValueError(
            f"Feature size of {file_type} inference data {given} is not consistent with "
            f"feature size of trained model {expected}."
        )


def _predict_one(booster, dtest):
    limit = getattr(booster, "best_ntree_limit", 0)
    try:
        limit = int(limit) if limit is not None else 0
    except (TypeError, ValueError):
        limit = 0
    if int(xgb.__version__.split(".")[0]) < 2:
        return booster.predict(dtest, ntree_limit=limit, validate_features=False)
    if limit > 0:
        return booster.predict(dtest, iteration_range=(0, limit), validate_features=False)
    return booster.predict(dtest, validate_features=False)


def predict(model, dtest, file_type):
    """Predictions of the model (or the ensemble's mean or vote) for ``dtest``."""
    if model.formats[0] == PKL_FORMAT:
        _check_pickled_features(model.boosters[0], dtest, file_type)
    if not model.ensemble:
        return _predict_one(model.boosters[0], dtest)
    predictions = [_predict_one(booster, dtest) for booster in model.boosters]
    if model.objective in ("multi:softmax", "binary:hinge"):
        from scipy import stats

        log.info("Vote ensemble prediction of %s with %d models", model.objective, len(predictions))
        return np.asarray(stats.mode(np.array(predictions), axis=0).mode).reshape(-1)
    log.info("Average ensemble prediction of %s with %d models", model.objective, len(predictions))
    return np.mean(predictions, axis=0)


# ----------------------------------------------------------------- responses
def parse_accept(accept):
    """The response type: Accept without parameters, lower case; missing or ``*/*`` -> default."""
    value = (accept or "").split(";")[0].strip()
    if not value or value == "*/*":
        return os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "text/csv")
    if value.lower() not in SUPPORTED_ACCEPTS:
        raise ValueError(
            f"Accept type {value} is not supported. "
            f"Please use supported accept types: {SUPPORTED_ACCEPTS}."
        )
    return value.lower()


def array_to_csv(values):
    """CSV as the image's encoder writes it: one row per prediction, ``\\n`` after each."""
    array = np.array(values)
    if array.ndim == 1:
        array = array.reshape(array.shape[0], 1)
    stream = io.StringIO()
    writer = csv.writer(stream, lineterminator="\n", delimiter=",", quotechar='"')
    writer.writerows(array)
    return stream.getvalue()


def encode_predictions(predictions, accept):
    """The body for plain predictions (no ``SAGEMAKER_INFERENCE_OUTPUT``)."""
    values = predictions.tolist()
    if os.environ.get("SAGEMAKER_BATCH"):
        return "\n".join(map(str, values)) + "\n"
    if accept == JSON:
        return json.dumps({"predictions": [{"score": value} for value in values]})
    if accept == "text/csv":
        return array_to_csv(values)
    raise _NotEncodable(accept)


class _NotEncodable(Exception):
    pass


def selected_keys():
    return os.environ["SAGEMAKER_INFERENCE_OUTPUT"].replace(" ", "").lower().split(",")


def _labels(objective, num_class):
    if "binary:" in objective:
        return [0, 1]
    if "multi:" in objective and num_class:
        return list(range(int(num_class)))
    return np.nan


def _predicted_label(objective, raw):
    if objective in ("binary:hinge", "multi:softmax"):
        return raw.item()
    if objective == "binary:logistic":
        return int(raw > 0.5)
    if objective == "binary:logitraw":
        return int(raw > 0)
    if objective == "multi:softprob":
        return np.argmax(raw).item()
    return np.nan


def _probability(objective, raw):
    if objective == "multi:softprob":
        return max(raw).item()
    if objective == "binary:logistic":
        return raw.item()
    return np.nan


def _probabilities(objective, raw):
    if objective == "multi:softprob":
        return raw.tolist()
    if objective == "binary:logistic":
        one = raw.item()
        return [1.0 - one, one]
    return np.nan


def _raw_score(objective, raw):
    if objective == "multi:softprob":
        return max(raw).item()
    if objective in ("binary:logitraw", "binary:hinge", "binary:logistic", "multi:softmax"):
        return raw.item()
    return np.nan


def _raw_scores(objective, raw):
    if objective == "multi:softprob":
        return raw.tolist()
    if objective in ("binary:logitraw", "binary:hinge", "binary:logistic", "multi:softmax"):
        one = raw.item()
        return [1.0 - one, one]
    return np.nan


def selected_predictions(predictions, keys, objective, num_class=""):
    """One dict per row with the keys asked for (NaN for keys the objective lacks)."""
    if objective not in VALID_OBJECTIVES:
        raise ValueError(
            f"Objective `{objective}` unsupported for selectable inference predictions."
        )
    valid = set(keys).intersection(VALID_OBJECTIVES[objective])
    invalid = set(keys).difference(VALID_OBJECTIVES[objective])
    if invalid:
        log.warning(
            "Selected key(s) %s incompatible for objective '%s'. Please use list of compatible "
            "selectable inference predictions: %s",
            invalid,
            objective,
            VALID_OBJECTIVES[objective],
        )
    rows = []
    for raw in predictions:
        out = {}
        if PREDICTED_LABEL in valid:
            out[PREDICTED_LABEL] = _predicted_label(objective, raw)
        if LABELS in valid:
            out[LABELS] = _labels(objective, num_class)
        if PROBABILITY in valid:
            out[PROBABILITY] = _probability(objective, raw)
        if PROBABILITIES in valid:
            out[PROBABILITIES] = _probabilities(objective, raw)
        if RAW_SCORE in valid:
            out[RAW_SCORE] = _raw_score(objective, raw)
        if RAW_SCORES in valid:
            out[RAW_SCORES] = _raw_scores(objective, raw)
        if PREDICTED_SCORE in valid:
            out[PREDICTED_SCORE] = raw.item()
        for key in sorted(invalid):
            out[key] = np.nan
        rows.append(out)
    return rows


def encode_selected(rows, keys, accept):
    """The body for ``SAGEMAKER_INFERENCE_OUTPUT`` predictions in ``accept``."""
    if accept == JSON:
        return json.dumps({"predictions": rows})
    if accept == JSONLINES:
        return "".join(json.dumps(row) + "\n" for row in rows).encode("utf-8")
    if accept == RECORDIO:
        out = b""
        for row in rows:
            label = dict(
                (key, value if isinstance(value, list) else [value]) for key, value in row.items()
            )
            out += recordio.frame(recordio.encode_label_record(label))
        return out
    if accept == "text/csv":
        lines = []
        for row in rows:
            cells = []
            for key in keys:
                value = row[key]
                cells.append(f'"{value}"' if isinstance(value, list) else str(value))
            lines.append(",".join(cells))
        text = "\n".join(lines)
        return text + "\n" if os.environ.get("SAGEMAKER_BATCH") else text
    raise RuntimeError(f"Cannot encode selected predictions into accept type '{accept}'.")


def transform_fn(model, body, content_type, accept):
    """One ``/invocations`` request, in the image's order of checks; returns a ``Reply``."""
    if len(body) == 0:
        return Reply(b"", 204)
    try:
        dtest, file_type = parse_content(body, content_type)
    except ContentError as exc:
        log.info("unsupported payload: %s", exc)
        return Reply(str(exc), 415)
    try:
        predictions = predict(model, dtest, file_type)
    except Exception as exc:
        log.info("the model rejected the payload: %s", exc)
        return Reply("Unable to evaluate payload provided: %s" % exc, 400)
    try:
        accept = parse_accept(accept)
    except ValueError as exc:
        return Reply(str(exc), 406)
    if "SAGEMAKER_INFERENCE_OUTPUT" in os.environ:
        try:
            keys = selected_keys()
            rows = selected_predictions(predictions, keys, model.objective, model.num_class)
            return Reply(encode_selected(rows, keys, accept), 200, _flask_type(accept))
        except Exception as exc:
            log.exception("selectable inference output failed")
            return Reply(str(exc), 500)
    try:
        return Reply(encode_predictions(predictions, accept), 200, _flask_type(accept))
    except _NotEncodable:
        return Reply(
            f"Accept type {accept} needs SAGEMAKER_INFERENCE_OUTPUT (for example "
            "SAGEMAKER_INFERENCE_OUTPUT=predicted_label,probability); without it use "
            "text/csv or application/json (SageMaker's XGBoost answers 500 here)",
            406,
        )


def execution_parameters_fn():
    """``GET /execution-parameters`` as the image answers it."""
    max_bytes = int(os.environ.get("MAX_CONTENT_LENGTH", "6291456"))
    return {
        "MaxConcurrentTransforms": os.cpu_count() or 1,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": int(max_bytes / (1024**2)),
    }
