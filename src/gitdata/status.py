"""``git data status``: what is staged, changed, pushed, and whether remotes still match.

The report is built from *section providers*: each takes the project and the
options and returns rows. Datasets are one section; other kinds of data (for
example mapped storages) add their own provider to :data:`SECTIONS`.

The comparisons (:func:`local_state`, :func:`remote_states`) are pure; the
providers do the I/O: one listing per registered prefix, never a download.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from . import datasets as ds_mod
from .errors import GitDataError
from .pointer import Pointer
from .project import Project
from .scan import Found
from .statusrows import (  # noqa: F401 - the row model, re-exported for status's users
    CHANGED,
    DELETED,
    LINKED,
    MISSING,
    MODIFIED,
    NEW,
    NOT_MATERIALIZED,
    NOT_PUSHED,
    POINTER,
    REFERENCE,
    REFUSED,
    STAGED,
    STALE,
    UNCHANGED,
    UNCHECKED,
    UNREADABLE,
    StatusOptions,
    StatusRow,
)
from .storage import ObjectNotFound
from .storage.fingerprint import Fingerprint, compare

SectionProvider = Callable[[Project, StatusOptions], list[StatusRow]]


# -- pure comparisons ---------------------------------------------------------------


def local_state(pointer: Pointer, worktree: str, *, modified: bool, linked: bool, mode: str | None) -> str:
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
    states = {}
    for key, fp in recorded.items():
        now = current.get(key)
        states[key] = DELETED if now is None else compare(fp, now)
    new = sorted(k for k in current if k not in recorded)
    return states, new


def recorded_fingerprint(pointer: Pointer) -> Fingerprint:
    return Fingerprint.from_pointer_fields(pointer.size, dict(pointer.extra))


# -- the datasets section -------------------------------------------------------------


def _worktree_kind(full: str) -> str:
    if not os.path.lexists(full):
        return "missing"
    return "pointer" if ds_mod.read_pointer_file(full) is not None else "content"


def dataset_rows(project: Project, options: StatusOptions) -> list[StatusRow]:
    from .datasets import current_mode, linked_modified_paths, modified_paths

    all_ds = ds_mod.load_all(project)
    chosen = [all_ds[n] for n in options.names if n in all_ds] if options.names else list(all_ds.values())
    rows: list[StatusRow] = []
    for ds in chosen:
        found = ds_mod.files(project, ds)
        mode, _loc = current_mode(project, ds.name)
        folder = os.path.join(project.root, ds.path)
        linked = os.path.islink(folder)
        modified = linked_modified_paths(project, ds, found, mode) if linked else modified_paths(project, ds)
        by_path: dict[str, StatusRow] = {}
        for f in found:
            kind = _worktree_kind(os.path.join(project.root, f.path))
            row = StatusRow("datasets", ds.name, f.path, local_state(f.pointer, kind, modified=f.path in modified, linked=linked, mode=mode))
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


def _remote_rows(project: Project, ds: ds_mod.Dataset, found: list[Found], by_path: dict[str, StatusRow]) -> list[StatusRow]:
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
            storage, entries, _single = ds_mod.list_source(project, ds, root)
            current = dict(entries)
        else:  # a single registered object: ask about it alone
            storage = ds_mod.open_source(project, ds, root)
            current = {}
            for key in files:
                try:
                    current[key] = storage.info(key)
                except ObjectNotFound:
                    pass
        recorded = {key: recorded_fingerprint(f.pointer) for key, f in files.items()}
        states, new = remote_states(recorded, current)
        for key, state in states.items():
            by_path[files[key].path].remote = state
            by_path[files[key].path].current = current.get(key)
        if src is None:
            continue
        for key in new:
            try:
                ds_mod.safe_relpath(key)
            except ds_mod.UnsafePath:
                continue
            rel = f"{src.to}/{key}" if src.to else key
            path = f"{ds.path}/{rel}"
            if path in by_path:
                continue  # recorded from another source, or the project's own file
            new_rows.append(StatusRow("datasets", ds.name, path, None, NEW, f"{storage.url}/{key}", current[key]))
    owned = {f.pointer.oid: f for f in found if f.pointer.oid}
    if owned:
        from .datasets import object_store_for

        try:
            store = object_store_for(project, ds)
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


def storage_rows(project: Project, options: StatusOptions) -> list[StatusRow]:
    from .storages.status import status_rows  # imported late: the sync engine is heavier

    return status_rows(project, options)


def _storage_names(project: Project) -> set[str]:
    from .storages import load_all

    return set(load_all(project))


def worktree_rows(project: Project, options: StatusOptions) -> list[StatusRow]:
    """Files outside datasets whose content never reached the work tree (a
    failed or killed checkout: the pointer is still there); removes the
    temporary files such a checkout left."""
    if options.names:
        return []
    from .maintenance import not_materialized, remove_stale_tmp
    from .scan import scan_index

    scan = scan_index(project.repo)
    remove_stale_tmp(project, scan)
    return [
        StatusRow("files", "work tree", path, NOT_MATERIALIZED, detail="run `git data pull`")
        for path in sorted(not_materialized(project, scan))
    ]


def run_rows(project: Project, options: StatusOptions, rows: list[StatusRow]) -> list[StatusRow]:
    """Recorded runs (gitdata.provenance): stale ones with the reason, from the rows above."""
    from .provenance.observe import status_rows

    return status_rows(project, options, rows, dataset_rows)


def _run_names(project: Project) -> set[str]:
    from .provenance.observe import run_names

    return run_names(project)


#: Every section of ``git data status``, in order. Add a provider here.
SECTIONS: list[SectionProvider] = [worktree_rows, dataset_rows, storage_rows]

#: Sections that read the rows of :data:`SECTIONS` (runs reuse the datasets' listings), after them.
DERIVED: list[Callable[[Project, StatusOptions, list[StatusRow]], list[StatusRow]]] = [run_rows]

#: The names each section knows (``git data status NAME`` must match one). Add yours here.
NAMES: list[Callable[[Project], set[str]]] = [lambda project: set(ds_mod.load_all(project)), _storage_names, _run_names]


class UnknownName(GitDataError):
    pass


def collect(project: Project, options: StatusOptions) -> list[StatusRow]:
    if options.names:
        known: set[str] = set()
        for names in NAMES:
            known |= names(project)
        unknown = [n for n in options.names if n not in known]
        if unknown:
            raise UnknownName(
                f"no dataset named {unknown[0]!r} (known: {', '.join(sorted(known)) or 'none yet'}); "
                "see `git data dataset ls`"
            )
    rows: list[StatusRow] = []
    for provider in SECTIONS:
        rows += provider(project, options)
    for derived in DERIVED:
        rows += derived(project, options, rows)
    return rows


UNFINISHED_CHECKOUT = (
    "the last checkout did not finish: git's index is empty while HEAD has files (was git "
    "data's filter killed, or the disk full?); run `git restore --source=HEAD --staged --worktree :/`, "
    "then `git data pull`"
)


#: an index with no entries is a 12-byte header, extensions and a hash: far below this
_EMPTY_INDEX_MAX = 4096


def unfinished_checkout(project: Project) -> str | None:
    """What to do when a checkout was cut off (git's filter process died mid-way, which makes
    git abort with an empty index), or None. A sizeable index file answers at once; a small
    one costs one ``ls-files`` (a split index keeps its entries elsewhere), ``ls-tree`` only then."""
    repo = project.repo
    try:  # an index file this size holds entries: no git process on every status and pull
        if os.path.getsize(os.path.join(repo.git_dir, "index")) > _EMPTY_INDEX_MAX:
            return None
    except OSError:
        pass  # no index file at all: ask git
    if next(iter(repo.ls_index()), None) is not None or repo.rev_parse("HEAD") is None:
        return None
    return UNFINISHED_CHECKOUT if next(iter(repo.ls_tree("HEAD")), None) is not None else None


# -- git data update -----------------------------------------------------------------


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


def update(project: Project, name: str, paths: tuple[str, ...] = (), *, new: bool = True) -> UpdateReport:
    """Re-record fingerprints of remote objects that changed; add new ones, drop deleted.

    Only the work tree changes: the new pointers show in ``git diff`` (new
    files are added with intent-to-add so they show too), ready to commit.
    A staged copy of a changed file goes back to pointer text: stage again
    to get the new bytes. A file changed locally (``git data status`` says
    modified) is never replaced or deleted: it is left as it is and listed in
    ``kept``, and so is an untracked file where a new object would go.
    """
    from .datasets import current_mode

    ds = ds_mod.get(project, name)
    mode, _ = current_mode(project, name)
    if os.path.islink(os.path.join(project.root, ds.path)):
        raise GitDataError(
            f"dataset {name!r} is staged at a location (a link); run `git data dataset unstage "
            f"{name}` first, then update, then stage again"
        )
    found = ds_mod.files(project, ds)
    by_path = {f.path: f for f in found}
    rows = {r.path: r for r in dataset_rows(project, StatusOptions(names=(name,), remote=True))}
    unchecked = next((r for r in rows.values() if r.remote == UNCHECKED), None)
    if unchecked is not None:  # status goes on without this remote; update cannot
        raise GitDataError(f"dataset {name}: {unchecked.detail}")
    report = UpdateReport(dataset=name)

    def wanted(path: str) -> bool:
        if not paths:
            return True
        return any(path == p.rstrip("/") or path.startswith(p.rstrip("/") + "/") for p in paths)

    from .pointer import PointerError

    for path, row in sorted(rows.items()):
        if not wanted(path):
            continue
        full = os.path.join(project.root, path)
        if row.local == MODIFIED and row.remote in (CHANGED, DELETED):
            report.kept[path] = f"changed locally, and {row.remote} on the remote"
            continue
        if row.remote == NEW and new and os.path.lexists(full):
            report.kept[path] = "new on the remote, but an untracked file is there"
            continue
        if row.remote == CHANGED and row.current is not None:
            f = by_path[path]
            fp = row.current
            try:
                data = ds_mod.registered_pointer(f.pointer.source or "", fp).encode()
            except PointerError as err:
                raise GitDataError(f"{path}: {err}") from err
            ds_mod.write_small(full, data)
            report.changed.append(path)
        elif row.remote == DELETED:
            if os.path.lexists(full):
                os.unlink(full)
            report.deleted.append(path)
        elif row.remote == NEW and new and row.current is not None:
            ds_mod.write_small(full, ds_mod.registered_pointer(row.detail, row.current).encode())
            report.added.append(path)
    project.state.forget_staged(report.changed + report.deleted)
    if report.added:
        ds_mod.git_add(project, report.added, intent_only=True, pointers=True)
    return report
