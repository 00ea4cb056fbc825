"""``git data diff``: which tracked data files differ between two commits (or a commit and the index).

git's own ``git diff`` shows a dataset recorded by a manifest as one changed
``.gitdata-manifest`` pointer; this compares what the manifests record,
file by file (a sorted merge of the two manifests, in constant memory), and
the per-file pointers beside them. A file that moved from a per-file
pointer into a manifest with the same record is not a change.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ..pointer import Pointer
from ..project import Project
from ..scan import Found, scan_index, scan_tree
from . import manifest as mf
from . import model as ds_mod
from .objects import read_manifest

ADDED, DELETED, MODIFIED = "added", "deleted", "modified"


@dataclass(frozen=True)
class Change:
    path: str
    state: str  # added | deleted | modified
    before: Pointer | None
    after: Pointer | None

    def as_dict(self) -> dict[str, object]:
        def side(p: Pointer | None) -> dict[str, object] | None:
            return None if p is None else {"oid": p.oid, "size": p.size, **dict(p.extra)}

        return {"path": self.path, "state": self.state, "before": side(self.before), "after": side(self.after)}


def _side(project: Project, rev: str | None) -> tuple[dict[str, Pointer], dict[str, Pointer]]:
    """``(per-file pointers by path, manifest pointers by dataset folder)`` at ``rev`` (None: the index)."""
    found: list[Found] = scan_index(project.repo).found if rev is None else scan_tree(project.repo, rev).found
    files, manifests = {}, {}
    for f in found:
        if f.pointer.is_manifest and mf.is_manifest_path(f.path):
            manifests[mf.folder_of(f.path)] = f.pointer
        else:
            files[f.path] = f.pointer
    return files, manifests


def _entries(project: Project, folder: str, pointer: Pointer | None) -> Iterator[mf.Entry]:
    if pointer is None:
        return iter(())
    return read_manifest(project, ds_mod.dataset_at(project, folder), pointer)


def diff(project: Project, old_rev: str | None, new_rev: str | None) -> list[Change]:
    """The data files that differ from ``old_rev`` to ``new_rev`` (None: the index), by path."""
    old_files, old_manifests = _side(project, old_rev)
    new_files, new_manifests = _side(project, new_rev)
    changes: dict[str, Change] = {}
    for folder in sorted(set(old_manifests) | set(new_manifests)):
        a, b = old_manifests.get(folder), new_manifests.get(folder)
        if a == b:
            continue
        for rel, before, after in mf.diff(_entries(project, folder, a), _entries(project, folder, b)):
            path = f"{folder}/{rel}" if folder else rel
            if before is None and old_files.get(path) == after:
                old_files.pop(path)  # moved from a pointer file into the manifest, as it was
                continue
            if after is None and new_files.get(path) == before:
                new_files.pop(path)  # moved out of the manifest into a pointer file
                continue
            if before is None:
                before = old_files.pop(path, None)
            if after is None:
                after = new_files.pop(path, None)
            if before != after:
                changes[path] = _change(path, before, after)
    for path in set(old_files) | set(new_files):
        before, after = old_files.get(path), new_files.get(path)
        if before != after and path not in changes:
            changes[path] = _change(path, before, after)
    return [changes[p] for p in sorted(changes)]


def _change(path: str, before: Pointer | None, after: Pointer | None) -> Change:
    state = ADDED if before is None else DELETED if after is None else MODIFIED
    return Change(path, state, before, after)
