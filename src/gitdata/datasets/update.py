"""``git data update``: re-record what changed at a dataset's sources, never losing a local change."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .. import safepath
from ..errors import GitDataError
from ..pointer import Pointer, PointerError
from ..project import Project
from ..statusrows import (
    CHANGED,
    DELETED,
    MODIFIED,
    NEW,
    REFUSED,
    UNCHECKED,
    UNREADABLE,
    StatusOptions,
)
from . import model as ds_mod
from . import objects
from .register import registered_pointer
from .status import dataset_rows


@dataclass
class UpdateReport:
    dataset: str
    changed: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    #: path -> why it was left as it is (a local change update would lose)
    kept: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def update(
    project: Project, name: str, paths: tuple[str, ...] = (), *, new: bool = True
) -> UpdateReport:
    """Re-record fingerprints of remote objects that changed; add new ones, drop deleted.

    Only the work tree changes: the new pointers show in ``git diff`` (new
    files are added with intent-to-add so they show too), ready to commit.
    A staged copy of a changed file goes back to pointer text: stage again
    to get the new bytes. A file changed locally (``git data status`` says
    modified) is never replaced or deleted: it is left as it is and listed in
    ``kept``, and so is an untracked file where a new object would go.
    """
    ds = ds_mod.get(project, name)
    if os.path.islink(os.path.join(project.root, ds.path)):
        raise GitDataError(
            f"dataset {name!r} is staged at a location (a link); run `git data dataset unstage "
            f"{name}` first, then update, then stage again"
        )
    # the files update acts on are the notable ones (changed, deleted, new, refused, not checked);
    # the rest are counted, not listed
    options = StatusOptions(names=(name,), remote=True, every_file=False)
    rows = {r.path: r for r in dataset_rows(project, options) if not r.aggregate}
    unchecked = next((r for r in rows.values() if r.remote == UNCHECKED), None)
    if unchecked is not None:  # status goes on without this remote; update cannot
        raise GitDataError(f"dataset {name}: {unchecked.detail}")
    unreadable = next((r for r in rows.values() if r.local == UNREADABLE), None)
    if unreadable is not None:  # status names a refused manifest and goes on; update writes nothing
        raise GitDataError(f"dataset {name}: {unreadable.detail}")
    report = UpdateReport(dataset=name)

    def wanted(path: str) -> bool:
        if not paths:
            return True
        return any(path == p.rstrip("/") or path.startswith(p.rstrip("/") + "/") for p in paths)

    manifest = ds_mod.recorded_manifest(project, ds)
    recorded: dict[str, Pointer] = {}  # a manifest's new records, by path
    for path, row in sorted(rows.items()):
        if row.remote == REFUSED:
            if row.local is None:  # a new object whose key could leave the folder: named, skipped
                report.kept[path] = row.detail
            continue
        if not wanted(path):
            continue
        try:  # walked right before any write or removal: no link a clone brought is followed
            full = ds_mod.checked_path(project, path, create=False)
        except FileNotFoundError:
            full = os.path.join(project.root, path)  # its folder is new: made on the write below
        except safepath.UnsafePath as err:
            report.kept[path] = str(err)
            continue
        if row.local == MODIFIED and row.remote in (CHANGED, DELETED):
            report.kept[path] = f"changed locally, and {row.remote} on the remote"
            continue
        if row.remote == NEW and new and os.path.lexists(full):
            report.kept[path] = "new on the remote, but an untracked file is there"
            continue
        if row.remote == CHANGED and row.current is not None:
            fp = row.current
            try:
                pointer = registered_pointer(row.source or "", fp)
                data = pointer.encode()
            except PointerError as err:
                raise GitDataError(f"{path}: {err}") from err
            if manifest is None:
                ds_mod.write_pointer_at(project, path, data)
            else:
                recorded[path] = pointer
                _drop_staged_copy(full)
            report.changed.append(path)
        elif row.remote == DELETED:
            if os.path.lexists(full):
                os.unlink(full)
            report.deleted.append(path)
        elif row.remote == NEW and new and row.current is not None:
            pointer = registered_pointer(row.detail, row.current)
            if manifest is None:
                try:
                    ds_mod.write_pointer_at(project, path, pointer.encode())
                except safepath.UnsafePath as err:
                    report.kept[path] = str(err)
                    continue
            else:
                recorded[path] = pointer
            report.added.append(path)
    project.state.forget_staged(report.changed + report.deleted)
    if manifest is not None:
        if recorded or report.deleted:
            # staged in the index at once (review it with `git data diff`): a manifest's
            # pointer is not text a user can review
            path = objects.rewrite_manifest(project, ds, manifest, recorded, report.deleted)
            ds_mod.git_add(project, [path], pointers=True)
    elif report.added:
        ds_mod.git_add(project, report.added, intent_only=True, pointers=True)
    return report


def _drop_staged_copy(full: str) -> None:
    """A manifest's file staged in place, now recorded anew: back to not staged (stage again)."""
    if os.path.isfile(full) and not os.path.islink(full):
        os.unlink(full)
