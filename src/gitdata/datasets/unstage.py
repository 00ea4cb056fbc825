"""Unstaging a dataset: its files back to pointers, keeping every file the user changed."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .. import guard, safepath
from ..errors import GitDataError
from ..lock import clone_lock
from ..project import Project
from ..refresh import refresh_index
from ..scan import Found
from . import model as ds_mod
from .model import Dataset, object_store_for
from .modes import (
    _fallback_current,
    current_mode,
    exclude_folder,
    expectations,
    modified_paths,
    set_mode,
    skip_worktree,
    write_pointer,
)


@dataclass
class UnstageReport:
    dataset: str
    mode: str | None
    freed: list[str] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)  # path -> why it was kept
    bytes: int = 0

    def as_dict(self) -> dict[str, object]:
        return {"dataset": self.dataset, "mode": self.mode, "freed": len(self.freed), "kept": self.kept, "bytes": self.bytes}


def _pushed(project: Project, ds: Dataset, found: list[Found]) -> set[str]:
    """Oids of ``found`` that the dataset's storage (or data remote) has."""
    oids = {f.pointer.oid for f in found if f.pointer.oid}
    if not oids:
        return set()
    try:
        store = object_store_for(project, ds)
    except GitDataError:
        return set()
    return oids - store.missing(oids)


def unstage(project: Project, name: str) -> UnstageReport:
    """Free the space: bring the pointers back, keep anything not safe elsewhere."""
    with clone_lock(project.repo.data_dir, f"dataset-{name}", f"dataset unstage {name}"):
        return unstage_unlocked(project, name)


def unstage_unlocked(project: Project, name: str) -> UnstageReport:
    ds = ds_mod.get(project, name)
    mode, loc = current_mode(project, name)
    if mode == "mount":
        from ..mount import dataset as mount_ds

        mount_ds.unmount(project, name)
        return UnstageReport(dataset=name, mode=mode)
    report = UnstageReport(dataset=name, mode=mode)
    found = ds_mod.files(project, ds)
    pushed = _pushed(project, ds, found)
    staged_oids = project.state.staged_oids([f.path for f in found])
    folder = os.path.join(project.root, ds.path)
    in_place = ds_mod.recorded_manifest(project, ds) is not None  # staged as --location stages, in its folder
    if in_place or os.path.islink(folder):
        target = os.path.realpath(folder)
        keep_target = mode == "existing" or not mode
        expects = {} if keep_target else expectations(project, found)
        for f in found:
            full = os.path.join(target, ds.rel(f.path))
            if not os.path.lexists(full):
                continue
            if keep_target:
                continue
            state, _oid = guard.inspect(
                full, expects[f.path], algorithm=project.algorithm,
                fallback=lambda path, p=f.pointer: _fallback_current(project, p, path),
            )
            size = os.path.getsize(full)
            if state not in (guard.CURRENT, guard.POINTER):
                report.kept[full] = "changed since it was staged"
            elif f.pointer.oid and f.pointer.oid not in pushed:
                report.kept[full] = "not pushed"
            else:
                report.freed.append(f.path)
                report.bytes += size
        if not in_place:
            os.unlink(folder)
            for f in found:
                write_pointer(project, f)
            skip_worktree(project, [f.path for f in found], False)
        if not keep_target:
            for path in list(report.freed):
                try:  # walked without following links: nothing is removed through one
                    os.unlink(safepath.checked_target(target, ds.rel(path), create=False, what=f"dataset {name!r}"))
                except FileNotFoundError:
                    pass
                except safepath.UnsafePath as err:
                    report.freed.remove(path)
                    report.kept[os.path.join(target, ds.rel(path))] = str(err)
            _prune_empty_dirs(target)
        if not (in_place and report.kept):  # a kept file stays out of git's sight: it is the manifest's
            exclude_folder(project, ds.path, False)
        if loc and ds_mod.within(project.root, loc):
            exclude_folder(project, os.path.relpath(loc, project.root).replace(os.sep, "/"), False)
        if not in_place:
            refresh_index(project, [f.path for f in found])
    else:
        modified = modified_paths(project, ds)
        written = []
        for f in found:
            full = os.path.join(project.root, f.path)
            if not os.path.lexists(full) or ds_mod.read_pointer_file(full) is not None:
                continue
            if f.path in modified:
                report.kept[f.path] = "changed in the work tree (commit it, or `git restore` it)"
                continue
            if f.pointer.oid and f.pointer.oid not in pushed:
                report.kept[f.path] = "not pushed yet (run `git data push`)"
                continue
            report.bytes += os.path.getsize(full)
            write_pointer(project, f)
            written.append(f.path)
        report.freed = written
        if written:
            refresh_index(project, written)
    freed = set(report.freed)
    for path, oid in staged_oids.items():
        if path in freed:
            project.cache.remove(oid)  # registered content: still in external storage
    project.state.forget_staged(freed)
    project.state.forget_written(freed)
    if not report.kept:
        set_mode(project, name, None)
    else:
        set_mode(project, name, "copy" if mode in (None, "copy") else None)
    report.freed.sort()
    return report


def _prune_empty_dirs(root: str) -> None:
    for dirpath, _dirs, _files in os.walk(root, topdown=False):
        try:
            os.rmdir(dirpath)
        except OSError:
            pass
