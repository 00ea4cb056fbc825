"""Read any tracked file without staging it: :func:`open_file` and the ``gitdata://`` filesystem.

For each tracked path the bytes come from the first place that has them:

1. a staged copy in the work tree (copy mode or ``--location``) of the
   recorded size; it is read whole only if it hashes to the recorded oid (or,
   for a registered file, to the content staged for it);
2. the local cache (the project's own data, by oid);
3. the data remote, or the dataset's own storage, that ``git clone`` would use;
4. a registered file's source, **pinned to the recorded version** (version
   id, GCS generation) where the backend keeps versions; elsewhere the
   source's fingerprint is compared on open and a change raises
   :class:`SourceChanged` unless ``allow_changed=True``.

Plain git files (not pointers) are read from git. Every reader is bounded
by the recorded size and, when a file is read whole from its start, checks
the recorded oid at the end: a mismatch raises instead of returning the
last bytes, so no wrong byte reaches the caller silently. Range reads fetch
blocks of ``block_size`` (default 4 MiB) with read-ahead.

There is no hidden global state: the filesystem is not kept in fsspec's
instance cache (two projects or revisions never share one), and storages
opened in a parent process are dropped after ``fork`` (dask workers).
"""

from __future__ import annotations

import io
import os
import posixpath
import threading
from dataclasses import dataclass
from typing import Any, BinaryIO

from fsspec.spec import AbstractFileSystem

from . import datasets as ds_mod
from .errors import GitDataError
from .hashing import new_hasher
from .pointer import Pointer
from .project import Project
from .scan import _scan_blobs
from .storage import ObjectNotFound, PreconditionFailed, Storage, oid_to_key
from .storage.errors import translate
from .storage.fingerprint import Fingerprint, compare

DEFAULT_BLOCK = 4 << 20
MAX_BLOCK = 64 << 20  # the largest block a sequential read grows to


class SourceChanged(GitDataError):
    """A registered file's source is no longer what was recorded, and no recorded version can be read."""


class ReadOnlyFileSystem(GitDataError, PermissionError):
    """``gitdata://`` is read-only: data is written through storages."""


class CorruptData(GitDataError):
    """The bytes read are not the recorded content (oid or size)."""


@dataclass(frozen=True)
class TrackedFile:
    path: str
    blob: str  # git blob id of the pointer (or of the plain file)
    size: int | None
    pointer: Pointer | None  # None: a plain git file
    malformed: str | None = None


class Snapshot:
    """The tracked paths of the index (``rev=None``) or of a commit, with their folders."""

    def __init__(self, project: Project, rev: str | None = None, paths: list[str] | None = None,
                 prefix: str | None = None) -> None:  # fmt: skip
        """``paths``: only these files (one ``gitdata.open`` needs one entry, not the whole index);
        ``prefix``: only the files under this folder (a dataset mount)."""
        repo = project.repo
        self.commit = None
        if rev is not None:
            commit = repo.rev_parse(rev)
            if commit is None:
                raise FileNotFoundError(f"no commit {rev!r} in {project.root}")
            self.commit = commit
        if paths is not None and all("\n" not in p for p in paths):
            # a few paths (gitdata.open): two git processes, not a scan of the whole index
            pairs, pointers, malformed, sizes = _few(repo, self.commit, paths)
        else:
            some = paths or ([prefix.strip("/")] if prefix and prefix.strip("/") else ())
            pairs = list(repo.ls_index(some)) if rev is None else list(repo.ls_tree(self.commit or "", some))
            scan = _scan_blobs(repo, pairs)
            pointers = {f.path: f.pointer for f in scan.found}
            malformed = scan.malformed
            sizes = {sha: n for sha, (_t, n) in repo.blob_sizes(sha for p, sha in pairs if p not in pointers).items()}
        self.files: dict[str, TrackedFile] = {}
        self.dirs: dict[str, set[str]] = {"": set()}
        for path, sha in pairs:
            p = pointers.get(path)
            if p is not None:
                tf = TrackedFile(path, sha, p.size, p)
            else:
                tf = TrackedFile(path, sha, sizes.get(sha, 0), None, malformed.get(path))
            self.files[path] = tf
            parent = ""
            for part in path.split("/")[:-1]:
                child = f"{parent}/{part}" if parent else part
                self.dirs.setdefault(parent, set()).add(child)
                self.dirs.setdefault(child, set())
                parent = child
            self.dirs.setdefault(parent, set()).add(path)


def _few(repo: Any, commit: str | None, paths: list[str]) -> tuple[
    list[tuple[str, str]], dict[str, Pointer], dict[str, str], dict[str, int]
]:
    """``(pairs, pointers, malformed, sizes)`` of ``paths`` in the index (``:path``) or a commit
    (``commit:path``): one ``cat-file --batch-check`` and one ``--batch`` of the small blobs."""
    from .pointer import MAGIC, MAX_SIZE, PointerError, parse

    prefix = commit or ""
    out = repo.git("cat-file", "--batch-check", input="".join(f"{prefix}:{p}\n" for p in paths).encode())
    found = []
    for path, line in zip(paths, out.decode().splitlines()):
        fields = line.split()
        if len(fields) == 3 and fields[1] == "blob":
            found.append((path, fields[0], int(fields[2])))
    blobs = repo.read_blobs([sha for _p, sha, n in found if n < MAX_SIZE])
    pointers: dict[str, Pointer] = {}
    malformed: dict[str, str] = {}
    for path, sha, _n in found:
        data = blobs.get(sha)
        if data is not None and data.startswith(MAGIC):
            try:
                pointers[path] = parse(data)
            except PointerError as err:
                malformed[path] = str(err)
    return [(p, sha) for p, sha, _n in found], pointers, malformed, {sha: n for _p, sha, n in found}


class _Reader(io.RawIOBase):
    """A bounded, verifying reader over ``raw`` (any seekable binary file)."""

    def __init__(self, raw: BinaryIO, path: str, size: int | None, oid: str | None, where: str,
                 on_whole: Any = None) -> None:  # fmt: skip
        super().__init__()
        self._raw = raw
        self.path = path
        self.size = size
        self.oid = oid
        self.where = where
        self._pos = 0
        self._hasher = new_hasher(oid.split(":", 1)[0]) if oid else None
        self._hashed = 0  # bytes read so far from the start, in order (hashed, and fed to on_whole)
        self._broken = False  # the sequential read from the start was interrupted by a seek
        self._raw_pos = 0
        self._on_whole = on_whole  # called with each chunk of a whole sequential read (lazy caching)
        self._base_block: int | None = None
        self.max_block = MAX_BLOCK  # a Reader may cap how far sequential reads grow the block

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            if self.size is None:
                raise OSError(f"{self.path}: size unknown, cannot seek from the end")
            pos = self.size + offset
        else:
            raise ValueError(f"bad whence {whence}")
        if pos < 0:
            raise ValueError("negative seek position")
        self._pos = pos
        return pos

    def _fail(self, message: str) -> CorruptData:
        self._hasher = None
        self._on_whole = None
        return CorruptData(f"{self.path}: {message} (read from {self.where}); nothing more was returned")

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        want = len(view)
        if self.size is not None:
            want = min(want, max(0, self.size - self._pos))
        if want == 0:
            self._at_end()
            return 0
        if self._raw_pos != self._pos:
            self._raw.seek(self._pos)
            self._raw_pos = self._pos
            self._grow(reset=True)
        else:
            self._grow()
        try:
            data = self._raw.read(want)
        except GitDataError:
            raise
        except Exception as err:  # noqa: BLE001 - vendor errors mid-read, translated once
            raise translate(err, f"read {self.path}", self.where) from err
        n = len(data)
        if n == 0:
            if self.size is not None and self._pos < self.size:
                raise self._fail(f"the source ended after {self._pos} bytes, {self.size} are recorded")
            self._at_end()
            return 0
        if self._pos == self._hashed and not self._broken:
            if self._hasher is not None:
                self._hasher.update(data)
            if self._on_whole is not None:
                self._on_whole(data)
            self._hashed += n
        elif self._pos > self._hashed:
            self._broken = True  # skipped ahead: this read is not a whole one any more
        view[:n] = data
        self._pos += n
        self._raw_pos += n
        if self.size is not None and self._pos >= self.size:
            self._check_extra()
            self._at_end()
        return n

    def _grow(self, reset: bool = False) -> None:
        """Sequential reads fetch ever larger blocks (up to 64 MiB); a seek starts small again.

        A range read then transfers one small block, and a whole read needs few
        requests (each costs a round trip and the server's open). Works on
        fsspec's block caches (``cache.blocksize``); other files are left alone.
        """
        cache = getattr(self._raw, "cache", None)
        size = getattr(cache, "blocksize", None)
        if not isinstance(size, int):
            return
        if self._base_block is None:
            self._base_block = size
        cache.blocksize = self._base_block if reset else min(self.max_block, size * 2)

    def _check_extra(self) -> None:
        """The recorded size is reached: the source must hold nothing more."""
        if self._raw.read(1):
            raise self._fail(f"the source holds more than the {self.size} recorded bytes")
        self._raw_pos = -1  # unknown now: the next read seeks

    def readall(self) -> bytes:
        chunks = []
        while True:
            buf = bytearray(1 << 20)
            n = self.readinto(buf)
            if not n:
                return b"".join(chunks)
            chunks.append(bytes(buf[:n]))

    def _at_end(self) -> None:
        if self._broken or self._hashed != self._pos:
            return
        if self.size is not None and self._hashed != self.size:
            return
        if self._hasher is not None and self.oid is not None:
            got = f"{self.oid.split(':', 1)[0]}:{self._hasher.hexdigest()}"
            self._hasher = None
            if got != self.oid:
                raise self._fail(f"content hashes to {got}, the recorded oid is {self.oid}")
        if self._on_whole is not None:
            done, self._on_whole = self._on_whole, None
            done(None)  # whole (and verified, where an oid is recorded)

    def close(self) -> None:
        if not self.closed:
            try:
                self._raw.close()
            finally:
                super().close()


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
                    self._storages[key] = ds_mod.open_source(self.project, ds, url, versioned=versioned)
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
            return io.BufferedReader(_Reader(io.BytesIO(data), path, len(data), None, "git"), self.block_size)
        return io.BufferedReader(self._open_raw(tf), buffer_size=min(self.block_size, 1 << 20))

    def _open_raw(self, tf: TrackedFile) -> _Reader:
        p = tf.pointer
        assert p is not None
        staged = self.staged_path(tf)
        if staged is not None:
            expect = p.oid or self.project.state.staged_oids([tf.path]).get(tf.path)
            if expect is not None:
                return _Reader(open(staged, "rb"), tf.path, p.size, expect, "the work tree")  # noqa: SIM115
        if p.oid is not None:
            cache = self.project.cache
            if cache.has(p.oid):
                return _Reader(cache.open(p.oid), tf.path, p.size, p.oid, "the local cache")
            return self._open_object(tf)
        return self._open_registered(tf)

    def _open_object(self, tf: TrackedFile) -> _Reader:
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
            on_whole = _CacheFill(self.project, p.oid)
        return _Reader(raw, tf.path, p.size, p.oid, f"{storage.display}/{key}", on_whole)

    def _cached_registered(self, tf: TrackedFile) -> str | None:
        """The content oid of a registered file kept in the cache for this very pointer, if any."""
        p = tf.pointer
        assert p is not None
        state = self.project.state
        oid = state.staged_oids([tf.path]).get(tf.path)
        if oid and state.staged_pointer(tf.path, oid) == p.encode() and self.project.cache.has(oid):
            return oid
        return None

    def _open_registered(self, tf: TrackedFile) -> _Reader:
        from .datasets import (  # the staging code's version pinning
            check_registered_size,
            open_kwargs,
        )

        p = tf.pointer
        assert p is not None and p.source
        check_registered_size(tf.path, p)
        cached = self._cached_registered(tf)
        if cached is not None:
            return _Reader(self.project.cache.open(cached), tf.path, p.size, cached, "the local cache")
        fill = _RegisteredFill(self.project, tf.path, p) if self.cache == "local" else None
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
            current = recorded if self.read_checks_etag(storage, recorded) else self.fingerprint_now(storage, key)
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
                return _Reader(self._open_storage(storage, key, {}), tf.path, current.size, None, p.source)
            if storage.open_takes_size:
                kwargs = {"size": current.size}  # the fingerprint was just asked for: no second HEAD
            if recorded.etag:  # a reader that can send it makes the server refuse other bytes
                kwargs["if_match"] = recorded.etag
        try:
            raw = self._open_storage(storage, key, kwargs)
        except PreconditionFailed as err:  # the GET carried the recorded ETag, and it is not that any more
            raise SourceChanged(
                f"{tf.path}: its source {p.source} changed since it was recorded ({err}) and "
                f"{storage.display} keeps no versions; run `git data update` to record the new version"
            ) from err
        return _Reader(raw, tf.path, p.size, None, p.source + (f" (version {version})" if pinned else ""), fill)

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
            return storage.fs.open(path, "rb", block_size=self.block_size, cache_type="readahead", **kwargs)
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
            out.update({"oid": p.oid, "source": p.source, "fingerprint": {k: v for k, v in p.extra if k != "source"}})
            ds = self.dataset_of(path)
            out["dataset"] = ds.name if ds else None
            if ds is not None:
                from .datasets import current_mode

                out["mode"] = current_mode(self.project, ds.name)[0] or "copy"
            out["staged"] = self.staged_path(tf) is not None
        else:
            out.update({"oid": None, "source": None, "staged": True})
        return out


def _differs(recorded: Fingerprint, current: Fingerprint) -> str:
    parts = []
    for name in ("size", "etag", "md5", "version_id", "mtime"):
        a, b = getattr(recorded, name), getattr(current, name)
        if a is not None and b is not None and a != b:
            parts.append(f"{name} {a} -> {b}")
    return ", ".join(parts) or "fingerprint differs"


class _CacheFill:
    """Stores a whole, verified sequential read in the cache (``cache="local"``)."""

    def __init__(self, project: Project, oid: str) -> None:
        self.project = project
        self.oid = oid
        self.writer = None if project.cache.has(oid) else project.cache.writer(oid.split(":", 1)[0])

    def __call__(self, chunk: bytes | None) -> None:
        if self.writer is None:
            return
        if chunk is None:
            self.writer.commit(expected_oid=self.oid)
            self.writer = None
        else:
            self.writer.write(chunk)

    def __del__(self) -> None:  # an abandoned read leaves no temporary file
        if self.writer is not None:
            self.writer.abort()


class _RegisteredFill:
    """``cache="local"`` for a registered file: a whole read goes into the cache, and this clone
    remembers which content it is (as staging does), so the next read is local."""

    def __init__(self, project: Project, path: str, pointer: Pointer) -> None:
        self.project = project
        self.path = path
        self.pointer = pointer
        self.writer: Any = project.cache.writer(project.algorithm)

    def __call__(self, chunk: bytes | None) -> None:
        if self.writer is None:
            return
        if chunk is not None:
            self.writer.write(chunk)
            return
        oid, _size = self.writer.commit()
        self.writer = None
        self.project.state.record_staged([(self.path, oid, self.pointer.encode())])

    def __del__(self) -> None:
        if self.writer is not None:
            self.writer.abort()


def _project_path(project: Project, path: str, *, relative_to_cwd: bool) -> str:
    if relative_to_cwd:
        full = os.path.abspath(path)
        rel = os.path.relpath(full, project.root).replace(os.sep, "/")
        if rel == ".." or rel.startswith("../"):
            raise FileNotFoundError(f"{path} is outside the project {project.root}")
        return rel
    return path.strip("/")


def open_file(path: str, mode: str = "rb", *, repo: str | None = None, rev: str | None = None,
              allow_changed: bool = False, cache: str | None = None, encoding: str | None = None) -> Any:  # fmt: skip
    """Open tracked file ``path`` for reading, staged or not (``gitdata.open``).

    ``path`` is relative to the current folder (or to ``repo`` when given);
    ``rev`` reads the file as it was at a commit (``"HEAD~3"``, a tag).
    ``mode`` is ``"rb"`` or ``"r"`` (text, with ``encoding``).
    """
    if mode not in ("rb", "r", "rt"):
        raise ReadOnlyFileSystem(
            f"gitdata.open reads only (mode {mode!r}); write data into a storage "
            "(`git data storage add`) or into the project and `git add` it"
        )
    if repo is None:  # the project that holds the path (its nearest existing folder)
        where = os.path.dirname(os.path.abspath(path))
        while not os.path.isdir(where):
            where = os.path.dirname(where)
        project = Project.open(where)
    else:
        project = Project.open(repo)
    rel = _project_path(project, path, relative_to_cwd=repo is None)
    reader = Reader(project, rev, cache=cache, allow_changed=allow_changed, paths=[rel])
    f = reader.open(rel)
    if mode == "rb":
        return f
    return io.TextIOWrapper(f, encoding=encoding or "utf-8")


class GitDataFileSystem(AbstractFileSystem):
    """``gitdata://PATH``: the tracked files of a project, read-only.

    Options: ``repo`` (a folder inside the project, default the current
    one), ``rev`` (a commit; default the index), ``cache`` (``"local"``
    stores whole reads of the project's own objects in the cache),
    ``allow_changed``, ``block_size``.
    """

    protocol = "gitdata"
    root_marker = ""
    cachable = False  # never share an instance between projects or revisions

    def __init__(self, repo: str | None = None, rev: str | None = None, cache: str | None = None,
                 allow_changed: bool = False, block_size: int = DEFAULT_BLOCK, **kwargs: Any) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.repo = os.path.abspath(repo or os.getcwd())
        self.rev = rev
        self.reader = Reader(Project.open(self.repo), rev, cache=cache, allow_changed=allow_changed,
                             block_size=block_size)  # fmt: skip

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = str(path)
        if path.startswith("gitdata://"):
            path = path[len("gitdata://") :]
        return posixpath.normpath(path).strip("/") if path.strip("/") else ""

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        path = self._strip_protocol(path)
        snap = self.reader.snapshot
        if path in snap.files:
            entries = [path]
        elif path in snap.dirs:
            entries = sorted(snap.dirs[path])
        else:
            raise FileNotFoundError(f"{path} is not tracked in {self.repo}")
        if not detail:
            return entries
        return [self.info(e) for e in entries]

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        return self.reader.info(self._strip_protocol(path))

    def _open(self, path: str, mode: str = "rb", block_size: Any = None, autocommit: bool = True,
              cache_options: Any = None, **kwargs: Any) -> Any:  # fmt: skip
        if mode != "rb":
            raise ReadOnlyFileSystem(
                f"gitdata:// is read-only (mode {mode!r} for {path}); write into a mapped storage "
                "instead (`git data storage add NAME URL`, then write under its folder and "
                "`git data storage sync`)"
            )
        return self.reader.open(self._strip_protocol(path))

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        with self.open(path, "rb") as f:
            if start is None and end is None:
                return f.read()
            size = self.info(path)["size"]
            start = 0 if start is None else (start if start >= 0 else max(0, size + start))
            end = size if end is None else (end if end >= 0 else max(0, size + end))
            f.seek(start)
            return f.read(max(0, end - start))

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise ReadOnlyFileSystem(
            "gitdata:// is read-only; write into a mapped storage (`git data storage add NAME URL`)"
        )

    mkdir = makedirs = rm_file = _rm = rm = touch = mv = cp_file = put_file = pipe_file = _refuse  # type: ignore[assignment]

    def __reduce__(self) -> Any:  # dask ships the filesystem to its workers
        r = self.reader
        return (GitDataFileSystem, (self.repo, self.rev, r.cache, r.allow_changed, r.block_size))
