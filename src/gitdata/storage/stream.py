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
from collections.abc import Callable
from typing import Any

from .backends import Adapter, adapter_for

Opener = Callable[[int], Any]  # start offset -> an object with read(n) and close()


def stream_opener(fs: Any, path: str, kwargs: dict[str, Any]) -> Opener | None:
    """How to open streaming GETs of ``path`` on ``fs``; None if its backend has none."""
    adapter = adapter_for(fs)
    if type(adapter).open_stream is Adapter.open_stream:
        return None
    return lambda start: adapter.open_stream(fs, path, start, dict(kwargs))


class StreamFile(io.RawIOBase):
    """Reads ``opener(pos)``'s stream while reads are sequential; a seek reopens lazily.

    A stream that breaks after it delivered bytes (a server closing a
    connection the reader left idle) is reopened once at the position it
    reached; an error on a fresh stream is the caller's.
    """

    def __init__(self, opener: Opener) -> None:
        super().__init__()
        self._opener = opener
        self._pos = 0
        self._body: Any = None
        self._body_pos = 0
        self._fresh = True

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self._pos
        elif whence != io.SEEK_SET:
            raise OSError("a stream of unknown length seeks from its start or the current position only")
        if offset < 0:
            raise ValueError("negative seek position")
        self._pos = offset
        return offset

    def start(self) -> StreamFile:
        """Send the first request now (a missing object or version fails at open, not at a read)."""
        if self._body is None:
            self._body = self._opener(self._pos)
            self._body_pos = self._pos
            self._fresh = True
        return self

    def _drop(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            body.close()

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = 1 << 62
        if n == 0:
            return b""
        if self._body is not None and self._body_pos != self._pos:
            self._drop()
        if self._body is None:
            self._body = self._opener(self._pos)
            self._body_pos = self._pos
            self._fresh = True
        try:
            data = self._body.read(n)
        except Exception:
            if self._fresh:
                self._drop()
                raise
            self._drop()  # went stale while the reader paused: once more from here
            self._body = self._opener(self._pos)
            self._body_pos = self._pos
            self._fresh = True
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
                self._drop()
            finally:
                super().close()
