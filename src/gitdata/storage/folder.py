"""Objects in a folder: published whole, under a temporary name beside the
target and then renamed (or linked, for a create-only write) into place.

Shared by :class:`gitdata.storage.local.LocalStorage` and the adapter of
fsspec's local filesystem (:mod:`.backends`).
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import BinaryIO

from ..fileio import write_new
from .base import TMP_PREFIX, Capabilities

#: a folder: link(2) fails if the target exists, so create-only is atomic
LOCAL = Capabilities(atomic_create=True, cpu_bound=True)


def publish_file(lpath: str, rpath: str, create_only: bool) -> None:
    """Copy the file ``lpath`` to ``rpath`` so that ``rpath`` appears whole."""

    def fill(tmp: str) -> None:
        try:
            _copy(lpath, tmp)
        except FileNotFoundError:
            if not os.path.exists(lpath):
                raise  # the source is missing, not the target folder
            os.makedirs(os.path.dirname(rpath), exist_ok=True)  # first object in this folder
            _copy(lpath, tmp)

    _publish(rpath, fill, create_only)


@contextmanager
def write_object(rpath: str) -> Iterator[BinaryIO]:
    """A file to stream an object into; it appears at ``rpath`` only when the
    block ends without an error (nothing is left under the temporary name)."""
    os.makedirs(os.path.dirname(rpath), exist_ok=True)
    tmp = os.path.join(os.path.dirname(rpath), f"{TMP_PREFIX}{os.urandom(16).hex()}")
    try:
        with open(tmp, "xb") as f:
            yield f
        os.replace(tmp, rpath)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def publish_bytes(rpath: str, data: bytes) -> None:
    def fill(tmp: str) -> None:
        try:
            write_new(tmp, data)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(rpath), exist_ok=True)  # first object in this folder
            write_new(tmp, data)

    _publish(rpath, fill, False)


def _publish(rpath: str, fill: Callable[[str], None], create_only: bool) -> None:
    """``fill`` a temporary name beside ``rpath``, then move it there (``create_only``:
    only if nothing is there yet); nothing is left under the temporary name."""
    tmp = os.path.join(os.path.dirname(rpath), f"{TMP_PREFIX}{os.urandom(16).hex()}")
    try:
        fill(tmp)
        if create_only:
            os.link(tmp, rpath)  # FileExistsError if someone was first
            os.unlink(tmp)
        else:
            os.replace(tmp, rpath)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


#: Files up to this size are copied with one read and one write.
_SMALL_COPY = 1 << 20


def _copy(src: str, dst: str) -> None:
    """Copy ``src`` to ``dst``, which must not exist yet: one read and one write
    for a small file (10,000 objects are 10,000 of these), ``sendfile`` for the
    rest, so memory stays flat."""
    with open(src, "rb") as fi:
        size = os.fstat(fi.fileno()).st_size
        if size > _SMALL_COPY:
            with open(dst, "xb") as fo:
                _sendfile_all(fi, fo, size)
            return
        data = fi.read()
    write_new(dst, data)


def _sendfile_all(fi: BinaryIO, fo: BinaryIO, size: int) -> None:
    offset = 0
    try:
        while offset < size:
            sent = os.sendfile(fo.fileno(), fi.fileno(), offset, min(size - offset, 1 << 30))
            if sent == 0:
                break
            offset += sent
    except OSError as err:
        if offset or err.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise
        shutil.copyfileobj(fi, fo, 4 << 20)  # no sendfile between these filesystems
        offset = fo.tell()
    if offset != size:
        raise OSError(errno.EIO, f"copy came out short: {offset} of {size} bytes")
