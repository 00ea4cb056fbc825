"""Shared CLI helpers: the group class, output formatting, project opening."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

from ..project import Project
from ..units import human_size  # noqa: F401  (re-exported for the command modules)


class GitDataGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(super().list_commands(ctx))


def open_project() -> Project:
    return Project.open()


def emit_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=True, default=str))


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
