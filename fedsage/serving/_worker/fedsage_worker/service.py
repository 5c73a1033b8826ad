"""The SageMaker inference contract, free of any HTTP framework.

``Service`` finds the user's handlers (``model_fn``, ``input_fn``, ``predict_fn``,
``output_fn`` or ``transform_fn``; the image's defaults for the ones not given) and
answers one request with a ``Response``; it never raises.
"""

from __future__ import annotations

import gc
import importlib
import json
import logging
import os
import sys
import traceback
from types import ModuleType
from typing import Any, Mapping

import numpy as np

from .codecs import ENCODERS, SUPPORTED, UTF8_TYPES, choose_accept, decode, encode, media_type
from .response import JSON, HttpError, Response, error_response, one_line, to_bytes

log = logging.getLogger("fedsage.worker")

_HANDLER_NAMES = ("input_fn", "predict_fn", "output_fn")


class UserError(Exception):
    """The user's script breaks the handler contract (e.g. transform_fn with input_fn)."""


def default_model_fn(model_dir: str) -> Any:
    """The image has no default ``model_fn``."""
    raise NotImplementedError(
        "Please provide a model_fn implementation. "
        "See documentation for model_fn at "
        "https://sagemaker.readthedocs.io/en/stable/"
    )


def default_input_fn(body: Any, content_type: str) -> Any:
    """Decode the body; JSON and CSV are cast to float32, as in the image."""
    array = decode(body, content_type)
    return array.astype(np.float32) if content_type in UTF8_TYPES else array


def default_predict_fn(data: Any, model: Any) -> Any:
    """``model.predict(data)``; a 1-D payload is made one row (or one column)."""
    # Deliberate difference: a 1-D payload (one row after the image's squeeze) works.
    if isinstance(data, np.ndarray) and data.ndim < 2:
        n_features = getattr(model, "n_features_in_", None)
        if data.ndim == 1 and n_features == 1 and data.size != 1:
            data = data.reshape(-1, 1)
        else:
            data = data.reshape(1, -1)
    return model.predict(data)


def default_output_fn(prediction: Any, accept: str) -> tuple[Any, str]:
    """Encode the prediction for ``accept``."""
    return encode(prediction, accept)


def import_user_module(code_dir: str, program: str) -> ModuleType | None:
    """Import the entry point ``program`` (``inference.py``) from ``code_dir``."""
    if not program:
        return None
    name = program[:-3] if program.endswith(".py") else program
    if code_dir and code_dir not in sys.path:
        sys.path.insert(0, code_dir)
    return importlib.import_module(name)


class Service:
    """The SageMaker inference contract for one loaded entry point.

    Parameters
    ----------
    model_dir : str
        The extracted model (``/opt/ml/model``).
    module : module, optional
        The user's imported entry point (None: the image's defaults, no ``model_fn``).
    default_accept : str, optional
        The response type when ``Accept`` is missing or ``*/*`` (default JSON).
    debug : bool, default=False
        Tracebacks in 500 bodies.
    default_content_type : str, optional
        The request type when ``Content-Type`` is missing (default JSON, as the
        scikit-learn image; built-in algorithms have their own).

    Raises
    ------
    UserError
        If the entry point defines ``transform_fn`` together with another handler.
    """

    def __init__(
        self,
        model_dir: str,
        module: ModuleType | None = None,
        default_accept: str | None = JSON,
        debug: bool = False,
        default_content_type: str | None = JSON,
    ) -> None:
        def user(name: str) -> Any:
            return getattr(module, name, None) if module is not None else None

        self.transform_fn = user("transform_fn")
        given = [n for n in _HANDLER_NAMES if user(n) is not None]
        if self.transform_fn is not None and given:
            raise UserError(
                f"transform_fn cannot be defined together with {', '.join(given)}; "
                "define either transform_fn or input_fn/predict_fn/output_fn"
            )
        self.model_fn = user("model_fn") or default_model_fn
        self.input_fn = user("input_fn")
        self.predict_fn = user("predict_fn") or default_predict_fn
        self.output_fn = user("output_fn")
        self.execution_parameters_fn = user("execution_parameters_fn")
        self.model_dir = model_dir
        self.default_accept = default_accept or JSON
        self.default_content_type = default_content_type or JSON
        self.debug = debug
        self.model: Any = None
        self.loaded = False

    def load(self) -> Any:
        """Run ``model_fn`` once (again after a failure); return the model."""
        if not self.loaded:
            self.model = self.model_fn(self.model_dir)
            self.loaded = True
        return self.model

    def ping(self) -> Response:
        """``GET /ping``: 200 once the model is loaded, else 500 with the reason."""
        try:
            self.load()
        except Exception as exc:
            return self.fault("model_fn failed", exc)
        return Response(b"", 200, mimetype=JSON)

    def execution_parameters(self) -> Response:
        """``GET /execution-parameters``: the script's ``execution_parameters_fn()``."""
        if self.execution_parameters_fn is None:
            return error_response(404, "NotFound", "the script defines no execution_parameters_fn")
        try:
            return to_response(self.execution_parameters_fn(), JSON)
        except Exception as exc:
            return self.fault("execution_parameters_fn failed", exc)

    def invoke(
        self, body: bytes, content_type: str | None = None, accept: str | None = None
    ) -> Response:
        """Answer one ``/invocations`` request; returns a ``Response`` (never raises)."""
        # The user's own handlers get the header as sent, parameters and all, as in the
        # image (``text/csv; label_size=1``); the default decoders match the bare type.
        given = (content_type or "").strip() or self.default_content_type
        content_type = media_type(given)
        accept = choose_accept(accept, self.default_accept)
        custom_in = self.transform_fn is not None or self.input_fn is not None
        custom_out = self.transform_fn is not None or self.output_fn is not None
        if not custom_in and content_type not in SUPPORTED:
            return error_response(
                415,
                "UnsupportedMediaType",
                f"unsupported content type {content_type!r}; use one of {', '.join(SUPPORTED)}",
            )
        if not custom_out and accept not in ENCODERS:
            return error_response(
                406,
                "NotAcceptable",
                f"unsupported accept type {accept!r}; use one of {', '.join(sorted(ENCODERS))}",
            )
        data: Any = body
        if content_type in UTF8_TYPES:
            try:
                data = body.decode("utf-8")
            except UnicodeDecodeError:
                return error_response(400, "BadRequest", "the body is not valid UTF-8 text")
        step = "model_fn"
        try:
            model = self.load()
            if self.transform_fn is not None:
                step = "transform_fn"
                return to_response(self.transform_fn(model, data, given, accept), accept)
            if self.input_fn is None:
                try:
                    data = default_input_fn(data, content_type)
                except HttpError as exc:
                    return error_response(exc.status, "BadRequest", exc.message)
                except Exception as exc:
                    return error_response(
                        400, "BadRequest", f"cannot decode the {content_type} body: {one_line(exc)}"
                    )
            else:
                step = "input_fn"
                data = self.input_fn(data, given)
            step = "predict_fn"
            if self.predict_fn is default_predict_fn:
                try:
                    prediction = default_predict_fn(data, model)
                except (ValueError, TypeError, IndexError) as exc:
                    # model.predict refusing the input (wrong shape, NaN ...) is a client error
                    log.info("the model rejected the input: %s", one_line(exc))
                    return error_response(
                        400, "BadRequest", "the model rejected the input: " + one_line(exc)
                    )
            else:
                prediction = self.predict_fn(data, model)
            step = "output_fn"
            if self.output_fn is None:
                return to_response(default_output_fn(prediction, accept), accept)
            return to_response(self.output_fn(prediction, accept), accept)
        except HttpError as exc:
            return error_response(exc.status, "ModelError", exc.message)
        except Exception as exc:
            return self.fault(f"{step} failed", exc)

    def fault(self, what: str, exc: BaseException) -> Response:
        """A 500 for a failure in the user's code (traceback logged, in the body if debug)."""
        log.error("%s\n%s", what, traceback.format_exc().rstrip())
        message = f"{what}: {one_line(exc)}"
        if self.debug:
            message += " | " + " | ".join(traceback.format_exc().strip().splitlines())
        return error_response(500, "ModelError", message)


class BrokenService:
    """Stands in when the entry point cannot be imported: every route answers 500."""

    def __init__(self, message: str) -> None:
        self.message = message

    def load(self) -> None:
        """Nothing to load."""
        return None

    def _fail(self, *args: Any) -> Response:
        return error_response(500, "ModelError", self.message)

    ping = invoke = execution_parameters = _fail


def to_response(result: Any, accept: str) -> Response:
    """Turn what an output/transform function returned into a ``Response``."""
    if isinstance(result, Response):
        return result
    if hasattr(result, "get_data") and hasattr(result, "status_code"):  # Flask / Werkzeug
        headers = getattr(result, "headers", {}) or {}
        kind = headers.get("Content-Type") or getattr(result, "mimetype", None) or accept
        return Response(result.get_data(), result.status_code, mimetype=kind)
    if isinstance(result, tuple) and len(result) == 2:
        return Response(to_bytes(result[0]), 200, mimetype=result[1] or accept)
    if isinstance(result, dict):
        return Response(json.dumps(result).encode("utf-8"), 200, mimetype=JSON)
    # A bare body is sent as Flask sends it in the image.
    return Response(to_bytes(result), 200, mimetype="text/html; charset=utf-8")


def load_service(model_dir: str, env: Mapping[str, str] | None = None) -> Service | BrokenService:
    """Import the entry point and run ``model_fn`` once (failures are logged, not raised).

    Returns a ``Service`` (or a ``BrokenService`` when the entry point cannot be
    imported, so that ``/ping`` can say what is wrong).
    """
    env = os.environ if env is None else env
    debug = env.get("FEDSAGE_DEBUG", "") not in ("", "0", "false")
    try:
        module = import_user_module(
            env.get("SAGEMAKER_SUBMIT_DIRECTORY", ""), env.get("SAGEMAKER_PROGRAM", "")
        )
        service = Service(
            model_dir,
            module,
            env.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"),
            debug,
            env.get("FEDSAGE_DEFAULT_CONTENT_TYPE"),
        )
    except Exception as exc:  # keep serving, so /ping can say what is wrong
        log.error("cannot load the entry point\n%s", traceback.format_exc().rstrip())
        return BrokenService(f"cannot load the entry point: {one_line(exc)}")
    try:
        service.load()  # preload, so the first request is fast; /ping retries on failure
    except Exception:
        log.error("model_fn failed at start-up\n%s", traceback.format_exc().rstrip())
    return service


def freeze_heap() -> None:
    """Move everything loaded so far (libraries, model) to the permanent GC generation.

    A full collection then no longer walks them (with scikit-learn loaded that walk is a
    latency spike for whichever request is in flight; docs/serving.md has the figures),
    and forked workers do not dirty the pages they share with the zygote.
    """
    gc.collect()
    gc.freeze()
