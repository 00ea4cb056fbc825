"""Staging and two-way sync of mapped storages: carries out :mod:`gitdata.syncplan` plans.

Per storage and clone, a *base manifest* in ``<git-dir>/gitdata/storages/NAME.sqlite``
records what both sides held after the last sync: per file the size, the
remote fingerprint, the local content hash (xxh3-128) and the local mtime.

A sync is one listing of the remote, one walk of the local tree (files whose
size and mtime match the base are not re-hashed), a pure plan, then parallel
transfers. Every write is conditional on the other side still being what the
plan saw:

* uploads re-read the remote fingerprint just before writing and send
  ``If-Match`` / ``If-None-Match`` where the backend honours them (AWS S3,
  moto); a racing writer becomes a conflict, never an overwrite;
* downloads land in a temporary file beside the target and replace it only
  if the local file is still what the scan saw;
* the losing side of a resolved conflict is saved first: a local
  ``<name>.conflict-<UTC time>`` copy, or the remote's previous version id
  when the bucket is versioned.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from . import safepath, writer
from . import storages as storages_mod
from . import syncplan as sp
from .errors import GitDataError
from .hashing import CHUNK, new_hasher, oid_of_file
from .lock import clone_lock
from .storage import Fingerprint, ObjectNotFound, PreconditionFailed, Storage
from .storage.errors import translate
from .storage.fingerprint import compare, from_info, is_plain_md5_etag
from .transfer import run_parallel

if TYPE_CHECKING:
    from .project import Project

TMP_PREFIX = ".gitdata-tmp-"


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


# -- base manifest -------------------------------------------------------------


def _fp_to_json(fp: Fingerprint) -> str:
    return json.dumps({k: v for k, v in asdict(fp).items() if v is not None}, sort_keys=True)


def _fp_from_json(text: str) -> Fingerprint:
    return Fingerprint(**json.loads(text))


class Manifest:
    """The base of the three-way comparison for one storage, in this clone only."""

    def __init__(self, data_dir: str, name: str) -> None:
        self.path = os.path.join(data_dir, "storages", f"{name}.sqlite")
        self._db: sqlite3.Connection | None = None

    def exists(self) -> bool:
        return os.path.exists(self.path)

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            db = sqlite3.connect(self.path, timeout=30)
            db.execute(
                "CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER NOT NULL,"
                " remote TEXT NOT NULL, local_hash TEXT NOT NULL, mtime_ns INTEGER NOT NULL)"
            )
            db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._db = db
        return self._db

    def load(self) -> dict[str, sp.BaseEntry]:
        if not self.exists():
            return {}
        rows = self._conn().execute("SELECT path, size, remote, local_hash, mtime_ns FROM files")
        return {
            p: sp.BaseEntry(size=s, remote=_fp_from_json(r), local_hash=h, mtime_ns=m)
            for p, s, r, h, m in rows
        }

    def write(self, updates: Mapping[str, sp.BaseEntry | None]) -> None:
        if not updates:
            return
        db = self._conn()
        with db:
            db.executemany(
                "DELETE FROM files WHERE path = ?", [(p,) for p, e in updates.items() if e is None]
            )
            db.executemany(
                "INSERT OR REPLACE INTO files (path, size, remote, local_hash, mtime_ns)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (p, e.size, _fp_to_json(e.remote), e.local_hash, e.mtime_ns)
                    for p, e in updates.items()
                    if e is not None
                ],
            )

    def get_meta(self, key: str) -> Any:
        if not self.exists():
            return None
        row = self._conn().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def set_meta(self, key: str, value: Any) -> None:
        db = self._conn()
        with db:
            db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value))
            )

    def scope(self) -> sp.Scope:
        raw = self.get_meta("scope") or {}
        return sp.Scope(
            paths=tuple(raw.get("paths", ())),
            include=tuple(raw.get("include", ())),
            exclude=tuple(raw.get("exclude", ())),
        )

    def set_scope(self, scope: sp.Scope) -> None:
        self.set_meta(
            "scope", {"paths": list(scope.paths), "include": list(scope.include), "exclude": list(scope.exclude)}
        )

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def drop(self) -> None:
        self.close()
        for suffix in ("", "-journal", "-wal", "-shm"):
            if os.path.exists(self.path + suffix):
                os.unlink(self.path + suffix)


def manifest_for(project: Project, name: str) -> Manifest:
    return Manifest(project.repo.data_dir, name)


# -- the two sides -----------------------------------------------------------------


def scan_local(
    root: str, base: Mapping[str, sp.BaseEntry], scope: sp.Scope, algorithm: str
) -> dict[str, sp.LocalEntry]:
    """Every regular file under ``root`` in scope; only files whose size or mtime moved are hashed."""
    out: dict[str, sp.LocalEntry] = {}
    if not os.path.isdir(root):
        return out
    stack = [("", root)]
    while stack:
        rel, d = stack.pop()
        with os.scandir(d) as it:
            for e in it:
                r = f"{rel}/{e.name}" if rel else e.name
                if e.is_dir(follow_symlinks=False):
                    stack.append((r, e.path))
                    continue
                if not e.is_file(follow_symlinks=False) or e.name.startswith(TMP_PREFIX):
                    continue
                if not scope.contains(r):
                    continue
                st = e.stat(follow_symlinks=False)
                b = base.get(r)
                if b is not None and b.size == st.st_size and b.mtime_ns == st.st_mtime_ns:
                    h = b.local_hash
                else:
                    h = oid_of_file(e.path, algorithm)[0]
                out[r] = sp.LocalEntry(size=st.st_size, mtime_ns=st.st_mtime_ns, hash=h)
    return out


def list_remote(
    storage: Storage, scope: sp.Scope, refused: dict[str, str] | None = None
) -> dict[str, Fingerprint]:
    """One listing of the storage (or of the one folder in scope).

    Keys come from whoever can write to the bucket: a key that could not be
    a path inside the storage folder (``..``, ``.git``, absolute, control
    characters) is left out, with the reason in ``refused``.
    """
    out = {}
    for key, fp in storage.list(scope.list_prefix()):
        if key.rsplit("/", 1)[-1].startswith(TMP_PREFIX) or not scope.contains(key):
            continue
        try:
            safepath.check_relpath(key, "object key")
        except safepath.UnsafePath as err:
            if refused is not None:
                refused[key] = f"{err}; it was skipped (rename it in the bucket)"
            continue
        out[key] = fp
    return out


def _read_chunk(f: Any, storage: Storage, key: str) -> bytes:
    """One chunk of a remote read; vendor errors raised mid-stream are translated here."""
    try:
        return f.read(CHUNK)
    except GitDataError:
        raise
    except Exception as err:  # noqa: BLE001 - botocore/aiohttp raise their own types mid-read
        raise translate(err, f"download {key}", storage.display, storage.name) from err


def remote_md5(fp: Fingerprint) -> str | None:
    if fp.md5:
        return fp.md5
    return fp.etag.strip('"').lower() if is_plain_md5_etag(fp.etag) else None


def _hash_and_md5(path: str, algorithm: str) -> tuple[str, str, int]:
    h, m, size = new_hasher(algorithm), hashlib.md5(usedforsecurity=False), 0
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            m.update(chunk)
            size += len(chunk)
    return f"{algorithm}:{h.hexdigest()}", m.hexdigest(), size


# -- preparing a plan --------------------------------------------------------------


@dataclass
class Prepared:
    """Everything a sync decided, before anything is changed."""

    project: Project
    spec: storages_mod.StorageSpec
    storage: Storage
    manifest: Manifest
    root: str
    scope: sp.Scope
    base: dict[str, sp.BaseEntry]
    local: dict[str, sp.LocalEntry]
    remote: dict[str, Fingerprint]
    plan: sp.Plan
    prefer: str | None = None
    delete: bool = False
    #: bucket keys that cannot be paths in the storage folder: key -> why (never transferred)
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
        with storage.open_read(path) as f:
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
    base = {p: e for p, e in manifest.load().items() if scope.contains(p)}
    local = scan_local(root, base, scope, project.algorithm)
    refused: dict[str, str] = {}
    remote = list_remote(storage, scope, refused)
    if delete and base and not remote:
        raise SyncRefused(
            f"the listing of {storage.display} is empty, so --delete would delete every local file "
            f"of storage {name!r}; check the URL and credentials (or delete the files yourself)"
        )
    jobs = jobs or project.jobs
    probe = sp.paths_to_probe(base, local, remote)
    equal = _probe(storage, root, probe, local, remote, project.algorithm, jobs) if probe else {}
    plan = sp.plan(base, local, remote, equal=equal, prefer=prefer, delete=delete)
    return Prepared(project, spec, storage, manifest, root, scope, base, local, remote, plan, prefer, delete, refused)


# -- carrying it out ----------------------------------------------------------------


@dataclass
class SyncResult:
    prepared: Prepared
    done: list[sp.Action] = field(default_factory=list)
    failed: dict[str, GitDataError] = field(default_factory=dict)
    races: dict[str, str] = field(default_factory=dict)
    kept: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.prepared.plan.blocked or self.failed or self.races or self.prepared.refused)


def utc_stamp() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def _remote_now(storage: Storage, key: str) -> Fingerprint | None:
    try:
        return storage.info(key)
    except ObjectNotFound:
        return None


def _local_now(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_size, st.st_mtime_ns


def _same_local(now: tuple[int, int] | None, seen: sp.LocalEntry | None) -> bool:
    if seen is None:
        return now is None
    return now == (seen.size, seen.mtime_ns)


def _free_name(path: str, stamp: str) -> str:
    cand = sp.conflict_name(path, stamp)
    n = 1
    while os.path.lexists(cand):
        n += 1
        cand = sp.conflict_name(path, f"{stamp}-{n}")
    return cand


def _download(storage: Storage, key: str, dest: str, algorithm: str) -> tuple[writer.GuardedFile, Any]:
    """Stream ``key`` into the guarded writer beside ``dest`` (not placed yet): (writer, details)."""
    w = writer.GuardedFile(dest, algorithm)
    try:
        with storage.open_read(key) as f:
            details = getattr(f, "details", None)
            w.copy_from(f, lambda f: _read_chunk(f, storage, key))
    except BaseException:
        w.abort()
        raise
    return w, details


class _Executor:
    def __init__(self, prep: Prepared, stamp: str) -> None:
        self.p = prep
        self.storage = prep.storage
        self.algorithm = prep.project.algorithm
        self.stamp = stamp

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
                lp, a.path, create_only=cur is None, if_match=cur.etag if cur is not None else None
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
        lp = self.p.local_path(a.path)
        w, details = _download(self.storage, a.path, lp, self.algorithm)
        fp = from_info(details) if isinstance(details, Mapping) else a.remote
        assert fp is not None
        kept: dict[str, Any] | None = None

        def still_as_planned() -> None:
            nonlocal kept
            if not _same_local(_local_now(lp), a.local):
                raise RaceConflict(f"{a.path}: changed locally during the sync; nothing overwritten")
            if a.keep == "local" and os.path.lexists(lp):
                dest = _free_name(lp, self.stamp)
                os.replace(lp, dest)
                kept = {"path": a.path, "side": "local",
                        "conflict_copy": os.path.relpath(dest, self.p.root).replace(os.sep, "/")}  # fmt: skip

        with w:
            digest, size = w.commit(check=still_as_planned)
        if fp.size != size:
            fp = Fingerprint(size=size, etag=fp.etag, md5=fp.md5, version_id=fp.version_id, mtime=fp.mtime)
        return sp.BaseEntry(size=size, remote=fp, local_hash=digest, mtime_ns=os.stat(lp).st_mtime_ns), kept

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


def execute(
    prep: Prepared,
    *,
    jobs: int | None = None,
    progress: bool | None = None,
    on_item: Callable[[sp.Action], None] | None = None,
) -> SyncResult:
    """Carry out ``prep.plan``; the base manifest records every step that succeeded."""
    result = SyncResult(prep)
    plan = prep.plan
    if plan.blocked:
        return result
    updates: dict[str, sp.BaseEntry | None] = {}
    for a in plan.actions:
        if a.kind == sp.ADOPT:
            assert a.local is not None and a.remote is not None
            updates[a.path] = sp.BaseEntry(a.local.size, a.remote, a.local.hash, a.local.mtime_ns)
        elif a.kind == sp.REFRESH:
            assert a.local is not None
            b = prep.base[a.path]
            updates[a.path] = sp.BaseEntry(a.local.size, b.remote, a.local.hash, a.local.mtime_ns)
        elif a.kind == sp.FORGET:
            updates[a.path] = None
        else:
            continue
        result.done.append(a)
    ex = _Executor(prep, utc_stamp())

    def work(a: sp.Action) -> tuple[sp.BaseEntry | None, dict[str, Any] | None]:
        out = ex.run(a)
        if on_item is not None:
            on_item(a)
        return out

    try:
        outcome = run_parallel(
            plan.transfers,
            work,
            jobs=jobs or prep.project.jobs,
            label=f"sync {prep.spec.name}",
            progress=progress,
        )
        for a, (entry, kept) in outcome.done.items():
            updates[a.path] = entry
            result.done.append(a)
            if kept:
                result.kept.append(kept)
        for a, err in outcome.failed.items():
            if isinstance(err, RaceConflict):
                result.races[a.path] = str(err)
            else:
                result.failed[a.path] = err
    finally:
        prep.manifest.write(updates)
        prep.manifest.set_meta("url", prep.spec.url)
        prep.manifest.set_meta("synced_at", utc_stamp())
    result.done.sort(key=lambda x: x.path)
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
) -> SyncResult:
    if dry_run:
        return SyncResult(prepare(project, name, prefer=prefer, delete=delete, jobs=jobs))
    with clone_lock(project.repo.data_dir, f"storage-{name}", f"storage sync {name}"):
        prep = prepare(project, name, prefer=prefer, delete=delete, jobs=jobs)
        return execute(prep, jobs=jobs, progress=progress)


# -- stage / unstage ----------------------------------------------------------------


def _link_location(project: Project, spec: storages_mod.StorageSpec, location: str) -> None:
    target = os.path.abspath(os.path.expanduser(location))
    link = storages_mod.project_path(project, spec)
    parent, _, _leaf = spec.to.rpartition("/")
    safepath.checked_dir(project.root, parent, what=f"storage {spec.name!r}")  # no foreign link on the way
    os.makedirs(target, exist_ok=True)
    if os.path.islink(link):
        if os.path.realpath(link) == os.path.realpath(target):
            return
        os.unlink(link)
    elif os.path.isdir(link):
        if os.listdir(link):
            raise SyncRefused(
                f"{spec.to} already holds files; unstage it (`git data storage unstage {spec.name}`) "
                "before staging it to another --location"
            )
        os.rmdir(link)
    elif os.path.lexists(link):
        raise SyncRefused(f"{spec.to} exists and is not a folder; move it away first")
    os.symlink(target, link, target_is_directory=True)
    storages_mod.set_location(project, spec.name, target)


def stage(
    project: Project,
    name: str,
    *,
    paths: Iterable[str] = (),
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    location: str | None = None,
    jobs: int | None = None,
    progress: bool | None = None,
) -> SyncResult | None:
    """Copy a storage (or some of its folders) down and record the base manifest.

    Staging again widens the staged folders; files already here are compared,
    not overwritten (a difference is a conflict). Returns ``None`` for
    ``reference`` mode, where nothing is copied.
    """
    with clone_lock(project.repo.data_dir, f"storage-{name}", f"storage stage {name}"):
        return _stage(project, name, paths=paths, include=include, exclude=exclude, location=location,
                      jobs=jobs, progress=progress)


def _stage(
    project: Project, name: str, *, paths: Iterable[str], include: Iterable[str], exclude: Iterable[str],
    location: str | None, jobs: int | None, progress: bool | None,
) -> SyncResult | None:
    spec = storages_mod.get(project, name)
    if spec.mode == "reference":
        return None
    if spec.mode == "mount":
        raise SyncRefused(
            f"storage {name!r} is in mount mode, which this version cannot mount yet; "
            f"use copy mode (`git config -f .gitdata storage.{name}.mode copy`) or reference mode"
        )
    manifest = manifest_for(project, name)
    old = manifest.scope() if manifest.exists() else None
    new_paths = tuple(sorted({p.strip("/") for p in paths if p.strip("/")}))
    if old is not None:
        # the whole storage stays whole; staging it whole widens any partial scope
        both = bool(old.paths) and bool(new_paths)
        new_paths = tuple(sorted(set(old.paths) | set(new_paths))) if both else ()
    scope = sp.Scope(
        paths=new_paths,
        include=tuple(include) or (old.include if old else ()),
        exclude=tuple(exclude) or (old.exclude if old else ()),
    )
    if location:
        _link_location(project, spec, location)
    storages_mod.checked_local_dir(project, spec, create=True)
    prep = prepare(project, name, jobs=jobs, scope=scope)
    manifest.set_scope(scope)
    manifest.set_meta("url", spec.url)
    return execute(prep, jobs=jobs, progress=progress)


def unsynced_local(project: Project, name: str) -> list[tuple[str, str]]:
    """``(path, "new"|"changed")`` of local files the remote does not have yet."""
    spec = storages_mod.get(project, name)
    manifest = manifest_for(project, name)
    base = manifest.load()
    local = scan_local(storages_mod.checked_local_dir(project, spec, create=False), base, manifest.scope(), project.algorithm)
    out = []
    for path, lo in sorted(local.items()):
        state = sp.local_state(base.get(path), lo)
        if state in (sp.NEW, sp.CHANGED):
            out.append((path, state))
    return out


def unstage(project: Project, name: str) -> dict[str, Any]:
    """Remove the local copy; refuses while any local file is not synced."""
    spec = storages_mod.get(project, name)
    manifest = manifest_for(project, name)
    if not manifest.exists():
        raise NotStaged(f"storage {name!r} is not staged in this clone; nothing to unstage")
    pending = unsynced_local(project, name)
    if pending:
        listed = ", ".join(f"{p} ({s})" for p, s in pending[:10])
        more = f" and {len(pending) - 10} more" if len(pending) > 10 else ""
        raise Unsynced(
            f"storage {name!r} has local changes that are not synced: {listed}{more}; "
            f"run `git data storage sync {name}` first (or move those files away)"
        )
    root = storages_mod.checked_local_dir(project, spec, create=False)
    base = manifest.load()
    removed = 0
    for path in base:
        try:
            lp = safepath.checked_target(root, path, create=False)
        except (safepath.UnsafePath, FileNotFoundError):
            continue  # never delete through a link, nor outside the folder
        if os.path.isfile(lp) and not os.path.islink(lp):
            os.unlink(lp)
            removed += 1
            _prune_empty_dirs(os.path.dirname(lp), root)
    left = os.path.isdir(root) and bool(os.listdir(root))
    if not left and os.path.isdir(root):
        os.rmdir(root)
    link = storages_mod.project_path(project, spec)
    if os.path.islink(link) and not left:
        os.unlink(link)
        storages_mod.set_location(project, name, None)
    manifest.drop()
    return {"storage": name, "removed": removed, "kept_unknown_files": left}


def is_staged(project: Project, name: str) -> bool:
    return manifest_for(project, name).exists()


# -- status ------------------------------------------------------------------------


def storage_status(project: Project, names: Iterable[str] | None = None, remote: bool = False) -> list[dict]:
    """Files of staged storages that changed since the base (locally; remotely with ``remote``).

    One row per changed file: ``{"storage", "path", "side", "state"}``.
    """
    specs = storages_mod.load_all(project)
    rows: list[dict] = []
    for name in sorted(names or specs):
        spec = storages_mod.get(project, name)
        manifest = manifest_for(project, name)
        if spec.mode != "copy" or not manifest.exists():
            continue
        scope = manifest.scope()
        base = {p: e for p, e in manifest.load().items() if scope.contains(p)}
        local = scan_local(storages_mod.checked_local_dir(project, spec, create=False), base, scope, project.algorithm)
        for path in sorted(set(base) | set(local)):
            state = sp.local_state(base.get(path), local.get(path))
            if state not in (sp.SAME, sp.NONE):
                rows.append({"storage": name, "path": path, "side": "local", "state": state})
        if remote:
            listing = list_remote(storages_mod.open_remote(project, spec), scope)
            for path in sorted(set(base) | set(listing)):
                state = sp.remote_state(base.get(path), listing.get(path))
                if state not in (sp.SAME, sp.NONE):
                    rows.append({"storage": name, "path": path, "side": "remote", "state": state})
    return rows


def status_rows(project: Project, options: Any) -> list[Any]:
    """The storages section of ``git data status`` (a provider for :data:`gitdata.status.SECTIONS`)."""
    from . import status as st

    specs = storages_mod.load_all(project)
    names = [n for n in specs if not options.names or n in options.names]
    local_words = {sp.CHANGED: st.MODIFIED, sp.NEW: st.NOT_PUSHED, sp.DELETED: st.MISSING}
    rows: dict[tuple[str, str], Any] = {}
    for r in storage_status(project, names, remote=options.remote):
        key = (r["storage"], r["path"])
        row = rows.setdefault(key, st.StatusRow("storages", r["storage"], r["path"], None))
        if r["side"] == "local":
            row.local = local_words[r["state"]]
        else:
            row.remote = r["state"]
    return [rows[k] for k in sorted(rows)]


# -- reporting -----------------------------------------------------------------------


def fp_json(fp: Fingerprint | None) -> dict[str, Any] | None:
    return None if fp is None else {k: v for k, v in asdict(fp).items() if v is not None}


def plan_json(prep: Prepared) -> dict[str, Any]:
    plan = prep.plan
    return {
        "storage": prep.spec.name,
        "url": prep.storage.display,
        "blocked": plan.blocked,
        "actions": [
            {"action": a.kind, "path": a.path, "reason": a.reason, "keep": a.keep}
            for a in plan.actions
            if a.kind != sp.REFRESH
        ],
        "conflicts": [
            {
                "path": c.path,
                "kind": c.kind,
                "local": None if c.local is None else {"size": c.local.size, "hash": c.local.hash},
                "remote": fp_json(c.remote),
            }
            for c in plan.conflicts
        ],
        "pending": [{"path": p, "reason": r} for p, r in plan.pending],
        "refused": [{"key": k, "error": why} for k, why in sorted(prep.refused.items())],
        "resolved": [{"path": p, "resolution": r} for p, r in plan.resolved],
        "counts": plan.counts(),
    }


def result_json(res: SyncResult, dry_run: bool) -> dict[str, Any]:
    out = plan_json(res.prepared)
    out["dry_run"] = dry_run
    out["ok"] = res.ok
    if not dry_run:
        out["done"] = len([a for a in res.done if a.kind in sp.TRANSFERS])
        out["failed"] = [{"path": p, "error": str(e)} for p, e in sorted(res.failed.items())]
        out["races"] = [{"path": p, "error": e} for p, e in sorted(res.races.items())]
        out["kept"] = res.kept
    return out
