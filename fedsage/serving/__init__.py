"""fedsage's model server and local endpoints (SageMaker's scikit-learn inference contract).

The handlers and the HTTP protocol live in the folder ``fedsage/serving/_worker`` (the
``fedsage_worker`` package and the ``__main__.py`` that runs it), which runs under a
framework runtime's own interpreter; :mod:`fedsage.serving.supervisor` starts and
watches those workers, and
:mod:`fedsage.serving.endpoints` manages detached local endpoints.

The names below import lazily, so that ``python -m fedsage.serving.supervisor`` (the
process every endpoint starts) does not pay for the HTTP client the endpoints use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_WHERE = {
    "Invocation": "endpoints",
    "create_endpoint": "endpoints",
    "delete_endpoint": "endpoints",
    "describe_endpoint": "endpoints",
    "endpoint_log": "endpoints",
    "invoke_endpoint": "endpoints",
    "list_endpoints": "endpoints",
    "ServerConfig": "supervisor",
    "Supervisor": "supervisor",
    "serve": "supervisor",
}

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


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
