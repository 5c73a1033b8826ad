"""The worker's command line: a zygote (``--control N``) or one plain worker (``--fd N``).

Settings come from the SageMaker serving variables (``SAGEMAKER_PROGRAM``,
``SAGEMAKER_SUBMIT_DIRECTORY``, ``SAGEMAKER_MODEL_SERVER_TIMEOUT``,
``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``, ``SAGEMAKER_CONTAINER_LOG_LEVEL``) plus
``FEDSAGE_MAX_BODY`` (bytes), ``FEDSAGE_DEBUG``, ``FEDSAGE_ALLOWED_HOSTS`` (the ``Host``
names answered, ``*`` for any; see ``protocol.allowed_hosts``) and ``FEDSAGE_HANG_GRACE``
(seconds beyond the request timeout after which the zygote kills a worker whose event
loop stopped beating; default 10).
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys

from . import DEFAULT_MAX_BODY
from .protocol import allowed_hosts, run
from .service import freeze_heap, load_service
from .zygote import Zygote


def main(argv: list[str] | None = None) -> int:
    """Run a zygote or a plain worker until told to stop; return the exit code."""
    parser = argparse.ArgumentParser(
        description="fedsage's model worker (SageMaker's scikit-learn inference contract)"
    )
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--fd", type=int, help="serve on this inherited listening socket")
    group.add_argument(
        "--control", type=int, help="run as a zygote on this inherited control socket"
    )
    parser.add_argument("--model-dir", required=True)
    args = parser.parse_args(argv)
    env = os.environ
    debug = env.get("FEDSAGE_DEBUG", "") not in ("", "0", "false")
    logging.basicConfig(
        level=logging.DEBUG if debug else int(env.get("SAGEMAKER_CONTAINER_LOG_LEVEL", "20")),
        stream=sys.stderr,
        format="%(asctime)s worker[%(process)d] %(levelname)s %(message)s",
    )
    timeout = float(env.get("SAGEMAKER_MODEL_SERVER_TIMEOUT", "60"))
    max_body = int(env.get("FEDSAGE_MAX_BODY", str(DEFAULT_MAX_BODY)))
    hosts = allowed_hosts(env.get("FEDSAGE_ALLOWED_HOSTS"))
    if args.control is not None:
        control = socket.socket(fileno=args.control)
        hang_grace = float(env.get("FEDSAGE_HANG_GRACE", "10"))
        return Zygote(control, args.model_dir, timeout, max_body, hang_grace, hosts).serve()
    sock = socket.socket(fileno=args.fd)
    service = load_service(args.model_dir, env)
    freeze_heap()
    run(sock, service, timeout, max_body, hosts=hosts)
    return 0
