"""Carrying out a sync plan (:mod:`gitdata.syncplan`): every write conditional on the other side still being what the plan saw.

* uploads re-read the remote fingerprint just before writing and send
  ``If-Match`` / ``If-None-Match`` where the backend honours them (AWS S3,
  moto); a racing writer becomes a conflict, never an overwrite;
* downloads go through the guarded writer and replace the target only
  if the local file is still what the scan saw;
* the losing side of a resolved conflict is saved first: a local
  ``<name>.conflict-<UTC time>`` copy, or the remote's previous version id
  when the bucket is versioned.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import safepath, writer
from .. import syncplan as sp
from ..errors import GitDataError
from ..hashing import new_hasher
from ..lock import clone_lock
from ..storage import Fingerprint, ObjectNotFound, PreconditionFailed, Storage
from ..storage.fingerprint import compare, from_info
from ..transfer import byte_reporter, run_parallel
from . import spec as storages_mod

if TYPE_CHECKING:
    from ..project import Project
from .listing import _hash_and_md5, _read_chunk, iter_remote, remote_md5
from .manifest import Manifest, manifest_for
from .spool import Spool


class SyncError(GitDataError):
    pass


class NotStaged(SyncError):
    pass


class Unsynced(SyncError):
    pass


class SyncRefused(SyncError):
    pass


class RaceConflict(SyncError):
    """The other side changed between the listing and the write: nothing was overwritten."""


@dataclass
class Prepared:
    """Everything a sync decided, before anything is changed.

    The plan's actions are rows of ``spool`` (a temporary database on disk): a sync of a
    million objects holds none of them in memory."""

    project: Project
    spec: storages_mod.StorageSpec
    storage: Storage
    manifest: Manifest
    root: str
    scope: sp.Scope
    plan: sp.Plan
    spool: Spool
    prefer: str | None = None
    delete: bool = False
    #: names that cannot cross, name -> why (never transferred): bucket keys that cannot be
    #: paths in the storage folder, local names that cannot be keys
    refused: dict[str, str] = field(default_factory=dict)

    def local_path(self, rel: str, *, create: bool = True) -> str:
        """The file for ``rel``, checked right before it is read or written
        (no symlink on the way, nothing outside the storage folder)."""
        return safepath.checked_target(self.root, rel, create=create, what=f"storage {self.spec.name!r}")


def _probe(
    storage: Storage,
    root: str,
    paths: list[str],
    local: Mapping[str, sp.LocalEntry],
    remote: Mapping[str, Fingerprint],
    algorithm: str,
    jobs: int,
) -> dict[str, bool]:
    """Do both sides hold the same bytes? By md5 where the remote states one, else by reading it."""

    def one(path: str) -> bool:
        lp = os.path.join(root, *path.split("/"))
        md5 = remote_md5(remote[path])
        if md5:
            return _hash_and_md5(lp, algorithm)[1] == md5
        h = new_hasher(algorithm)
        with storage.open_read(path, whole=True) as f:
            while chunk := _read_chunk(f, storage, path):
                h.update(chunk)
        return f"{algorithm}:{h.hexdigest()}" == local[path].hash

    outcome = run_parallel(paths, one, jobs=jobs, label="compare", progress=False)
    # a probe that failed counts as "different": the cell stays a conflict
    return {p: outcome.done.get(p, False) for p in paths}


def prepare(
    project: Project,
    name: str,
    *,
    prefer: str | None = None,
    delete: bool = False,
    jobs: int | None = None,
    scope: sp.Scope | None = None,
    prefer_paths: list[str] | None = None,
) -> Prepared:
    """Compare base, local tree and one remote listing; decide. Changes nothing.

    ``--dry-run`` prints this plan; a real run executes this very plan.
    """
    spec = storages_mod.get(project, name)
    manifest = manifest_for(project, name)
    if scope is None:
        if not manifest.exists():
            raise NotStaged(
                f"storage {name!r} is not staged in this clone; run `git data storage stage {name}` first"
            )
        scope = manifest.scope()
    if spec.mode != "copy":
        raise SyncRefused(
            f"storage {name!r} is in {spec.mode} mode: nothing is copied, so there is nothing to sync "
            f"(switch with `git config -f .gitdata storage.{name}.mode copy`)"
        )
    url = manifest.get_meta("url")
    if url is not None and url != spec.url:
        raise SyncRefused(
            f"storage {name!r} now points at {spec.url}, but this clone was staged from {url}; "
            f"unstage it (`git data storage unstage {name}`) and stage it again"
        )
    storage = storages_mod.open_remote(project, spec)
    root = storages_mod.checked_local_dir(project, spec, create=False)
    spool = Spool(manifest.path if manifest.exists() else None, project.cache.tmp_dir)
    try:
        refused: dict[str, str] = {}
        spool.fill(root, scope, iter_remote(storage, scope, refused), refused)
        plan = _plan(spool, storage, root, scope, project.algorithm, jobs or project.jobs,
                     prefer=prefer, delete=delete, prefer_paths=prefer_paths)  # fmt: skip
        if delete and plan.had_base and not spool.listed:
            raise SyncRefused(
                f"the listing of {storage.display} is empty, so --delete would delete every local file "
                f"of storage {name!r}; check the URL and credentials (or delete the files yourself)"
            )
    except BaseException:
        spool.close()
        raise
    return Prepared(project, spec, storage, manifest, root, scope, plan.plan, spool, prefer, delete, refused)


#: paths changed on both sides whose bytes are compared together
PROBE_BATCH = 2000


@dataclass
class _Planned:
    plan: sp.Plan
    had_base: bool


def _plan(
    spool: Spool, storage: Storage, root: str, scope: sp.Scope, algorithm: str, jobs: int, *,
    prefer: str | None, delete: bool, prefer_paths: list[str] | None,
) -> _Planned:  # fmt: skip
    """Walk base, scan and listing in path order (one row at a time) and decide each path;
    the actions go to the spool. Paths changed on both sides with equal sizes wait until
    :data:`PROBE_BATCH` of them have their bytes compared together."""
    emit, flush = spool.actions_writer()
    planner = sp.Planner(prefer=prefer, delete=delete, prefer_paths=prefer_paths, emit=emit)
    deferred: list[tuple[str, sp.BaseEntry | None, sp.LocalEntry, Fingerprint]] = []

    def compare_deferred() -> None:
        local = {p: lo for p, _b, lo, _ro in deferred}
        remote = {p: ro for p, _b, _lo, ro in deferred}
        equal = _probe(storage, root, list(local), local, remote, algorithm, jobs)
        for p, b, lo, ro in deferred:
            planner.add(p, b, lo, ro, equal=equal[p])
        deferred.clear()

    had_base = False
    for path, b, lo, ro in spool.sides(root, scope, algorithm):
        had_base = had_base or b is not None
        if sp.needs_probe(b, lo, ro):
            assert lo is not None and ro is not None
            deferred.append((path, b, lo, ro))
            if len(deferred) >= PROBE_BATCH:
                compare_deferred()
        else:
            planner.add(path, b, lo, ro)
    if deferred:
        compare_deferred()
    flush()
    return _Planned(planner.finish(spool.actions), had_base)


@dataclass
class SyncResult:
    prepared: Prepared
    #: how many actions of each kind were carried out
    done_counts: Counter[str] = field(default_factory=Counter)
    failed: dict[str, GitDataError] = field(default_factory=dict)
    races: dict[str, str] = field(default_factory=dict)
    kept: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.prepared.plan.blocked or self.failed or self.races or self.prepared.refused)

    @property
    def done(self) -> list[sp.Action]:
        """The actions carried out, in path order (read from the spool: built on demand)."""
        return list(self.prepared.spool.actions(done=True))


def utc_stamp() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def _remote_now(storage: Storage, key: str) -> Fingerprint | None:
    try:
        return storage.info(key)
    except ObjectNotFound:
        return None


def _local_now(path: str, dir_fd: int | None = None) -> tuple[int, int] | None:
    """``(size, mtime_ns)`` of the file at ``path`` (a name in the folder ``dir_fd``, whose
    link is not followed), None where there is none."""
    try:
        st = os.stat(path, dir_fd=dir_fd, follow_symlinks=dir_fd is None)
    except FileNotFoundError:
        return None
    return st.st_size, st.st_mtime_ns


def _same_local(now: tuple[int, int] | None, seen: sp.LocalEntry | None) -> bool:
    if seen is None:
        return now is None
    return now == (seen.size, seen.mtime_ns)


def _free_name(path: str, stamp: str, dir_fd: int | None = None) -> str:
    """The first conflict copy's name for ``path`` (in the folder ``dir_fd``) that is free."""
    cand = sp.conflict_name(path, stamp)
    n = 1
    while os.path.lexists(cand) if dir_fd is None else _local_now(cand, dir_fd) is not None:
        n += 1
        cand = sp.conflict_name(path, f"{stamp}-{n}")
    return cand


def _download(
    storage: Storage, key: str, dest: str | safepath.Target, algorithm: str
) -> tuple[writer.GuardedFile, Any]:
    """Stream ``key`` into the guarded writer beside ``dest`` (not placed yet): (writer, details).

    One GET where the backend allows it (S3's direct path: no HEAD first); ``details`` is
    what the read states of the object it delivered (the GET's own header fields there, so
    they describe exactly these bytes), or None where the backend says nothing."""
    w = writer.guarded(dest, algorithm)
    try:
        with storage.open_read(key, whole=True) as f:
            details = getattr(f, "details", None)
            w.copy_from(f, lambda f: _read_chunk(f, storage, key))
    except BaseException:
        w.abort()
        raise
    return w, details


def _delivered(listed: Fingerprint | None, details: Any) -> Fingerprint:
    """The fingerprint to record for a downloaded object: the listing's (its timestamp is the
    listing's, to the millisecond) unless the read states another object, which is then
    recorded as the read states it (the object changed after the listing); a version id
    the read states and the listing did not is added."""
    got = from_info(details) if isinstance(details, Mapping) and details else None
    if listed is None:
        assert got is not None, "a download without a listed fingerprint states its own"
        return got
    if got is None:
        return listed
    if compare(listed, got) != "unchanged":
        return got
    if got.version_id and not listed.version_id:
        return dataclasses.replace(listed, version_id=got.version_id)
    return listed


class _Executor:
    def __init__(self, prep: Prepared, stamp: str) -> None:
        self.p = prep
        self.storage = prep.storage
        self.algorithm = prep.project.algorithm
        self.stamp = stamp
        #: the storage folder's folders, each checked once and then held open (closed by :meth:`close`)
        self.folders = safepath.Folders(prep.root, what=f"storage {prep.spec.name!r}")

    def close(self) -> None:
        self.folders.close()

    def run(self, a: sp.Action) -> tuple[sp.BaseEntry | None, dict[str, Any] | None]:
        if a.kind == sp.UPLOAD:
            return self.upload(a)
        if a.kind == sp.DOWNLOAD:
            return self.download(a)
        if a.kind == sp.DELETE_REMOTE:
            return self.delete_remote(a)
        if a.kind == sp.DELETE_LOCAL:
            return self.delete_local(a)
        raise AssertionError(a.kind)

    def _check_remote(self, a: sp.Action) -> Fingerprint | None:
        cur = _remote_now(self.storage, a.path)
        if a.remote is None:
            if cur is not None:
                raise RaceConflict(f"{a.path}: created remotely during the sync; nothing overwritten")
        elif cur is None:
            raise RaceConflict(f"{a.path}: deleted remotely during the sync")
        elif compare(a.remote, cur) != "unchanged":
            raise RaceConflict(f"{a.path}: changed remotely during the sync; nothing overwritten")
        return cur

    def upload(self, a: sp.Action) -> tuple[sp.BaseEntry, dict[str, Any] | None]:
        lp = self.p.local_path(a.path, create=False)
        mtime_ns = os.stat(lp).st_mtime_ns
        digest, md5, size = _hash_and_md5(lp, self.algorithm)
        cur = self._check_remote(a)
        kept = None
        if a.keep == "remote" and cur is not None:
            kept = self._keep_remote(a.path, cur)
        try:
            self.storage.put_file(
                lp, a.path, create_only=cur is None, if_match=cur.etag if cur is not None else None,
                progress=byte_reporter(),
            )
        except PreconditionFailed as err:
            raise RaceConflict(f"{a.path}: changed remotely during the sync; nothing overwritten") from err
        post = self.storage.info(a.path)
        post_md5 = remote_md5(post)
        if post.size != size or (post_md5 is not None and post_md5 != md5):
            # someone wrote after us: record what we wrote, so the next sync sees their change
            post = Fingerprint(size=size, md5=md5)
        return sp.BaseEntry(size=size, remote=post, local_hash=digest, mtime_ns=mtime_ns), kept

    def _keep_remote(self, key: str, cur: Fingerprint) -> dict[str, Any]:
        if cur.version_id:
            return {"path": key, "side": "remote", "version_id": cur.version_id}
        dest = _free_name(self.p.local_path(key), self.stamp)
        w, details = _download(self.storage, key, dest, self.algorithm)
        with w:
            got = from_info(details) if isinstance(details, Mapping) else None
            if got is not None and compare(cur, got) != "unchanged":
                raise RaceConflict(f"{key}: changed remotely during the sync; nothing overwritten")
            w.commit(create_only=True)
        return {"path": key, "side": "remote", "conflict_copy": os.path.relpath(dest, self.p.root).replace(os.sep, "/")}

    def download(self, a: sp.Action) -> tuple[sp.BaseEntry, dict[str, Any] | None]:
        # the file's folder is checked once and held open: the write, the checks and the
        # rename are made relative to it (safepath.Folders), never by path
        with self.folders.target(a.path) as t:
            w, details = _download(self.storage, a.path, t, self.algorithm)
            fp = _delivered(a.remote, details)
            kept: dict[str, Any] | None = None

            def still_as_planned() -> None:
                nonlocal kept
                now = _local_now(t.name, t.dir_fd)
                if not _same_local(now, a.local):
                    raise RaceConflict(f"{a.path}: changed locally during the sync; nothing overwritten")
                if a.keep == "local" and now is not None:
                    dest = _free_name(t.name, self.stamp, t.dir_fd)
                    os.rename(t.name, dest, src_dir_fd=t.dir_fd, dst_dir_fd=t.dir_fd)
                    kept = {"path": a.path, "side": "local", "conflict_copy": a.path + dest[len(t.name):]}

            with w:
                digest, size = w.commit(check=still_as_planned)
            mtime_ns = os.stat(t.name, dir_fd=t.dir_fd, follow_symlinks=False).st_mtime_ns
        if fp.size != size:
            fp = dataclasses.replace(fp, size=size)
        return sp.BaseEntry(size=size, remote=fp, local_hash=digest, mtime_ns=mtime_ns), kept

    def delete_remote(self, a: sp.Action) -> tuple[None, dict[str, Any] | None]:
        cur = _remote_now(self.storage, a.path)
        if cur is None:
            return None, None
        assert a.remote is not None
        if compare(a.remote, cur) != "unchanged":
            raise RaceConflict(f"{a.path}: changed remotely during the sync; not deleted")
        self.storage.delete(a.path)
        kept = {"path": a.path, "side": "remote", "version_id": cur.version_id} if cur.version_id else None
        return None, kept

    def delete_local(self, a: sp.Action) -> tuple[None, None]:
        lp = self.p.local_path(a.path, create=False)
        now = _local_now(lp)
        if now is None:
            return None, None
        if not _same_local(now, a.local):
            raise RaceConflict(f"{a.path}: changed locally during the sync; not deleted")
        os.unlink(lp)
        _prune_empty_dirs(os.path.dirname(lp), self.p.root)
        return None, None


def _prune_empty_dirs(d: str, stop: str) -> None:
    stop = os.path.abspath(stop)
    d = os.path.abspath(d)
    while d != stop and d.startswith(stop + os.sep):
        try:
            os.rmdir(d)
        except OSError:
            return
        d = os.path.dirname(d)


#: steps of a sync whose base entries are written together (see :func:`execute`)
WRITE_EVERY = 5000


#: transfers handed to the workers together (each batch's items are held while it runs)
BATCH = 20_000


def execute(
    prep: Prepared,
    *,
    jobs: int | None = None,
    progress: bool | None = None,
    on_item: Callable[[sp.Action], None] | None = None,
) -> SyncResult:
    """Carry out ``prep.plan``; the base manifest records every step that succeeded.

    The actions are read from the spool in path order and carried out :data:`BATCH`
    transfers at a time; the base is written every :data:`WRITE_EVERY` steps."""
    result = SyncResult(prep)
    updates: dict[str, sp.BaseEntry | None] = {}
    finished: list[str] = []

    def record(a: sp.Action, entry: sp.BaseEntry | None) -> None:
        """A step that succeeded: into the base, written every WRITE_EVERY steps (a run
        killed half-way keeps the base of what it did)."""
        updates[a.path] = entry
        finished.append(a.path)
        result.done_counts[a.kind] += 1
        if len(updates) >= WRITE_EVERY:
            write()

    def write() -> None:
        prep.manifest.write(updates)
        updates.clear()
        prep.spool.mark_done(finished)
        finished.clear()

    ex = _Executor(prep, utc_stamp())

    def work(a: sp.Action) -> tuple[sp.BaseEntry | None, dict[str, Any] | None]:
        out = ex.run(a)
        if on_item is not None:
            on_item(a)
        return out

    def done(a: sp.Action, out: tuple[sp.BaseEntry | None, dict[str, Any] | None]) -> None:
        entry, kept = out
        record(a, entry)
        if kept:
            result.kept.append(kept)

    if prep.plan.held_folders:  # some actions are held back: count those that go ahead
        total = sum(1 for a in prep.plan.iter_actions() if a.kind in sp.TRANSFERS)
    else:
        total = prep.spool.count(sp.TRANSFERS)
    batches = -(-total // BATCH)
    label = f"sync {prep.spec.name}"

    def run(batch: list[sp.Action], number: int) -> None:
        # a run of downloads only (staging, a pull) may go to worker processes: a download
        # writes its file and returns its base entry, and its GET is the direct path's, which a
        # forked worker makes on its own connections (uploads and deletes ask s3fs, which a
        # fork cannot use, and on_item is the caller's, in this process)
        downloads = on_item is None and all(a.kind == sp.DOWNLOAD for a in batch)
        outcome = run_parallel(
            batch,
            work,
            jobs=jobs or prep.project.jobs,
            label=label if batches <= 1 else f"{label} ({number}/{batches})",
            progress=progress,
            processes=prep.project.processes if downloads else 1,
            on_done=done,
        )
        for a, err in outcome.failed.items():
            if isinstance(err, RaceConflict):
                result.races[a.path] = str(err)
            else:
                result.failed[a.path] = err

    try:
        batch: list[sp.Action] = []
        number = 0
        for a in prep.plan.iter_actions():
            if a.kind in (sp.ADOPT, sp.REFRESH):  # both sides agree: the base records them as they are
                assert a.local is not None and a.remote is not None
                record(a, sp.BaseEntry(a.local.size, a.remote, a.local.hash, a.local.mtime_ns))
            elif a.kind == sp.FORGET:
                record(a, None)
            else:
                batch.append(a)
                if len(batch) >= BATCH:
                    number += 1
                    run(batch, number)
                    batch = []
        if batch:
            run(batch, number + 1)
    finally:
        ex.close()
        write()
        prep.manifest.set_meta("url", prep.spec.url)
        prep.manifest.set_meta("synced_at", utc_stamp())
    result.kept.sort(key=lambda k: k["path"])
    return result


def sync(
    project: Project,
    name: str,
    *,
    prefer: str | None = None,
    delete: bool = False,
    jobs: int | None = None,
    dry_run: bool = False,
    progress: bool | None = None,
    prefer_paths: list[str] | None = None,
) -> SyncResult:
    if dry_run:
        return SyncResult(prepare(project, name, prefer=prefer, delete=delete, jobs=jobs, prefer_paths=prefer_paths))
    with clone_lock(project.repo.data_dir, f"storage-{name}", f"storage sync {name}"):
        prep = prepare(project, name, prefer=prefer, delete=delete, jobs=jobs, prefer_paths=prefer_paths)
        return execute(prep, jobs=jobs, progress=progress)
