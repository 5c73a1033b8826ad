"""The worker's command line: a zygote (``--control N``), a plain worker (``--fd N``) or a
runtime's warm parent (``--warm PATH``).

Settings come from the SageMaker serving variables (``SAGEMAKER_PROGRAM``,
``SAGEMAKER_SUBMIT_DIRECTORY``, ``SAGEMAKER_MODEL_SERVER_TIMEOUT``,
``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``, ``SAGEMAKER_CONTAINER_LOG_LEVEL``) plus
``FEDSAGE_MAX_BODY`` (bytes), ``FEDSAGE_DEBUG``, ``FEDSAGE_ALLOWED_HOSTS`` (the ``Host``
names answered, ``*`` for any; see ``protocol.allowed_hosts``), ``FEDSAGE_HANG_GRACE``
(seconds beyond the request timeout after which the zygote kills a worker whose event
loop stopped beating; default 10), ``FEDSAGE_READ_TIMEOUT`` and
``FEDSAGE_KEEPALIVE_TIMEOUT`` (see ``protocol.ConnectionLimits``).
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from typing import Callable, Mapping, NamedTuple

from . import DEFAULT_MAX_BODY
from .protocol import ConnectionLimits, allowed_hosts, connection_limits, run
from .service import freeze_heap, load_service
from .zygote import Zygote


def configure_logging(env: Mapping[str, str]) -> None:
    """Log to stderr at the level the environment asks (again in a forked zygote)."""
    debug = env.get("FEDSAGE_DEBUG", "") not in ("", "0", "false")
    root = logging.getLogger()
    for handler in list(root.handlers):  # a zygote forked by a warm parent has its handler
        root.removeHandler(handler)
    logging.basicConfig(
        level=logging.DEBUG if debug else int(env.get("SAGEMAKER_CONTAINER_LOG_LEVEL", "20")),
        stream=sys.stderr,
        format="%(asctime)s worker[%(process)d] %(levelname)s %(message)s",
    )


class ServerSettings(NamedTuple):
    """What every worker of an endpoint reads from its environment."""

    timeout: float
    max_body: int
    hosts: frozenset[bytes] | None
    limits: ConnectionLimits


def server_settings(env: Mapping[str, str]) -> ServerSettings:
    """The request timeout, body limit, ``Host`` names and connection limits of ``env``."""
    return ServerSettings(
        float(env.get("SAGEMAKER_MODEL_SERVER_TIMEOUT", "60")),
        int(env.get("FEDSAGE_MAX_BODY", str(DEFAULT_MAX_BODY))),
        allowed_hosts(env.get("FEDSAGE_ALLOWED_HOSTS")),
        connection_limits(env),
    )


def run_zygote(
    control: socket.socket,
    model_dir: str,
    env: Mapping[str, str],
    on_loaded: Callable[[], None] | None = None,
) -> int:
    """Run a zygote on ``control`` with the settings of ``env``; return the exit code."""
    configure_logging(env)
    settings = server_settings(env)
    hang_grace = float(env.get("FEDSAGE_HANG_GRACE", "10"))
    zygote = Zygote(
        control,
        model_dir,
        settings.timeout,
        settings.max_body,
        hang_grace,
        settings.hosts,
        on_loaded=on_loaded,
        limits=settings.limits,
    )
    return zygote.serve()


def main(argv: list[str] | None = None) -> int:
    """Run a zygote, a plain worker or a warm parent until told to stop; return the exit code."""
    parser = argparse.ArgumentParser(
        description="fedsage's model worker (SageMaker's scikit-learn inference contract)"
    )
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--fd", type=int, help="serve on this inherited listening socket")
    group.add_argument(
        "--control", type=int, help="run as a zygote on this inherited control socket"
    )
    group.add_argument("--warm", help="run as the runtime's warm parent on this socket path")
    parser.add_argument("--model-dir")
    parser.add_argument("--modules", help="the warm parent's list of modules to import")
    args = parser.parse_args(argv)
    env = os.environ
    if args.warm is not None:
        configure_logging(env)
        from .warm import main as warm_main

        return warm_main(args.warm, args.modules)
    if not args.model_dir:
        parser.error("--model-dir is required with --fd and --control")
    if args.control is not None:
        return run_zygote(socket.socket(fileno=args.control), args.model_dir, env)
    configure_logging(env)
    settings = server_settings(env)
    sock = socket.socket(fileno=args.fd)
    service = load_service(args.model_dir, env)
    freeze_heap()
    run(
        sock,
        service,
        settings.timeout,
        settings.max_body,
        hosts=settings.hosts,
        limits=settings.limits,
    )
    return 0
