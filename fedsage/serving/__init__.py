"""fedsage's model server and local endpoints (SageMaker's scikit-learn inference contract).

The handlers and the HTTP protocol live in one small module,
``fedsage/serving/_worker/fedsage_worker.py``, that runs under a framework runtime's own
interpreter; :mod:`fedsage.serving.supervisor` starts and watches those workers, and
:mod:`fedsage.serving.endpoints` manages detached local endpoints.
"""

from __future__ import annotations

from .endpoints import (
    Invocation,
    create_endpoint,
    delete_endpoint,
    describe_endpoint,
    endpoint_log,
    invoke_endpoint,
    list_endpoints,
)
from .supervisor import ServerConfig, Supervisor, serve

__all__ = [
    "Invocation",
    "ServerConfig",
    "Supervisor",
    "create_endpoint",
    "delete_endpoint",
    "describe_endpoint",
    "endpoint_log",
    "invoke_endpoint",
    "list_endpoints",
    "serve",
]
