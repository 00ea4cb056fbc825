"""The FUSE filesystem of a dataset mount: a read-only view over :class:`gitdata.fs.Reader`.

It shows exactly the dataset's files of one snapshot (the index when the
mount was made): names and sizes from the pointers, no bucket listing.
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
from . import tree as tree_mod

log = logging.getLogger("gitdata.mount")
READAHEAD = 8 << 20
BLOCK = 1 << 20  # read from the Reader in these, aligned
AHEAD = 4  # blocks read ahead per open file (and about twice as many kept)


class MountReader(Reader):
    """A Reader that never looks at the work tree: the work tree *is* the mount
    (a stat there from inside the mount process would call back into itself)."""

    def staged_path(self, tf: TrackedFile) -> str | None:
        return None


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


class DatasetView(Operations):
    use_ns = True

    def __init__(self, project: Project, folder: str, *, rev: str | None = None) -> None:
        self.reader = MountReader(project, rev)
        snap = self.reader.snapshot
        self.tree = tree_mod.build(folder, ((p, tf.size) for p, tf in snap.files.items()))
        self.folder = folder
        self._handles: dict[int, _Handle] = {}
        self._next = itertools.count(1)
        self._lock = threading.Lock()
        self._ns = time.time_ns()
        self._uid, self._gid = os.getuid(), os.getgid()

    def init_with_config(self, conn_info: Any, config_3: Any) -> None:
        if conn_info is not None:  # the kernel reads ahead up to this much (it may cap it lower)
            conn_info.max_readahead = READAHEAD

    # -- names ----------------------------------------------------------------
    @staticmethod
    def _rel(path: str) -> str:
        return path.strip("/")

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        rel = self._rel(path)
        base = {"st_uid": self._uid, "st_gid": self._gid, "st_atime": self._ns, "st_mtime": self._ns,
                "st_ctime": self._ns}  # fmt: skip
        if rel in self.tree.files:
            size = self.tree.files[rel][1]
            return {**base, "st_mode": stat.S_IFREG | 0o444, "st_nlink": 1, "st_size": size,
                    "st_blocks": (size + 511) // 512}  # fmt: skip
        if rel in self.tree.dirs:
            return {**base, "st_mode": stat.S_IFDIR | 0o555, "st_nlink": 2, "st_size": 0}
        raise FuseOSError(errno.ENOENT)

    def readdir(self, path: str, fh: int) -> list[str]:
        names = self.tree.dirs.get(self._rel(path))
        if names is None:
            raise FuseOSError(errno.ENOTDIR if self._rel(path) in self.tree.files else errno.ENOENT)
        return [".", "..", *names]

    def statfs(self, path: str) -> dict[str, Any]:
        total = sum(size for _p, size in self.tree.files.values())
        return {"f_bsize": 4096, "f_frsize": 4096, "f_blocks": (total + 4095) // 4096, "f_bfree": 0,
                "f_bavail": 0, "f_files": len(self.tree.files), "f_ffree": 0, "f_namemax": 255}  # fmt: skip

    # -- bytes ----------------------------------------------------------------
    def open(self, path: str, flags: int) -> int:
        rel = self._rel(path)
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND):
            raise FuseOSError(errno.EROFS)
        entry = self.tree.files.get(rel)
        if entry is None:
            raise FuseOSError(errno.EISDIR if rel in self.tree.dirs else errno.ENOENT)
        try:
            f = self.reader.open(entry[0])
        except SourceChanged as err:
            log.error("EIO %s: %s", entry[0], err)
            raise FuseOSError(errno.EIO) from err
        except FileNotFoundError as err:
            log.error("ENOENT %s: %s", entry[0], err)
            raise FuseOSError(errno.ENOENT) from err
        except (GitDataError, OSError) as err:
            log.error("EIO %s: %s", entry[0], err)
            raise FuseOSError(errno.EIO) from err
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


def serve(project: Project, folder: str, mountpoint: str, *, name: str) -> None:
    """Mount the view of ``folder`` at ``mountpoint`` and serve until unmounted (blocks)."""
    from mfusepy import FUSE

    view = DatasetView(project, folder)
    log.info("serving %d file(s) of %s at %s", len(view.tree.files), folder, mountpoint)
    # The tree and every file's bytes are fixed for the life of the mount (one snapshot, recorded
    # versions): the kernel may keep pages across opens and names/attributes for long.
    FUSE(view, mountpoint, foreground=True, nothreads=False, ro=True, fsname=f"gitdata:{name}",
         subtype="gitdata", default_permissions=True, kernel_cache=True, attr_timeout=3600,
         entry_timeout=3600, negative_timeout=60)  # fmt: skip
