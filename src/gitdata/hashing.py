"""Streaming content hashes. xxh3-128 by default, sha256 on request."""

from __future__ import annotations

from typing import BinaryIO, Protocol

import xxhash

from .errors import GitDataError

ALGORITHMS = ("xxh128", "sha256")
DEFAULT_ALGORITHM = "xxh128"
CHUNK = 1 << 20


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def hexdigest(self) -> str: ...


class UnknownHashError(GitDataError):
    pass


def new_hasher(algorithm: str) -> Hasher:
    if algorithm == "xxh128":
        return xxhash.xxh3_128()
    if algorithm == "sha256":
        import hashlib  # OpenSSL's start-up is paid only by sha256 repositories

        return hashlib.sha256()
    raise UnknownHashError(
        f"unknown hash algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)} "
        "(set it with: git config -f .gitdata data.hash xxh128)"
    )


def oid_of_stream(stream: BinaryIO, algorithm: str = DEFAULT_ALGORITHM) -> tuple[str, int]:
    """Hash a stream in constant memory; returns ``(oid, size)``."""
    h = new_hasher(algorithm)
    size = 0
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    while True:
        n = stream.readinto(view)  # type: ignore[attr-defined]
        if not n:
            break
        h.update(view[:n])
        size += n
    return f"{algorithm}:{h.hexdigest()}", size


def oid_of_file(path: str, algorithm: str = DEFAULT_ALGORITHM) -> tuple[str, int]:
    with open(path, "rb", buffering=0) as f:
        return oid_of_stream(f, algorithm)


def oid_of_bytes(data: bytes, algorithm: str = DEFAULT_ALGORITHM) -> str:
    h = new_hasher(algorithm)
    h.update(data)
    return f"{algorithm}:{h.hexdigest()}"
