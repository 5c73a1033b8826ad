"""Progress of a long step (a runtime's first build) in terminals, notebooks and logs.

In a terminal or a notebook it is a live bar (rich renders both); where output is a
file or a pipe it is one line per step, so logs stay readable.
"""

from __future__ import annotations

from typing import Any

__all__ = ["StepProgress"]


class StepProgress:
    """A display for one long step whose messages (and maybe fractions) change.

    Parameters
    ----------
    title : str
        What the step is, shown before its current message.
    """

    def __init__(self, title: str) -> None:
        from rich.console import Console

        self.title = title
        self._console = Console(stderr=True)
        self._live = self._console.is_terminal or self._console.is_jupyter
        self._progress: Any = None
        self._task: Any = None
        self._last: str | None = None

    def update(self, message: str, fraction: float | None) -> None:
        """Show ``message`` (and ``fraction`` done, 0..1, when known)."""
        if not self._live:
            if message != self._last:
                self._console.print(f"{self.title}: {message}", highlight=False, markup=False)
                self._last = message
            return
        if self._progress is None:
            from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                console=self._console,
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.title, total=1.0)
        completed = fraction if fraction is not None else None
        self._progress.update(
            self._task,
            description=f"{self.title}: {message}",
            completed=completed if completed is not None else 0.0,
            total=1.0 if completed is not None else None,
        )
        self._last = message

    def close(self, final: str | None = None) -> None:
        """End the display; ``final`` is printed as its last line."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        if final and self._last is not None:
            self._console.print(f"{self.title}: {final}", highlight=False, markup=False)
