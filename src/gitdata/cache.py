"""The local content-addressed cache.

Large objects are files, ``<root>/objects/ab/<hex>``: one level of fan-out
(256 folders, as git's own loose objects), not two as on a data remote; a
folder is an inode to allocate, and with two levels nearly every one of
10,000 new small objects needed its own.

Every such write goes to ``<root>/tmp/`` (same filesystem) while it is hashed,
and is renamed into place only when complete and verified. A half-written
object is never visible under an object name. What a killed process leaves
in ``tmp/`` is removed by the next process that writes to the cache once it
is older than ``temp_max_age`` (``gitdata.tempMaxAge``), and by ``prune``.

Small objects (up to :data:`PACK_MAX`) are appended to a pack instead
(:mod:`gitdata.cachepacks`); a loose object's size is checked against the
pointer's on its way to a work tree. See docs/spec.md and docs/design.md.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

from .cachepacks import IDX_HEADER, CacheError, CorruptObject, Packs, _listdir, parse_idx
from .cachepacks import _record as _record  # re-exported: tests build index records with it
from .hashing import CHUNK, oid_of_bytes, oid_of_file
from .pointer import HASH_HEX_LENGTHS
from .writer import GuardedFile, WriteFailed

__all__ = [
    "IDX_HEADER",
    "PACK_MAX",
    "TEMP_MAX_AGE",
    "Cache",
    "CacheError",
    "CacheWriteFailed",
    "CacheWriter",
    "CorruptObject",
    "Packs",
    "parse_idx",
]

_BY_LENGTH = {n: algo for algo, n in HASH_HEX_LENGTHS.items()}

#: Objects up to this size go into a pack rather than a file of their own.
PACK_MAX = 256 << 10
#: Temporary files older than this (seconds) are a killed writer's leftovers.
TEMP_MAX_AGE = 24 * 3600

FULL_DISK_HINT = "free space, or move the cache with `git config gitdata.cachedir DIR`"


class CacheWriteFailed(CacheError, WriteFailed):
    """Writing to the cache failed (a full disk); nothing was left behind."""


class CacheWriter(GuardedFile):
    """The guarded writer into the cache: a temporary file in ``<root>/tmp`` while
    hashing; :meth:`commit` publishes it under its oid."""

    Failed = CacheWriteFailed

    def __init__(self, cache: Cache, algorithm: str) -> None:
        self.cache = cache
        cache.sweep_once()
        super().__init__(None, algorithm, tmp_dir=cache.tmp_dir,
                         full_disk_hint=FULL_DISK_HINT)  # fmt: skip

    def commit(self, expected_oid: str | None = None) -> tuple[str, int]:  # type: ignore[override]
        """Close, verify against ``expected_oid`` if given, rename into place."""
        try:
            oid = self.oid
            if expected_oid is not None and oid != expected_oid:
                raise CorruptObject(f"content hashes to {oid}, expected {expected_oid}")
        except BaseException:
            self.abort()
            raise
        dest = self.cache.path(oid)
        if _size_or_none(dest) == self.size:
            self.abort()  # the same object is there already: nothing to place
            return oid, self.size
        return super().commit(dest)

    def __enter__(self) -> CacheWriter:
        return self


class Cache:
    def __init__(self, root: str, *, temp_max_age: float = TEMP_MAX_AGE) -> None:
        self.root = root
        self.objects_dir = os.path.join(root, "objects")
        self.tmp_dir = os.path.join(root, "tmp")
        self.packs = Packs(os.path.join(root, "packs"))
        self.temp_max_age = temp_max_age
        self._swept = False

    # -- temporary files -----------------------------------------------------
    def stale_temp(self, now: float | None = None) -> list[tuple[str, float]]:
        """Temporary files older than ``temp_max_age``: ``(path, age in seconds)``.

        A writer's file is written to as the transfer goes, so its mtime is
        recent while it runs; one older than the longest plausible transfer
        was left by a killed process.
        """
        now = time.time() if now is None else now
        out = []
        for name in _listdir(self.tmp_dir):
            path = os.path.join(self.tmp_dir, name)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            age = now - st.st_mtime
            if age > self.temp_max_age:
                out.append((path, age))
        return sorted(out)

    def sweep_temp(self, now: float | None = None) -> list[str]:
        """Remove :meth:`stale_temp` files; returns their paths."""
        removed = []
        for path, _age in self.stale_temp(now):
            try:
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
            except FileNotFoundError:
                continue
            removed.append(path)
        return removed

    def sweep_once(self) -> None:
        """:meth:`sweep_temp`, once per process and cache (on its first write)."""
        if self._swept:
            return
        self._swept = True
        try:
            self.sweep_temp()
        except OSError:
            pass  # best effort: a read-only or shared cache must not fail a write

    def path(self, oid: str) -> str:
        """Where ``oid`` is (or would be) stored as a file of its own."""
        hexd = oid.split(":", 1)[1]
        return os.path.join(self.objects_dir, hexd[:2], hexd)

    def loose_path(self, oid: str) -> str | None:
        """The file holding ``oid``, or None if it is packed or absent."""
        path = self.path(oid)
        return path if os.path.isfile(path) else None

    def has(self, oid: str, size: int | None = None) -> bool:
        """Whether the cache holds ``oid``. With ``size`` (the pointer's: the
        object is on its way to a work tree) it must also be intact: a file of
        its own of that size, or packed bytes of that size that hash to
        ``oid``. A damaged copy is dropped, so that it is fetched again."""
        path = self.path(oid)
        if size is None:
            return os.path.isfile(path) or self.packs.find(oid) is not None
        actual = _size_or_none(path)
        if actual is not None:
            if actual == size:
                return True
            try:
                os.unlink(path)  # truncated or grown: not the object any more
            except OSError:
                pass
        entry = self.packs.find(oid)
        if entry is None:
            return False
        if entry[2] != size:
            self.packs.discard(oid)
            return False
        try:
            self.packs.read(oid)  # hash-checked; a damaged copy is discarded
        except (CorruptObject, FileNotFoundError):
            return False
        return True

    def size_of(self, oid: str) -> int:
        entry = self.packs.find(oid)
        if entry is not None and not os.path.isfile(self.path(oid)):
            return entry[2]
        return os.path.getsize(self.path(oid))

    def read_bytes(self, oid: str) -> bytes:
        """The whole object in memory (meant for small objects)."""
        loose = self.loose_path(oid)
        if loose is not None:
            with open(loose, "rb") as f:
                return f.read()
        return self.packs.read(oid)

    def open(self, oid: str) -> BinaryIO:
        """The object's bytes as a file: the object's own file, or a packed one in memory."""
        loose = self.loose_path(oid)
        if loose is not None:
            return open(loose, "rb")  # noqa: SIM115 - the caller closes it
        return io.BytesIO(self.packs.read(oid))

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
        self.sweep_once()
        if len(data) > PACK_MAX:
            with self.writer(algorithm) as w:
                w.write(data)
                return w.commit(expected_oid)
        oid = oid_of_bytes(data, algorithm)
        if expected_oid is not None and oid != expected_oid:
            raise CorruptObject(f"content hashes to {oid}, expected {expected_oid}")
        if not self.has(oid):
            try:
                self.packs.append(oid, data)
            except OSError as err:
                if err.errno == errno.ENOSPC:
                    full = CacheWriteFailed(f"no space left writing to the cache at {self.root}; {FULL_DISK_HINT}")
                    full.no_space = True
                    raise full from err
                raise
        return oid, len(data)

    def verify(self, oid: str) -> bool:
        algo = oid.split(":", 1)[0]
        loose = self.loose_path(oid)
        if loose is None:
            try:
                return oid_of_bytes(self.packs.read(oid), algo) == oid
            except (FileNotFoundError, CorruptObject):
                return False
        actual, _ = oid_of_file(loose, algo)
        return actual == oid

    def remove(self, oid: str) -> None:
        self.remove_many([oid])

    def remove_many(self, oids: Iterable[str]) -> None:
        """Drop objects; packs holding any of them are rewritten without them."""
        packed = set()
        for oid in oids:
            try:
                os.unlink(self.path(oid))
            except FileNotFoundError:
                pass
            if self.packs.find(oid) is not None:
                packed.add(oid)
        if packed:
            self.packs.drop(packed)

    def iter_oids(self) -> Iterator[str]:
        seen = set()
        if os.path.isdir(self.objects_dir):
            for dirpath, _dirs, files in os.walk(self.objects_dir):
                for name in files:
                    algo = _BY_LENGTH.get(len(name))
                    if algo and os.path.basename(dirpath) == name[:2]:
                        seen.add(f"{algo}:{name}")
                        yield f"{algo}:{name}"
        for oid in self.packs.oids():
            if oid not in seen:
                yield oid

    def copy_to(
        self, oid: str, dest: str, check: Callable[[], None] | None = None, *, size: int | None = None
    ) -> None:
        """Write the object to ``dest`` atomically (temp beside it, then rename).

        ``check``, if given, runs right before the rename; an exception from
        it leaves ``dest`` as it is (and no temporary file). With ``size``, a
        copy of another size is refused (:class:`CorruptObject`).
        """
        algorithm = oid.split(":", 1)[0]
        with GuardedFile(dest, algorithm) as w:
            src = self.loose_path(oid)
            if src is not None:
                w.clone_from(src)
            else:
                w.write(self.packs.read(oid))  # hash-checked by read()
            if size is not None and w.size != size:
                raise CorruptObject(
                    f"cached object {oid} is {w.size} bytes, expected {size}; "
                    "run `git data fetch` to fetch it again"
                )
            w.commit(check=check)


def _size_or_none(path: str) -> int | None:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return st.st_size if os.path.isfile(path) else None
