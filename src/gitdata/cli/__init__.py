"""``git data``: the command line. Thin: parse, call the library, format."""

from __future__ import annotations

import sys

import click

from ..errors import GitDataError
from .base import GitDataGroup


@click.group(cls=GitDataGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gitdata", prog_name="git data")
def cli() -> None:
    """git data: keep research data in S3, GCS or any fsspec storage, with
    only small pointer files in git.

    Start with `git data install`, then `git data remote add` and
    `git data track`. Every command has --help.
    """


from . import (  # noqa: E402,F401  (importing registers the commands)
    core_cmds,
    credentials_cmds,
    dataset_cmds,
    internal_cmds,
    remote_cmds,
    status_cmds,
    storage_cmds,
)


def main(argv: list[str] | None = None) -> None:
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
