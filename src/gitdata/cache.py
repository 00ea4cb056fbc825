"""The local content-addressed cache: ``<root>/objects/ab/cd/<hex>``.

Every write goes to ``<root>/tmp/`` (same filesystem) while it is hashed, and
is renamed into place only when complete and verified. A half-written object
is never visible under an object name.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

from .errors import GitDataError
from .hashing import CHUNK, new_hasher, oid_of_file
from .pointer import HASH_HEX_LENGTHS

_BY_LENGTH = {n: algo for algo, n in HASH_HEX_LENGTHS.items()}


class CacheError(GitDataError):
    pass


class CorruptObject(CacheError):
    """Bytes did not match the oid they were supposed to have."""


def _disk_full(err: OSError, root: str) -> CacheError:
    return CacheError(
        f"no space left while writing to the cache at {root}; free space, or move the cache "
        "with `git config gitdata.cachedir DIR`"
    )


class CacheWriter:
    """Streams bytes into a temp file while hashing; :meth:`commit` publishes them."""

    def __init__(self, cache: Cache, algorithm: str) -> None:
        self.cache = cache
        self.algorithm = algorithm
        self._hasher = new_hasher(algorithm)
        self.size = 0
        try:
            fd, self.tmp_path = tempfile.mkstemp(dir=cache.tmp_dir, prefix="obj-")
        except FileNotFoundError:
            os.makedirs(cache.tmp_dir, exist_ok=True)
            fd, self.tmp_path = tempfile.mkstemp(dir=cache.tmp_dir, prefix="obj-")
        self._file: BinaryIO | None = os.fdopen(fd, "wb", buffering=0)

    def write(self, data: bytes | memoryview) -> None:
        assert self._file is not None
        self._hasher.update(data)
        view = memoryview(data)
        try:
            # A raw write may write less than asked (a full disk does this
            # before it raises ENOSPC): loop, or the object would be truncated.
            while view:
                n = self._file.write(view)
                if not n:
                    raise OSError(errno.ENOSPC, "short write")
                view = view[n:]
        except OSError as err:
            self.abort()
            if err.errno == errno.ENOSPC:
                raise _disk_full(err, self.cache.root) from err
            raise
        self.size += len(data)

    @property
    def oid(self) -> str:
        return f"{self.algorithm}:{self._hasher.hexdigest()}"

    def commit(self, expected_oid: str | None = None) -> tuple[str, int]:
        """Close, verify against ``expected_oid`` if given, rename into place."""
        assert self._file is not None
        try:
            self._file.close()
        except OSError as err:
            self.abort()
            if err.errno == errno.ENOSPC:
                raise _disk_full(err, self.cache.root) from err
            raise
        self._file = None
        oid = self.oid
        if os.path.getsize(self.tmp_path) != self.size:
            self.abort()
            raise CacheError(f"cache write of {oid} came out short; is the disk full?")
        if expected_oid is not None and oid != expected_oid:
            self.abort()
            raise CorruptObject(f"content hashes to {oid}, expected {expected_oid}")
        dest = self.cache.path(oid)
        if os.path.exists(dest):
            os.unlink(self.tmp_path)
        else:
            try:
                os.replace(self.tmp_path, dest)
            except FileNotFoundError:  # first object in this fan-out folder
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                os.replace(self.tmp_path, dest)
        return oid, self.size

    def abort(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None
        if os.path.lexists(self.tmp_path):
            os.unlink(self.tmp_path)

    def __enter__(self) -> CacheWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.abort()


class Cache:
    def __init__(self, root: str) -> None:
        self.root = root
        self.objects_dir = os.path.join(root, "objects")
        self.tmp_dir = os.path.join(root, "tmp")

    def path(self, oid: str) -> str:
        hexd = oid.split(":", 1)[1]
        return os.path.join(self.objects_dir, hexd[:2], hexd[2:4], hexd)

    def has(self, oid: str) -> bool:
        return os.path.isfile(self.path(oid))

    def size_of(self, oid: str) -> int:
        return os.path.getsize(self.path(oid))

    def writer(self, algorithm: str) -> CacheWriter:
        return CacheWriter(self, algorithm)

    def put_stream(self, stream: BinaryIO, algorithm: str, expected_oid: str | None = None) -> tuple[str, int]:
        with self.writer(algorithm) as w:
            while True:
                chunk = stream.read(CHUNK)
                if not chunk:
                    break
                w.write(chunk)
            return w.commit(expected_oid)

    def put_bytes(self, data: bytes, algorithm: str, expected_oid: str | None = None) -> tuple[str, int]:
        with self.writer(algorithm) as w:
            w.write(data)
            return w.commit(expected_oid)

    def add_file(self, path: str, algorithm: str) -> tuple[str, int]:
        with open(path, "rb") as f:
            return self.put_stream(f, algorithm)

    def verify(self, oid: str) -> bool:
        algo = oid.split(":", 1)[0]
        actual, _ = oid_of_file(self.path(oid), algo)
        return actual == oid

    def remove(self, oid: str) -> None:
        try:
            os.unlink(self.path(oid))
        except FileNotFoundError:
            pass

    def iter_oids(self) -> Iterator[str]:
        if not os.path.isdir(self.objects_dir):
            return
        for dirpath, _dirs, files in os.walk(self.objects_dir):
            for name in files:
                algo = _BY_LENGTH.get(len(name))
                if algo and os.path.basename(dirpath) == name[2:4]:
                    yield f"{algo}:{name}"

    def copy_to(self, oid: str, dest: str) -> None:
        """Write the object to ``dest`` atomically (temp beside it, then rename)."""
        src = self.path(oid)
        parent = os.path.dirname(os.path.abspath(dest))
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=".gitdata-")
        os.close(fd)
        try:
            _fast_copy(src, tmp)
            mode = _worktree_mode(dest)
            os.chmod(tmp, mode)
            os.replace(tmp, dest)
        except OSError as err:
            if os.path.lexists(tmp):
                os.unlink(tmp)
            if err.errno == errno.ENOSPC:
                raise CacheError(f"no space left writing {dest}; free some space and retry") from err
            raise


def _worktree_mode(dest: str) -> int:
    try:
        st = os.stat(dest)
        return st.st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fast_copy(src: str, dst: str) -> None:
    """Copy, sharing blocks (reflink) where the filesystem can."""
    try:
        import fcntl

        with open(src, "rb") as fs, open(dst, "wb") as fd:
            fcntl.ioctl(fd.fileno(), 0x40049409, fs.fileno())  # FICLONE
        return
    except (OSError, ImportError):
        pass
    shutil.copyfile(src, dst)
