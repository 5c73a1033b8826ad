"""fedsage's model worker: SageMaker's scikit-learn inference contract over HTTP/1.1.

This package runs inside a framework runtime's own interpreter (Python 3.7 ... 3.12), so
it uses only the standard library, numpy and what the runtime itself has, in Python 3.7
syntax (annotations are never evaluated: every module starts with
``from __future__ import annotations``).  The supervisor runs the folder that holds it::

    <runtime python> .../serving/_worker --control N --model-dir DIR   # zygote (default)
    <runtime python> .../serving/_worker --fd N --model-dir DIR        # one plain worker

Modules, one concern each:

- ``response``: ``Response`` (what a handler may return), ``HttpError``, JSON error bodies;
- ``codecs``: CSV / JSON / npy decoding and encoding, content negotiation;
- ``service``: handler discovery and the invoke path (``model_fn`` ... ``transform_fn``);
- ``protocol``: HTTP/1.1 parsing and rendering, the asyncio protocol, one worker's server;
- ``zygote``: the preloading parent (fork, connection hand-over, heartbeats, hang kills);
- ``framing``: the control-socket messages (``SCM_RIGHTS``), shared with the supervisor;
- ``entry``: the command line.

This file stays free of numpy and of the other modules, because fedsage's supervisor
imports ``DEFAULT_MAX_BODY`` and ``framing`` from here in its own interpreter.
"""

from __future__ import annotations

from .response import HttpError, Response

__all__ = ["DEFAULT_MAX_BODY", "HttpError", "Response"]

#: The largest request body accepted by default (InvokeEndpoint's own limit, 6 MiB).
DEFAULT_MAX_BODY = 6 * 1024 * 1024
