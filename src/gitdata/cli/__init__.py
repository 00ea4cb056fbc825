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
    from ..project import Project
    from ..scan import pre_commit

    pre_commit(Project.open().repo, lambda line: print(line, file=sys.stderr))


def _fast_pre_push(remote_name: str, url: str | None) -> None:
    """``git data hook pre-push`` without click: git runs it on every push."""
    from ..project import Project
    from ..push import pre_push

    report = pre_push(Project.open(), remote_name, url, sys.stdin.read(), say=lambda m: print(m, file=sys.stderr))
    if report is not None and report.uploaded:
        print(f"git data: uploaded {len(report.uploaded)} object(s) to {report.remote}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args == ["filter-process"]:
        _run_fast(_fast_filter_process)
    if args == ["hook", "pre-commit"]:
        _run_fast(_fast_pre_commit)
    if args[:2] == ["hook", "pre-push"] and len(args) in (3, 4) and not args[2].startswith("-"):
        _run_fast(lambda: _fast_pre_push(args[2], args[3] if len(args) == 4 else None))

    import click

    from ..credentials import Session, use_session
    from ..errors import GitDataError

    cli = __getattr__("cli")
    # Credentials may be asked for only when a person is at the terminal;
    # under git (filter process, remote helper, hooks) stdin is a pipe.
    use_session(Session(interactive=sys.stdin.isatty()))
    try:
        cli.main(args=argv, prog_name="git data", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except GitDataError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(141)
    sys.exit(0)
