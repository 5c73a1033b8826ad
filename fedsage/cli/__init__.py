"""The ``fedsage`` command line: a thin shell over the public API."""

from __future__ import annotations

from ._app import app, main

__all__ = ["app", "main"]
