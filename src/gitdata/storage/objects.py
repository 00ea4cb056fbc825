"""The content-addressed object layout on a data remote.

``<storage-url>/objects/ab/cd/<hex>``: the first two pairs of hex digits fan
out. The algorithm is implied by the digest's length (32 hex for xxh128, 64
for sha256), so keys stay free of ``:`` on every filesystem.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..pointer import HASH_HEX_LENGTHS
from ..transfer import byte_reporter
from .base import Storage

if TYPE_CHECKING:
    from ..cache import Cache

_BY_LENGTH = {n: algo for algo, n in HASH_HEX_LENGTHS.items()}

#: Above this many questions, one listing of ``objects/`` beats one HEAD each.
LIST_THRESHOLD = 64


def oid_to_key(oid: str) -> str:
    hexd = oid.split(":", 1)[1]
    return f"objects/{hexd[:2]}/{hexd[2:4]}/{hexd}"


def key_to_oid(key: str) -> str | None:
    parts = key.split("/")
    if len(parts) < 4 or parts[-4] != "objects":
        return None
    hexd = parts[-1]
    algo = _BY_LENGTH.get(len(hexd))
    if algo is None or parts[-3] != hexd[:2] or parts[-2] != hexd[2:4]:
        return None
    return f"{algo}:{hexd}"


class ObjectStore:
    def __init__(self, storage: Storage, *, jobs: int = 8) -> None:
        self.storage = storage
        self.jobs = jobs
        #: the retry state shared by every transfer to or from this store in
        #: this process (a dead server fails them all within the policy's time)
        self.retrier = storage.retrier

    @property
    def name(self) -> str | None:
        return self.storage.name

    def has(self, oid: str) -> bool:
        return self.storage.exists(oid_to_key(oid))

    def list_oids(self) -> set[str]:
        out = set()
        for key, _fp in self.storage.list("objects"):
            oid = key_to_oid(key)
            if oid:
                out.add(oid)
        return out

    def missing(self, oids: Iterable[str]) -> set[str]:
        """Which of ``oids`` the remote lacks: one listing, or a few HEADs
        (each request retried on its own: see :mod:`gitdata.retry`)."""
        wanted = set(oids)
        if not wanted:
            return set()
        if len(wanted) > LIST_THRESHOLD:
            return wanted - self.list_oids()
        if len(wanted) == 1 or self.storage.local_root is not None:  # no thread pool for a stat or one request
            return {oid for oid in wanted if not self.has(oid)}
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(self.jobs, len(wanted))) as pool:
            present = dict(zip(wanted, pool.map(self.has, wanted)))
        return {oid for oid, ok in present.items() if not ok}

    def upload(self, oid: str, local_path: str) -> None:
        self.storage.put_file(local_path, oid_to_key(oid), progress=byte_reporter())

    def upload_cached(self, oid: str, cache: Cache) -> None:
        """Upload ``oid`` from the local cache, whether it is a file or packed."""
        if cache.packs.find(oid) is not None:
            self.storage.put_bytes(cache.packs.read(oid), oid_to_key(oid))
        else:
            self.storage.put_file(cache.path(oid), oid_to_key(oid), progress=byte_reporter())
