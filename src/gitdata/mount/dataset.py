"""Dataset mounts: the dataset folder becomes a read-only FUSE view of its files.

``mount`` (called by ``git data dataset stage NAME --mount`` under the
dataset's clone lock): any staged copy is unstaged first (nothing unsynced
is dropped: unstaging keeps changed or unpushed files, and the mount is
refused then), the pointer files are replaced by an empty folder, the
dataset's index entries are marked skip-worktree and the folder is listed
in ``.git/info/exclude`` (so ``git status`` stays clean and git never writes
into the mount), then the mount process starts. ``unmount`` reverses it:
the pointers come back and the bits are cleared.

While mounted, sparse-checkout patterns (:mod:`.sparse`) keep ``git
checkout`` from writing into the folder, and the view follows the index: after
a checkout to another commit the mount shows that commit's files.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from .. import safepath
from ..datasets import model as ds_mod
from ..datasets import modes
from ..project import Project
from ..refresh import refresh_index
from . import MountError, runner, sparse

KIND = "dataset"


def _check_python_side() -> None:
    try:
        import mfusepy  # noqa: F401
    except ImportError as err:
        from . import FuseUnavailable

        raise FuseUnavailable(
            f"cannot mount a dataset: the Python FUSE binding is missing ({err}); install it with "
            "`pip install 'gitdata[mount]'`, or stage with --copy or --reference instead"
        ) from err
    except OSError as err:  # mfusepy loads libfuse when imported
        from . import FuseUnavailable

        raise FuseUnavailable(
            f"cannot mount a dataset: {err} (Debian package fuse3); stage with --copy or "
            "--reference instead"
        ) from err


def mount(project: Project, name: str, environ: Mapping[str, str] | None = None, *,
          check_credentials: bool = True) -> runner.MountState:  # fmt: skip
    """Mount dataset ``name`` at its folder (the caller holds the dataset's clone lock).

    With ``GITDATA_MOUNT_SERVICE`` in ``environ`` (default: this process's) the mount service
    mounts the folder; everything on the git side is done here, as for a local mount.
    """
    environ = os.environ if environ is None else environ
    service = environ.get("GITDATA_MOUNT_SERVICE")
    ds = ds_mod.get(project, name)
    if not service:
        runner.check_fuse(project, f"dataset {name!r}")
        _check_python_side()
    sparse.check(project)
    for src in ds.sources if check_credentials else ():  # credentials now (a prompt is possible only here)
        ds_mod.open_source(project, ds, src.url, versioned=False)
    old = runner.get(project, KIND, name)
    if old is not None:  # remount: a stale one is cleaned, a healthy one shows the index anew
        runner.stop(project, old, force=True)
    cur_mode, _loc = modes.current_mode(project, name)
    if cur_mode in ("location", "existing") or (cur_mode != "mount" and modes.has_content(project, ds)):
        # `dataset stage --mount` unstages first (gitdata.datasets.staging), keeping changed files
        raise MountError(f"dataset {name!r} is staged ({cur_mode or 'copy'}); unstage it first")
    found = ds_mod.index_files(project, ds)  # git's entries: a manifest's pointer, not its files
    parent = ds.path.rpartition("/")[0]
    safepath.checked_dir(project.root, parent, what=f"dataset {name!r}")  # no foreign link on the way
    folder = os.path.join(project.root, ds.path)
    if os.path.islink(folder):
        raise MountError(f"{ds.path} is a symlink; move it away, then stage with --mount again")
    if cur_mode != "mount":
        modes.check_folder_is_ours(project, ds, found)
    modes.skip_worktree(project, [f.path for f in found], True)
    _clear_pointers(project, ds, found)
    os.makedirs(folder, exist_ok=True)
    if os.listdir(folder):
        _restore(project, ds, found)
        raise MountError(f"{ds.path} is not empty; move its files away, then stage with --mount again")
    modes.exclude_folder(project, ds.path, True)
    try:
        sparse.leave_out(project, ds.path, True)  # git's checkouts never write into the mount
    except BaseException:
        _restore(project, ds, found)
        raise
    argv = [sys.executable, "-m", "gitdata.mount.serve", project.root, name, folder]
    try:
        st = _by_service(project, name, folder, service, environ) if service else runner.start(
            project, KIND, name, folder, argv)
        if not service:
            runner.raise_read_ahead(folder)  # root only; the service does it for its mounts
    except BaseException:
        _restore(project, ds, found)
        modes.set_mode(project, name, None)
        raise
    modes.set_mode(project, name, "mount")
    return st


def _by_service(project: Project, name: str, folder: str, service: str,
                environ: Mapping[str, str]) -> runner.MountState:  # fmt: skip
    import time

    from . import client

    req: dict = {"kind": KIND, "name": name, "project": os.path.realpath(project.root),
                 "mountpoint": os.path.realpath(folder)}  # fmt: skip
    key, secret = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
    if key and secret:  # registered sources read with the session's credentials, in the view's environment
        req["credentials"] = {"key": key, "secret": secret}
        if environ.get("AWS_SESSION_TOKEN"):
            req["credentials"]["token"] = environ["AWS_SESSION_TOKEN"]
    got = client.mount(service, req)
    st = runner.MountState(kind=KIND, name=name, mountpoint=folder, pid=int(got["pid"]), started=time.time(),
                           log=str(got.get("log") or ""), service=service, service_id=str(got["id"]))  # fmt: skip
    runner.save(project, st)
    return st


def _clear_pointers(project: Project, ds: ds_mod.Dataset, found: list) -> None:
    """Remove the dataset's pointer files (only pointers: content was unstaged before)."""
    for f in found:
        full = os.path.join(project.root, f.path)
        if os.path.isfile(full) and not os.path.islink(full) and ds_mod.read_pointer_file(full) is not None:
            os.unlink(full)
    folder = os.path.join(project.root, ds.path)
    if os.path.isdir(folder) and not os.path.islink(folder):
        for dirpath, _dirs, _files in os.walk(folder, topdown=False):
            if dirpath != folder:
                try:
                    os.rmdir(dirpath)
                except OSError:
                    pass


def _restore(project: Project, ds: ds_mod.Dataset, found: list) -> None:
    """The folder holds the pointers again; skip-worktree and the exclude line are gone."""
    folder = os.path.join(project.root, ds.path)
    if runner.is_mountpoint(folder) or runner.disconnected(folder):
        raise MountError(f"{ds.path} is still mounted; run `git data unmount {ds.name} --force`")
    for f in found:
        full = safepath.checked_target(project.root, f.path, what=f"dataset {ds.name!r}")
        if not os.path.lexists(full):
            modes.write_pointer(project, f)
    sparse.leave_out(project, ds.path, False)
    modes.skip_worktree(project, [f.path for f in found], False)
    modes.exclude_folder(project, ds.path, False)
    refresh_index(project, [f.path for f in found])


def unmount(project: Project, name: str, *, force: bool = False) -> bool:
    """Unmount dataset ``name`` and bring its pointers back; False if it was not mounted."""
    st = runner.get(project, KIND, name)
    mode, _loc = modes.current_mode(project, name)
    if st is None and mode != "mount":
        return False
    if st is not None:
        runner.stop(project, st, force=force)
    ds = ds_mod.get(project, name)
    _restore(project, ds, ds_mod.index_files(project, ds))
    modes.set_mode(project, name, None)
    return True
