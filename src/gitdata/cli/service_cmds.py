"""``git data mount-service``: the mount service of hosted sessions, and start-of-session mounts."""

from __future__ import annotations

import os

import click

from ..errors import GitDataError
from . import cli
from .base import emit_json


@cli.group("mount-service")
def mount_service() -> None:
    """Mounts for sessions that cannot mount themselves (no /dev/fuse): a service that can.

    Sessions find it through GITDATA_MOUNT_SERVICE=SOCKET; then `stage
    --mount`, `unmount` and `mount ls` go through it. See docs/hosted.md.
    """


@mount_service.command("serve")
@click.option("--socket", "socket_path", required=True, metavar="PATH", help="The Unix socket to listen on.")
@click.option("--allow-root", "roots", multiple=True, required=True, metavar="DIR",
              help="Mount only under this folder (repeatable); symlinks out of it are refused.")
@click.option("--no-dynamic", is_flag=True,
              help="Refuse mount requests from sessions; only `mount-declared` (run as root) mounts.")
@click.option("--max-mounts", type=click.IntRange(1, 1000), default=8, show_default=True,
              help="Mounts per client (Unix user).")
@click.option("--state-dir", metavar="DIR", help="Mount state and logs (default: beside the socket).")
@click.option("--rclone", "rclone", metavar="PATH", help="The rclone program (default: on PATH or beside Python).")
@click.option("--view-python", "python", metavar="PATH",
              help="The Python that runs dataset views as the caller (default: this one; callers must be able to run it).")
def serve(socket_path: str, roots: tuple[str, ...], no_dynamic: bool, max_mounts: int, state_dir: str | None,
          rclone: str | None, python: str | None) -> None:  # fmt: skip
    """Serve the mount API (HTTP+JSON) on a Unix socket until stopped.

    Callers are told apart by the socket's peer credentials (SO_PEERCRED):
    each lists and unmounts only its own mounts. Credentials arrive in the
    request and go only into the mount process's environment.
    """
    import shutil
    import sys

    from ..mount.service import Service
    from ..mount.service import serve as run

    if rclone is None:
        rclone = shutil.which("rclone") or os.path.join(os.path.dirname(sys.executable), "rclone")
    state = state_dir or os.path.join(os.path.dirname(os.path.abspath(socket_path)), "gitdata-mount-service")
    service = Service(allow_roots=list(roots), dynamic=not no_dynamic, max_mounts=max_mounts, state_dir=state,
                      rclone=rclone, python=python)  # fmt: skip
    run(service, os.path.abspath(socket_path))


@mount_service.command("mount-declared")
@click.argument("project_dir")
@click.option("--socket", "socket_path", metavar="PATH",
              help="The service's socket (default: GITDATA_MOUNT_SERVICE).")
@click.option("--python", "python", metavar="PATH",
              help="The Python that runs the project's side as its owner (default: this one; the owner must be able to run it). A git-data beside it comes first on that side's PATH (git starts the filter from PATH).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def mount_declared(project_dir: str, socket_path: str | None, python: str | None, as_json: bool) -> None:
    """Mount every storage and dataset that .gitdata declares with mode = mount (what a session's start runs).

    Run as root (the init container or the sidecar): the mounts belong to
    the owner of PROJECT_DIR, also when the service has --no-dynamic. The
    project's git work runs as that owner, never as root; the credentials
    come from this command's environment. Reports each mount, or why not.
    """
    from ..mount import declared

    sock = socket_path or os.environ.get("GITDATA_MOUNT_SERVICE")
    if not sock:
        raise click.UsageError("give --socket PATH or set GITDATA_MOUNT_SERVICE")
    rows = declared.mount_declared(os.path.abspath(project_dir), sock, dict(os.environ), python=python)
    if as_json:
        emit_json(rows)
    else:
        for r in rows:
            if r["ok"]:
                click.echo(f"mounted {r['kind']} {r['name']} at {r['mountpoint']}")
            else:
                click.echo(f"error: {r['kind']} {r['name']}: {r['error']}", err=True)
    if any(not r["ok"] for r in rows):
        raise GitDataError(f"{sum(not r['ok'] for r in rows)} declared mount(s) failed; see above")
