"""Staging a dataset: bringing its bytes to this machine in the chosen mode.

Modes (per clone, in ``.git/config`` as ``gitdata.dataset.NAME.mode`` and
``.location``; never tracked):

- ``copy``: bytes in the work tree at the dataset's own paths (and in the
  local cache). The clean filter gives back the tracked pointers byte for
  byte, so ``git status`` stays clean.
- ``location``: bytes in ``DIR/NAME``; the dataset folder becomes a symlink.
- ``existing``: like ``location`` on a folder that already holds the data.
- ``reference``: nothing on disk; the pointers stay.
- ``mount``: the dataset folder is a read-only FUSE view (:mod:`gitdata.mount.dataset`).

For ``location`` and ``existing`` the dataset's index entries are marked
skip-worktree (as sparse checkout does), so git never looks through, or
writes through, the symlink; the link itself is listed in
``.git/info/exclude`` (per clone, unlike the tracked ``.gitignore``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from . import datasets as ds_mod
from . import guard, safepath, writer
from .cache import CacheError
from .datasets import Dataset, DatasetError, object_store_for
from .errors import GitDataError
from .fetch import WorktreeChanged, WorktreeFile, download_many, materialize, still_holds
from .fileio import remove_stale_tmp
from .filters import refresh_index
from .hashing import CHUNK, oid_of_file
from .lock import clone_lock
from .pointer import MAX_SIZE, Pointer
from .project import Project
from .scan import Found
from .storage import ObjectNotFound, Storage, StorageError
from .storage.fingerprint import Fingerprint, compare, is_plain_md5_etag
from .transfer import run_parallel
from .units import human_size

DEFAULT_MAX_BYTES = 50 << 30
MODES = ("copy", "location", "existing", "reference")


class StageError(DatasetError):
    pass


class TooLarge(StageError):
    pass


class RemoteChanged(StageError):
    pass


@dataclass
class StageReport:
    dataset: str
    mode: str
    location: str | None = None
    staged: list[str] = field(default_factory=list)
    already: int = 0
    bytes: int = 0
    notes: dict[str, str] = field(default_factory=dict)  # path -> note (e.g. older version staged)
    failed: dict[str, str] = field(default_factory=dict)  # path -> reason
    kept: dict[str, str] = field(default_factory=dict)  # path -> why it was not overwritten

    def as_dict(self) -> dict[str, object]:
        return {
            "kept": self.kept,
            "dataset": self.dataset,
            "mode": self.mode,
            "location": self.location,
            "staged": len(self.staged),
            "already": self.already,
            "bytes": self.bytes,
            "notes": self.notes,
            "failed": self.failed,
        }


# -- per-clone mode ------------------------------------------------------------------


def _key(name: str, var: str) -> str:
    return f"gitdata.dataset.{name}.{var}"


def current_mode(project: Project, name: str) -> tuple[str | None, str | None]:
    """``(mode, location)`` recorded for this clone (``None`` when not staged)."""
    repo = project.repo
    return repo.config_get(_key(name, "mode")), repo.config_get(_key(name, "location"))


def set_mode(project: Project, name: str, mode: str | None, location: str | None = None) -> None:
    repo = project.repo
    for var, value in (("mode", mode), ("location", location)):
        if value is None:
            repo.git("config", "--local", "--unset-all", _key(name, var), check=False)
        else:
            repo.config_set(_key(name, var), value)


def max_bytes(project: Project) -> int:
    return project.setting("gitdata.stageMaxBytes")


# -- .git/info/exclude -----------------------------------------------------------


def _exclude_path(project: Project) -> str:
    return os.path.join(project.repo.common_dir, "info", "exclude")


def _exclude(project: Project, path: str, add: bool) -> None:
    line = "/" + path.strip("/")
    fn = _exclude_path(project)
    try:
        with open(fn, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        lines = []
    has = line in lines
    if add and not has:
        lines.append(line)
    elif not add and has:
        lines = [x for x in lines if x != line]
    else:
        return
    os.makedirs(os.path.dirname(fn), exist_ok=True)
    ds_mod.write_small(fn, ("\n".join(lines) + "\n").encode())


def _skip_worktree(project: Project, paths: list[str], on: bool) -> None:
    if not paths:
        return
    data = "".join(p + "\0" for p in paths).encode("utf-8", "surrogateescape")
    flag = "--skip-worktree" if on else "--no-skip-worktree"
    project.repo.git("update-index", flag, "-z", "--stdin", input=data)


# -- work-tree inspection ----------------------------------------------------------


def modified_paths(project: Project, ds: Dataset) -> set[str]:
    """Tracked files of the dataset whose work-tree content differs from the index.

    ``git diff-files`` looks at stat data first and runs the clean filter only
    on files whose stat changed, so this is cheap on a clean tree.
    """
    out = project.repo.git("diff-files", "--name-only", "-z", "--", ds.path)
    return {p.decode("utf-8", "surrogateescape") for p in out.split(b"\0") if p}


def linked_modified_paths(project: Project, ds: Dataset, found: list[Found], mode: str | None) -> set[str]:
    """Files of a linked dataset whose bytes are not what was staged.

    ``--location``: what git data wrote there (stat first, then the hash, see
    :mod:`gitdata.guard`). ``--existing`` (the user's own folder, never
    written by git data): a size that differs from the recorded one.
    """
    folder = os.path.join(project.root, ds.path)
    out = set()
    expects = expectations(project, found) if mode == "location" else {}
    for f in found:
        full = os.path.join(folder, ds.rel(f.path))
        if mode != "location":
            try:
                if f.pointer.size is not None and os.path.getsize(full) != f.pointer.size:
                    out.add(f.path)
            except OSError:
                pass
            continue
        state, _oid = guard.inspect(
            full, expects[f.path], algorithm=project.algorithm,
            fallback=lambda path, p=f.pointer: _fallback_current(project, p, path),
        )
        if state in (guard.USER, guard.OUTDATED):
            out.add(f.path)
    return out


def _is_link(project: Project, ds: Dataset) -> bool:
    return os.path.islink(os.path.join(project.root, ds.path))


# -- downloading -------------------------------------------------------------------


def _expected_md5(p: Pointer) -> str | None:
    if p.get("md5"):
        return p.get("md5")
    etag = p.get("etag")
    return etag.strip('"') if is_plain_md5_etag(etag) else None


def _open_kwargs(storage: Storage, version_id: str | None) -> dict[str, Any]:
    """How this backend opens one version of an object (``None``: it cannot)."""
    if not version_id or not ds_mod.is_versioned(storage):
        return {}
    import inspect

    try:
        params = inspect.signature(storage.fs._open).parameters
    except (TypeError, ValueError):
        return {}
    for name in ("version_id", "generation"):
        if name in params:
            return {name: version_id}
    return {}


class ChangedMeanwhile(StageError, writer.TargetChanged):
    """The target changed while git data was writing beside it: it is kept."""


def _sink(dest: str, algorithm: str, expect: tuple[int, int, int] | None) -> writer.GuardedFile:
    """The guarded writer for a staged file; ``expect``: ``dest``'s signature when git data
    decided it may replace it (None: nothing was there)."""
    return writer.GuardedFile(dest, algorithm, expect=expect)


def _commit(sink: writer.GuardedFile, **kw: Any) -> tuple[str, int]:
    try:
        return sink.commit(**kw)
    except writer.TargetChanged as err:
        raise ChangedMeanwhile(f"{sink.dest} changed while it was being staged; kept it as it is") from err


def _download_to_cache(project: Project, storage: Storage, key: str, pointer: Pointer) -> str:
    """Into the local cache, verified; returns the content oid."""
    kwargs = _open_kwargs(storage, pointer.get("version-id"))
    expected = _expected_md5(pointer)
    md5 = hashlib.md5(usedforsecurity=False) if expected else None
    with project.cache.writer(project.algorithm) as w, storage.open_read(key, **kwargs) as f:
        while True:
            chunk = f.read(CHUNK * 4)
            if not chunk:
                break
            _check_bound(storage, key, pointer, w.size + len(chunk), w.abort)
            w.write(chunk)
            if md5 is not None:
                md5.update(chunk)
        _check(storage, key, pointer, w.size, md5, expected, w.abort)
        oid, _ = w.commit()
    return oid


def _download_to_file(
    project: Project, storage: Storage, key: str, pointer: Pointer, dest: str,
    expect: tuple[int, int, int] | None = None,
) -> str:
    kwargs = _open_kwargs(storage, pointer.get("version-id"))
    expected = _expected_md5(pointer)
    md5 = hashlib.md5(usedforsecurity=False) if expected else None
    with _sink(dest, project.algorithm, expect) as sink, storage.open_read(key, **kwargs) as f:
        while True:
            chunk = f.read(CHUNK * 4)
            if not chunk:
                break
            _check_bound(storage, key, pointer, sink.size + len(chunk), sink.abort)
            sink.write(chunk)
            if md5 is not None:
                md5.update(chunk)
        _check(storage, key, pointer, sink.size, md5, expected, sink.abort)
        oid, _ = _commit(sink)
    return oid


def check_registered_size(path: str, pointer: Pointer) -> None:
    """A registered file must state its size: it bounds every read of its source."""
    if pointer.oid is None and pointer.size is None:
        raise StageError(
            f"{path}: the registered pointer has no size, so a read of its source could not be "
            "bounded; register it again (`git data update`) to record its size"
        )


def _check_bound(storage: Storage, key: str, pointer: Pointer, size: int, abort: Callable[[], None]) -> None:
    """Stop reading as soon as more bytes arrive than the pointer records."""
    if pointer.size is not None and size > pointer.size:
        abort()
        raise RemoteChanged(
            f"{storage.display}/{key} has more than the {pointer.size} bytes that were recorded: "
            "the remote changed (or the pointer lies); stopped reading. Run `git data update` to "
            "record the new version"
        )


def _copy_to_file(source: BinaryIO, dest: str, algorithm: str, expect: tuple[int, int, int] | None,
                  oid: str | None = None) -> str:
    """Copy an open file to ``dest`` through the guarded writer; with ``oid``,
    only if the bytes hash to it. Returns the oid of what was written."""
    with _sink(dest, algorithm, expect) as sink:
        sink.copy_from(source)
        try:
            written, _size = _commit(sink, expected_oid=oid)
        except writer.ContentMismatch as err:
            raise CacheError(f"cached object {oid} is corrupt; delete it and run `git data fetch`") from err
    return written


def _check(storage: Storage, key: str, pointer: Pointer, size: int, md5: Any, expected: str | None, abort: Callable[[], None]) -> None:
    where = f"{storage.display}/{key}"
    if pointer.size is not None and size != pointer.size:
        abort()
        raise RemoteChanged(
            f"{where} has {size} bytes, {pointer.size} were recorded: the remote changed; "
            "run `git data update` to record the new version"
        )
    if md5 is not None and expected and md5.hexdigest() != expected:
        abort()
        raise RemoteChanged(
            f"{where}: content md5 {md5.hexdigest()} differs from the recorded {expected}: the "
            "remote changed; run `git data update` to record the new version"
        )


# -- planning ----------------------------------------------------------------------


@dataclass(eq=False)
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


def _remote_check(
    project: Project, ds: Dataset, items: list[_Item], report: StageReport
) -> tuple[list[_Item], dict[str, Storage]]:
    """One listing per source: drop (and report) deleted/changed objects.

    A changed object whose recorded version the backend can still read is
    kept: that exact version is staged, with a note.
    """
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
        wants_version = any(it.found.pointer.get("version-id") for it in group)
        storage = ds_mod.open_source(project, ds, root, versioned=wants_version)
        single = not any(src.url.rstrip("/") == root for src in ds.sources)
        try:
            listing = {} if single else dict(ds_mod.fill_sizes(storage, list(storage.list())))
        except StorageError:
            if not ds_mod.is_versioned(storage) or "version_aware" in ds.options:
                raise
            storage = ds_mod.open_source(project, ds, root, versioned=False)  # no versions here
            listing = dict(ds_mod.fill_sizes(storage, list(storage.list())))
        storages[root] = storage
        for it in group:
            p = it.found.pointer
            if single:
                try:
                    listing[it.key or ""] = storage.info(it.key or "")
                except ObjectNotFound:
                    pass
            recorded = Fingerprint.from_pointer_fields(p.size, dict(p.extra))
            current = listing.get(it.key or "")
            if current is None:
                if p.get("version-id") and _open_kwargs(storage, p.get("version-id")):
                    report.notes[it.found.path] = "deleted on the remote; staged the recorded version"
                    keep.append(it)
                else:
                    report.failed[it.found.path] = f"{p.source} was deleted on the remote"
                continue
            if compare(recorded, current) == "changed":
                if p.get("version-id") and _open_kwargs(storage, p.get("version-id")):
                    report.notes[it.found.path] = (
                        "changed on the remote since it was recorded; staged the recorded version "
                        "(run `git data update` to record the new one)"
                    )
                    keep.append(it)
                else:
                    report.failed[it.found.path] = (
                        f"{p.source} changed on the remote since it was recorded; not staged "
                        f"(run `git data update {ds.name}` to record the new version)"
                    )
                continue
            keep.append(it)
    return keep, storages


# -- staging -----------------------------------------------------------------------


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
        from .mount import dataset as mount_ds

        st = mount_ds.mount(project, name)
        return StageReport(dataset=name, mode="mount", location=st.mountpoint)
    if current_mode(project, name)[0] == "mount":  # leaving mount mode: unmount first
        from .mount import dataset as mount_ds

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
        if cur_mode in ("location", "existing") or _has_content(project, ds):
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
    return _stage_copy(project, ds, include, exclude, jobs, force, progress)


def _head(full: str) -> bytes | None:
    """The first bytes of a pointer-sized file, None if there is none."""
    try:
        with open(full, "rb") as f:
            return f.read(MAX_SIZE)
    except FileNotFoundError:
        return None


def _has_content(project: Project, ds: Dataset) -> bool:
    for f in ds_mod.files(project, ds):
        full = os.path.join(project.root, f.path)
        if os.path.lexists(full) and ds_mod.read_pointer_file(full) is None:
            return True
    return False


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
    staged_records = []
    for it, oid in outcome.done.items():
        staged_records.append((it.found.path, oid, it.found.pointer.encode()))
        report.staged.append(it.found.path)
        report.bytes += it.found.pointer.size or 0
    for it, err in outcome.failed.items():
        if isinstance(err, WorktreeChanged):
            report.kept[it.found.path] = "changed while it was being staged: kept as it is"
        else:
            report.failed[it.found.path] = str(err)
    if staged_records:
        project.state.record_staged(staged_records)

    if owned:
        done = _stage_owned(project, ds, owned, jobs, report, progress)
        report.staged += done
    # content already there that this clone staged, whose index entry is stale (a run killed
    # before its index refresh); only bytes that still hash to what was staged are refreshed
    known = _stale_but_staged(project, already) if already else []
    refresh = sorted(set(report.staged) | set(known))
    if refresh:
        refresh_index(project, refresh)
    set_mode(project, ds.name, "copy")
    report.staged.sort()
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


def _check_folder_is_ours(project: Project, ds: Dataset, found: list[Found]) -> None:
    """Refuse to replace the folder if it holds anything git data did not put there."""
    folder = os.path.join(project.root, ds.path)
    if not os.path.isdir(folder) or os.path.islink(folder):
        return
    tracked = {f.path for f in found}
    for dirpath, _dirs, names in os.walk(folder):
        for fn in names:
            rel = os.path.relpath(os.path.join(dirpath, fn), project.root).replace(os.sep, "/")
            if rel not in tracked:
                raise StageError(
                    f"{rel} is in the dataset folder but not part of the dataset; move it away "
                    f"or `git data dataset add {ds.name}` it, then stage again"
                )


def _link(project: Project, ds: Dataset, found: list[Found], target: str) -> None:
    """Replace the dataset folder by a symlink to ``target``; skip-worktree its entries."""
    folder = os.path.join(project.root, ds.path)
    parent, _, _leaf = ds.path.rpartition("/")
    safepath.checked_dir(project.root, parent, what=f"dataset {ds.name!r}")  # nothing removed through a link
    _skip_worktree(project, [f.path for f in found], True)
    if os.path.islink(folder):
        os.unlink(folder)
    elif os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    os.symlink(target, folder, target_is_directory=True)
    _exclude(project, ds.path, True)
    if ds_mod.within(project.root, target):
        _exclude(project, os.path.relpath(target, project.root).replace(os.sep, "/"), True)


def _stage_location(
    project: Project, ds: Dataset, target: str, include: tuple[str, ...], exclude: tuple[str, ...],
    jobs: int, force: bool, progress: bool | None,
) -> StageReport:
    report = StageReport(dataset=ds.name, mode="location", location=target)
    all_found = ds_mod.files(project, ds)
    if ds_mod.within(os.path.join(project.root, ds.path), target) and not _is_link(project, ds):
        raise StageError(f"--location must be outside the dataset folder {ds.path}")
    if ds_mod.within(project.repo.git_dir, target):
        raise StageError("--location may not be inside the git directory")
    linked = _is_link(project, ds)
    if not linked:
        _check_folder_is_ours(project, ds, all_found)
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
    expects = expectations(project, found)
    moves: list[tuple[Found, str, str, tuple[int, int, int] | None]] = []
    todo: list[Found] = []
    sigs: dict[str, tuple[int, int, int] | None] = {}
    written: list[tuple[str, str]] = []  # (path, oid) of files now holding their content
    for f in found:
        dest = os.path.join(target, ds.rel(f.path))
        state, oid = guard.inspect(
            dest, expects[f.path], algorithm=project.algorithm,
            fallback=lambda full, p=f.pointer: _fallback_current(project, p, full),
        )
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
        sigs[f.path] = writer.signature(dest)
        if not linked:
            full = os.path.join(project.root, f.path)
            if os.path.isfile(full) and ds_mod.read_pointer_file(full) is None:
                moves.append((f, full, dest, sigs[f.path]))  # staged by copy before: move, do not download
                continue
        todo.append(f)
    need = sum(f.pointer.size or 0 for f in todo)
    _check_space(project, need, target, force=force)
    for f, src, dest, sig in moves:
        try:
            with open(src, "rb") as fh:
                algo = (f.pointer.oid or expects[f.path].wanted or project.algorithm).split(":", 1)[0]
                written.append((f.path, _copy_to_file(fh, dest, algo, sig, f.pointer.oid)))
        except ChangedMeanwhile:
            report.kept[f.path] = "changed while it was being staged: kept as it is"
            continue
        except (OSError, GitDataError) as err:
            report.failed[f.path] = str(err)
            continue
        report.staged.append(f.path)

    registered = [f for f in todo if f.pointer.oid is None]
    owned = [f for f in todo if f.pointer.oid is not None]
    items, storages = _remote_check(project, ds, [_Item(f) for f in registered], report)

    def fetch_one(it: _Item) -> str:
        dest = safepath.checked_target(target, ds.rel(it.found.path), what=f"dataset {ds.name!r}")
        return _download_to_file(project, storages[it.storage_url or ""], it.key or "", it.found.pointer, dest,
                                 sigs[it.found.path])

    outcome = run_parallel(items, fetch_one, jobs=jobs, label=f"Staging {ds.name}",
                           weight=lambda it: it.found.pointer.size or 0, progress=progress)
    records = []
    for it, oid in outcome.done.items():
        report.staged.append(it.found.path)
        report.bytes += it.found.pointer.size or 0
        records.append((it.found.path, oid, it.found.pointer.encode()))
        written.append((it.found.path, oid))
    for it, err in outcome.failed.items():
        if isinstance(err, ChangedMeanwhile):
            report.kept[it.found.path] = "changed while it was being staged: kept as it is"
        else:
            report.failed[it.found.path] = str(err)
    if records:
        project.state.record_staged(records)
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
                dest = safepath.checked_target(target, ds.rel(f.path), what=f"dataset {ds.name!r}")
                with project.cache.open(oid) as fh:
                    _copy_to_file(fh, dest, oid.split(":", 1)[0], sigs[f.path], oid)
            except ChangedMeanwhile:
                report.kept[f.path] = "changed while it was being staged: kept as it is"
                continue
            except (OSError, GitDataError) as err:
                report.failed[f.path] = str(err)
                continue
            written.append((f.path, oid))
            report.staged.append(f.path)
            report.bytes += f.pointer.size or 0
    _record_written(project, ds, target, written)
    _link(project, ds, all_found, target)
    set_mode(project, ds.name, "location", target)
    report.staged.sort()
    return report


def expectations(project: Project, found: list[Found]) -> dict[str, guard.Expect]:
    """What git data knows it put at each path (see :mod:`gitdata.guard`)."""
    paths = [f.path for f in found]
    staged = project.state.staged_records(paths)
    written = project.state.written(paths)
    out = {}
    for f in found:
        wanted = f.pointer.oid
        ours: set[str] = set()
        if f.path in staged:
            content, pointer = staged[f.path]
            if wanted is None and pointer == f.pointer.encode():
                wanted = content
            else:
                ours.add(content)
        out[f.path] = guard.Expect(wanted=wanted, ours=frozenset(ours), written=written.get(f.path))
    return out


def _fallback_current(project: Project, pointer: Pointer, full: str) -> bool:
    """No record of this path: the weaker check (size, and a recorded md5 where there is one)."""
    if pointer.size is not None and os.path.getsize(full) != pointer.size:
        return False
    return _verify_file(project, pointer, full) is None


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
        report.staged.append(f.path)
        report.bytes += size
    if problems:
        report.failed = problems
        first = next(iter(sorted(problems.items())))
        raise StageError(
            f"{path} does not hold dataset {ds.name!r} as recorded: {first[0]}: {first[1]}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
            + "; nothing was linked"
        )
    if cur_mode in ("location", "existing") or _has_content(project, ds):
        unstage(project, ds.name)
    _check_folder_is_ours(project, ds, found)
    if modified_paths(project, ds):
        raise StageError(f"files in {ds.path} changed; commit or restore them first")
    _link(project, ds, found, path)
    set_mode(project, ds.name, "existing", path)
    return report


def _verify_file(project: Project, pointer: Pointer, full: str) -> str | None:
    if pointer.oid:
        oid, _ = oid_of_file(full, pointer.algorithm or project.algorithm)
        return None if oid == pointer.oid else f"{full}: content hashes to {oid}, recorded {pointer.oid}"
    expected = _expected_md5(pointer)
    if not expected:
        return None  # nothing to compare a hash with (multipart ETag, no md5): size only
    h = hashlib.md5(usedforsecurity=False)
    with open(full, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return None if h.hexdigest() == expected else f"{full}: md5 {h.hexdigest()} differs from recorded {expected}"


# -- unstaging -----------------------------------------------------------------------


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
        return _unstage(project, name)


def _unstage(project: Project, name: str) -> UnstageReport:
    ds = ds_mod.get(project, name)
    mode, loc = current_mode(project, name)
    if mode == "mount":
        from .mount import dataset as mount_ds

        mount_ds.unmount(project, name)
        return UnstageReport(dataset=name, mode=mode)
    report = UnstageReport(dataset=name, mode=mode)
    found = ds_mod.files(project, ds)
    pushed = _pushed(project, ds, found)
    staged_oids = project.state.staged_oids([f.path for f in found])
    folder = os.path.join(project.root, ds.path)
    if os.path.islink(folder):
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
        os.unlink(folder)
        for f in found:
            _write_pointer(project, f)
        _skip_worktree(project, [f.path for f in found], False)
        if not keep_target:
            for path in report.freed:
                try:
                    os.unlink(os.path.join(target, ds.rel(path)))
                except FileNotFoundError:
                    pass
            _prune_empty_dirs(target)
        _exclude(project, ds.path, False)
        if loc and ds_mod.within(project.root, loc):
            _exclude(project, os.path.relpath(loc, project.root).replace(os.sep, "/"), False)
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
            _write_pointer(project, f)
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


def _write_pointer(project: Project, f: Found) -> None:
    ds_mod.write_small(os.path.join(project.root, f.path), f.pointer.encode())


def _prune_empty_dirs(root: str) -> None:
    for dirpath, _dirs, _files in os.walk(root, topdown=False):
        try:
            os.rmdir(dirpath)
        except OSError:
            pass


# -- reading one file (git data cat) ---------------------------------------------


def open_file(project: Project, path: str) -> Iterator[bytes]:
    """The bytes of a tracked file, from the work tree, cache, source or data remote."""
    path = os.path.relpath(os.path.abspath(path), project.root).replace(os.sep, "/")
    if path.startswith("../"):
        raise GitDataError(f"{path} is outside the project")
    pointer = _index_pointer(project, path)
    datasets = [d for d in ds_mod.load_all(project).values() if d.contains(path)]
    ds = datasets[0] if datasets else None
    full = os.path.join(project.root, path)
    if pointer is None:
        raise GitDataError(f"{path} is not a file tracked by git data (see `git data ls-files`)")
    # a staged copy that is unchanged (or any file of a linked dataset of the right size)
    if os.path.isfile(full) and ds_mod.read_pointer_file(full) is None:
        if ds is None or path not in modified_paths(project, ds) or os.path.islink(os.path.join(project.root, ds.path)):
            if pointer.size is None or os.path.getsize(full) == pointer.size:
                return _file_chunks(full)
    if pointer.oid and project.cache.has(pointer.oid, pointer.size):
        return _cached_chunks(project, pointer.oid)
    if pointer.oid is None and pointer.source:
        fake = ds or Dataset(name="", path="")
        check_registered_size(path, pointer)
        root, key = ds_mod.split_source(fake, pointer.source, path)
        storage = ds_mod.open_source(project, fake, root, versioned=bool(pointer.get("version-id")))
        return _storage_chunks(storage, key, pointer)
    from .fetch import download_object

    store = object_store_for(project, ds) if ds else project.object_store()
    download_object(store, project.cache, pointer.oid or "", pointer.size)
    return _cached_chunks(project, pointer.oid or "")


def _index_pointer(project: Project, path: str) -> Pointer | None:
    from .scan import _scan_blobs

    out = project.repo.git("ls-files", "-s", "-z", "--", path)
    pairs = []
    for rec in out.split(b"\0"):
        if rec:
            meta, p = rec.split(b"\t", 1)
            pairs.append((p.decode("utf-8", "surrogateescape"), meta.decode().split()[1]))
    pairs = [(p, s) for p, s in pairs if p == path]
    res = _scan_blobs(project.repo, pairs)
    return res.found[0].pointer if res.found else None


def _cached_chunks(project: Project, oid: str) -> Iterator[bytes]:
    with project.cache.open(oid) as f:
        while True:
            chunk = f.read(CHUNK)
            if not chunk:
                return
            yield chunk


def _file_chunks(path: str) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while True:
            chunk = f.read(CHUNK)
            if not chunk:
                return
            yield chunk


def _storage_chunks(storage: Storage, key: str, pointer: Pointer) -> Iterator[bytes]:
    kwargs = _open_kwargs(storage, pointer.get("version-id"))
    size = 0
    try:
        with storage.open_read(key, **kwargs) as f:
            while True:
                chunk = f.read(CHUNK)
                if not chunk:
                    _check(storage, key, pointer, size, None, None, lambda: None)
                    return
                size += len(chunk)
                _check_bound(storage, key, pointer, size, lambda: None)
                yield chunk
    except ObjectNotFound as err:
        raise GitDataError(f"{pointer.source} is gone from the remote: {err}") from err
