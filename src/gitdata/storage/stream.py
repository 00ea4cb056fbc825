"""A seekable file over streaming GETs: one request per sequential run, not one per block.

A reader that goes through an object from one place to its end (a FUSE
mount answering the kernel's sequential requests) pays one request for the
whole run; a seek elsewhere ends that request and the next read starts a
new one there. Memory is what the reader asks for per ``read`` (the body is
read as it arrives, under the transport's flow control), whatever the
object's size.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from .backends import Adapter, adapter_for

Opener = Callable[[int], Any]  # start offset -> an object with read(n) and close()


def can_stream(fs: Any) -> bool:
    """Whether ``fs``'s backend has streaming GETs (``Adapter.open_stream``)."""
    return type(adapter_for(fs)).open_stream is not Adapter.open_stream


def stream_opener(fs: Any, path: str, kwargs: dict[str, Any]) -> Opener | None:
    """How to open streaming GETs of ``path`` on ``fs``; None if its backend has none."""
    if not can_stream(fs):
        return None
    adapter = adapter_for(fs)
    return lambda start: adapter.open_stream(fs, path, start, dict(kwargs))


class StreamBudget:
    """At most ``limit`` streams hold a connection at once (an SDK's pool is small: botocore
    keeps 10); opening one more closes the least recently used idle one, which reopens where it
    was at its next read. Without it, a program that opens many files and reads them in turn
    would wait for a pooled connection that an idle open file holds."""

    def __init__(self, limit: int = 8) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._live: OrderedDict[int, StreamFile] = OrderedDict()

    def opened(self, f: StreamFile) -> None:
        with self._lock:
            self._live[id(f)] = f
            self._live.move_to_end(id(f))
            over = len(self._live) - self.limit
            others = [v for v in self._live.values() if v is not f]
        for victim in others:  # oldest first; one that is being read right now is skipped
            if over <= 0:
                break
            if victim.release_if_idle():
                over -= 1

    def used(self, f: StreamFile) -> None:
        with self._lock:
            if id(f) in self._live:
                self._live.move_to_end(id(f))

    def dropped(self, f: StreamFile) -> None:
        with self._lock:
            self._live.pop(id(f), None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._live)


class PositionedRaw(io.RawIOBase):
    """A readable raw file that keeps its own position: ``seek`` only moves it, the next read acts on it.

    ``_length()`` is the file's length if known (``SEEK_END`` needs it);
    subclasses read at ``self._pos`` and advance it.
    """

    _pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def _length(self) -> int | None:
        return None

    def _no_length(self) -> str:
        return "the length is unknown: seek from the start or the current position only"

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            length = self._length()
            if length is None:
                raise OSError(self._no_length())
            pos = length + offset
        else:
            raise ValueError(f"bad whence {whence}")
        if pos < 0:
            raise ValueError("negative seek position")
        self._pos = pos
        return pos


class StreamFile(PositionedRaw):
    """Reads ``opener(pos)``'s stream while reads are sequential; a seek reopens lazily.

    A stream that breaks after it delivered bytes (a server closing a
    connection the reader left idle) is reopened once at the position it
    reached; an error on a fresh stream is the caller's.
    """

    def __init__(self, opener: Opener, budget: StreamBudget | None = None) -> None:
        super().__init__()
        self._opener = opener
        self._budget = budget
        self._lock = threading.Lock()  # one read at a time; a budget closes only an idle stream
        self._pos = 0
        self._body: Any = None
        self._body_pos = 0
        self._fresh = True

    def _no_length(self) -> str:
        return "a stream of unknown length seeks from its start or the current position only"

    def start(self) -> StreamFile:
        """Send the first request now (a missing object or version fails at open, not at a read)."""
        with self._lock:
            if self._body is None:
                self._open()
        return self

    def _open(self) -> None:  # holds _lock
        self._body = self._opener(self._pos)
        self._body_pos = self._pos
        self._fresh = True
        if self._budget is not None:
            self._budget.opened(self)

    def _drop(self) -> None:  # holds _lock (or closing)
        body, self._body = self._body, None
        if body is not None:
            if self._budget is not None:
                self._budget.dropped(self)
            body.close()

    def release_if_idle(self) -> bool:
        """Close the stream unless a read is under way (the next read reopens it here)."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            self._drop()
            return True
        finally:
            self._lock.release()

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = 1 << 62
        if n == 0:
            return b""
        with self._lock:
            if self._body is not None and self._body_pos != self._pos:
                self._drop()
            if self._body is None:
                self._open()
            elif self._budget is not None:
                self._budget.used(self)
            try:
                data = self._body.read(n)
            except Exception:
                if self._fresh:
                    self._drop()
                    raise
                self._drop()  # went stale while the reader paused: once more from here
                self._open()
                data = self._body.read(n)
            if data:
                self._fresh = False
            self._pos += len(data)
            self._body_pos = self._pos
            return data

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        memoryview(b).cast("B")[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            try:
                with self._lock:
                    self._drop()
            finally:
                super().close()
