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

Small objects (up to :data:`PACK_MAX`) are appended to a pack instead:
``<root>/packs/<name>.pack`` holds their bytes back to back and
``<name>.idx`` a header line and one record ``<oid> <offset> <size> <crc>``
per object, appended only after the bytes are written; ``<crc>`` is the
CRC-32 of the record's other fields, so a torn or damaged record is ignored
(the object is fetched again: the cache is only a cache). Packed bytes are
hash-checked on every read, and a loose object's size is checked against the
pointer's on its way to a work tree. Each process appends to a pack of its
own. Creating a file is the expensive part of caching a small object (about
0.5-1 ms each on this project's CI disk, against microseconds to append
4 KiB), and a pack costs no inode per object. See docs/spec.md and docs/design.md.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

from .errors import GitDataError
from .fileio import write_all
from .hashing import CHUNK, oid_of_bytes, oid_of_file
from .pointer import HASH_HEX_LENGTHS
from .writer import GuardedFile, WriteFailed

_BY_LENGTH = {n: algo for algo, n in HASH_HEX_LENGTHS.items()}

#: Objects up to this size go into a pack rather than a file of their own.
PACK_MAX = 256 << 10
#: Temporary files older than this (seconds) are a killed writer's leftovers.
TEMP_MAX_AGE = 24 * 3600
#: First line of a pack index with checksummed records (format 2).
IDX_HEADER = b"# gitdata pack index 2\n"


class CacheError(GitDataError):
    pass


class CorruptObject(CacheError):
    """Bytes did not match the oid they were supposed to have."""


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


class Packs:
    """Small objects appended to pack files (see the module docstring)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._index: dict[str, tuple[str, int, int]] | None = None  # oid -> (pack, offset, size)
        self._stamp: int | None = None  # the folder's mtime when the index was read
        self._mine: tuple[int, int, str] | None = None  # (pack fd, idx fd, name) this process appends to
        self._end = 0
        self._fds: dict[str, int] = {}  # pack name -> read descriptor
        self._bad: set[tuple[str, int, int]] = set()  # entries whose bytes failed their hash

    # -- reading -------------------------------------------------------------
    def _load(self) -> dict[str, tuple[str, int, int]]:
        """The index of every pack; re-read when a pack was added or removed since."""
        try:
            stamp = os.stat(self.folder).st_mtime_ns
        except FileNotFoundError:
            stamp = None
        if self._index is not None and stamp == self._stamp:
            return self._index
        index: dict[str, tuple[str, int, int]] = {}
        for name in sorted(n for n in _listdir(self.folder) if n.endswith(".idx")):
            index.update(_read_idx(os.path.join(self.folder, name)))
        for oid in [o for o, e in index.items() if e in self._bad]:
            del index[oid]
        self._index, self._stamp = index, stamp
        return index

    def find(self, oid: str) -> tuple[str, int, int] | None:
        with self._lock:
            return self._load().get(oid)

    def oids(self) -> list[str]:
        with self._lock:
            return list(self._load())

    def read(self, oid: str) -> bytes:
        """The object's bytes, hash-checked (they are small: microseconds with
        xxh3); damaged ones raise :class:`CorruptObject` and are discarded."""
        for attempt in (1, 2):
            entry = self.find(oid)
            if entry is None:
                raise FileNotFoundError(f"object {oid} is not in the cache")
            name, offset, size = entry
            try:
                data = os.pread(self._fd(name), size, offset)
                break
            except FileNotFoundError:
                if attempt == 2:
                    raise
                with self._lock:  # a prune rewrote that pack meanwhile: read the index again
                    self._index = self._stamp = None
        if len(data) != size or oid_of_bytes(data, oid.split(":", 1)[0]) != oid:
            self.discard(oid, entry)
            raise CorruptObject(
                f"the cached copy of {oid} in pack {name} is damaged; it was dropped, "
                "run `git data fetch` to fetch it again"
            )
        return data

    def discard(self, oid: str, entry: tuple[str, int, int] | None = None) -> None:
        """Forget a damaged record: its pack is rewritten without it (where the
        cache is writable), and this process never serves it again."""
        entry = entry or self.find(oid)
        if entry is None:
            return
        with self._lock:
            self._bad.add(entry)
            if self._index is not None and self._index.get(oid) == entry:
                del self._index[oid]
        try:
            self._rewrite(entry[0], {oid})
        except OSError:
            pass  # a read-only cache: not served from this process, refetched

    def _fd(self, name: str) -> int:
        """A read descriptor for pack ``name``, kept open (pread is thread-safe)."""
        fd = self._fds.get(name)
        if fd is None:
            fd = os.open(os.path.join(self.folder, name + ".pack"), os.O_RDONLY | os.O_CLOEXEC)
            with self._lock:
                if name in self._fds:
                    os.close(fd)
                    fd = self._fds[name]
                else:
                    self._fds[name] = fd
        return fd

    # -- writing -------------------------------------------------------------
    def append(self, oid: str, data: bytes, *, force: bool = False) -> None:
        """Add one object: its bytes, then its index line (``force``: even if a
        pack about to be removed already holds it)."""
        with self._lock:
            index = self._load()
            if oid in index and not force:
                return
            if self._mine is None:
                self._open_mine()
            assert self._mine is not None
            pack_fd, idx_fd, name = self._mine
            start = self._end
            try:
                write_all(pack_fd, data)
            except OSError:
                try:
                    os.ftruncate(pack_fd, start)  # no torn bytes before the next object
                except OSError:
                    self._close_mine()
                raise
            self._end = start + len(data)
            try:
                write_all(idx_fd, _record(oid, start, len(data)))
            except OSError:
                self._close_mine()  # a torn record ends this index: the next append starts a pack
                raise
            index[oid] = (name, start, len(data))

    def _open_mine(self) -> None:
        name = f"pack-{os.urandom(16).hex()}"
        try:
            os.makedirs(self.folder, exist_ok=True)
        except FileExistsError:
            pass
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND
        pack_fd = os.open(os.path.join(self.folder, name + ".pack"), flags, 0o444)
        try:
            idx_fd = os.open(os.path.join(self.folder, name + ".idx"), flags, 0o444)
        except OSError:
            os.close(pack_fd)
            os.unlink(os.path.join(self.folder, name + ".pack"))
            raise
        try:
            write_all(idx_fd, IDX_HEADER)
        except OSError:
            for fd in (pack_fd, idx_fd):
                os.close(fd)
            for ext in (".idx", ".pack"):
                os.unlink(os.path.join(self.folder, name + ext))
            raise
        self._mine = (pack_fd, idx_fd, name)
        self._end = 0
        # our own new files changed the folder: keep the index, note the new stamp
        self._stamp = os.stat(self.folder).st_mtime_ns

    def _close_mine(self) -> None:
        if self._mine is not None:
            for fd in self._mine[:2]:
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._mine = None

    def drop(self, oids: set[str]) -> None:
        """Rewrite every pack that holds one of ``oids`` without them."""
        with self._lock:
            index = self._load()
            affected = {index[o][0] for o in oids if o in index}
        for name in sorted(affected):
            self._rewrite(name, oids)

    def _rewrite(self, name: str, oids: set[str]) -> None:
        """Pack ``name`` without ``oids``: survivors are appended to this
        process's pack first, only then is the old one removed."""
        with self._lock:
            index = self._load()
            if self._mine is not None and self._mine[2] == name:
                self._close_mine()
        keep = [(o, e) for o, e in list(index.items()) if e[0] == name and o not in oids]
        with open(os.path.join(self.folder, name + ".pack"), "rb") as f:
            kept = [(o, os.pread(f.fileno(), e[2], e[1])) for o, e in keep]
        # the survivors go into this process's pack first; only then is the old one removed
        for o, data in kept:
            self.append(o, data, force=True)
        with self._lock:
            fd = self._fds.pop(name, None)
        if fd is not None:
            os.close(fd)
        for ext in (".idx", ".pack"):
            try:
                os.unlink(os.path.join(self.folder, name + ext))
            except FileNotFoundError:
                pass
        with self._lock:
            self._index = None
            self._stamp = None


def _listdir(folder: str) -> list[str]:
    try:
        return os.listdir(folder)
    except FileNotFoundError:
        return []


def _size_or_none(path: str) -> int | None:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return st.st_size if os.path.isfile(path) else None


def _crc(fields: bytes) -> bytes:
    return b"%08x" % zlib.crc32(fields)


def _record(oid: str, offset: int, size: int) -> bytes:
    """One index record: ``<oid> <offset> <size> <crc32 of the first three>``."""
    fields = f"{oid} {offset} {size}".encode("ascii")
    return fields + b" " + _crc(fields) + b"\n"


def parse_idx(data: bytes, pack_size: int) -> dict[str, tuple[int, int]]:
    """``oid -> (offset, size)`` from a pack index's bytes. Pure.

    Format 2 (the :data:`IDX_HEADER` line first): only records whose CRC
    matches count, so a torn last record or a damaged one is ignored. Format
    1 (no header, ``<oid> <offset> <size>``, written before checksums) is
    still read: its records are bounds-checked here and, as every packed
    object, hash-checked when read, so a torn one is never served. Either way
    a record naming bytes past the pack's end is ignored, and a line that is
    not newline-terminated (torn) is dropped.
    """
    v2 = data.startswith(IDX_HEADER)
    body = data[len(IDX_HEADER) :] if v2 else data
    lines = body.split(b"\n")[:-1]  # the part after the last newline is torn
    out: dict[str, tuple[int, int]] = {}
    for line in lines:
        parts = line.split(b" ")
        if v2:
            if len(parts) != 4 or _crc(b" ".join(parts[:3])) != parts[3]:
                continue
        elif len(parts) != 3:
            continue
        try:
            oid, offset, size = parts[0].decode("ascii"), int(parts[1]), int(parts[2])
        except (UnicodeDecodeError, ValueError):
            continue
        if ":" in oid and offset >= 0 and size >= 0 and offset + size <= pack_size:
            out[oid] = (offset, size)
    return out


def _read_idx(path: str) -> dict[str, tuple[str, int, int]]:
    """One pack's index (see :func:`parse_idx`)."""
    name = os.path.basename(path)[:-4]
    try:
        with open(path, "rb") as f:
            data = f.read()
        pack_size = os.path.getsize(path[:-4] + ".pack")
    except FileNotFoundError:
        return {}
    return {oid: (name, offset, size) for oid, (offset, size) in parse_idx(data, pack_size).items()}
