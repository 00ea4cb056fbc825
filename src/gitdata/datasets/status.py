"""The datasets section of ``git data status``: local state per file, and whether sources still match.

The comparisons (:func:`local_state`, :func:`remote_states`) are pure;
:func:`dataset_rows` does the I/O: one listing per registered prefix, never a
download.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping

from ..errors import GitDataError
from ..pointer import Pointer
from ..project import Project
from ..scan import Found
from ..statusrows import (
    CHANGED,
    DELETED,
    LINKED,
    MISSING,
    MODIFIED,
    NEW,
    NOT_PUSHED,
    POINTER,
    REFERENCE,
    REFUSED,
    STAGED,
    UNCHECKED,
    UNREADABLE,
    StatusOptions,
    StatusRow,
)
from ..storage import ObjectNotFound, Storage
from ..storage.fingerprint import Fingerprint, compare
from . import model as ds_mod
from . import objects
from .manifest import ManifestError
from .modes import current_mode, linked_modified_paths, modified_paths

# -- pure comparisons ---------------------------------------------------------------


def local_state(
    pointer: Pointer, worktree: str, *, modified: bool, linked: bool, mode: str | None
) -> str:
    """The local state of one file.

    ``worktree`` says what the work tree holds at the path: "pointer",
    "content" or "missing" (for a linked dataset: at the link target).
    """
    if linked:
        if worktree != "content":
            return MISSING
        return MODIFIED if modified else LINKED
    if worktree == "missing":
        return MISSING
    if worktree == "pointer":
        return REFERENCE if mode == "reference" else POINTER
    return MODIFIED if modified else STAGED


def remote_states(
    recorded: Mapping[str, Fingerprint], current: Mapping[str, Fingerprint]
) -> tuple[dict[str, str], list[str]]:
    """Per recorded key: unchanged / changed / deleted; and the keys that are new."""
    states = {key: state_of(fp, current.get(key)) for key, fp in recorded.items()}
    new = sorted(k for k in current if k not in recorded)
    return states, new


def state_of(recorded: Fingerprint, now: Fingerprint | None) -> str:
    """One recorded object against what the listing says now (None: not listed)."""
    return DELETED if now is None else compare(recorded, now)


def recorded_fingerprint(pointer: Pointer) -> Fingerprint:
    return Fingerprint.from_pointer_fields(pointer.size, dict(pointer.extra))


# -- the datasets section -------------------------------------------------------------


def _worktree_kind(full: str) -> str:
    if not os.path.lexists(full):
        return "missing"
    return "pointer" if ds_mod.read_pointer_file(full) is not None else "content"


def _files_under(project: Project, folder: str) -> set[str]:
    """Project paths of the regular files under ``folder`` (one walk; links are not followed)."""
    out = set()
    for dirpath, _dirs, names in os.walk(folder):
        rel = os.path.relpath(dirpath, project.root).replace(os.sep, "/")
        for n in names:
            full = os.path.join(dirpath, n)
            if os.path.isfile(full) and not os.path.islink(full):
                out.add(f"{rel}/{n}")
    return out


def dataset_rows(project: Project, options: StatusOptions) -> list[StatusRow]:
    all_ds = ds_mod.load_all(project)
    chosen = (
        [all_ds[n] for n in options.names if n in all_ds]
        if options.names
        else list(all_ds.values())
    )
    rows: list[StatusRow] = []
    for ds in chosen:
        try:
            found = ds_mod.files(project, ds)
        except ManifestError as err:  # a refused manifest (a clone's or a bucket's): this dataset only
            rows.append(StatusRow("datasets", ds.name, objects.manifest_path(ds), UNREADABLE, None, str(err)))
            continue
        mode, _loc = current_mode(project, ds.name)
        folder = os.path.join(project.root, ds.path)
        linked = os.path.islink(folder)
        present: set[str] | None = None
        by_manifest = ds_mod.recorded_manifest(project, ds) is not None
        if mode == "mount" and by_manifest:
            present = {f.path for f in found}  # the view shows every file, read-only: nothing to walk
            modified = set()
        elif by_manifest and not linked:
            # no pointer files: a file there was staged (or put there); what git data wrote is known
            present = _files_under(project, folder)
            staged = [f for f in found if f.path in present]
            modified = linked_modified_paths(project, ds, staged, "location") if staged else set()
        elif linked:
            modified = linked_modified_paths(project, ds, found, mode)
        else:
            modified = modified_paths(project, ds)
        by_path: dict[str, StatusRow] = {}
        for f in found:
            if present is not None:
                kind = "content" if f.path in present else "pointer"
            else:
                kind = _worktree_kind(os.path.join(project.root, f.path))
            row = StatusRow(
                "datasets",
                ds.name,
                f.path,
                local_state(f.pointer, kind, modified=f.path in modified, linked=linked, mode=mode),
            )
            by_path[f.path] = row
            rows.append(row)
        if options.remote:
            try:
                rows += _remote_rows(project, ds, found, by_path)
            except GitDataError as err:  # this dataset's remote: the others are still asked
                for row in by_path.values():
                    if row.remote is None:
                        row.remote, row.detail = UNCHECKED, str(err)
                if not by_path:
                    rows.append(StatusRow("datasets", ds.name, "", None, UNCHECKED, str(err)))
    return rows


def _infos(storage: Storage, keys: Iterable[str]) -> Iterator[tuple[str, Fingerprint]]:
    """``(key, fingerprint)`` of each of ``keys`` that exists, asked one by one."""
    for key in keys:
        try:
            yield key, storage.info(key)
        except ObjectNotFound:
            pass


def _remote_rows(
    project: Project, ds: ds_mod.Dataset, found: list[Found], by_path: dict[str, StatusRow]
) -> list[StatusRow]:
    """Fill in the remote column; return rows for objects new under a registered prefix."""
    new_rows: list[StatusRow] = []
    groups: dict[str, dict[str, Found]] = {}
    for f in found:
        if f.pointer.oid is None and f.pointer.source:
            try:
                root, key = ds_mod.split_source(ds, f.pointer.source, f.path)
            except ds_mod.UnsafeSource as err:
                by_path[f.path].remote = REFUSED
                by_path[f.path].detail = str(err)
                continue
            groups.setdefault(root, {})[key] = f
    roots = {s.url.rstrip("/"): s for s in ds.sources}
    for root, files in sorted(groups.items()):
        src = roots.get(root)
        if src is not None:
            storage, listed, _single = ds_mod.list_source(project, ds, root)
        else:  # a single registered object: ask about it alone
            storage = ds_mod.open_source(project, ds, root)
            listed = _infos(storage, files)
        fresh = []
        for key, now in listed:  # streamed: a listed fingerprint is kept only where it changed
            f = files.get(key)
            if f is None:
                if src is not None:
                    fresh.append((key, now))
                continue
            row = by_path[f.path]
            row.remote = state_of(recorded_fingerprint(f.pointer), now)
            if row.remote == CHANGED:
                row.current = now  # what `git data update` records
        for f in files.values():
            if by_path[f.path].remote is None:  # recorded, not listed
                by_path[f.path].remote = DELETED
        if src is None:
            continue
        for key, now in sorted(fresh, key=lambda kv: kv[0]):  # listed, not recorded: new
            try:
                ds_mod.safe_relpath(key)
            except ds_mod.UnsafePath as err:  # named, never a path here: `update` skips it
                shown = key if key.isprintable() else repr(key)
                new_rows.append(StatusRow("datasets", ds.name, f"{storage.url}/{shown}", None, REFUSED, str(err)))
                continue
            rel = f"{src.to}/{key}" if src.to else key
            path = f"{ds.path}/{rel}"
            if path in by_path:
                continue  # recorded from another source, or the project's own file
            new_rows.append(StatusRow("datasets", ds.name, path, None, NEW, f"{storage.url}/{key}", now))
    owned = {f.pointer.oid: f for f in found if f.pointer.oid}
    if owned:
        try:
            store = ds_mod.object_store_for(project, ds)
            missing = store.missing(owned)
        except GitDataError:
            missing = set(owned)
        for f in found:
            row = by_path[f.path]
            if f.pointer.oid in missing and row.local not in (MODIFIED, MISSING):
                row.local = NOT_PUSHED
            elif f.pointer.oid:
                row.remote = "pushed" if f.pointer.oid not in missing else None
    return new_rows
