"""The datasets section of ``git data status``: local state per file, and whether sources still match.

The comparisons (:func:`local_state`, :func:`remote_states`, :func:`join_listing`) are pure;
:func:`dataset_rows` does the I/O: one listing per registered prefix, never a
download. A dataset's files are read as a stream (a manifest's lines as they
come) and joined with each listing as it streams; with
``StatusOptions.every_file`` off, only the files worth showing are kept as rows
and the rest are counted (see docs/design.md, "status of a million files").
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import chain
from typing import TypeVar

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
    is_notable,
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


R = TypeVar("R")
F = TypeVar("F")


def join_listing(
    recorded: Iterable[tuple[str, R]], listed: Iterable[tuple[str, F]]
) -> Iterator[tuple[str, R | None, F | None]]:
    """A merge-join of recorded keys with a listing: ``(key, recorded, listed)`` per key.

    Each recorded item comes out once, with the listed fingerprint of its key or
    None (not listed: deleted); each listed key no recorded item has comes out
    once with ``recorded`` None (new). Both sides are expected in key order and
    are read once, in step; neither has to be. What one side passed that the
    other has not shown yet waits in a dict until its match arrives (a deletion,
    a new key, or an entry out of order), and what still waits at the end is
    unmatched. So memory is what is notable plus how far the order is off: for
    listings in key order (S3, GCS, a local folder) only the deletions and new
    keys; for a listing in no order at all (some S3 servers, generic fsspec
    backends) a dict of the listing, and still the right answer.

    A key is listed at most once. A recorded key may repeat (two paths naming
    one object): repeats get the same fingerprint when they come next to each
    other or both wait; a repeat that comes after its key was matched and
    other keys came between is taken as not listed.
    """
    waiting_recorded: dict[str, list[R]] = {}  # passed by the listing, not listed (yet)
    waiting_listed: dict[str, F] = {}  # listed, not recorded (yet)
    rec, lst = iter(recorded), iter(listed)
    r, x = next(rec, None), next(lst, None)
    last: tuple[str, F] | None = None  # the last match, for a recorded key that repeats at once
    while r is not None or x is not None:
        if x is None or (r is not None and r[0] <= x[0]):
            assert r is not None
            key, item = r
            r = next(rec, None)
            if x is not None and x[0] == key:
                now = x[1]
                x = next(lst, None)
            elif key in waiting_listed:
                now = waiting_listed.pop(key)
            elif last is not None and last[0] == key:
                now = last[1]
            else:
                waiting_recorded.setdefault(key, []).append(item)
                continue
            last = (key, now)
            yield key, item, now
        else:
            key, now = x
            x = next(lst, None)
            items = waiting_recorded.pop(key, None)
            if items is None:
                waiting_listed[key] = now
                continue
            last = (key, now)
            for item in items:
                yield key, item, now
    for key, items in waiting_recorded.items():
        for item in items:
            yield key, item, None
    for key, now in waiting_listed.items():
        yield key, None, now


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


class _Rows:
    """The rows of one part of a dataset: every file's (``every_file``), or only the notable
    ones and, for the rest, a count per ``(local, remote)``."""

    __slots__ = ("name", "every", "rows", "counts")

    def __init__(self, name: str, every: bool) -> None:
        self.name, self.every = name, every
        self.rows: list[StatusRow] = []
        self.counts: dict[tuple[str | None, str | None], int] = {}

    def add(
        self, path: str, local: str | None, remote: str | None = None, detail: str = "",
        current: Fingerprint | None = None, source: str | None = None,
    ) -> None:
        if self.every or is_notable(local, remote):
            self.rows.append(StatusRow("datasets", self.name, path, local, remote, detail, current, source=source))
        else:
            self.counts[(local, remote)] = self.counts.get((local, remote), 0) + 1


def _assemble(name: str, parts: list[_Rows], new: list[StatusRow]) -> list[StatusRow]:
    """The files' rows by path, then one aggregate row per unlisted ``(local, remote)``, then the new objects."""
    rows = [r for part in parts for r in part.rows]
    if len(parts) > 1:
        rows.sort(key=lambda r: r.path)
    counts: dict[tuple[str | None, str | None], int] = {}
    for part in parts:
        for states, n in part.counts.items():
            counts[states] = counts.get(states, 0) + n
    for (local, remote), n in sorted(counts.items(), key=lambda kv: (kv[0][0] or "", kv[0][1] or "")):
        rows.append(StatusRow("datasets", name, "", local, remote, count=n))
    return rows + new


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
            rows += _rows_of(project, ds, options)
        except ManifestError as err:  # a refused manifest (a clone's or a bucket's): this dataset only
            rows.append(StatusRow("datasets", ds.name, objects.manifest_path(ds), UNREADABLE, None, str(err)))
    return rows


def _rows_of(project: Project, ds: ds_mod.Dataset, options: StatusOptions) -> list[StatusRow]:
    """One dataset's rows. Its files are a stream (:func:`.model.iter_files`), read once for the
    local states and once per registered source for the remote ones, never held whole (but for a
    linked dataset, whose check of what was written takes them all at once)."""
    index = ds_mod.index_files(project, ds)
    by_manifest = objects.manifest_pointer_of(project, ds, index) is not None

    def walk() -> Iterator[Found]:
        return ds_mod.iter_files(project, ds, index)

    if by_manifest:
        next(walk(), None)  # fetched and its header read here: a refusal is this dataset's, a fetch error stops
    mode, _loc = current_mode(project, ds.name)
    folder = os.path.join(project.root, ds.path)
    linked = os.path.islink(folder)
    present: set[str] | None = None
    everything = False  # every file's content is there (a mounted manifest dataset)
    if mode == "mount" and by_manifest:
        everything = True  # the view shows every file, read-only: nothing to walk
        modified: set[str] = set()
    elif by_manifest and not linked:
        # no pointer files: a file there was staged (or put there); what git data wrote is known
        present = _files_under(project, folder) - {objects.manifest_path(ds)}  # its own pointer is no file of it
        staged = [f for f in walk() if f.path in present] if present else []
        modified = linked_modified_paths(project, ds, staged, "location") if staged else set()
    elif linked:
        modified = linked_modified_paths(project, ds, list(walk()), mode)
    else:
        modified = modified_paths(project, ds)

    def local_of(f: Found) -> str:
        if everything:
            kind = "content"
        elif present is not None:
            kind = "content" if f.path in present else "pointer"
        else:
            kind = _worktree_kind(os.path.join(project.root, f.path))
        return local_state(f.pointer, kind, modified=f.path in modified, linked=linked, mode=mode)

    if not options.remote:
        part = _Rows(ds.name, options.every_file)
        for f in walk():
            part.add(f.path, local_of(f))
        return _assemble(ds.name, [part], [])
    return _remote_rows(project, ds, options.every_file, walk, local_of, index, by_manifest)


def _infos(storage: Storage, keys: Iterable[str]) -> Iterator[tuple[str, Fingerprint]]:
    """``(key, fingerprint)`` of each of ``keys`` that exists, asked one by one."""
    for key in keys:
        try:
            yield key, storage.info(key)
        except ObjectNotFound:
            pass


def _candidate_roots(ds: ds_mod.Dataset) -> list[str]:
    """Every storage url :func:`.model.split_source` can give for this dataset's pointers:
    each declared source, then the parent of each one that could name a single object (the
    first pass over the files also answers for those no listing is about: a declared source
    first, so that a dataset of one prefix is read once)."""
    declared = sorted({src.url.rstrip("/") for src in ds.sources})
    parents = {root.rpartition("/")[0] for root in declared if "/" in root.split("://", 1)[-1]}
    return declared + sorted(parents - set(declared))


def _remote_rows(
    project: Project, ds: ds_mod.Dataset, every: bool, walk: Callable[[], Iterator[Found]],
    local_of: Callable[[Found], str], index: list[Found], by_manifest: bool,
) -> list[StatusRow]:
    """The rows with the remote column: one pass over the files per registered source, each
    joined with that source's listing as both stream (:func:`join_listing`); then the objects
    new under a registered prefix.

    A source that cannot be asked (no credentials, unreachable, refused mid-listing) makes
    every file not yet compared "not checked", its own and those of the sources after it;
    the sources compared before keep their answer.
    """
    roots = {s.url.rstrip("/"): s for s in ds.sources}
    manifest = objects.manifest_path(ds) if by_manifest else None
    owned = {f.pointer.oid for f in index if f.pointer.oid and f.path != manifest}
    missing: set[str] = set()
    if owned:
        try:
            missing = ds_mod.object_store_for(project, ds).missing(owned)
        except GitDataError:
            missing = set(owned)

    def where(f: Found) -> tuple[str | None, str, str]:
        """``(storage url, key, "")`` of a registered file; ``(None, "", why)`` for a refused
        source; ``(None, "", "")`` for the project's own files (and pointers with no source)."""
        if f.pointer.oid is None and f.pointer.source:
            try:
                root, key = ds_mod.split_source(ds, f.pointer.source, f.path)
            except ds_mod.UnsafeSource as err:
                return None, "", str(err)
            return root, key, ""
        return None, "", ""

    others = _Rows(ds.name, every)

    def other(f: Found, refused: str) -> None:
        local = local_of(f)
        oid = f.pointer.oid
        if refused:
            others.add(f.path, local, REFUSED, refused)
        elif oid and oid in missing and local not in (MODIFIED, MISSING):
            others.add(f.path, NOT_PUSHED)
        elif oid:
            others.add(f.path, local, "pushed" if oid not in missing else None)
        else:
            others.add(f.path, local)

    asked: set[str | None] = set()  # the sources the first pass met: no other one is read again

    def recorded_of(root: str, first: bool) -> Iterator[tuple[str, Found]]:
        for f in walk():
            r, key, refused = where(f)
            if first:
                asked.add(r)
            if r == root:
                yield key, f
            elif first and r is None:  # the first pass answers for the files no listing is about
                other(f, refused)

    parts: list[_Rows] = []
    done: set[str] = set()
    new: list[StatusRow] = []
    failure: GitDataError | None = None
    candidates = _candidate_roots(ds)
    if not candidates:
        for f in walk():
            other(f, where(f)[2])
    for i, root in enumerate(candidates):
        if i and root not in asked:
            continue  # no file is from there: another pass over a million would find none
        part = _Rows(ds.name, every)
        try:
            new += _compare(project, ds, roots.get(root), root, recorded_of(root, i == 0), part, local_of, by_manifest)
        except ManifestError:
            raise
        except GitDataError as err:  # this source's remote: the other datasets are still asked
            failure = err
            break
        parts.append(part)
        done.add(root)
    if failure is None:
        parts.append(others)
    else:
        why = str(failure)
        rest = _Rows(ds.name, every)
        for f in walk():
            r, _key, refused = where(f)
            if r is not None and r in done:
                continue
            rest.add(f.path, local_of(f), REFUSED if refused else UNCHECKED, refused or why)
        parts.append(rest)
    fresh = {r.path for r in new if r.remote == NEW}
    if fresh:  # where a new object would go: a file recorded from another source, or the project's own
        taken = {f.path for f in walk() if f.path in fresh}
        new = [r for r in new if r.remote != NEW or r.path not in taken]
    return _assemble(ds.name, parts, new)


def _compare(
    project: Project, ds: ds_mod.Dataset, src: ds_mod.Source | None, root: str,
    recorded: Iterator[tuple[str, Found]], part: _Rows, local_of: Callable[[Found], str], by_manifest: bool,
) -> list[StatusRow]:
    """One source's files (``recorded``, as ``(key, Found)``) against its listing, into ``part``;
    returns the rows of keys listed under a registered prefix that no file records."""
    head = next(recorded, None)
    if head is None:
        return []  # no file from here: not listed (nor asked about new objects)
    entries: Iterable[tuple[str, Found]] = chain([head], recorded)
    if src is not None:
        if not by_manifest:  # pointer files: held already; in key order, repeats come together
            entries = sorted(entries, key=lambda kf: kf[0])
        storage, listed, _single = ds_mod.list_source(project, ds, root)
    else:  # a single registered object: ask about it alone
        entries = list(entries)
        storage = ds_mod.open_source(project, ds, root)
        listed = _infos(storage, dict.fromkeys(k for k, _f in entries))
    fresh = []
    for key, f, now in join_listing(entries, listed):  # a listed fingerprint is kept only where it changed
        if f is None:
            if src is not None and now is not None:
                fresh.append((key, now))
            continue
        state = state_of(recorded_fingerprint(f.pointer), now)
        if state == CHANGED:  # what `update` records: the object now, under the recorded source
            part.add(f.path, local_of(f), state, current=now, source=f.pointer.source or "")
        else:
            part.add(f.path, local_of(f), state)
    if src is None:
        return []
    new_rows = []
    for key, now in sorted(fresh, key=lambda kv: kv[0]):  # listed, not recorded: new
        try:
            ds_mod.safe_relpath(key)
        except ds_mod.UnsafePath as err:  # named, never a path here: `update` skips it
            shown = key if key.isprintable() else repr(key)
            new_rows.append(StatusRow("datasets", ds.name, f"{storage.url}/{shown}", None, REFUSED, str(err)))
            continue
        rel = f"{src.to}/{key}" if src.to else key
        new_rows.append(StatusRow("datasets", ds.name, f"{ds.path}/{rel}", None, NEW, f"{storage.url}/{key}", now))
    return new_rows
