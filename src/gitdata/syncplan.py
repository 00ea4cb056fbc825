"""Three-way sync decisions for mapped storages. Pure: no I/O.

Inputs are the *base* manifest (what both sides held after the last sync),
a snapshot of the local tree and one listing of the remote. Each path is
classified on each side as ``same``, ``changed``, ``deleted`` (in the base,
gone now), ``new`` (not in the base) or ``none`` (in neither), and the pair
decides the action:

=========  =========  =================================================
local      remote     action
=========  =========  =================================================
same       same       nothing
changed    same       upload (only if the remote is still as listed)
same       changed    download
changed    changed    adopt if both hold the same bytes, else conflict
new        none       upload (create-only)
none       new        download
new        new        adopt if the same bytes, else conflict
deleted    same       delete remotely with ``--delete``, else pending
same       deleted    delete locally with ``--delete``, else pending
deleted    deleted    forget the base entry
deleted    changed    conflict; any ``--prefer`` restores the change
changed    deleted    conflict; any ``--prefer`` restores the change
=========  =========  =================================================

A deletion never wins against a change. A conflict that ``--prefer`` does
not resolve holds back its **folder**: no action on a file in the same
folder as the conflict (its own files, not its sub-folders) is carried out,
so files written together (a run's outputs) never reach the other side half
updated; files in every other folder are synced. ``--prefer`` resolves every
conflict, or with ``prefer_paths`` only those at or under the given paths
(which then go ahead even where another conflict holds their folder: the
user decided about them); the losing side is saved first (``keep``), so no
version is lost.

Whether two sides hold the same bytes cannot always be told from metadata;
:func:`paths_to_probe` names the paths whose content must be compared and the
caller passes the answers in as ``equal``.
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .storage.fingerprint import Fingerprint, compare

SAME, CHANGED, DELETED, NEW, NONE = "same", "changed", "deleted", "new", "none"

UPLOAD, DOWNLOAD = "upload", "download"
DELETE_REMOTE, DELETE_LOCAL = "delete-remote", "delete-local"
ADOPT, FORGET, REFRESH = "adopt", "forget", "refresh"

#: Actions that move or remove bytes (shown to the user); the others only
#: update the base manifest.
TRANSFERS = (UPLOAD, DOWNLOAD, DELETE_REMOTE, DELETE_LOCAL)

BOTH_CHANGED = "both-changed"
NEW_BOTH = "new-both"
DELETED_LOCAL_CHANGED_REMOTE = "deleted-locally-changed-remotely"
CHANGED_LOCAL_DELETED_REMOTE = "changed-locally-deleted-remotely"


@dataclass(frozen=True, slots=True)
class BaseEntry:
    """What both sides held after the last sync of one file."""

    size: int
    remote: Fingerprint
    local_hash: str
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class LocalEntry:
    """A file in the local tree. ``hash`` is the content hash (xxh3-128)."""

    size: int
    mtime_ns: int
    hash: str


@dataclass(frozen=True, slots=True)
class Action:
    kind: str
    path: str
    #: the remote object the action expects to find (``None``: none may exist)
    remote: Fingerprint | None = None
    #: the local file the action expects to find (``None``: none may exist)
    local: LocalEntry | None = None
    #: before overwriting, keep the losing side: "local" (conflict copy) or
    #: "remote" (previous version id, or a local conflict copy if unversioned)
    keep: str | None = None
    #: why: the (local, remote) cell, or the conflict kind it resolves
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Conflict:
    path: str
    kind: str
    local: LocalEntry | None
    remote: Fingerprint | None


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    #: ``(path, reason)`` of changes not carried out (deletions without --delete)
    pending: list[tuple[str, str]] = field(default_factory=list)
    #: conflicts left unresolved: the actions on the files of their folders are held back
    blocked: bool = False
    #: ``(path, folder)`` of actions held back by a conflict in their folder
    held: list[tuple[str, str]] = field(default_factory=list)
    unchanged: int = 0
    #: ``(path, resolution)`` of conflicts that ``--prefer`` resolved
    resolved: list[tuple[str, str]] = field(default_factory=list)

    @property
    def transfers(self) -> list[Action]:
        return [a for a in self.actions if a.kind in TRANSFERS]

    def counts(self) -> dict[str, int]:
        out = {k: 0 for k in (*TRANSFERS, ADOPT, FORGET)}
        for a in self.actions:
            if a.kind in out:
                out[a.kind] += 1
        out["conflicts"] = len(self.conflicts)
        out["pending"] = len(self.pending)
        out["unchanged"] = self.unchanged
        return out


# -- classification ---------------------------------------------------------


def local_state(base: BaseEntry | None, local: LocalEntry | None) -> str:
    if base is None:
        return NONE if local is None else NEW
    if local is None:
        return DELETED
    return SAME if local.hash == base.local_hash else CHANGED


def remote_state(base: BaseEntry | None, remote: Fingerprint | None) -> str:
    if base is None:
        return NONE if remote is None else NEW
    if remote is None:
        return DELETED
    return SAME if compare(base.remote, remote) == "unchanged" else CHANGED


def paths_to_probe(
    base: Mapping[str, BaseEntry],
    local: Mapping[str, LocalEntry],
    remote: Mapping[str, Fingerprint],
) -> list[str]:
    """Paths changed on both sides with equal sizes: are the bytes the same?"""
    out = []
    for path in sorted(local.keys() & remote.keys()):
        b = base.get(path)
        ls, rs = local_state(b, local[path]), remote_state(b, remote[path])
        if (ls, rs) in ((CHANGED, CHANGED), (NEW, NEW)) and local[path].size == remote[path].size:
            out.append(path)
    return out


# -- scope ------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """Which paths of a storage this clone stages and syncs."""

    paths: tuple[str, ...] = ()  # sub-folders or files; empty: everything
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def contains(self, path: str) -> bool:
        if self.paths and not any(path == p or path.startswith(p.rstrip("/") + "/") for p in self.paths):
            return False
        name = path.rsplit("/", 1)[-1]
        if self.include and not any(_match(path, name, g) for g in self.include):
            return False
        return not any(_match(path, name, g) for g in self.exclude)

    def list_prefix(self) -> str:
        """One listing prefix covering every path in scope ("" = the whole storage)."""
        if len(self.paths) != 1:
            return ""
        return self.paths[0].rstrip("/")


def _match(path: str, name: str, glob: str) -> bool:
    if "/" in glob:
        return fnmatch.fnmatchcase(path, glob) or fnmatch.fnmatchcase(path, glob.rstrip("/") + "/*")
    return fnmatch.fnmatchcase(name, glob) or any(
        fnmatch.fnmatchcase(part, glob) for part in path.split("/")[:-1]
    )


# -- the plan ---------------------------------------------------------------


@functools.cache
def _cell(ls: str, rs: str) -> str:
    """The ``local/remote`` reason of an action: one string per cell (a plan holds one per file)."""
    return f"{ls}/{rs}"


def plan(
    base: Mapping[str, BaseEntry],
    local: Mapping[str, LocalEntry],
    remote: Mapping[str, Fingerprint],
    *,
    equal: Mapping[str, bool] | None = None,
    prefer: str | None = None,
    delete: bool = False,
    prefer_paths: Iterable[str] | None = None,
) -> Plan:
    """Decide what a sync does. The same function serves ``--dry-run`` and a real run.

    ``equal`` answers :func:`paths_to_probe` (missing answers count as
    "different"). ``prefer`` is ``None``, ``"local"`` or ``"remote"``;
    ``prefer_paths`` (files or folders) limits it to the conflicts there.
    """
    if prefer not in (None, "local", "remote"):
        raise ValueError(f"prefer must be 'local' or 'remote', not {prefer!r}")
    if prefer_paths is not None and prefer is None:
        raise ValueError("prefer_paths needs prefer")
    chosen = None if prefer_paths is None else tuple(p.strip("/") for p in prefer_paths)
    all_prefer = prefer
    equal = equal or {}
    out = Plan()
    actions: list[Action] = []
    paths: Iterable[str] = sorted(set(base) | set(local) | set(remote))
    for path in paths:
        b, lo, ro = base.get(path), local.get(path), remote.get(path)
        ls, rs = local_state(b, lo), remote_state(b, ro)
        prefer = all_prefer if chosen is None or _under(path, chosen) else None
        cell = _cell(ls, rs)
        if ls == SAME and rs == SAME:
            out.unchanged += 1
            assert b is not None and lo is not None
            if lo.mtime_ns != b.mtime_ns or lo.size != b.size:
                actions.append(Action(REFRESH, path, ro, lo, reason=cell))
        elif ls in (CHANGED, NEW) and rs in (SAME, NONE):
            actions.append(Action(UPLOAD, path, ro, lo, reason=cell))
        elif ls in (SAME, NONE) and rs in (CHANGED, NEW):
            actions.append(Action(DOWNLOAD, path, ro, lo, reason=cell))
        elif (ls, rs) in ((CHANGED, CHANGED), (NEW, NEW)):
            assert lo is not None and ro is not None
            if lo.size == ro.size and equal.get(path, False):
                actions.append(Action(ADOPT, path, ro, lo, reason=cell))
                continue
            kind = BOTH_CHANGED if ls == CHANGED else NEW_BOTH
            if prefer is None:
                out.conflicts.append(Conflict(path, kind, lo, ro))
            elif prefer == "local":
                actions.append(Action(UPLOAD, path, ro, lo, keep="remote", reason=kind))
                out.resolved.append((path, "kept local; remote version saved"))
            else:
                actions.append(Action(DOWNLOAD, path, ro, lo, keep="local", reason=kind))
                out.resolved.append((path, "kept remote; local version saved as a conflict copy"))
        elif ls == DELETED and rs == SAME:
            if delete:
                actions.append(Action(DELETE_REMOTE, path, ro, None, reason=cell))
            else:
                out.pending.append((path, "deleted locally (sync with --delete to delete it remotely)"))
        elif ls == SAME and rs == DELETED:
            if delete:
                actions.append(Action(DELETE_LOCAL, path, None, lo, reason=cell))
            else:
                out.pending.append((path, "deleted remotely (sync with --delete to delete it locally)"))
        elif ls == DELETED and rs == DELETED:
            actions.append(Action(FORGET, path, reason=cell))
        elif ls == DELETED and rs == CHANGED:
            if prefer is None:
                out.conflicts.append(Conflict(path, DELETED_LOCAL_CHANGED_REMOTE, None, ro))
            else:
                actions.append(Action(DOWNLOAD, path, ro, None, reason=DELETED_LOCAL_CHANGED_REMOTE))
                out.resolved.append((path, "restored locally: a deletion never wins against a change"))
        elif ls == CHANGED and rs == DELETED:
            if prefer is None:
                out.conflicts.append(Conflict(path, CHANGED_LOCAL_DELETED_REMOTE, lo, None))
            else:
                actions.append(Action(UPLOAD, path, None, lo, reason=CHANGED_LOCAL_DELETED_REMOTE))
                out.resolved.append((path, "restored remotely: a deletion never wins against a change"))
        else:  # pragma: no cover - every reachable cell is handled above
            raise AssertionError(f"unhandled sync cell {cell} for {path}")
    out.blocked = bool(out.conflicts)
    held = {_folder(c.path) for c in out.conflicts}
    named = {p for p, _ in out.resolved} if chosen is not None else set()  # the user decided these
    out.actions = [a for a in actions if _folder(a.path) not in held or a.path in named]
    out.held = [(a.path, _folder(a.path)) for a in actions if _folder(a.path) in held and a.path not in named]
    return out


def _folder(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


def _under(path: str, chosen: tuple[str, ...]) -> bool:
    return any(p == "" or path == p or path.startswith(p + "/") for p in chosen)


def conflict_name(path: str, stamp: str) -> str:
    """``dir/name.ext`` -> ``dir/name.ext.conflict-<stamp>``: the losing side's copy."""
    return f"{path}.conflict-{stamp}"
