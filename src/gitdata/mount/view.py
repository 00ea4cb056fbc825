"""The FUSE filesystem of a dataset mount: a read-only view over :class:`gitdata.fs.Reader`.

It shows exactly the dataset's files in the index, names and sizes from the
pointers, no bucket listing; when the index changes (``git checkout``,
``git switch``, ``git reset``), it shows the new index's files.
Bytes come through the Reader, so they are the recorded ones: the cache or
the data remote by oid, a registered source pinned to its recorded version,
and the Reader's block read-ahead. A registered source that changed where no
version is kept answers EIO for that file (and the path is logged); so does
any read whose bytes do not verify.

Runs under mfusepy (libfuse3 high-level API, one thread per request); each
open file has its own lock, so parallel reads of different files do not
wait for each other.
"""

from __future__ import annotations

import ctypes
import errno
import itertools
import logging
import os
import stat
import threading
import time
from collections import OrderedDict
from typing import Any

from mfusepy import FuseOSError, Operations

from ..errors import GitDataError
from ..fs import Reader, SourceChanged, TrackedFile
from ..project import Project
from ..storage import Storage
from ..storage.errors import translate
from ..storage.fingerprint import Fingerprint
from ..storage.stream import StreamBudget, StreamFile, can_stream, stream_opener
from . import tree as tree_mod

log = logging.getLogger("gitdata.mount")
READAHEAD = 8 << 20
BLOCK = 1 << 20  # read from the Reader in these, aligned
AHEAD = 4  # blocks read ahead per open file (and about twice as many kept)


MAX_REMOTE_BLOCK = 16 << 20  # sequential reads grow fsspec's block to this, not to 64 MiB
LISTING_TTL = 2.0  # seconds a folder listing answers "is the source still what was recorded"


class MountReader(Reader):
    """A Reader that never looks at the work tree: the work tree *is* the mount
    (a stat there from inside the mount process would call back into itself).

    Remote files are read through one streaming GET per sequential run where the
    backend has one (S3: :mod:`gitdata.storage.stream`), at most 8 of them open
    at once; elsewhere through fsspec's readahead cache, its block growing to 16
    MiB (not 64 MiB: a mount has many files open, and the handle above reads
    ahead on its own thread). Opening many registered files of one
    folder asks one listing of the folder (kept ``LISTING_TTL`` s) for their
    fingerprints instead of one HEAD each.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._listings: dict[tuple[int, str], tuple[float, dict[str, Fingerprint]]] = {}
        self._listing_lock = threading.Lock()
        self._streams = StreamBudget()  # open files hold at most this many connections

    def staged_path(self, tf: TrackedFile) -> str | None:
        return None

    def _open_raw(self, tf: TrackedFile) -> Any:
        raw = super()._open_raw(tf)
        raw.max_block = MAX_REMOTE_BLOCK
        return raw

    def _open_storage(self, storage: Storage, key: str, kwargs: dict[str, Any]) -> Any:
        """A streaming GET per sequential run where the backend has one (S3), else ranges.

        The kernel reads a file front to back in 128 KiB requests; range requests of
        16 MiB cost one round trip each (about a second each on ``rclone serve s3`` here:
        0.2x of ``rclone cat``), one GET streamed from the first byte costs one.
        """
        kw = {k: v for k, v in kwargs.items() if k != "size"}
        if storage.local_root is not None and not set(kw) - {"if_match"}:
            return super()._open_storage(storage, key, kwargs)
        try:
            opener = stream_opener(storage.fs, storage.versioned_path(key, kw), kw)
            if opener is None:
                return super()._open_storage(storage, key, kwargs)
            return StreamFile(opener, self._streams).start()
        except GitDataError:
            raise
        except Exception as err:  # noqa: BLE001 - translated once, here
            raise translate(err, f"open {key}", storage.display, storage.name) from err

    def warm(self) -> None:
        """Open (and close) one file of each dataset: imports, credentials, the storage client
        and its first connection are then ready before a user's first read (measured: the first
        MiB took 1.8-2 s without this, the next 127 MiB 2.5 s)."""
        seen: set[str] = set()
        for path, tf in self.snapshot.files.items():
            ds = self.dataset_of(path)
            key = ds.name if ds is not None else ""
            if key in seen or tf.pointer is None or tf.malformed:
                continue
            seen.add(key)
            try:
                self._open_raw(tf).close()
            except (GitDataError, OSError) as err:  # its own open reports it again, with the path
                log.info("warming up %s: %s", path, err)

    def read_checks_etag(self, storage: Storage, recorded: Fingerprint) -> bool:
        """Streamed reads (S3) send the recorded ETag as If-Match and compare the
        answer's: the look-up before them (a HEAD at a storage's top, which
        ``rclone serve s3`` answers only after hashing the whole object: 16 s at
        1 GiB) adds nothing there."""
        return bool(recorded.etag) and storage.local_root is None and can_stream(storage.fs)

    def fingerprint_now(self, storage: Storage, key: str) -> Fingerprint | None:
        folder = key.rpartition("/")[0]
        if not folder:  # the storage's top: its listing would be everything
            return super().fingerprint_now(storage, key)
        cache_key = (id(storage), folder)
        with self._listing_lock:
            hit = self._listings.get(cache_key)
        if hit is None or time.monotonic() - hit[0] > LISTING_TTL:
            started = time.monotonic()
            listing = {k: fp for k, fp in storage.list(folder + "/") if k.rpartition("/")[0] == folder}
            hit = (started, listing)
            with self._listing_lock:
                self._listings[cache_key] = hit
                while len(self._listings) > 256:
                    self._listings.pop(next(iter(self._listings)))
        return hit[1].get(key)


class _Handle:
    """One open file, read in aligned blocks with read-ahead on a thread of its own.

    A sequential reader gets its blocks from memory while the next ones are
    being fetched (the network wait overlaps the kernel's copying). The
    kernel sends requests on several threads, slightly out of order: kept
    blocks serve them, and the Reader underneath still sees one sequential
    stream (so a whole read is verified). A jump elsewhere is read directly
    and the read-ahead continues from there.
    """

    def __init__(self, f: Any, block: int = BLOCK, ahead: int = AHEAD) -> None:
        self.f = f
        self.block = block
        self.ahead = ahead
        self.keep = 2 * ahead + 2
        self.blocks: OrderedDict[int, bytes] = OrderedDict()
        self.cond = threading.Condition()
        self.io = threading.Lock()  # the one stream underneath
        self.next = 0  # the block the stream is at
        self.want = -1  # read ahead while next <= want
        self.eof: int | None = None  # index of the last (short) block, once seen
        self.error: BaseException | None = None
        self.running = False
        self.closed = False

    def _fetch(self, index: int) -> bytes:
        with self.io:
            start = index * self.block
            if self.f.tell() != start:
                self.f.seek(start)
            return self.f.read(self.block)

    def _store(self, index: int, data: bytes) -> None:  # holds cond
        self.blocks[index] = data
        self.blocks.move_to_end(index)
        while len(self.blocks) > self.keep:
            self.blocks.popitem(last=False)
        if len(data) < self.block:
            self.eof = index
        self.cond.notify_all()

    def _produce(self) -> None:
        while True:
            with self.cond:
                done = self.eof is not None and self.next > self.eof
                if self.error or self.closed or done or self.next > self.want:
                    self.running = False
                    self.cond.notify_all()
                    return
                index = self.next
            try:
                data = self._fetch(index)
            except BaseException as err:  # noqa: BLE001 - handed to the reader that waits
                with self.cond:
                    self.error = err
                    self.running = False
                    self.cond.notify_all()
                return
            with self.cond:
                if self.next == index:
                    self.next = index + 1
                self._store(index, data)

    def _get(self, index: int) -> bytes:
        with self.cond:
            if self.next - self.keep <= index <= self.next + self.ahead:  # sequential, more or less
                self.want = max(self.want, index + self.ahead)
                if not self.running and not self.closed:
                    self.running = True
                    threading.Thread(target=self._produce, name="gitdata-readahead", daemon=True).start()
            while True:
                if index in self.blocks:
                    self.blocks.move_to_end(index)
                    return self.blocks[index]
                if self.error is not None:
                    raise self.error
                if self.eof is not None and index > self.eof:
                    return b""
                if not (self.running and self.next <= index <= self.next + self.ahead):
                    break
                self.cond.wait()
        data = self._fetch(index)  # a jump: read it here; the read-ahead goes on from there
        with self.cond:
            self.next = max(self.next, index + 1) if self.running else index + 1
            self._store(index, data)
        return data

    def read(self, offset: int, size: int) -> bytes:
        out = []
        while size > 0:
            index, within = divmod(offset, self.block)
            data = self._get(index)
            piece = data[within : within + size]
            if not piece:
                break
            out.append(piece)
            offset += len(piece)
            size -= len(piece)
            if len(data) < self.block:
                break
        return b"".join(out)

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.blocks.clear()
            self.cond.notify_all()
        with self.io:
            self.f.close()


class _Generation:
    """What the mount shows for one state of the index: reader, tree, per-file mtimes."""

    def __init__(self, project: Project, folder: str, sig: tuple, prev: _Generation | None) -> None:
        self.sig = sig
        self.reader = MountReader(project, None, prefix=folder)
        snap = self.reader.snapshot
        self.tree = tree_mod.build(folder, ((p, tf.size) for p, tf in snap.files.items()))
        self.ns = time.time_ns()
        self.blobs = {rel: snap.files[path].blob for rel, (path, _size) in self.tree.files.items()}
        # a file keeps its mtime while its pointer blob stays: the kernel keeps its pages
        # (auto_cache compares mtime and size at open); a changed one gets a new mtime
        self.mtimes = {
            rel: prev.mtimes[rel] if prev is not None and prev.blobs.get(rel) == blob else self.ns
            for rel, blob in self.blobs.items()
        }

    def changed_since(self, old: _Generation) -> list[str]:
        """Mount-relative paths whose answers differ from ``old``'s (files, then every folder)."""
        files = [r for r in set(old.blobs) | set(self.blobs) if old.blobs.get(r) != self.blobs.get(r)]
        return sorted(files) + sorted(set(old.tree.dirs) | set(self.tree.dirs))


class DatasetView(Operations):
    """The files of the dataset in the index, following the index when it changes.

    A ``git checkout`` or ``switch`` writes a new index (git itself writes
    nothing under the mount: see :mod:`.sparse`); the next readdir, lookup
    or open sees the new files, and a poller thread (every ``POLL`` s)
    tells the kernel to forget what it cached of the paths that changed.
    """

    use_ns = True
    POLL = 0.2

    def __init__(self, project: Project, folder: str) -> None:
        self.project = project
        self.folder = folder
        self.index = _index_path(project)
        self._reload = threading.Lock()
        self._gen = _Generation(project, folder, _sig(self.index), None)
        self._stale: set[str] = set()  # paths to invalidate in the kernel (the poller, or the request)
        self._handles: dict[int, _Handle] = {}
        self._next = itertools.count(1)
        self._lock = threading.Lock()
        self._uid, self._gid = os.getuid(), os.getgid()
        self._fuse: Any = None
        self._stop = threading.Event()

    @property
    def tree(self) -> tree_mod.Tree:
        return self._gen.tree

    @property
    def reader(self) -> MountReader:
        return self._gen.reader

    def init_with_config(self, conn_info: Any, config_3: Any) -> None:
        if conn_info is not None:  # the kernel reads ahead up to this much (it may cap it lower)
            conn_info.max_readahead = READAHEAD
        try:
            from mfusepy import _libfuse

            self._fuse = ctypes.c_void_p(_libfuse.fuse_get_context().contents.fuse)
        except (ImportError, AttributeError, ValueError):  # no invalidation: new names still show
            self._fuse = None
        threading.Thread(target=self._poll, name="gitdata-index-poller", daemon=True).start()

    def destroy(self, path: Any) -> None:
        self._stop.set()

    # -- following the index ----------------------------------------------------
    def _current(self) -> _Generation:
        """The generation of the index as it is now (loaded anew if the index changed)."""
        gen = self._gen
        sig = _sig(self.index)
        if sig == gen.sig:
            return gen
        with self._reload:
            gen = self._gen
            if sig == gen.sig:
                return gen
            try:
                new = _Generation(self.project, self.folder, sig, gen)
            except (GitDataError, OSError) as err:  # an index being rewritten: answer from the last one
                log.warning("index changed but could not be read (%s); still showing the previous one", err)
                return gen
            self._stale.update(new.changed_since(gen))
            self._gen = new
            log.info("index changed: %d file(s) now", len(new.tree.files))
            return new

    def _poll(self) -> None:
        while not self._stop.wait(self.POLL):
            try:
                self._current()
            except Exception as err:  # noqa: BLE001 - the poller never dies
                log.warning("checking the index failed: %s", err)
            with self._reload:
                stale, self._stale = self._stale, set()
            self._invalidate(sorted(stale))

    def _invalidate(self, rels: list[str]) -> None:
        """The kernel forgets the attributes and pages it keeps of ``rels``."""
        if not rels or self._fuse is None:
            return
        from mfusepy import _libfuse

        _libfuse.fuse_invalidate_path.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        for rel in rels:
            _libfuse.fuse_invalidate_path(self._fuse, ("/" + rel).encode("utf-8", "surrogateescape"))

    def _fresh(self, rels: list[str]) -> None:
        """Invalidate ``rels`` now if they changed and the poller has not got to them yet.

        Called from open and readdir for files (never for the folder being
        read): a size the kernel kept from before a checkout must not cut a read short.
        """
        if not self._stale:
            return
        with self._reload:
            now = [r for r in rels if r in self._stale]
            self._stale.difference_update(now)
        self._invalidate(now)

    # -- names ----------------------------------------------------------------
    @staticmethod
    def _rel(path: str) -> str:
        return path.strip("/")

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        """Owned by the user the view runs as, readable by that user only: a mount the service
        made (``allow_other``) is not readable by the machine's other users."""
        rel = self._rel(path)
        gen = self._current()
        tree = gen.tree
        if rel in tree.files:
            size = tree.files[rel][1]
            ns = gen.mtimes.get(rel, gen.ns)
            return {"st_uid": self._uid, "st_gid": self._gid, "st_atime": ns, "st_mtime": ns, "st_ctime": ns,
                    "st_mode": stat.S_IFREG | 0o400, "st_nlink": 1, "st_size": size,
                    "st_blocks": (size + 511) // 512}  # fmt: skip
        if rel in tree.dirs:
            return {"st_uid": self._uid, "st_gid": self._gid, "st_atime": gen.ns, "st_mtime": gen.ns,
                    "st_ctime": gen.ns, "st_mode": stat.S_IFDIR | 0o500, "st_nlink": 2, "st_size": 0}  # fmt: skip
        raise FuseOSError(errno.ENOENT)

    def readdir(self, path: str, fh: int) -> list[str]:
        tree = self._current().tree
        rel = self._rel(path)
        names = tree.dirs.get(rel)
        if names is None:
            raise FuseOSError(errno.ENOTDIR if rel in tree.files else errno.ENOENT)
        self._fresh([f"{rel}/{n}" if rel else n for n in names if (f"{rel}/{n}" if rel else n) in tree.files])
        return [".", "..", *names]

    def statfs(self, path: str) -> dict[str, Any]:
        tree = self._current().tree
        total = sum(size for _p, size in tree.files.values())
        return {"f_bsize": 4096, "f_frsize": 4096, "f_blocks": (total + 4095) // 4096, "f_bfree": 0,
                "f_bavail": 0, "f_files": len(tree.files), "f_ffree": 0, "f_namemax": 255}  # fmt: skip

    # -- bytes ----------------------------------------------------------------
    def open(self, path: str, flags: int) -> int:
        rel = self._rel(path)
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND):
            raise FuseOSError(errno.EROFS)
        gen = self._current()
        entry = gen.tree.files.get(rel)
        if entry is None:
            raise FuseOSError(errno.EISDIR if rel in gen.tree.dirs else errno.ENOENT)
        try:
            f = gen.reader.open(entry[0])
        except SourceChanged as err:
            log.error("EIO %s: %s", entry[0], err)
            raise FuseOSError(errno.EIO) from err
        except FileNotFoundError as err:
            log.error("ENOENT %s: %s", entry[0], err)
            raise FuseOSError(errno.ENOENT) from err
        except (GitDataError, OSError) as err:
            log.error("EIO %s: %s", entry[0], err)
            raise FuseOSError(errno.EIO) from err
        self._fresh([rel])
        with self._lock:
            fh = next(self._next)
            self._handles[fh] = _Handle(f)
        return fh

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        try:
            h = self._handles[fh]
        except KeyError:
            raise FuseOSError(errno.EBADF) from None
        try:
            return h.read(offset, size)
        except (GitDataError, OSError) as err:
            log.error("EIO %s: %s", self._rel(path), err)
            raise FuseOSError(errno.EIO) from err

    def release(self, path: str, fh: int) -> int:
        with self._lock:
            entry = self._handles.pop(fh, None)
        if entry is not None:
            try:
                entry.close()
            except (GitDataError, OSError) as err:  # a verification at close: already answered
                log.error("%s: %s", self._rel(path), err)
        return 0

    def access(self, path: str, amode: int) -> int:
        if amode & os.W_OK:
            raise FuseOSError(errno.EROFS)
        self.getattr(path)
        return 0




def _index_path(project: Project) -> str:
    out = project.repo.git("rev-parse", "--git-path", "index").decode().strip()
    return out if os.path.isabs(out) else os.path.join(project.root, out)


def _sig(path: str) -> tuple:
    """What changes when git writes the index (it renames a new file into place)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return ()
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def serve(project: Project, folder: str, mountpoint: str, *, name: str) -> None:
    """Mount the view of ``folder`` at ``mountpoint`` and serve until unmounted (blocks)."""
    from mfusepy import FUSE

    view = DatasetView(project, folder)
    # imports (s3fs, botocore: ~1.5 s here), credentials and the storage client, while the kernel
    # mounts: a first read right after `stage --mount` returns then waits for less of it
    threading.Thread(target=view.reader.warm, name="gitdata-warm-up", daemon=True).start()
    log.info("serving %d file(s) of %s at %s", len(view.tree.files), folder, mountpoint)
    # Names and attributes are kept long: when the index changes, the paths that changed are
    # invalidated. Pages are kept across opens while a file's mtime and size stay (auto_cache);
    # no negative entries are kept, so names a checkout brings are found at once.
    FUSE(view, mountpoint, foreground=True, nothreads=False, ro=True, fsname=f"gitdata:{name}",
         subtype="gitdata", default_permissions=True, auto_cache=True, ac_attr_timeout=0, attr_timeout=3600,
         entry_timeout=3600, negative_timeout=0)  # fmt: skip
