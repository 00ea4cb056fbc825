"""What each side of a storage holds now: a walk of the local folder (re-hashing only files whose size or mtime changed) and one listing of the remote."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .. import safepath
from .. import syncplan as sp
from ..errors import GitDataError
from ..hashing import CHUNK, new_hasher, oid_of_file
from ..storage import Fingerprint, Storage
from ..storage.errors import translate
from ..storage.fingerprint import is_plain_md5_etag

if TYPE_CHECKING:
    pass
from ..storage import TMP_PREFIX

#: why a local file is not synced when its name is not UTF-8 (an object key is)
NOT_UTF8 = "the local file name is not valid UTF-8, so it cannot be an object key; it was skipped (rename it)"


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes of the file system's name (surrogateescape)
        return False
    return True


def walk_local(
    root: str, scope: sp.Scope, refused: dict[str, str] | None = None
) -> Iterator[tuple[str, os.stat_result]]:
    """``(path, stat)`` of every regular file under ``root`` in scope (no links, no
    temporaries), in no particular order; one folder's entries at a time. A name that is
    not UTF-8 (it could be no object's key) is left out, with the reason in ``refused``."""
    if not os.path.isdir(root):
        return
    stack = [("", root)]
    while stack:
        rel, d = stack.pop()
        with os.scandir(d) as it:
            for e in it:
                r = f"{rel}/{e.name}" if rel else e.name
                if not e.name.isascii() and not _utf8(e.name):
                    if refused is not None:
                        refused[r] = NOT_UTF8
                    continue
                if e.is_dir(follow_symlinks=False):
                    stack.append((r, e.path))
                    continue
                if not e.is_file(follow_symlinks=False) or e.name.startswith(TMP_PREFIX):
                    continue
                if scope.contains(r):
                    yield r, e.stat(follow_symlinks=False)


def local_entry(root: str, path: str, size: int, mtime_ns: int, base: sp.BaseEntry | None, algorithm: str) -> sp.LocalEntry:
    """The local file ``path`` as the sync sees it: hashed only if its size or mtime moved since ``base``."""
    if base is not None and base.size == size and base.mtime_ns == mtime_ns:
        h = base.local_hash
    else:
        h = oid_of_file(os.path.join(root, *path.split("/")), algorithm)[0]
    return sp.LocalEntry(size=size, mtime_ns=mtime_ns, hash=h)


def iter_remote(
    storage: Storage, scope: sp.Scope, refused: dict[str, str] | None = None
) -> Iterator[tuple[str, Fingerprint]]:
    """One listing of the storage (or of the one folder in scope), streamed.

    Keys come from whoever can write to the bucket: a key that could not be
    a path inside the storage folder (``..``, ``.git``, absolute, control
    characters) is left out, with the reason in ``refused``.
    """
    for key, fp in storage.list(scope.list_prefix()):
        if key.rsplit("/", 1)[-1].startswith(TMP_PREFIX) or not scope.contains(key):
            continue
        try:
            safepath.check_relpath(key, "object key")
        except safepath.UnsafePath as err:
            if refused is not None:
                refused[key] = f"{err}; it was skipped (rename it in the bucket)"
            continue
        yield key, fp


def _read_chunk(f: Any, storage: Storage, key: str) -> bytes:
    """One chunk of a remote read; vendor errors raised mid-stream are translated here."""
    try:
        return f.read(CHUNK)
    except GitDataError:
        raise
    except Exception as err:  # noqa: BLE001 - botocore/aiohttp raise their own types mid-read
        raise translate(err, f"download {key}", storage.display, storage.name) from err


def remote_md5(fp: Fingerprint) -> str | None:
    if fp.md5:
        return fp.md5
    return fp.etag.strip('"').lower() if is_plain_md5_etag(fp.etag) else None


def _hash_and_md5(path: str, algorithm: str) -> tuple[str, str, int]:
    h, m, size = new_hasher(algorithm), hashlib.md5(usedforsecurity=False), 0
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            m.update(chunk)
            size += len(chunk)
    return f"{algorithm}:{h.hexdigest()}", m.hexdigest(), size
