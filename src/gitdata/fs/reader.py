"""Opens the tracked files of one project at one revision: staged copy, cache, data remote or source."""

from __future__ import annotations

import io
import os
import threading
from typing import Any, BinaryIO

from .. import datasets as ds_mod
from ..datasets.manifest import NAME as MANIFEST_NAME
from ..errors import GitDataError
from ..project import Project
from ..storage import ObjectNotFound, PreconditionFailed, Storage, oid_to_key
from ..storage.errors import translate
from ..storage.fingerprint import Fingerprint, compare
from .snapshot import Snapshot, TrackedFile
from .verified import CacheFill, RegisteredFill, VerifiedReader

DEFAULT_BLOCK = 4 << 20


class SourceChanged(GitDataError):
    """A registered file's source is no longer what was recorded, and no recorded version can be read."""


class Reader:
    """Opens tracked files of one project (at one revision) for reading."""

    def __init__(self, project: Project, rev: str | None = None, *, cache: str | None = None,
                 allow_changed: bool = False, block_size: int = DEFAULT_BLOCK,
                 paths: list[str] | None = None, prefix: str | None = None) -> None:  # fmt: skip
        self.project = project
        self.rev = rev
        self.snapshot = Snapshot(project, rev, paths, prefix)
        self.cache = cache if cache is not None else str(project.setting("gitdata.api.cache"))
        if self.cache not in ("none", "local"):
            raise GitDataError(f"cache={self.cache!r}: use 'none' or 'local' (gitdata.api.cache)")
        self.allow_changed = allow_changed
        self.block_size = block_size
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._storages: dict[tuple[str, bool], Storage] = {}
        self._datasets: list[ds_mod.Dataset] | None = None

    # -- where things are ---------------------------------------------------
    def datasets(self) -> list[ds_mod.Dataset]:
        if self._datasets is None:
            self._datasets = list(ds_mod.load_all(self.project).values())
        return self._datasets

    def dataset_of(self, path: str) -> ds_mod.Dataset | None:
        return next((d for d in self.datasets() if d.contains(path)), None)

    def entry(self, path: str) -> TrackedFile:
        tf = self.snapshot.files.get(path)
        if tf is None:
            for folder in _folders_above(path):  # recorded by a manifest that was refused?
                m = self.snapshot.files.get(f"{folder}/{MANIFEST_NAME}")
                if m is not None and m.malformed:
                    raise GitDataError(f"{path}: not read: {m.path}: {m.malformed}")
            where = f"at {self.rev}" if self.rev else "in the index"
            raise FileNotFoundError(f"{path} is not a file tracked {where} of {self.project.root}")
        return tf

    def _storage(self, url: str, ds: ds_mod.Dataset | None, versioned: bool) -> Storage:
        with self._lock:
            if self._pid != os.getpid():  # forked: sessions of the parent are not ours
                self._storages.clear()
                self._pid = os.getpid()
            key = (url, versioned)
            if key not in self._storages:
                if ds is not None:
                    self._storages[key] = ds_mod.open_source(
                        self.project, ds, url, versioned=versioned
                    )
                else:
                    self._storages[key] = self.project.storage()
            return self._storages[key]

    def staged_path(self, tf: TrackedFile) -> str | None:
        """The work-tree (or --location) copy of ``tf``, if one of the recorded size is there."""
        if self.rev is not None and self.snapshot.commit != self.project.repo.rev_parse("HEAD"):
            index = self.project.repo.git("ls-files", "-s", "--", tf.path).decode().split()
            if len(index) < 2 or index[1] != tf.blob:
                return None  # the index holds another version than the one asked for
        full = os.path.join(self.project.root, tf.path)
        try:
            st = os.stat(full)  # follows a --location link, as the user's own reads do
        except OSError:
            return None
        if tf.size is None or st.st_size != tf.size or not os.path.isfile(full):
            return None
        return full

    # -- opening ----------------------------------------------------------------
    def open(self, path: str) -> BinaryIO:
        tf = self.entry(path)
        if tf.malformed:
            raise GitDataError(f"{path}: malformed gitdata pointer: {tf.malformed}")
        if tf.pointer is None:
            data = self.project.repo.read_blobs([tf.blob]).get(tf.blob, b"")
            return io.BufferedReader(
                VerifiedReader(io.BytesIO(data), path, len(data), None, "git"), self.block_size
            )
        return io.BufferedReader(self._open_raw(tf), buffer_size=min(self.block_size, 1 << 20))

    def _open_raw(self, tf: TrackedFile) -> VerifiedReader:
        p = tf.pointer
        assert p is not None
        staged = self.staged_path(tf)
        if staged is not None:
            expect = p.oid or self.project.state.staged_oids([tf.path]).get(tf.path)
            if expect is not None:
                return VerifiedReader(open(staged, "rb"), tf.path, p.size, expect, "the work tree")  # noqa: SIM115
        if p.oid is not None:
            cache = self.project.cache
            if cache.has(p.oid):
                return VerifiedReader(cache.open(p.oid), tf.path, p.size, p.oid, "the local cache")
            return self._open_object(tf)
        return self._open_registered(tf)

    def _open_object(self, tf: TrackedFile) -> VerifiedReader:
        p = tf.pointer
        assert p is not None and p.oid is not None
        ds = self.dataset_of(tf.path)
        if ds is not None and ds.storage:
            store = ds_mod.object_store_for(self.project, ds)
            storage = store.storage
        else:
            storage = self._storage("", None, False)
        key = oid_to_key(p.oid)
        raw = self._open_storage(storage, key, {})
        on_whole = None
        if self.cache == "local":
            on_whole = CacheFill(self.project, p.oid)
        return VerifiedReader(raw, tf.path, p.size, p.oid, f"{storage.display}/{key}", on_whole)

    def _cached_registered(self, tf: TrackedFile) -> str | None:
        """The content oid of a registered file kept in the cache for this very pointer, if any."""
        p = tf.pointer
        assert p is not None
        state = self.project.state
        oid = state.staged_oids([tf.path]).get(tf.path)
        if oid and state.staged_pointer(tf.path, oid) == p.encode() and self.project.cache.has(oid):
            return oid
        return None

    def _open_registered(self, tf: TrackedFile) -> VerifiedReader:
        from ..datasets import (  # the staging code's version pinning
            check_registered_size,
            open_kwargs,
        )

        p = tf.pointer
        assert p is not None and p.source
        check_registered_size(tf.path, p)
        cached = self._cached_registered(tf)
        if cached is not None:
            return VerifiedReader(
                self.project.cache.open(cached), tf.path, p.size, cached, "the local cache"
            )
        fill = RegisteredFill(self.project, tf.path, p) if self.cache == "local" else None
        ds = self.dataset_of(tf.path) or ds_mod.Dataset(name="", path="")
        root, key = ds_mod.split_source(ds, p.source, tf.path)
        version = p.get("version-id")
        storage = self._storage(root, ds, bool(version))
        kwargs = open_kwargs(storage, version)
        pinned = bool(kwargs)
        if not pinned:
            recorded = Fingerprint.from_pointer_fields(p.size, dict(p.extra))
            # a reader whose GET carries the recorded ETag (and checks the answer's)
            # needs no look-up first: the server refuses other bytes itself
            current = (
                recorded
                if self.read_checks_etag(storage, recorded)
                else self.fingerprint_now(storage, key)
            )
            if current is None:
                if not self.allow_changed:
                    raise SourceChanged(f"{tf.path}: its source {p.source} was deleted")
                raise FileNotFoundError(f"{tf.path}: its source {p.source} was deleted")
            if compare(recorded, current) == "changed":
                if not self.allow_changed:
                    raise SourceChanged(
                        f"{tf.path}: its source {p.source} changed since it was recorded "
                        f"({_differs(recorded, current)}) and {storage.display} keeps no versions; "
                        "pass allow_changed=True to read it as it is now, or run `git data update` "
                        "to record the new version"
                    )
                return VerifiedReader(
                    self._open_storage(storage, key, {}), tf.path, current.size, None, p.source
                )
            if storage.open_takes_size:
                kwargs = {
                    "size": current.size
                }  # the fingerprint was just asked for: no second HEAD
            if recorded.etag:  # a reader that can send it makes the server refuse other bytes
                kwargs["if_match"] = recorded.etag
        try:
            raw = self._open_storage(storage, key, kwargs)
        except (
            PreconditionFailed
        ) as err:  # the GET carried the recorded ETag, and it is not that any more
            raise SourceChanged(
                f"{tf.path}: its source {p.source} changed since it was recorded ({err}) and "
                f"{storage.display} keeps no versions; run `git data update` to record the new version"
            ) from err
        return VerifiedReader(
            raw, tf.path, p.size, None, p.source + (f" (version {version})" if pinned else ""), fill
        )

    def read_checks_etag(self, storage: Storage, recorded: Fingerprint) -> bool:
        """Whether this reader's GET of ``storage`` sends ``recorded``'s ETag and
        refuses an answer with another one (then no look-up is made first)."""
        return False

    def fingerprint_now(self, storage: Storage, key: str) -> Fingerprint | None:
        """The source object's fingerprint now (one HEAD); None if it is gone."""
        try:
            return storage.info(key)
        except ObjectNotFound:
            return None

    def _open_storage(self, storage: Storage, key: str, kwargs: dict[str, Any]) -> BinaryIO:
        """``kwargs``: the version keyword, ``size`` (spares a HEAD) and ``if_match`` (the
        recorded ETag: fsspec's files cannot send it, a mount's streams do)."""
        kwargs = {k: v for k, v in kwargs.items() if k != "if_match"}
        try:
            if storage.local_root is not None and not kwargs:
                return open(storage.path(key), "rb")  # noqa: SIM115 - the reader closes it
            kwargs = dict(kwargs)
            path = storage.versioned_path(key, kwargs)
            if path != storage.path(key) or (storage.version_kwarg or "") in kwargs:
                storage.forget_listing(key)
            return storage.fs.open(
                path, "rb", block_size=self.block_size, cache_type="readahead", **kwargs
            )
        except Exception as err:  # noqa: BLE001 - translated once, here
            raise translate(err, f"open {key}", storage.display, storage.name) from err

    # -- facts ------------------------------------------------------------------
    def info(self, path: str) -> dict[str, Any]:
        if path in self.snapshot.dirs and path not in self.snapshot.files:
            return {"name": path, "size": 0, "type": "directory"}
        tf = self.entry(path)
        out: dict[str, Any] = {"name": path, "size": tf.size, "type": "file", "blob": tf.blob}
        p = tf.pointer
        if p is not None:
            out.update(
                {
                    "oid": p.oid,
                    "source": p.source,
                    "fingerprint": {k: v for k, v in p.extra if k != "source"},
                }
            )
            ds = self.dataset_of(path)
            out["dataset"] = ds.name if ds else None
            if ds is not None:
                from ..datasets import current_mode

                out["mode"] = current_mode(self.project, ds.name)[0] or "copy"
            out["staged"] = self.staged_path(tf) is not None
        else:
            out.update({"oid": None, "source": None, "staged": True})
        return out


def _folders_above(path: str) -> list[str]:
    parts = path.split("/")[:-1]
    return ["/".join(parts[:i]) for i in range(len(parts), 0, -1)]


def _differs(recorded: Fingerprint, current: Fingerprint) -> str:
    parts = []
    for name in ("size", "etag", "md5", "version_id", "mtime"):
        a, b = getattr(recorded, name), getattr(current, name)
        if a is not None and b is not None and a != b:
            parts.append(f"{name} {a} -> {b}")
    return ", ".join(parts) or "fingerprint differs"
