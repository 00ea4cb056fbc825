"""Shared CLI helpers: the group class, output formatting, project opening."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO, Any

import click

from ..project import Project
from ..units import human_size  # noqa: F401  (re-exported for the command modules)


class GitDataGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(super().list_commands(ctx))


def open_project() -> Project:
    return Project.open()


class JsonItems(list):
    """A JSON array that :func:`emit_json` writes item by item as ``make()`` yields them:
    a million sync actions are never one list. (json's encoder, with ``indent``, is the
    Python one: it asks the list whether it is empty, then iterates it with ``for``.) For
    output only: ``len()`` of it is 0."""

    def __init__(self, make: Callable[[], Iterable[Any]]) -> None:
        super().__init__()
        self._make = make
        self._peeked: Iterator[Any] | None = None

    def __bool__(self) -> bool:  # the encoder writes an empty one as [] and never iterates it
        it = iter(self._make())
        for first in it:
            self._peeked = itertools.chain((first,), it)
            return True
        return False

    def __iter__(self) -> Iterator[Any]:
        peeked, self._peeked = self._peeked, None
        return peeked if peeked is not None else iter(self._make())


def emit_json(obj: Any, out: IO[str] | None = None) -> None:
    """``obj`` as indented JSON with sorted keys, written as it is encoded (see :class:`JsonItems`)."""
    out = out if out is not None else click.get_text_stream("stdout")
    for chunk in json.JSONEncoder(indent=2, sort_keys=True, default=str).iterencode(obj):
        out.write(chunk)
    out.write("\n")
    out.flush()


def table(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> None:
    """A plain aligned table: readable, greppable, no colour codes."""
    cells = [[str(h) for h in headers]] + [["-" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


def ensure_filter(project: Project) -> None:
    """For commands that write data into the work tree: set the filter up
    for this repository if it is not (and say so on stderr)."""
    from ..install import ensure_filter as ensure

    for line in ensure(project.repo):
        click.echo(f"git data: {line}", err=True)
