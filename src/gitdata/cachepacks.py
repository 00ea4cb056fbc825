"""The cache's pack store: small objects appended to pack files.

``<root>/packs/<name>.pack`` holds their bytes back to back and
``<name>.idx`` a header line and one record ``<oid> <offset> <size> <crc>``
per object, appended only after the bytes are written; ``<crc>`` is the
CRC-32 of the record's other fields, so a torn or damaged record is ignored
(the object is fetched again: the cache is only a cache). Packed bytes are
hash-checked on every read. Each process appends to a pack of its
own. Creating a file is the expensive part of caching a small object (about
0.5-1 ms each on this project's CI disk, against microseconds to append
4 KiB), and a pack costs no inode per object. See docs/spec.md and docs/design.md.
"""

from __future__ import annotations

import os
import threading
import weakref
import zlib

from .errors import GitDataError
from .fileio import write_all
from .hashing import oid_of_bytes

#: First line of a pack index with checksummed records (format 2).
IDX_HEADER = b"# gitdata pack index 2\n"


class CacheError(GitDataError):
    pass


class CorruptObject(CacheError):
    """Bytes did not match the oid they were supposed to have."""


#: every Packs of this process, for :func:`_after_fork`
_ALL: weakref.WeakSet[Packs] = weakref.WeakSet()


def _after_fork() -> None:
    """In a forked child (a worker of ``transfer.run_parallel``): a fresh lock (another thread
    may have held the parent's), and a pack of its own for anything it appends (the parent's
    append position is the parent's)."""
    for packs in list(_ALL):
        packs._lock = threading.Lock()
        packs._mine = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


class Packs:
    """Small objects appended to pack files (see the module docstring)."""

    def __init__(self, folder: str) -> None:
        _ALL.add(self)
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
