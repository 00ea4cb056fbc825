"""``git data``: the command line. Thin: parse, call the library, format.

The click group ``cli`` is built on first use (``from . import cli`` in a
command module, or :func:`main`): the filter process, which git starts for
every command that checks files in or out, starts without importing click or
any command module.
"""

from __future__ import annotations

import sys
from typing import Any

#: Modules whose import registers their commands on ``cli``.
COMMAND_MODULES = (
    "core_cmds",
    "credentials_cmds",
    "dataset_cmds",
    "doctor_cmds",
    "help_cmds",
    "internal_cmds",
    "mount_cmds",
    "remote_cmds",
    "run_cmds",
    "service_cmds",
    "status_cmds",
    "storage_cmds",
)


def _build() -> Any:
    if "cli" in globals():
        return globals()["cli"]
    import importlib

    import click

    from .base import GitDataGroup

    @click.group(cls=GitDataGroup, context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(package_name="gitdata", prog_name="git data")
    def cli() -> None:
        """git data: keep research data in S3, GCS or any fsspec storage, with
        only small pointer files in git.

        Start with `git data install`, then `git data remote add` and
        `git data track`. Every command has --help.
        """

    globals()["cli"] = cli  # before the imports: command modules do `from . import cli`
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}")
    return cli


def __getattr__(name: str) -> Any:
    if name == "cli":
        return _build()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _run_fast(fn) -> None:
    """Run a click-free entry point with the CLI's error handling, then exit."""
    from ..errors import GitDataError

    try:
        fn()
    except GitDataError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(141)
    sys.exit(0)


def _fast_filter_process() -> None:
    """``git data filter-process`` without click: same behaviour, faster start."""
    from ..filters import serve_filter_process

    serve_filter_process()


def _fast_pre_commit() -> None:
    """``git data hook pre-commit`` without click (git runs it for every commit)."""
    from ..hooks import pre_commit_hook
    from ..project import Project

    pre_commit_hook(Project.open(), _say)


def _fast_pre_push(remote_name: str, url: str | None) -> None:
    """``git data hook pre-push`` without click: git runs it on every push."""
    from ..hooks import pre_push_hook
    from ..project import Project

    pre_push_hook(Project.open(), remote_name, url, sys.stdin.read(), _say)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_click(group: Any, args: list[str] | None, prog_name: str) -> None:
    """Run a click group with git data's one error format, then exit.

    Every error is one ``error: …`` line (a usage error after the usage
    line, with where to read more), never click's ``Error:``; exit codes are
    click's (2 for usage) or the error's own.
    """
    import click

    from ..errors import GitDataError

    try:
        group.main(args=args, prog_name=prog_name, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.UsageError as err:
        ctx = err.ctx
        if ctx is not None:
            click.echo(ctx.get_usage(), err=True)
        more = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        click.echo(f"error: {err.format_message()}{more}", err=True)
        sys.exit(err.exit_code)
    except click.ClickException as err:
        click.echo(f"error: {err.format_message()}", err=True)
        sys.exit(err.exit_code)
    except GitDataError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(141)
    sys.exit(0)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args == ["filter-process"]:
        _run_fast(_fast_filter_process)
    from ..progress import use_renderer
    from .progress import rich_bar

    use_renderer(rich_bar)  # the one renderer that draws progress (gitdata.progress)
    if args == ["hook", "pre-commit"]:
        _run_fast(_fast_pre_commit)
    if args[:2] == ["hook", "pre-push"] and len(args) in (3, 4) and not args[2].startswith("-"):
        _run_fast(lambda: _fast_pre_push(args[2], args[3] if len(args) == 4 else None))

    from ..credentials import Session, use_session

    cli = __getattr__("cli")
    # Credentials may be asked for only when a person is at the terminal;
    # under git (filter process, remote helper, hooks) stdin is a pipe.
    use_session(Session(interactive=sys.stdin.isatty()))
    run_click(cli, argv, "git data")
