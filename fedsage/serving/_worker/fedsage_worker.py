"""fedsage's model worker: SageMaker's scikit-learn inference contract over HTTP/1.1.

This one module runs inside a framework runtime's own interpreter (Python 3.7 ... 3.12),
so it uses only the standard library, numpy and what the runtime itself has, in
Python 3.7 syntax.  ``fedsage.serving.supervisor`` starts it in one of two ways::

    <runtime python> fedsage_worker.py --control N --model-dir DIR   # zygote (default)
    <runtime python> fedsage_worker.py --fd N --model-dir DIR        # one plain worker

As a zygote it imports the entry point and runs ``model_fn`` once, then forks the
workers (they share the model copy-on-write) whenever the supervisor sends a ``fork``
command with a listening socket over the control socket ``N``; see ``Zygote``.  The
zygote keeps the listening sockets, accepts the connections and hands each to the next
worker in turn (``SCM_RIGHTS``), skipping workers that are busy with a long request, so
a few keep-alive clients are spread evenly.  A plain worker (``--fd``) accepts on its own
listening socket (the supervisor binds one per worker with ``SO_REUSEPORT``).  Workers
serve ``GET /ping``, ``POST /invocations`` and ``GET /execution-parameters``.  Settings
come from the SageMaker serving variables (``SAGEMAKER_PROGRAM``,
``SAGEMAKER_SUBMIT_DIRECTORY``, ``SAGEMAKER_MODEL_SERVER_TIMEOUT``,
``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``) plus ``FEDSAGE_MAX_BODY`` (bytes) and
``FEDSAGE_DEBUG`` (and ``FEDSAGE_HANG_GRACE``, seconds beyond the request timeout after
which the zygote kills a worker whose event loop stopped beating; default 10).

The handler half (``Service``, codecs) knows nothing of sockets and is tested on its own;
the protocol half (``HttpProtocol``) is a plain ``asyncio.Protocol``.
"""

import argparse
import array
import asyncio
import csv
import gc
import importlib
import io
import json
import logging
import mmap
import os
import select
import signal
import socket
import struct
import sys
import time
import traceback

import numpy as np

log = logging.getLogger("fedsage.worker")

JSON, CSV, NPY = "application/json", "text/csv", "application/x-npy"
UTF8_TYPES = (JSON, CSV)
DEFAULT_MAX_BODY = 6 * 1024 * 1024
_HANDLER_NAMES = ("input_fn", "predict_fn", "output_fn")


class Response(object):
    """A response a handler may return (same arguments as ``sagemaker_containers``'s)."""

    def __init__(self, response=None, status=200, headers=None, mimetype=None,
                 content_type=None):
        self.response = response if response is not None else b""
        self.status_code = int(status)
        self.headers = dict(headers or {})
        self.content_type = content_type or mimetype or JSON

    def get_data(self):
        return _to_bytes(self.response)


class HttpError(Exception):
    """A failure with its status code; the message goes into a one-line JSON body."""

    def __init__(self, status, message):
        Exception.__init__(self, message)
        self.status = status
        self.message = message


class UserError(Exception):
    """The user's script breaks the handler contract (e.g. transform_fn with input_fn)."""


class _Timeout(BaseException):
    pass


# ---------------------------------------------------------------- default codecs (image's)
def _to_bytes(body):
    if isinstance(body, bytes):
        return body
    if isinstance(body, bytearray):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, (list, tuple)) and all(isinstance(b, (bytes, str)) for b in body):
        return b"".join(_to_bytes(b) for b in body)
    raise TypeError("cannot send a %s as a response body" % type(body).__name__)


_CSV_FIELD_LIMIT = 131072  # csv.field_size_limit()'s default


def csv_rows(text):
    """Rows as ``csv.reader`` (the image's settings) splits them, faster for plain text.

    Text without quotes, carriage returns or NUL characters, and too short to exceed
    ``csv``'s field size limit, is split with ``str.split`` (same rows, an empty line
    gives ``[]`` as in ``csv.reader``); anything else goes through ``csv.reader``.
    """
    if (len(text) <= _CSV_FIELD_LIMIT and '"' not in text and "\r" not in text
            and "\0" not in text):
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()
        return [line.split(",") if line else [] for line in lines]
    return list(csv.reader(io.StringIO(text), delimiter=",", quotechar='"',
                           doublequote=True, strict=True))


def csv_to_numpy(text, dtype=None):
    return np.array(csv_rows(text)).squeeze().astype(dtype)


def npy_to_numpy(body):
    stream = io.BytesIO(body)
    fmt = np.lib.format
    version = fmt.read_magic(stream)
    if version == (1, 0):
        shape, _, dtype = fmt.read_array_header_1_0(stream)
    else:
        shape, _, dtype = fmt.read_array_header_2_0(stream)
    count = 1
    for n in shape:
        count *= int(n)
    if dtype.hasobject:
        raise ValueError("object arrays (pickles) are not accepted")
    if count * dtype.itemsize > len(body):
        raise ValueError("the npy header announces more data than the body holds")
    stream.seek(0)
    return np.load(stream, allow_pickle=False)


def decode(body, content_type):
    """Decode a request body as the scikit-learn image does (``HttpError`` 415 if unknown)."""
    if content_type == JSON:
        return np.array(json.loads(body))
    if content_type == CSV:
        return csv_to_numpy(body)
    if content_type == NPY:
        return npy_to_numpy(body)
    raise HttpError(415, "unsupported content type %r; use one of %s"
                    % (content_type, ", ".join((JSON, CSV, NPY))))


def _tolist(obj):
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return json.JSONEncoder().default(obj)


def array_to_csv(array):
    array = np.asarray(array)
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim == 1:
        return "".join(["%s\n" % (v,) for v in array])
    return "".join([",".join(["%s" % (v,) for v in row]) + "\n" for row in array])


def array_to_npy(array):
    stream = io.BytesIO()
    np.save(stream, array)
    return stream.getvalue()


def array_to_json(value):
    # An ndarray is written as its tolist() -- what json.dumps(default=tolist) writes --
    # without building a JSONEncoder per call.
    if type(value) is np.ndarray:
        return json.dumps(value.tolist())
    return json.dumps(value, default=_tolist)


ENCODERS = {
    JSON: (array_to_json, JSON),
    CSV: (array_to_csv, "text/csv; charset=utf-8"),
    NPY: (array_to_npy, NPY),
}


def encode(prediction, accept):
    """Encode a prediction for ``accept``; returns ``(body, content_type)``."""
    try:
        encoder, content_type = ENCODERS[accept]
    except KeyError:
        raise HttpError(406, "unsupported accept type %r; use one of %s"
                        % (accept, ", ".join(sorted(ENCODERS))))
    return encoder(prediction), content_type


def default_model_fn(model_dir):
    raise NotImplementedError("Please provide a model_fn implementation. "
                              "See documentation for model_fn at "
                              "https://sagemaker.readthedocs.io/en/stable/")


def default_input_fn(body, content_type):
    array = decode(body, content_type)
    return array.astype(np.float32) if content_type in UTF8_TYPES else array


def default_predict_fn(data, model):
    # Deliberate difference: a 1-D payload (one row after the image's squeeze) works.
    if isinstance(data, np.ndarray) and data.ndim < 2:
        n_features = getattr(model, "n_features_in_", None)
        if data.ndim == 1 and n_features == 1 and data.size != 1:
            data = data.reshape(-1, 1)
        else:
            data = data.reshape(1, -1)
    return model.predict(data)


def default_output_fn(prediction, accept):
    return encode(prediction, accept)


# ---------------------------------------------------------------- handlers and service
def media_type(value):
    """``'text/csv; charset=utf-8'`` -> ``'text/csv'`` (lower case, no parameters)."""
    return value.split(";", 1)[0].strip().lower()


def choose_accept(header, default):
    if not header:
        return default
    first = None
    for item in header.split(","):
        kind = media_type(item)
        if kind in ("*/*", ""):
            kind = default
        if kind in ENCODERS:
            return kind
        first = first or kind
    return first or default


def import_user_module(code_dir, program):
    """Import the entry point ``program`` (``inference.py``) from ``code_dir``."""
    if not program:
        return None
    name = program[:-3] if program.endswith(".py") else program
    if code_dir and code_dir not in sys.path:
        sys.path.insert(0, code_dir)
    return importlib.import_module(name)


class Service(object):
    """The SageMaker inference contract, free of any HTTP framework.

    Parameters: ``model_dir``; ``module`` the user's imported entry point (or None);
    ``default_accept``; ``debug`` (tracebacks in 500 bodies).
    """

    def __init__(self, model_dir, module=None, default_accept=JSON, debug=False):
        def user(name):
            return getattr(module, name, None) if module is not None else None
        self.transform_fn = user("transform_fn")
        given = [n for n in _HANDLER_NAMES if user(n) is not None]
        if self.transform_fn is not None and given:
            raise UserError("transform_fn cannot be defined together with %s; define either "
                            "transform_fn or input_fn/predict_fn/output_fn" % ", ".join(given))
        self.model_fn = user("model_fn") or default_model_fn
        self.input_fn = user("input_fn")
        self.predict_fn = user("predict_fn") or default_predict_fn
        self.output_fn = user("output_fn")
        self.execution_parameters_fn = user("execution_parameters_fn")
        self.model_dir = model_dir
        self.default_accept = default_accept or JSON
        self.debug = debug
        self.model = None
        self.loaded = False

    def load(self):
        if not self.loaded:
            self.model = self.model_fn(self.model_dir)
            self.loaded = True
        return self.model

    def ping(self):
        try:
            self.load()
        except Exception as exc:
            return self.fault("model_fn failed", exc)
        return Response(b"", 200, mimetype=JSON)

    def execution_parameters(self):
        if self.execution_parameters_fn is None:
            return error_response(404, "NotFound", "the script defines no execution_parameters_fn")
        try:
            return to_response(self.execution_parameters_fn(), JSON)
        except Exception as exc:
            return self.fault("execution_parameters_fn failed", exc)

    def invoke(self, body, content_type=None, accept=None):
        """Answer one ``/invocations`` request; returns a ``Response`` (never raises)."""
        content_type = media_type(content_type or "") or JSON
        accept = choose_accept(accept, self.default_accept)
        custom_in = self.transform_fn is not None or self.input_fn is not None
        custom_out = self.transform_fn is not None or self.output_fn is not None
        if not custom_in and content_type not in (JSON, CSV, NPY):
            return error_response(415, "UnsupportedMediaType", "unsupported content type %r; "
                                  "use one of %s" % (content_type, ", ".join((JSON, CSV, NPY))))
        if not custom_out and accept not in ENCODERS:
            return error_response(406, "NotAcceptable", "unsupported accept type %r; use one "
                                  "of %s" % (accept, ", ".join(sorted(ENCODERS))))
        if content_type in UTF8_TYPES:
            try:
                body = body.decode("utf-8")
            except UnicodeDecodeError:
                return error_response(400, "BadRequest", "the body is not valid UTF-8 text")
        step = "model_fn"
        try:
            model = self.load()
            if self.transform_fn is not None:
                step = "transform_fn"
                return to_response(self.transform_fn(model, body, content_type, accept), accept)
            if self.input_fn is None:
                try:
                    data = default_input_fn(body, content_type)
                except HttpError as exc:
                    return error_response(exc.status, "BadRequest", exc.message)
                except Exception as exc:
                    return error_response(400, "BadRequest", "cannot decode the %s body: %s"
                                          % (content_type, _one_line(exc)))
            else:
                step = "input_fn"
                data = self.input_fn(body, content_type)
            step = "predict_fn"
            if self.predict_fn is default_predict_fn:
                try:
                    prediction = default_predict_fn(data, model)
                except (ValueError, TypeError, IndexError) as exc:
                    # model.predict refusing the input (wrong shape, NaN ...) is a client error
                    log.info("the model rejected the input: %s", _one_line(exc))
                    return error_response(400, "BadRequest", "the model rejected the input: "
                                          + _one_line(exc))
            else:
                prediction = self.predict_fn(data, model)
            step = "output_fn"
            if self.output_fn is None:
                return to_response(default_output_fn(prediction, accept), accept)
            return to_response(self.output_fn(prediction, accept), accept)
        except HttpError as exc:
            return error_response(exc.status, "ModelError", exc.message)
        except Exception as exc:
            return self.fault("%s failed" % step, exc)

    def fault(self, what, exc):
        log.error("%s\n%s", what, traceback.format_exc().rstrip())
        message = "%s: %s" % (what, _one_line(exc))
        if self.debug:
            message += " | " + " | ".join(traceback.format_exc().strip().splitlines())
        return error_response(500, "ModelError", message)


class BrokenService(object):
    """Stands in when the entry point cannot be imported: every route answers 500."""

    def __init__(self, message):
        self.message = message

    def load(self):
        return None

    def _fail(self, *args):
        return error_response(500, "ModelError", self.message)

    ping = invoke = execution_parameters = _fail


def _one_line(exc):
    text = " ".join(str(exc).split())
    text = "%s: %s" % (type(exc).__name__, text) if text else type(exc).__name__
    return text if len(text) <= 1000 else text[:997] + "..."


def error_response(status, error, message):
    body = json.dumps({"error": error, "message": message})
    return Response(body.encode("utf-8"), status, mimetype=JSON)


def to_response(result, accept):
    """Turn what an output/transform function returned into a ``Response``."""
    if isinstance(result, Response):
        return result
    if hasattr(result, "get_data") and hasattr(result, "status_code"):  # Flask / Werkzeug
        headers = getattr(result, "headers", {}) or {}
        kind = headers.get("Content-Type") or getattr(result, "mimetype", None) or accept
        return Response(result.get_data(), result.status_code, mimetype=kind)
    if isinstance(result, tuple) and len(result) == 2:
        return Response(_to_bytes(result[0]), 200, mimetype=result[1] or accept)
    if isinstance(result, dict):
        return Response(json.dumps(result).encode("utf-8"), 200, mimetype=JSON)
    # A bare body is sent as Flask sends it in the image.
    return Response(_to_bytes(result), 200, mimetype="text/html; charset=utf-8")


# ---------------------------------------------------------------- HTTP/1.1 protocol
_REASONS = {100: "Continue", 200: "OK", 400: "Bad Request", 404: "Not Found",
            405: "Method Not Allowed", 406: "Not Acceptable", 408: "Request Timeout",
            411: "Length Required", 413: "Payload Too Large", 415: "Unsupported Media Type",
            431: "Request Header Fields Too Large", 500: "Internal Server Error",
            501: "Not Implemented", 503: "Service Unavailable", 504: "Gateway Timeout"}
_MAX_HEAD = 64 * 1024
_ROUTES = {b"/ping": (b"GET", b"HEAD"), b"/invocations": (b"POST",),
           b"/execution-parameters": (b"GET", b"HEAD")}


def render(response, keep_alive, head_only=False):
    body = response.get_data()
    status = response.status_code
    head = "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n" % (
        status, _REASONS.get(status, "Unknown"), response.content_type, len(body))
    for name, value in response.headers.items():
        if name.lower() not in ("content-type", "content-length", "connection"):
            head += "%s: %s\r\n" % (name, value)
    if not keep_alive:
        head += "Connection: close\r\n"
    head = (head + "\r\n").encode("latin-1")
    return head if head_only else head + body


def _parse_chunked(buf, pos, limit):
    """Return ``(body, end)`` of a chunked body starting at ``pos``, or None if incomplete."""
    parts, total = [], 0
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(buf[pos:eol].split(b";", 1)[0].strip(), 16)
        if size < 0:
            raise ValueError("negative chunk size")
        total += size
        if total > limit:
            raise HttpError(413, "")
        if size == 0:
            end = buf.find(b"\r\n\r\n", eol)
            if end < 0:
                return None
            return b"".join(parts), end + 4
        start = eol + 2
        if len(buf) < start + size + 2:
            return None
        parts.append(bytes(buf[start:start + size]))
        pos = start + size + 2


# After each response, let whoever that response woke (a client or proxy on the same
# cores: the notebook, a sidecar, a load generator) run before the next request here.
# Under saturation a worker otherwise keeps the CPU for a whole scheduler slice while
# the client waits: on 2 shared cores, one-row CSV at 8 connections, p99 fell from
# 3.3-4.5 ms to 2.2-2.7 ms and req/s rose 5-10 % (and with a CPU hog running beside,
# p99 6-41 ms instead of 9.5-87 ms).  It returns at once when nothing else is runnable.
_yield_cpu = getattr(os, "sched_yield", lambda: None)


class HttpProtocol(asyncio.Protocol):
    """One keep-alive connection; requests are answered in order, synchronously."""

    def __init__(self, server):
        self.server = server
        self.transport = None
        self.buf = bytearray()
        self.continued = False

    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.connections.add(self)

    def connection_lost(self, exc):
        self.server.connections.discard(self)
        self.transport = None

    def data_received(self, data):
        self.buf += data
        try:
            while self.transport is not None and self.buf and self._one_request():
                pass
        except HttpError as exc:
            self._send_error(exc.status, exc.message)
        except Exception:
            log.exception("cannot parse a request")
            self._send_error(400, "malformed request")

    def idle(self):
        return not self.buf

    def _send_error(self, status, message):
        if self.transport is not None:
            names = {400: "BadRequest", 413: "PayloadTooLarge", 431: "HeadersTooLarge"}
            response = error_response(status, names.get(status, "Error"), message)
            self.transport.write(render(response, False))
            self.transport.close()
            self.transport = None

    def _one_request(self):
        buf = self.buf
        head_end = buf.find(b"\r\n\r\n")
        if head_end < 0:
            if len(buf) > _MAX_HEAD:
                raise HttpError(431, "the request head is larger than %d bytes" % _MAX_HEAD)
            return False
        lines = bytes(buf[:head_end]).split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            raise HttpError(400, "malformed request line")
        method, target, version = parts
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not name or name != name.strip():
                raise HttpError(400, "malformed header line")
            headers[name.lower()] = value.strip()
        max_body = self.server.max_body
        start = head_end + 4
        if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
            try:
                parsed = _parse_chunked(buf, start, max_body)
            except ValueError:
                raise HttpError(400, "malformed chunked body")
            except HttpError:
                raise HttpError(413, "the body is larger than the limit of %d bytes" % max_body)
            if parsed is None:
                return False
            body, end = parsed
        else:
            try:
                length = int(headers.get(b"content-length", b"0"))
                if length < 0:
                    raise ValueError(length)
            except ValueError:
                raise HttpError(400, "malformed Content-Length")
            if length > max_body:
                raise HttpError(413, "the body is larger than the limit of %d bytes" % max_body)
            end = start + length
            if len(buf) < end:
                if headers.get(b"expect", b"").lower() == b"100-continue" and not self.continued:
                    self.continued = True
                    self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                return False
            body = bytes(buf[start:end])
        del buf[:end]
        self.continued = False
        conn = headers.get(b"connection", b"").lower()
        keep_alive = (conn != b"close") if version == b"HTTP/1.1" else (conn == b"keep-alive")
        keep_alive = keep_alive and not self.server.draining
        response = self.server.dispatch(method, target, headers, body)
        self.transport.write(render(response, keep_alive, method == b"HEAD"))
        _yield_cpu()
        if not keep_alive:
            self.transport.close()
            self.transport = None
            return False
        return True


class WorkerServer(object):
    """Routes requests to a ``Service``, applies the per-request timeout, drains on SIGTERM."""

    def __init__(self, service, timeout=60.0, max_body=DEFAULT_MAX_BODY):
        self.service = service
        self.timeout = timeout
        self.max_body = max_body
        self.connections = set()
        self.draining = False

    def dispatch(self, method, target, headers, body):
        path = target.split(b"?", 1)[0]
        allowed = _ROUTES.get(path)
        if allowed is None:
            return error_response(404, "NotFound", "no such path; the server answers /ping, "
                                  "/invocations and /execution-parameters")
        if method not in allowed:
            response = error_response(405, "MethodNotAllowed",
                                      "use %s" % " or ".join(m.decode() for m in allowed))
            response.headers["Allow"] = ", ".join(m.decode() for m in allowed)
            return response
        signal.setitimer(signal.ITIMER_REAL, self.timeout)
        try:
            if path == b"/invocations":
                content_type = headers.get(b"contenttype") or headers.get(b"content-type")
                accept = headers.get(b"accept")
                return self.service.invoke(
                    body, content_type.decode("latin-1") if content_type else None,
                    accept.decode("latin-1") if accept else None)
            if path == b"/ping":
                return self.service.ping()
            return self.service.execution_parameters()
        except _Timeout:
            log.error("request timed out after %ss", self.timeout)
            return error_response(504, "Timeout", "the model did not answer within %ss"
                                  % self.timeout)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)


def _on_alarm(signum, frame):
    raise _Timeout()


async def _drain(server, grace):
    loop = asyncio.get_event_loop()
    deadline = loop.time() + grace
    while server.connections and loop.time() < deadline:
        for proto in list(server.connections):
            if proto.idle() and proto.transport is not None:
                proto.transport.close()
        await asyncio.sleep(0.05)


def _beat(heartbeat):
    if heartbeat is not None:
        struct.pack_into("d", heartbeat[0], heartbeat[1] * 8, time.monotonic())


def _take_connections(loop, channel, server):
    """Serve the connections the zygote hands over on ``channel``; return a stop function."""
    channel.setblocking(False)

    def receive():
        while True:
            try:
                words, fds = recv_message(channel)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                words, fds = [], []
            if not words:  # the zygote is gone; tick() notices and stops the worker
                loop.remove_reader(channel.fileno())
                return
            for fd in fds:
                conn = socket.socket(fileno=fd)
                conn.setblocking(False)
                loop.create_task(
                    loop.connect_accepted_socket(lambda: HttpProtocol(server), conn))

    def stop():
        if channel.fileno() >= 0:
            loop.remove_reader(channel.fileno())
            channel.close()

    loop.add_reader(channel.fileno(), receive)
    return stop


def run(sock, service, timeout, max_body, grace=10.0, heartbeat=None, channel=None):
    """Serve until SIGTERM/SIGINT or the parent's death.

    Connections come from the listening socket ``sock`` (a plain worker's own, bound by
    the supervisor with ``SO_REUSEPORT``) or, when ``channel`` is given, from the zygote,
    which hands each accepted connection over that socket.  ``heartbeat`` is
    ``(shared_mmap, slot)``: the time written there every 0.5 s lets the zygote tell a
    hung worker from a busy one, and hand new connections to idle workers first.
    """
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = WorkerServer(service, timeout, max_body)
    stop = loop.create_future()
    parent = os.getppid()

    def request_stop():
        if not stop.done():
            stop.set_result(None)

    def tick():
        if os.getppid() != parent:
            log.warning("parent %s is gone; stopping", parent)
            request_stop()
            return
        _beat(heartbeat)
        loop.call_later(0.5, tick)

    signal.signal(signal.SIGALRM, _on_alarm)
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, request_stop)
    if channel is None:
        sock.setblocking(False)
        listener = loop.run_until_complete(
            loop.create_server(lambda: HttpProtocol(server), sock=sock, backlog=1024))
        stop_accepting = listener.close
    else:
        stop_accepting = _take_connections(loop, channel, server)
    _beat(heartbeat)
    loop.call_later(0.5, tick)
    log.info("worker %d ready", os.getpid())
    loop.run_until_complete(stop)
    stop_accepting()
    server.draining = True
    loop.run_until_complete(_drain(server, grace))
    loop.close()


def load_service(model_dir, env=None):
    """Import the entry point and run ``model_fn`` once (failures are logged, not raised).

    Returns a ``Service`` (or a ``BrokenService`` when the entry point cannot be
    imported, so that ``/ping`` can say what is wrong).
    """
    env = os.environ if env is None else env
    debug = env.get("FEDSAGE_DEBUG", "") not in ("", "0", "false")
    try:
        module = import_user_module(env.get("SAGEMAKER_SUBMIT_DIRECTORY", ""),
                                    env.get("SAGEMAKER_PROGRAM", ""))
        service = Service(model_dir, module,
                          env.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"), debug)
    except Exception as exc:  # keep serving, so /ping can say what is wrong
        log.error("cannot load the entry point\n%s", traceback.format_exc().rstrip())
        return BrokenService("cannot load the entry point: %s" % _one_line(exc))
    try:
        service.load()  # preload, so the first request is fast; /ping retries on failure
    except Exception:
        log.error("model_fn failed at start-up\n%s", traceback.format_exc().rstrip())
    return service


def freeze_heap():
    """Move everything loaded so far (libraries, model) to the permanent GC generation.

    A full collection then no longer walks them (20 ms with scikit-learn 0.23 loaded,
    50 ms with 1.9: a latency spike whenever it ran), and forked workers do not dirty
    the pages they share with the zygote.
    """
    gc.collect()
    gc.freeze()


# ---------------------------------------------------------------- zygote (preloading parent)
_MAX_SLOTS = 1024
_FD_SIZE = array.array("i").itemsize
_ACCEPT_BATCH = 64  # connections accepted per wake-up before looking at control again
_BUSY_AFTER = 2.0  # seconds without a heartbeat: busy with a request, served last


def _exit_code(status):
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1


def recv_message(control):
    """One control message: ``(words, fds)``; ``([], [])`` when the peer is gone."""
    msg, ancdata, _, _ = control.recvmsg(512, socket.CMSG_SPACE(4 * _FD_SIZE))
    fds = array.array("i")
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - len(data) % _FD_SIZE])
    return msg.decode("ascii").split(), list(fds)


def send_message(control, words, fds=()):
    """Send one control message (words joined by spaces, optional file descriptors)."""
    data = " ".join(str(w) for w in words).encode("ascii")
    if fds:
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]
        control.sendmsg([data], anc)
    else:
        control.send(data)


class Zygote(object):
    """Loads the model once, then forks workers on the supervisor's request.

    The control socket (``AF_UNIX``/``SOCK_SEQPACKET``) carries one command per message:
    ``fork SLOT`` with the slot's listening socket attached, and ``stop GRACE``.  The
    zygote answers ``ready SECONDS`` once the model is loaded, ``forked SLOT PID`` and
    ``exited SLOT PID CODE`` (``CODE`` as ``Popen.returncode``).  Workers share the
    loaded model copy-on-write.

    The zygote keeps every slot's listening socket and accepts the connections itself:
    each goes to the next worker in turn over that worker's hand-over channel (a
    ``SOCK_SEQPACKET`` pair made at fork), workers whose heartbeat is older than
    ``_BUSY_AFTER`` last.  With ``SO_REUSEPORT`` alone the kernel hashes each connection
    to a socket, so 8 keep-alive connections landed 6/2, 7/1 or even 8/0 on 2 workers in
    most runs (8/0 halved the throughput); handing them over spreads them exactly, as
    Node's cluster module does for the same reason.  While no worker runs, connections
    wait in the listening backlog.  A worker whose heartbeat is older than the request
    timeout + ``hang_grace`` seconds is stuck outside Python (a C call, a deadlock) and is
    killed, so that it is replaced.
    """

    def __init__(self, control, model_dir, timeout, max_body, hang_grace=10.0):
        self.control = control
        self.model_dir = model_dir
        self.timeout = timeout
        self.max_body = max_body
        self.hang_after = timeout + hang_grace
        self.children = {}  # pid -> slot
        self.channels = {}  # pid -> the zygote's end of that worker's hand-over channel
        self.listeners = {}  # slot -> listening socket (the zygote accepts)
        self.turn = 0
        self.killed = set()
        self.beats = mmap.mmap(-1, 8 * _MAX_SLOTS)
        self.stopping = None  # grace in seconds once a stop is asked
        self.service = None

    def _stop(self, signum=None, frame=None):
        if self.stopping is None:
            self.stopping = 10.0

    def serve(self):
        started = time.monotonic()
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        self.service = load_service(self.model_dir)
        freeze_heap()
        self._tell("ready", "%.3f" % (time.monotonic() - started))
        while self.stopping is None:
            watched = [self.control] if self.control is not None else []
            if self.channels:  # no worker yet: connections wait in the backlog
                watched.extend(self.listeners.values())
            readable, _, _ = select.select(watched, [], [], 0.2)
            for ready in readable:
                if ready is self.control:
                    self._commands()
                elif self.stopping is None:
                    self._accept(ready)
            self._reap()
            self._check_hung()
        self._shutdown(self.stopping)
        return 0

    def _tell(self, *words):
        if self.control is None:
            return
        try:
            send_message(self.control, words)
        except OSError:  # the supervisor is gone
            self.control = None
            self._stop()

    def _commands(self):
        # Every pending command before the next accept: the supervisor queues all the
        # start-up forks at once, so no connection reaches a lone first worker.
        self._command()
        while self.control is not None and select.select([self.control], [], [], 0)[0]:
            self._command()

    def _command(self):
        try:
            words, fds = recv_message(self.control)
        except OSError:
            words, fds = [], []
        if not words:  # the supervisor is gone: stop, the workers drain on their own
            self.control = None
            self._stop()
        elif words[0] == "fork" and len(words) == 2 and fds:
            self._fork(int(words[1]), fds.pop(0))
        elif words[0] == "stop":
            self.stopping = float(words[1]) if len(words) > 1 else 10.0
        for extra in fds:
            os.close(extra)

    def _fork(self, slot, fd):
        slot = slot % _MAX_SLOTS
        listener = socket.socket(fileno=fd)
        listener.setblocking(False)
        previous = self.listeners.pop(slot, None)
        if previous is not None:  # the same socket, sent again for a replacement
            previous.close()
        self.listeners[slot] = listener
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        struct.pack_into("d", self.beats, slot * 8, time.monotonic())
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                for inherited in [self.control, ours] + list(self.listeners.values()) + list(
                        self.channels.values()):
                    if inherited is not None:
                        inherited.close()
                for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
                    signal.signal(signum, signal.SIG_DFL)
                run(None, self.service, self.timeout, self.max_body,
                    heartbeat=(self.beats, slot), channel=theirs)
                code = 0
            except BaseException:
                log.exception("worker failed")
            finally:
                os._exit(code)
        theirs.close()
        ours.setblocking(False)
        self.children[pid] = slot
        self.channels[pid] = ours
        self._tell("forked", slot, pid)

    def _accept(self, listener):
        for _ in range(_ACCEPT_BATCH):
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of file descriptors, aborted handshake, ...
                log.warning("accepting a connection failed: %s", exc)
                return
            try:
                self._hand_over(conn)
            finally:
                conn.close()  # the worker has its own descriptor now

    def _hand_over(self, conn):
        """Send ``conn`` to the next worker in turn, idle workers before busy ones."""
        now = time.monotonic()
        pids = [pid for pid in self.channels if pid not in self.killed]
        idle = [pid for pid in pids if now - struct.unpack_from(
            "d", self.beats, self.children[pid] * 8)[0] < _BUSY_AFTER]
        self.turn += 1
        for candidates in (idle, pids):
            for i in range(len(candidates)):
                pid = candidates[(self.turn + i) % len(candidates)]
                try:
                    send_message(self.channels[pid], ["conn"], [conn.fileno()])
                    return
                except OSError:  # its channel is full (stuck) or it is gone
                    continue
        log.error("no worker could take a connection; it was closed")

    def _reap(self):
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = self.children.pop(pid, None)
            channel = self.channels.pop(pid, None)
            if channel is not None:
                channel.close()
            self.killed.discard(pid)
            if slot is not None:
                self._tell("exited", slot, pid, _exit_code(status))

    def _check_hung(self):
        now = time.monotonic()
        for pid, slot in list(self.children.items()):
            beat = struct.unpack_from("d", self.beats, slot * 8)[0]
            if now - beat > self.hang_after and pid not in self.killed:
                log.error("worker %d has not answered for %.0fs (stuck outside Python); "
                          "killing it", pid, now - beat)
                self.killed.add(pid)
                _kill(pid, signal.SIGKILL)

    def _shutdown(self, grace):
        for listener in self.listeners.values():  # new connections wait in the backlog
            listener.close()
        self.listeners.clear()
        for pid in list(self.children):
            _kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while self.children and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.02)
        for pid in list(self.children):
            log.warning("worker %d did not stop in %.0fs; killing it", pid, grace)
            _kill(pid, signal.SIGKILL)
        while self.children:
            self._reap()
            time.sleep(0.01)


def _kill(pid, signum):
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--fd", type=int, help="serve on this inherited listening socket")
    group.add_argument("--control", type=int,
                       help="run as a zygote on this inherited control socket")
    parser.add_argument("--model-dir", required=True)
    args = parser.parse_args(argv)
    env = os.environ
    debug = env.get("FEDSAGE_DEBUG", "") not in ("", "0", "false")
    logging.basicConfig(level=logging.DEBUG if debug else int(
        env.get("SAGEMAKER_CONTAINER_LOG_LEVEL", "20")), stream=sys.stderr,
        format="%(asctime)s worker[%(process)d] %(levelname)s %(message)s")
    timeout = float(env.get("SAGEMAKER_MODEL_SERVER_TIMEOUT", "60"))
    max_body = int(env.get("FEDSAGE_MAX_BODY", str(DEFAULT_MAX_BODY)))
    if args.control is not None:
        control = socket.socket(fileno=args.control)
        hang_grace = float(env.get("FEDSAGE_HANG_GRACE", "10"))
        return Zygote(control, args.model_dir, timeout, max_body, hang_grace).serve()
    sock = socket.socket(fileno=args.fd)
    service = load_service(args.model_dir, env)
    freeze_heap()
    run(sock, service, timeout, max_body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
