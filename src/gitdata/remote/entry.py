"""``git-remote-s3data``: the program git runs for ``s3data::`` URLs, and by hand for maintenance.

``git-remote-s3data REMOTE [URL]`` speaks the remote-helper protocol on
stdin/stdout (:mod:`gitdata.remote.helper`); ``git remote-s3data
compact|unlock|log REMOTE`` runs :mod:`gitdata.cli.s3data_cmds`.
"""

from __future__ import annotations

import os
import sys

from ..credentials import Session, use_session
from ..errors import GitDataError
from ..git.repo import NotARepository
from ..storage.errors import StorageUnreachable
from .helper import Helper, local_project, log, open_remote, storage_options

SUBCOMMANDS = ("compact", "unlock", "log")


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if (
        argv
        and (argv[0] in SUBCOMMANDS or argv[0] in ("-h", "--help"))
        and "GIT_DIR" not in os.environ
    ):
        from ..cli import run_click
        from ..cli.s3data_cmds import maintenance_cli

        run_click(maintenance_cli(), argv, "git remote-s3data")
    if not argv or len(argv) > 2:
        print(
            "usage: git-remote-s3data <remote> [<url>] (git runs this for s3data:: URLs)\n"
            "       git remote-s3data compact|unlock|log REMOTE  (see --help)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    name = argv[0]
    url = argv[1] if len(argv) == 2 else argv[0]
    use_session(Session(interactive=False))  # stdin is git's protocol pipe
    try:
        project = local_project()
        remote = open_remote(project, name, url, log)
        stdin = os.fdopen(sys.stdin.fileno(), "r", closefd=False)
        Helper(remote, stdin, sys.stdout).serve()
    except (GitDataError, NotARepository) as err:
        log(f"fatal: s3data: {err}{_endpoint_hint(err, name, url)}")
        raise SystemExit(128) from None
    except BrokenPipeError:
        raise SystemExit(1) from None


def _endpoint_hint(err: BaseException, name: str, url: str) -> str:
    """For an unreachable s3:// bucket with no endpoint set anywhere: how to give one."""
    bucket_url = url[len("s3data::") :] if url.startswith("s3data::") else url
    if not isinstance(err, StorageUnreachable) or not bucket_url.startswith("s3://"):
        return ""
    if os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_S3"):
        return ""
    try:
        options = storage_options(local_project().repo, None if name == url else name)
    except (GitDataError, NotARepository):
        options = {}
    if "endpoint_url" in options:
        return ""
    remote = "origin" if name == url else name
    return (
        f"; no endpoint is set for this bucket, so AWS S3 was asked: for another S3 service give it "
        f"with `git clone -c remote.{remote}.s3dataOption=endpoint_url=URL s3data::{bucket_url}` "
        f"(in a clone: `git config remote.{remote}.s3dataOption endpoint_url=URL`), or once for "
        f"every bucket: `git config --global s3data.option endpoint_url=URL`"
    )
