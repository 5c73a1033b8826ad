"""The folder the supervisor runs as ``<runtime python> .../serving/_worker``.

It holds ``__main__.py`` and the ``fedsage_worker`` package (see there); fedsage itself
imports ``fedsage.serving._worker.fedsage_worker`` for ``DEFAULT_MAX_BODY`` and the
control-socket framing.
"""
