"""The ``fedsage`` command line: a thin shell over the public API."""

from __future__ import annotations

from ._app import main

__all__ = ["main"]
