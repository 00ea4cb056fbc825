"""``git data unmount`` and ``git data mount ls``: mounted datasets and storages."""

from __future__ import annotations

import click

from ..errors import GitDataError
from ..mount import runner
from . import cli
from .base import emit_json, open_project, table


def _unmount_one(project, kind: str, name: str, force: bool) -> bool:
    if kind == "dataset":
        from ..lock import clone_lock
        from ..mount import dataset as mount_ds

        with clone_lock(project.repo.data_dir, f"dataset-{name}", f"unmount {name}"):
            return mount_ds.unmount(project, name, force=force)
    from ..mount import rclone as mount_rc

    return mount_rc.unmount(project, name, force=force)


@cli.command("unmount")
@click.argument("name", required=False)
@click.option("--all", "every", is_flag=True, help="Unmount every dataset and storage mounted in this clone.")
@click.option("--force", is_flag=True, help="Detach lazily (fusermount3 -u -z) even while files are open.")
def unmount(name: str | None, every: bool, force: bool) -> None:
    """Unmount dataset or storage NAME (or --all); stale mounts are cleaned too.

    A dataset folder gets its pointer files back; a storage mount uploads
    what was written under it before this returns.
    """
    if every == bool(name):
        raise click.UsageError("give a dataset or storage NAME, or --all")
    project = open_project()
    if every:
        targets = [(st.kind, st.name) for st in runner.load_all(project)]
    else:
        kinds = [st.kind for st in runner.load_all(project) if st.name == name]
        if not kinds:
            from ..datasets import current_mode

            if current_mode(project, name or "")[0] != "mount":
                raise GitDataError(f"{name!r} is not mounted in this clone (see `git data mount ls`)")
            kinds = ["dataset"]
        targets = [(k, name or "") for k in kinds]
    for kind, n in targets:
        if _unmount_one(project, kind, n, force):
            click.echo(f"unmounted {kind} {n}")


@cli.group("mount")
def mount_group() -> None:
    """Mounts of this clone (made with `dataset stage --mount`, `storage stage --mount`)."""


@mount_group.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def mount_ls(as_json: bool) -> None:
    """What is mounted where, by which process, healthy or stale.

    BY says who mounted it: this machine (`here`), or the mount service
    (GITDATA_MOUNT_SERVICE) for a session that cannot mount itself.

    A stale mount (its process died: "Transport endpoint is not connected")
    is cleaned by `git data unmount NAME` or by staging it with --mount again.
    """
    project = open_project()
    rows = [
        {"name": st.name, "kind": st.kind, "mountpoint": st.mountpoint, "pid": st.pid,
         "state": runner.health(st), "log": st.log, "service": st.service}  # fmt: skip
        for st in runner.load_all(project)
    ]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("nothing is mounted in this clone")
        return
    table([[r["name"], r["kind"], r["state"], r["pid"], "service" if r["service"] else "here", r["mountpoint"]]
           for r in rows], ["NAME", "KIND", "STATE", "PID", "BY", "MOUNT POINT"])  # fmt: skip
