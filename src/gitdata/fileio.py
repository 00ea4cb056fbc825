"""Small file-writing helpers shared by the cache and the local storage backend."""

from __future__ import annotations

import errno
import os


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write all of ``data`` to ``fd``.

    A raw write may write less than asked (a full disk does this before it
    raises ENOSPC): loop, or the file would be truncated; a write of nothing
    is taken as a full disk.
    """
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n == 0:
            raise OSError(errno.ENOSPC, "short write")
        view = view[n:]


def write_new(path: str, data: bytes | memoryview) -> None:
    """Create ``path``, which must not exist yet, holding ``data``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)
