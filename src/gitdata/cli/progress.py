"""The command line's progress bars: rich, on stderr, only on a terminal.

The library counts and reports (:mod:`gitdata.progress`); this renderer is
the only code that draws, installed by ``gitdata.cli.main``. rich is
imported when a bar is drawn, not before: the filter process and the hooks
never pay for it.
"""

from __future__ import annotations

import sys
from typing import Any

from ..progress import Bar


class _RichBar:
    def __init__(self, bar: Any, task: Any) -> None:
        self._bar, self._task = bar, task

    def advance(self, n: int) -> None:
        self._bar.advance(self._task, n)

    def close(self) -> None:
        self._bar.stop()


def rich_bar(
    label: str, total: int | None, *, unit_bytes: bool, enabled: bool | None, console: Any = None
) -> Bar | None:
    """A byte or item bar on stderr (``console``: elsewhere), shown only when
    stderr is a terminal unless ``enabled`` says otherwise; ``total=None``: a
    running count (a listing)."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled or (total is not None and total <= 0):
        return None
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )
    from rich.progress import Progress as RichProgress

    cols: list[Any] = [TextColumn("{task.description}"), BarColumn()]
    if total is None:  # a listing: how many so far
        cols.append(TextColumn("{task.completed:,} listed"))
    else:
        cols += [DownloadColumn(), TransferSpeedColumn()] if unit_bytes else [MofNCompleteColumn()]
        cols.append(TimeRemainingColumn())
    bar = RichProgress(*cols, console=console or Console(stderr=True), transient=True)
    bar.start()
    return _RichBar(bar, bar.add_task(label, total=total))
