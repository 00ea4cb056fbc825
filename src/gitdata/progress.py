"""Progress of a run: counted here, drawn by whoever runs the program.

The library counts what a run advanced (:class:`Progress`) and hands each
advance to a :class:`Bar` made by this process's :data:`Renderer`; it draws
nothing itself and imports no terminal library. The one renderer that
draws, a rich bar on stderr, is the command line's
(:mod:`gitdata.cli.progress`): ``gitdata.cli.main`` installs it with
:func:`use_renderer`, once, before it runs a command (or a hook's fast
path). Without a renderer (a library caller), nothing is drawn and counting
goes on as before.

This is one hook rather than a factory passed down because a bar is asked
for deep inside the transfers (``run_parallel``), below every command that
takes a ``progress`` flag; the flag still decides per run (``False``: never
draw; ``None``: the renderer decides, the CLI's draws when stderr is a
terminal; ``True``: draw).
"""

from __future__ import annotations

import threading
from typing import Protocol


class Bar(Protocol):
    """One drawn bar: advanced by units (bytes or items), closed once."""

    def advance(self, n: int) -> None: ...

    def close(self) -> None: ...


class Renderer(Protocol):
    """Makes the bar of one run, or ``None`` when nothing is to be drawn
    (``enabled=None``: the renderer decides, e.g. by whether its output is a
    terminal). ``total`` is ``None`` when it is not known (a listing: items
    are counted as they come)."""

    def __call__(
        self, label: str, total: int | None, *, unit_bytes: bool, enabled: bool | None
    ) -> Bar | None: ...


_renderer: Renderer | None = None


def use_renderer(renderer: Renderer | None) -> Renderer | None:
    """Install the renderer of this process (an entry point does, once); returns the previous one."""
    global _renderer
    previous, _renderer = _renderer, renderer
    return previous


class Progress:
    """The progress of one run of ``total`` units (bytes when ``unit_bytes``,
    else items; ``None``: not known, items are counted as they come), drawn by
    the installed renderer unless ``enabled`` is False.

    ``completed`` counts what was advanced (also when nothing is drawn)."""

    def __init__(
        self, label: str, total: int | None, *, unit_bytes: bool, enabled: bool | None = None
    ) -> None:
        self.completed = 0
        self._lock = threading.Lock()
        renderer = _renderer
        self._bar: Bar | None = None
        if renderer is not None and enabled is not False and (total is None or total > 0):
            self._bar = renderer(label, total, unit_bytes=unit_bytes, enabled=enabled)

    def advance(self, n: int) -> None:
        if n <= 0:
            return
        with self._lock:
            self.completed += n
        if self._bar is not None:
            self._bar.advance(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
