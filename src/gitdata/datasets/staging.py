"""Staging a dataset: planning (what to fetch, free space, the remote still as recorded) and the copy, --location and --existing modes."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice

from .. import guard, safepath, writer
from ..errors import GitDataError
from ..fetch import WorktreeChanged, WorktreeFile, download_many, materialize, still_holds
from ..fileio import remove_stale_tmp
from ..hashing import oid_of_file
from ..lock import clone_lock
from ..pointer import MAX_SIZE
from ..project import Project
from ..refresh import refresh_index
from ..scan import Found
from ..storage import ObjectNotFound, Storage, StorageError
from ..storage.fingerprint import Fingerprint, compare
from ..transfer import Outcome, run_parallel
from ..units import human_size
from . import model as ds_mod
from .download import (
    ChangedMeanwhile,
    _copy_to_file,
    _download_to_cache,
    _download_to_file,
    check_registered_size,
    open_kwargs,
)
from .model import Dataset, object_store_for
from .modes import (
    MODES,
    StageError,
    StageReport,
    TooLarge,
    _fallback_current,
    _is_link,
    _verify_file,
    check_folder_is_ours,
    current_mode,
    exclude_folder,
    expectations,
    has_content,
    max_bytes,
    modified_paths,
    set_mode,
    skip_worktree,
)
from .unstage import unstage, unstage_unlocked


@dataclass(eq=False, slots=True)
class _Item:
    found: Found
    storage_url: str | None = None
    key: str | None = None


def _select(ds: Dataset, found: list[Found], include: tuple[str, ...], exclude: tuple[str, ...]) -> list[Found]:
    return [f for f in found if ds_mod.select(ds.rel(f.path), include, exclude)]


def _check_space(project: Project, need: int, where: str, *, force: bool) -> None:
    limit = max_bytes(project)

    if need > limit and not force:
        raise TooLarge(
            f"staging needs {human_size(need)}, over the limit of {human_size(limit)} "
            "(git config gitdata.stageMaxBytes); stage it elsewhere with --location DIR, use "
            "--reference (or mount mode, when available), stage part with --include, or raise "
            "the limit"
        )
    probe = where
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    free = shutil.disk_usage(probe).free
    if need > free:
        raise TooLarge(
            f"staging needs {human_size(need)} but only {human_size(free)} is free at {probe}; "
            "stage it on another disk with --location DIR, or use --reference"
        )


class _Cursor:
    """One root's listing (:meth:`Storage.list`, sorted by key), walked forward across a
    stage's batches of files: each key a batch asks for is looked up as the walk passes it, and
    nothing else of the listing is kept, so memory follows the batch, never the bucket.

    A key the listing does not show where it would be is asked about on its own (one HEAD):
    a deleted object (rare), or a key the walk passed already (a dataset whose paths sort
    otherwise than its keys). A verdict never rests on the listing's order, only the cost does.
    ``single``: the root names one object, always asked about."""

    def __init__(self, storage: Storage, single: bool, for_versions: bool) -> None:
        #: ``for_versions``: opened for batches that stage recorded versions (or that cannot)
        self.storage, self.for_versions = storage, for_versions
        self._listing: Iterator[tuple[str, Fingerprint]] = iter(()) if single else iter(storage.list())
        self._head: tuple[str, Fingerprint] | None = None
        self._started = False

    def start(self) -> None:
        """The listing's first entry (where a listing the backend refuses fails)."""
        if not self._started:
            self._head = next(self._listing, None)
            self._started = True

    def find(self, key: str) -> Fingerprint | None:
        """What the remote holds now at ``key`` (None: nothing); keys in ascending order cost
        no request but the listing's own (where the listing states a size of 0: a HEAD)."""
        self.start()
        while self._head is not None and self._head[0] < key:
            self._head = next(self._listing, None)
        if self._head is not None and self._head[0] == key:
            fp = self._head[1]
            self._head = next(self._listing, None)
            if fp.size != 0:  # (an HTTP index page states no sizes: ds_mod.fill_sizes)
                return fp
        try:
            return self.storage.info(key)
        except ObjectNotFound:
            return None


class _Listings:
    """The cursors of one stage, by source root (see :class:`_Cursor`)."""

    def __init__(self, project: Project, ds: Dataset) -> None:
        self.project, self.ds = project, ds
        self.cursors: dict[str, _Cursor] = {}

    def cursor(self, root: str, wants_version: bool) -> _Cursor:
        cur = self.cursors.get(root)
        if cur is not None and (cur.for_versions or not wants_version):
            return cur
        project, ds = self.project, self.ds
        single = not any(src.url.rstrip("/") == root for src in ds.sources)
        storage = ds_mod.open_source(project, ds, root, versioned=wants_version)
        cur = _Cursor(storage, single, wants_version)
        try:
            cur.start()
        except StorageError:
            if not ds_mod.is_versioned(storage) or "version_aware" in ds.options:
                raise
            storage = ds_mod.open_source(project, ds, root, versioned=False)  # no versions here
            cur = _Cursor(storage, single, True)
            cur.start()
        self.cursors[root] = cur
        return cur


def _remote_check(
    project: Project, ds: Dataset, items: list[_Item], report: StageReport, listings: _Listings | None = None,
) -> tuple[list[_Item], dict[str, Storage]]:
    """One listing per source (``listings``: the stage's, walked on across its batches): drop
    (and report) deleted/changed objects.

    A changed object whose recorded version the backend can still read is
    kept: that exact version is staged, with a note.
    """
    listings = listings or _Listings(project, ds)
    by_root: dict[str, list[_Item]] = {}
    for it in items:
        assert it.found.pointer.source
        try:
            it.storage_url, it.key = ds_mod.split_source(ds, it.found.pointer.source, it.found.path)
            check_registered_size(it.found.path, it.found.pointer)
        except GitDataError as err:
            report.failed[it.found.path] = str(err)
            continue
        by_root.setdefault(it.storage_url, []).append(it)
    keep: list[_Item] = []
    storages: dict[str, Storage] = {}
    for root, group in by_root.items():
        cur = listings.cursor(root, any(it.found.pointer.get("version-id") for it in group))
        storages[root] = cur.storage
        for it in sorted(group, key=lambda it: it.key or ""):
            kept, note = _verdict(ds, cur.storage, it, cur.find(it.key or ""))
            if note is not None:
                (report.notes if kept else report.failed)[it.found.path] = note
            if kept:
                keep.append(it)
    return keep, storages


def _verdict(ds: Dataset, storage: Storage, it: _Item, current: Fingerprint | None) -> tuple[bool, str | None]:
    """Is ``it`` staged, given what the remote holds now for its key (None: nothing)? A changed
    or deleted object is, with a note, where its recorded version can still be read."""
    p = it.found.pointer
    if current is None:
        if p.get("version-id") and open_kwargs(storage, p.get("version-id")):
            return True, "deleted on the remote; staged the recorded version"
        return False, f"{p.source} was deleted on the remote"
    recorded = Fingerprint.from_pointer_fields(p.size, dict(p.extra))
    if compare(recorded, current) == "changed":
        if p.get("version-id") and open_kwargs(storage, p.get("version-id")):
            return True, (
                "changed on the remote since it was recorded; staged the recorded version "
                "(run `git data update` to record the new one)"
            )
        return False, (
            f"{p.source} changed on the remote since it was recorded; not staged "
            f"(run `git data update {ds.name}` to record the new version)"
        )
    return True, None


def stage(
    project: Project,
    name: str,
    *,
    mode: str = "copy",
    location: str | None = None,
    existing: str | None = None,
    verify: bool = False,
    include: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
    jobs: int | None = None,
    force: bool = False,
    progress: bool | None = None,
) -> StageReport:
    """Stage dataset ``name`` in ``mode`` (see the module docstring); one
    stage or unstage of a dataset at a time per clone (:mod:`gitdata.lock`)."""
    with clone_lock(project.repo.data_dir, f"dataset-{name}", f"dataset stage {name}"):
        return _stage(project, name, mode=mode, location=location, existing=existing, verify=verify,
                      include=include, exclude=exclude, jobs=jobs, force=force, progress=progress)


def _stage(
    project: Project, name: str, *, mode: str, location: str | None, existing: str | None, verify: bool,
    include: tuple[str, ...], exclude: tuple[str, ...], jobs: int | None, force: bool, progress: bool | None,
) -> StageReport:
    if mode == "mount":  # a FUSE view of the index's files (gitdata.mount.dataset)
        from ..mount import dataset as mount_ds

        cur_mode, _loc = current_mode(project, name)
        if cur_mode in ("location", "existing") or (cur_mode != "mount" and has_content(project, ds_mod.get(project, name))):
            rep = unstage_unlocked(project, name)  # content first back to pointers, changed files kept
            if rep.kept:
                path, why = sorted(rep.kept.items())[0]
                raise StageError(
                    f"dataset {name!r} was not mounted: {path} is {why}; `git data push` or commit it "
                    "(or restore it), then stage with --mount again"
                )
        st = mount_ds.mount(project, name)
        return StageReport(dataset=name, mode="mount", location=st.mountpoint)
    if current_mode(project, name)[0] == "mount":  # leaving mount mode: unmount first
        from ..mount import dataset as mount_ds

        mount_ds.unmount(project, name)
    if mode not in MODES:
        raise StageError(f"unknown staging mode {mode!r}; choose one of {', '.join(MODES)}")
    ds = ds_mod.get(project, name)
    jobs = jobs or project.jobs
    cur_mode, cur_loc = current_mode(project, name)
    if mode == "existing":
        assert existing is not None
        return _stage_existing(project, ds, os.path.abspath(os.path.expanduser(existing)), verify, cur_mode)
    if mode == "reference":
        if cur_mode in ("location", "existing") or has_content(project, ds):
            unstage(project, name)
        set_mode(project, name, "reference")
        return StageReport(dataset=name, mode="reference")
    if mode == "location":
        assert location is not None
        target = os.path.join(os.path.abspath(os.path.expanduser(location)), name)
        if cur_mode in ("location", "existing") and cur_loc and os.path.realpath(cur_loc) != os.path.realpath(target):
            unstage(project, name)
            cur_mode = None
        return _stage_location(project, ds, target, include, exclude, jobs, force, progress)
    # copy
    if cur_mode in ("location", "existing"):
        unstage(project, name)
    if ds_mod.recorded_manifest(project, ds) is not None:
        # no pointer files to replace: written in place as --location writes, git kept out of the folder
        return _stage_location(project, ds, os.path.join(project.root, ds.path), include, exclude, jobs, force,
                               progress, in_place=True)  # fmt: skip
    return _stage_copy(project, ds, include, exclude, jobs, force, progress)


def _head(full: str) -> bytes | None:
    """The first bytes of a pointer-sized file, None if there is none."""
    try:
        with open(full, "rb") as f:
            return f.read(MAX_SIZE)
    except FileNotFoundError:
        return None


def _report_outcome(project: Project, report: StageReport, outcome: Outcome[_Item, str], kept: type[Exception]) -> list[tuple[str, str]]:
    """Put a parallel staging run's results into ``report`` and the clone's state (what was
    staged for which pointer); a ``kept`` error means the user's file was left alone.
    Returns ``(path, oid)`` of the files staged."""
    for it in outcome.done:
        report.staged += 1
        report.bytes += it.found.pointer.size or 0
    for it, err in outcome.failed.items():
        if isinstance(err, kept):
            report.kept[it.found.path] = "changed while it was being staged: kept as it is"
        else:
            report.failed[it.found.path] = str(err)
    if outcome.done:
        project.state.record_staged([(it.found.path, oid, it.found.pointer.encode()) for it, oid in outcome.done.items()])
    return [(it.found.path, oid) for it, oid in outcome.done.items()]


def _stage_copy(
    project: Project, ds: Dataset, include: tuple[str, ...], exclude: tuple[str, ...],
    jobs: int, force: bool, progress: bool | None,
) -> StageReport:
    report = StageReport(dataset=ds.name, mode="copy")
    found = _select(ds, ds_mod.files(project, ds), include, exclude)
    # a stage killed earlier may have left temporary files beside the dataset's files
    remove_stale_tmp(sorted({os.path.join(project.root, os.path.dirname(f.path)) for f in found}))
    todo: list[Found] = []
    already: list[str] = []
    for f in found:
        full = os.path.join(project.root, f.path)
        if os.path.lexists(full) and ds_mod.read_pointer_file(full) is None:
            report.already += 1  # content is there (staged before, or changed by the user)
            already.append(f.path)
            continue
        todo.append(f)
    registered = [f for f in todo if f.pointer.oid is None]
    owned = [f for f in todo if f.pointer.oid is not None]
    need = sum(f.pointer.size or 0 for f in todo)
    need += sum(f.pointer.size or 0 for f in registered)  # the cache keeps a copy too
    _check_space(project, need, os.path.join(project.root, ds.path), force=force)

    items, storages = _remote_check(project, ds, [_Item(f) for f in registered], report)
    record_lock = threading.Lock()

    def fetch_one(it: _Item) -> str:
        storage = storages[it.storage_url or ""]
        full = safepath.checked_target(project.root, it.found.path, what=f"dataset {ds.name!r}")
        before = still_holds(full, _head(full))  # pointer text or nothing, as planned
        oid = _download_to_cache(project, storage, it.key or "", it.found.pointer)
        full = safepath.checked_target(project.root, it.found.path, what=f"dataset {ds.name!r}")  # again, right before
        with record_lock:  # recorded before the content appears: a kill in between leaves no orphan
            project.state.record_staged([(it.found.path, oid, it.found.pointer.encode())])
        project.cache.copy_to(oid, full, before)
        return oid

    outcome = run_parallel(
        items, fetch_one, jobs=jobs, label=f"Staging {ds.name}",
        weight=lambda it: it.found.pointer.size or 0, progress=progress,
    )
    staged = [path for path, _oid in _report_outcome(project, report, outcome, WorktreeChanged)]

    if owned:
        done = _stage_owned(project, ds, owned, jobs, report, progress)
        report.staged += len(done)
        staged += done
    # content already there that this clone staged, whose index entry is stale (a run killed
    # before its index refresh); only bytes that still hash to what was staged are refreshed
    known = _stale_but_staged(project, already) if already else []
    refresh = sorted(set(staged) | set(known))
    if refresh:
        refresh_index(project, refresh)
    set_mode(project, ds.name, "copy")
    return report


def _index_stat(project: Project, paths: list[str]) -> dict[str, tuple[int, int]]:
    """``path -> (size, mtime seconds)`` git's index records for ``paths``."""
    out = project.repo.git("--literal-pathspecs", "ls-files", "--debug", "--", *paths).decode("utf-8", "surrogateescape")
    stats: dict[str, tuple[int, int]] = {}
    path, mtime = None, 0
    for line in out.splitlines():
        if not line.startswith("  "):
            path = line
        elif line.startswith("  mtime:"):
            mtime = int(line.split()[1].split(":")[0])
        elif line.startswith("  size:") and path is not None:
            stats[path] = (int(line.split()[1]), mtime)
    return stats


def _stale_but_staged(project: Project, paths: list[str]) -> list[str]:
    recorded = project.state.staged_oids(paths)
    if not recorded:
        return []
    index = _index_stat(project, sorted(recorded))
    out = []
    for path, oid in recorded.items():
        full = os.path.join(project.root, path)
        try:
            st = os.stat(full)
        except OSError:
            continue
        if index.get(path) == (st.st_size, int(st.st_mtime)):
            continue  # git's stat data is fresh: nothing to do
        if oid_of_file(full, oid.split(":", 1)[0])[0] == oid:
            out.append(path)
    return out


def _stage_owned(
    project: Project, ds: Dataset, owned: list[Found], jobs: int, report: StageReport,
    progress: bool | None,
) -> list[str]:
    """Files with an oid (the project's own data): from the cache or the data remote."""
    wanted = {f.pointer.oid: f.pointer.size for f in owned if not project.cache.has(f.pointer.oid or "", f.pointer.size)}
    if wanted:
        try:
            store = object_store_for(project, ds)
        except GitDataError as err:
            for f in owned:
                if f.pointer.oid in wanted:
                    report.failed[f.path] = str(err)
            owned = [f for f in owned if f.pointer.oid not in wanted]
        else:
            outcome = download_many(store, project.cache, wanted, jobs=jobs, progress=progress)  # type: ignore[arg-type]
            for f in owned:
                if f.pointer.oid in outcome.failed:
                    report.failed[f.path] = str(outcome.failed[f.pointer.oid])
    res = materialize(project.cache, project.root, [WorktreeFile(f.path, f.pointer) for f in owned if f.path not in report.failed])
    for path, err in res.failed.items():
        report.failed[path] = str(err)
    for f in owned:
        if f.path in res.done:
            report.bytes += f.pointer.size or 0
    return list(res.done)


def _link(project: Project, ds: Dataset, found: list[Found], target: str) -> None:
    """Replace the dataset folder by a symlink to ``target``; skip-worktree its entries."""
    folder = os.path.join(project.root, ds.path)
    parent, _, _leaf = ds.path.rpartition("/")
    safepath.checked_dir(project.root, parent, what=f"dataset {ds.name!r}")  # nothing removed through a link
    skip_worktree(project, [f.path for f in found], True)
    if os.path.islink(folder):
        os.unlink(folder)
    elif os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    os.symlink(target, folder, target_is_directory=True)
    exclude_folder(project, ds.path, True)
    if ds_mod.within(project.root, target):
        exclude_folder(project, os.path.relpath(target, project.root).replace(os.sep, "/"), True)


def _stage_location(
    project: Project, ds: Dataset, target: str, include: tuple[str, ...], exclude: tuple[str, ...],
    jobs: int, force: bool, progress: bool | None, *, in_place: bool = False,
) -> StageReport:
    """``in_place``: copy mode of a dataset its manifest records (``target`` is its own folder)."""
    if ds_mod.within(project.repo.git_dir, target):
        raise StageError("--location may not be inside the git directory")
    if in_place:
        return _stage_in_place(project, ds, target, include, exclude, jobs, force, progress)
    report = StageReport(dataset=ds.name, mode="location", location=target)
    all_found = ds_mod.files(project, ds)
    if ds_mod.within(os.path.join(project.root, ds.path), target) and not _is_link(project, ds):
        raise StageError(f"--location must be outside the dataset folder {ds.path}")
    linked = _is_link(project, ds)
    if not linked:
        check_folder_is_ours(project, ds, all_found)
    modified = set() if linked else modified_paths(project, ds)
    if modified:
        first = sorted(modified)[0]
        raise StageError(
            f"{first} (and {len(modified) - 1} other file(s)) changed in the work tree; commit "
            "or restore them before moving the dataset to --location"
            if len(modified) > 1 else
            f"{first} changed in the work tree; commit or restore it before moving the dataset "
            "to --location"
        )
    found = _select(ds, all_found, include, exclude)
    os.makedirs(target, exist_ok=True)
    written: list[tuple[str, str]] = []  # (path, oid) of files now holding their content
    # each folder is checked once and held open: every file is written relative to it (safepath.Folders)
    folders = safepath.Folders(target, what=f"dataset {ds.name!r}")
    try:
        _stage_files(project, ds, target, found, expectations(project, found), folders, report, written,
                     jobs, force, progress, linked=linked)  # fmt: skip
        _record_written(project, ds, target, written)
    finally:
        folders.close()
    _link(project, ds, all_found, target)
    set_mode(project, ds.name, "location", target)
    return report


#: files a stage of a dataset its manifest records holds at a time (see :func:`_stage_in_place`)
BATCH = 20_000


def _batches(items: Iterator[Found], n: int) -> Iterator[list[Found]]:
    while batch := list(islice(items, n)):
        yield batch


def _stage_in_place(
    project: Project, ds: Dataset, target: str, include: tuple[str, ...], exclude: tuple[str, ...],
    jobs: int, force: bool, progress: bool | None,
) -> StageReport:  # fmt: skip
    """Copy mode of a dataset its manifest records: its own folder is written in place (git is
    kept out of it). The manifest is read as a stream, :data:`BATCH` files at a time; each batch
    is checked against the stage's one walk of each source's listing (:class:`_Listings`),
    staged and recorded before the next is read, so memory follows the batch, not the dataset
    (docs/design.md, "Staging a million files").

    A first pass over the manifest checks every line and the space the missing files need
    before anything is written (one ``lstat`` a file): a bad manifest writes nothing."""
    report = StageReport(dataset=ds.name, mode="copy")
    index = ds_mod.index_files(project, ds)

    def selected() -> Iterator[Found]:
        return (f for f in ds_mod.iter_files(project, ds, index) if ds_mod.select(ds.rel(f.path), include, exclude))

    total = need = 0
    for f in selected():
        total += 1
        if not os.path.lexists(os.path.join(target, ds.rel(f.path))):
            need += f.pointer.size or 0
    _check_space(project, need, target, force=force)
    os.makedirs(target, exist_ok=True)
    # before the first file: git stays out of the folder even if the stage is interrupted
    exclude_folder(project, ds.path, True)  # the files are not git's: its manifest records them
    listings = _Listings(project, ds)
    folders = safepath.Folders(target, what=f"dataset {ds.name!r}")
    first = 0
    try:
        for batch in _batches(selected(), BATCH):
            label = f"Staging {ds.name}" if total <= BATCH else (
                f"Staging {ds.name} ({first + 1:,}-{first + len(batch):,} of {total:,})")  # fmt: skip
            written: list[tuple[str, str]] = []
            _stage_files(project, ds, target, batch, expectations(project, batch), folders, report, written,
                         jobs, force, progress, linked=True, listings=listings, label=label)  # fmt: skip
            _record_written(project, ds, target, written)
            first += len(batch)
    finally:
        folders.close()
    set_mode(project, ds.name, "copy")
    return report


def _stage_files(
    project: Project, ds: Dataset, target: str, found: list[Found],
    expects: dict, folders: safepath.Folders, report: StageReport, written: list[tuple[str, str]],
    jobs: int, force: bool, progress: bool | None, *, linked: bool,
    listings: _Listings | None = None, label: str | None = None,
) -> None:  # fmt: skip
    """Stage ``found`` into ``target``: adopt what is already current there, move what a copy
    stage left in the work tree, download the rest; ``written`` gets ``(path, oid)`` of every
    file that now holds its content."""
    moves: list[tuple[Found, str, str, tuple[int, int, int] | None]] = []
    todo: list[Found] = []
    sigs: dict[str, tuple[int, int, int] | None] = {}
    absent: set[str] = set()  # folders (relative to target) that are not there: nor are their files
    for f in found:
        rel = ds.rel(f.path)
        dest = os.path.join(target, rel)
        parent = rel.rpartition("/")[0]
        there = parent not in absent
        try:  # no link on the way, nor at the file: nothing is read, adopted or written through one
            if there:
                with folders.target(rel, create=False):
                    pass
            else:
                safepath.check_relpath(rel, folders.what)
        except FileNotFoundError:
            absent.add(parent)
            there = False
        except safepath.UnsafePath as err:
            report.failed[f.path] = str(err)
            continue
        state, oid = guard.inspect(
            dest, expects[f.path], algorithm=project.algorithm,
            fallback=lambda full, p=f.pointer: _fallback_current(project, p, full),
        ) if there else (guard.MISSING, None)  # fmt: skip
        if state == guard.CURRENT:
            report.already += 1
            written.append((f.path, oid or ""))
            continue
        if state == guard.USER:
            report.kept[f.path] = (
                f"{dest} is not what git data staged there (changed, or put there by someone "
                "else): kept as it is; to get the recorded bytes, move it away and stage again"
            )
            continue
        if state != guard.MISSING:  # (a missing file's signature is None: not held, for a million files)
            sigs[f.path] = writer.signature(dest)
        if not linked:
            full = os.path.join(project.root, f.path)
            if os.path.isfile(full) and ds_mod.read_pointer_file(full) is None:
                moves.append((f, full, dest, sigs.get(f.path)))  # staged by copy before: move, do not download
                continue
        todo.append(f)
    need = sum(f.pointer.size or 0 for f in todo)
    _check_space(project, need, target, force=force)
    for f, src, _dest, sig in moves:
        try:
            with open(src, "rb") as fh, folders.target(ds.rel(f.path)) as dest:
                algo = (f.pointer.oid or expects[f.path].wanted or project.algorithm).split(":", 1)[0]
                written.append((f.path, _copy_to_file(fh, dest, algo, sig, f.pointer.oid)))
        except ChangedMeanwhile:
            report.kept[f.path] = "changed while it was being staged: kept as it is"
            continue
        except (OSError, GitDataError) as err:
            report.failed[f.path] = str(err)
            continue
        report.staged += 1

    registered = [f for f in todo if f.pointer.oid is None]
    owned = [f for f in todo if f.pointer.oid is not None]
    items, storages = _remote_check(project, ds, [_Item(f) for f in registered], report, listings)

    def fetch_one(it: _Item) -> str:
        with folders.target(ds.rel(it.found.path)) as dest:
            return _download_to_file(project, storages[it.storage_url or ""], it.key or "", it.found.pointer,
                                     dest, sigs.get(it.found.path))  # fmt: skip

    outcome = run_parallel(items, fetch_one, jobs=jobs, label=label or f"Staging {ds.name}",
                           weight=lambda it: it.found.pointer.size or 0, progress=progress,
                           processes=project.processes)  # fetch_one only writes its file: fork-safe
    written += _report_outcome(project, report, outcome, ChangedMeanwhile)
    if owned:
        wanted = {f.pointer.oid: f.pointer.size for f in owned if not project.cache.has(f.pointer.oid or "", f.pointer.size)}
        if wanted:
            got = download_many(object_store_for(project, ds), project.cache, wanted, jobs=jobs, progress=progress)  # type: ignore[arg-type]
            for f in owned:
                if f.pointer.oid in got.failed:
                    report.failed[f.path] = str(got.failed[f.pointer.oid])
        for f in owned:
            if f.path in report.failed:
                continue
            oid = f.pointer.oid or ""
            try:
                with folders.target(ds.rel(f.path)) as dest, project.cache.open(oid) as fh:
                    _copy_to_file(fh, dest, oid.split(":", 1)[0], sigs.get(f.path), oid)
            except ChangedMeanwhile:
                report.kept[f.path] = "changed while it was being staged: kept as it is"
                continue
            except (OSError, GitDataError) as err:
                report.failed[f.path] = str(err)
                continue
            written.append((f.path, oid))
            report.staged += 1
            report.bytes += f.pointer.size or 0


def _record_written(project: Project, ds: Dataset, target: str, written: list[tuple[str, str]]) -> None:
    records = []
    for path, oid in written:
        try:
            st = os.stat(os.path.join(target, ds.rel(path)))
        except FileNotFoundError:
            continue
        records.append((path, oid, st.st_size, st.st_mtime_ns))
    if records:
        project.state.record_written(records)


def _stage_existing(project: Project, ds: Dataset, path: str, verify: bool, cur_mode: str | None) -> StageReport:
    report = StageReport(dataset=ds.name, mode="existing", location=path)
    if not os.path.isdir(path):
        raise StageError(f"--existing {path}: not a folder")
    if ds_mod.within(os.path.join(project.root, ds.path), path) and not _is_link(project, ds):
        raise StageError(f"--existing must be outside the dataset folder {ds.path}")
    found = ds_mod.files(project, ds)
    problems: dict[str, str] = {}
    for f in found:
        rel = ds.rel(f.path)
        full = os.path.join(path, rel)
        if not os.path.isfile(full):
            problems[f.path] = f"missing: {full}"
            continue
        size = os.path.getsize(full)
        if f.pointer.size is not None and size != f.pointer.size:
            problems[f.path] = f"{full} has {size} bytes, the dataset records {f.pointer.size}"
            continue
        if verify:
            reason = _verify_file(project, f.pointer, full)
            if reason:
                problems[f.path] = reason
                continue
        report.staged += 1
        report.bytes += size
    if problems:
        report.failed = problems
        first = next(iter(sorted(problems.items())))
        raise StageError(
            f"{path} does not hold dataset {ds.name!r} as recorded: {first[0]}: {first[1]}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
            + "; nothing was linked"
        )
    if cur_mode in ("location", "existing") or has_content(project, ds):
        unstage(project, ds.name)
    check_folder_is_ours(project, ds, found)
    if modified_paths(project, ds):
        raise StageError(f"files in {ds.path} changed; commit or restore them first")
    _link(project, ds, found, path)
    set_mode(project, ds.name, "existing", path)
    return report
