"""Commands git runs for us: the filter process, hooks, the merge driver."""

from __future__ import annotations

import sys

import click

from ..errors import GitDataError
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
    from ..push import pre_push

    report = pre_push(open_project(), remote_name, url, sys.stdin.read())
    if report is not None and report.uploaded:
        click.echo(f"git data: uploaded {len(report.uploaded)} object(s) to {report.remote}", err=True)


@hook.command("pre-commit")
def hook_pre_commit() -> None:
    """Refuse staged files over gitdata.maxBlobSize that are not pointers."""
    from ..scan import LARGE_FILES_STAGED, staged_large_files

    project = open_project()
    limit = project.setting("gitdata.maxBlobSize")
    big = staged_large_files(project.repo, limit)
    if big:
        for path, size in big:
            click.echo(f"error: {path} is {size} bytes and would go into git itself", err=True)
        raise GitDataError(LARGE_FILES_STAGED)


@hook.command("post-checkout", hidden=True)
@click.argument("args", nargs=-1)
def hook_post_checkout(args: tuple[str, ...]) -> None:
    """Reserved for staging mount/reference datasets after a checkout."""


@cli.command("merge-driver")
@click.argument("base")
@click.argument("ours")
@click.argument("theirs")
@click.argument("path", required=False, default="")
def merge_driver(base: str, ours: str, theirs: str, path: str) -> None:
    """Three-way merge of pointer files (git runs this; data is never merged)."""
    def read(p):
        with open(p, "rb") as f:
            return f.read()

    o, a, b = read(base), read(ours), read(theirs)
    if a == b or o == b:
        return
    if o == a:
        with open(ours, "wb") as f:
            f.write(b)
        return
    click.echo(
        f"git data: both sides changed {path or 'a data file'}; keep one with "
        f"`git checkout --ours {path}` or `git checkout --theirs {path}`, then `git add` it",
        err=True,
    )
    raise SystemExit(1)


