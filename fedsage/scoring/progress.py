"""Rows scored and rows per second, shown through :class:`fedsage._progress.StepProgress`."""

from __future__ import annotations

import time

from .._progress import StepProgress

__all__ = ["RowsProgress"]


class RowsProgress:
    """A callable taking the rows written so far; redraws at most every 0.2 s.

    Parameters
    ----------
    total : int or None
        The input's rows when known (a bar), else only counts.
    title : str, default='Scoring'
        Shown before the counts.
    """

    def __init__(self, total: int | None, title: str = "Scoring") -> None:
        self.total = total
        self._display = StepProgress(title)
        self._began = time.monotonic()
        self._shown = 0.0
        self._rows = 0
        #: Shown after the counts: the request type (set once it is chosen).
        self.note = ""

    def _message(self) -> str:
        elapsed = max(time.monotonic() - self._began, 1e-9)
        total = f" of {self.total:,}" if self.total else ""
        note = f" ({self.note})" if self.note else ""
        return f"{self._rows:,}{total} rows scored, {self._rows / elapsed:,.0f} rows/s{note}"

    def __call__(self, rows: int) -> None:
        self._rows = rows
        now = time.monotonic()
        if now - self._shown < 0.2:
            return
        self._shown = now
        fraction = rows / self.total if self.total else None
        self._display.update(self._message(), fraction)

    def close(self, ok: bool) -> None:
        """End the display with the final counts (or 'failed')."""
        if self._shown == 0.0:
            self._display.update(self._message(), None)
        self._display.close(self._message() if ok else "failed")
