"""A bounded, verifying reader over any seekable binary file, and the cache fills of whole reads."""

from __future__ import annotations

from typing import Any, BinaryIO

from ..errors import GitDataError
from ..hashing import new_hasher
from ..pointer import Pointer
from ..project import Project
from ..storage.errors import translate
from ..storage.stream import PositionedRaw

MAX_BLOCK = 64 << 20  # the largest block a sequential read grows to


class CorruptData(GitDataError):
    """The bytes read are not the recorded content (oid or size)."""


class VerifiedReader(PositionedRaw):
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
        self._on_whole = (
            on_whole  # called with each chunk of a whole sequential read (lazy caching)
        )
        self._base_block: int | None = None
        self.max_block = MAX_BLOCK  # a Reader may cap how far sequential reads grow the block

    def _length(self) -> int | None:
        return self.size

    def _no_length(self) -> str:
        return f"{self.path}: size unknown, cannot seek from the end"

    def _fail(self, message: str) -> CorruptData:
        self._hasher = None
        self._on_whole = None
        return CorruptData(
            f"{self.path}: {message} (read from {self.where}); nothing more was returned"
        )

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
                raise self._fail(
                    f"the source ended after {self._pos} bytes, {self.size} are recorded"
                )
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


class CacheFill:
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


class RegisteredFill:
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
