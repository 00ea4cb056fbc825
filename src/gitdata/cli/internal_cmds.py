"""Commands git runs for us: the filter process, hooks, the merge driver.

Thin: the bodies are :mod:`gitdata.hooks`, shared with the click-free fast
path in :func:`gitdata.cli.main`."""

from __future__ import annotations

import sys

import click

from . import cli
from .base import open_project


@cli.command("filter-process", hidden=False)
def filter_process() -> None:
    """Run git's long-running filter protocol on stdin/stdout (git runs this)."""
    from ..filters import serve_filter_process

    serve_filter_process()


@cli.group()
def hook() -> None:
    """Entry points for the git hooks git data installs."""


@hook.command("pre-push")
@click.argument("remote_name")
@click.argument("url", required=False)
def hook_pre_push(remote_name: str, url: str | None) -> None:
    """Upload data objects of the pushed commits before git moves any ref."""
    from ..hooks import pre_push_hook

    pre_push_hook(open_project(), remote_name, url, sys.stdin.read(), _say)


@hook.command("pre-commit")
def hook_pre_commit() -> None:
    """Refuse raw data at tracked paths, malformed pointers, and staged files
    over gitdata.maxBlobSize that are not pointers."""
    from ..hooks import pre_commit_hook

    pre_commit_hook(open_project(), _say)


def _say(line: str) -> None:
    click.echo(line, err=True)


@cli.command("merge-driver")
@click.argument("base")
@click.argument("ours")
@click.argument("theirs")
@click.argument("path", required=False, default="")
def merge_driver(base: str, ours: str, theirs: str, path: str) -> None:
    """Three-way merge of pointer files (git runs this; data is never merged)."""
    from ..hooks import merge_driver as merge

    if merge(base, ours, theirs, path, _say):
        raise SystemExit(1)
