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
from collections.abc import Callable, Iterable, Iterator, Mapping
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
    """What a sync decided. Its actions are a list (:func:`plan`) or come from a store the
    caller keeps (:class:`Planner` with ``emit``: a plan too large to hold); either way
    :meth:`iter_actions` yields them in path order, without those a conflict holds back."""

    conflicts: list[Conflict] = field(default_factory=list)
    #: ``(path, reason)`` of changes not carried out (deletions without --delete)
    pending: list[tuple[str, str]] = field(default_factory=list)
    #: conflicts left unresolved: the actions on the files of their folders are held back
    blocked: bool = False
    unchanged: int = 0
    #: ``(path, resolution)`` of conflicts that ``--prefer`` resolved
    resolved: list[tuple[str, str]] = field(default_factory=list)
    #: every action decided, held or not, in path order (a callable: it may be read again)
    decided: Callable[[], Iterable[Action]] = field(default=lambda: (), compare=False, repr=False)
    #: the folders whose actions a conflict holds back, and the paths the user decided about
    held_folders: frozenset[str] = frozenset()
    named: frozenset[str] = frozenset()

    def _held(self, a: Action) -> bool:
        return bool(self.held_folders) and _folder(a.path) in self.held_folders and a.path not in self.named

    def iter_actions(self) -> Iterator[Action]:
        """The actions to carry out, in path order."""
        return (a for a in self.decided() if not self._held(a))

    @property
    def actions(self) -> list[Action]:
        return list(self.iter_actions())

    @property
    def transfers(self) -> list[Action]:
        return [a for a in self.iter_actions() if a.kind in TRANSFERS]

    @property
    def held(self) -> list[tuple[str, str]]:
        """``(path, folder)`` of actions held back by a conflict in their folder."""
        if not self.held_folders:
            return []
        return [(a.path, _folder(a.path)) for a in self.decided() if self._held(a)]

    def counts(self) -> dict[str, int]:
        out = {k: 0 for k in (*TRANSFERS, ADOPT, FORGET)}
        for a in self.iter_actions():
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
    return [p for p in sorted(local.keys() & remote.keys()) if needs_probe(base.get(p), local[p], remote[p])]


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


def needs_probe(base: BaseEntry | None, local: LocalEntry | None, remote: Fingerprint | None) -> bool:
    """Changed (or new) on both sides with equal sizes: only the bytes can tell whether they agree."""
    if local is None or remote is None:
        return False
    ls, rs = local_state(base, local), remote_state(base, remote)
    return (ls, rs) in ((CHANGED, CHANGED), (NEW, NEW)) and local.size == remote.size


class Planner:
    """The decision table applied one path at a time, in any order: what :func:`plan` does
    for mappings, and what a sync too large to hold does for a stream of rows.

    Actions go to ``emit`` (the caller stores them and hands :meth:`finish` a way to read
    them back in path order), or into a list the plan holds."""

    def __init__(
        self,
        *,
        prefer: str | None = None,
        delete: bool = False,
        prefer_paths: Iterable[str] | None = None,
        emit: Callable[[Action], None] | None = None,
    ) -> None:
        if prefer not in (None, "local", "remote"):
            raise ValueError(f"prefer must be 'local' or 'remote', not {prefer!r}")
        if prefer_paths is not None and prefer is None:
            raise ValueError("prefer_paths needs prefer")
        self.chosen = None if prefer_paths is None else tuple(p.strip("/") for p in prefer_paths)
        self.prefer = prefer
        self.delete = delete
        self.kept: list[Action] | None = None if emit is not None else []
        self.emit: Callable[[Action], None] = emit if emit is not None else self.kept.append  # type: ignore[union-attr]
        self.out = Plan()

    def add(
        self, path: str, b: BaseEntry | None, lo: LocalEntry | None, ro: Fingerprint | None, *, equal: bool = False
    ) -> None:
        """Decide one path. ``equal``: whether both sides hold the same bytes (asked only
        where :func:`needs_probe` says so; an unasked path counts as different)."""
        out, emit, delete = self.out, self.emit, self.delete
        ls, rs = local_state(b, lo), remote_state(b, ro)
        prefer = self.prefer if self.chosen is None or _under(path, self.chosen) else None
        cell = _cell(ls, rs)
        if ls == SAME and rs == SAME:
            out.unchanged += 1
            assert b is not None and lo is not None
            if lo.mtime_ns != b.mtime_ns or lo.size != b.size:
                # the base's fingerprint is kept: the listing's equals it (compare() says so)
                emit(Action(REFRESH, path, b.remote, lo, reason=cell))
        elif ls in (CHANGED, NEW) and rs in (SAME, NONE):
            emit(Action(UPLOAD, path, ro, lo, reason=cell))
        elif ls in (SAME, NONE) and rs in (CHANGED, NEW):
            emit(Action(DOWNLOAD, path, ro, lo, reason=cell))
        elif (ls, rs) in ((CHANGED, CHANGED), (NEW, NEW)):
            assert lo is not None and ro is not None
            if lo.size == ro.size and equal:
                emit(Action(ADOPT, path, ro, lo, reason=cell))
                return
            kind = BOTH_CHANGED if ls == CHANGED else NEW_BOTH
            if prefer is None:
                out.conflicts.append(Conflict(path, kind, lo, ro))
            elif prefer == "local":
                emit(Action(UPLOAD, path, ro, lo, keep="remote", reason=kind))
                out.resolved.append((path, "kept local; remote version saved"))
            else:
                emit(Action(DOWNLOAD, path, ro, lo, keep="local", reason=kind))
                out.resolved.append((path, "kept remote; local version saved as a conflict copy"))
        elif ls == DELETED and rs == SAME:
            if delete:
                emit(Action(DELETE_REMOTE, path, ro, None, reason=cell))
            else:
                out.pending.append((path, "deleted locally (sync with --delete to delete it remotely)"))
        elif ls == SAME and rs == DELETED:
            if delete:
                emit(Action(DELETE_LOCAL, path, None, lo, reason=cell))
            else:
                out.pending.append((path, "deleted remotely (sync with --delete to delete it locally)"))
        elif ls == DELETED and rs == DELETED:
            emit(Action(FORGET, path, reason=cell))
        elif ls == DELETED and rs == CHANGED:
            if prefer is None:
                out.conflicts.append(Conflict(path, DELETED_LOCAL_CHANGED_REMOTE, None, ro))
            else:
                emit(Action(DOWNLOAD, path, ro, None, reason=DELETED_LOCAL_CHANGED_REMOTE))
                out.resolved.append((path, "restored locally: a deletion never wins against a change"))
        elif ls == CHANGED and rs == DELETED:
            if prefer is None:
                out.conflicts.append(Conflict(path, CHANGED_LOCAL_DELETED_REMOTE, lo, None))
            else:
                emit(Action(UPLOAD, path, None, lo, reason=CHANGED_LOCAL_DELETED_REMOTE))
                out.resolved.append((path, "restored remotely: a deletion never wins against a change"))
        else:  # pragma: no cover - every reachable cell is handled above
            raise AssertionError(f"unhandled sync cell {cell} for {path}")

    def finish(self, decided: Callable[[], Iterable[Action]] | None = None) -> Plan:
        """The plan. ``decided`` reads the emitted actions back in path order (a plan whose
        actions were emitted elsewhere); a held plan sorts its own."""
        out = self.out
        if self.kept is not None:
            kept = sorted(self.kept, key=lambda a: a.path)
            out.decided = lambda: kept
        else:
            assert decided is not None, "a plan whose actions were emitted needs a way to read them"
            out.decided = decided
        out.conflicts.sort(key=lambda c: c.path)
        out.pending.sort()
        out.resolved.sort()
        out.blocked = bool(out.conflicts)
        out.held_folders = frozenset(_folder(c.path) for c in out.conflicts)
        out.named = frozenset(p for p, _ in out.resolved) if self.chosen is not None else frozenset()  # the user decided these
        return out


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
    planner = Planner(prefer=prefer, delete=delete, prefer_paths=prefer_paths)
    equal = equal or {}
    for path in sorted(set(base) | set(local) | set(remote)):
        planner.add(path, base.get(path), local.get(path), remote.get(path), equal=equal.get(path, False))
    return planner.finish()


def _folder(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


def _under(path: str, chosen: tuple[str, ...]) -> bool:
    return any(p == "" or path == p or path.startswith(p + "/") for p in chosen)


def conflict_name(path: str, stamp: str) -> str:
    """``dir/name.ext`` -> ``dir/name.ext.conflict-<stamp>``: the losing side's copy."""
    return f"{path}.conflict-{stamp}"
