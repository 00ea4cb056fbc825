"""Bytes of a dataset's objects onto disk: downloads of registered sources pinned to their recorded version and bounded by their recorded size, and copies out of the cache, all through the guarded writer."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, BinaryIO

from .. import safepath, writer
from ..cache import CacheError
from ..hashing import CHUNK
from ..pointer import Pointer
from ..project import Project
from ..storage import Storage
from ..transfer import report_bytes
from . import model as ds_mod
from .modes import RemoteChanged, StageError, _expected_md5


def open_kwargs(storage: Storage, version_id: str | None) -> dict[str, Any]:
    """How this backend opens one version of an object (``None``: it cannot)."""
    if not version_id or not ds_mod.is_versioned(storage) or storage.version_kwarg is None:
        return {}
    return {storage.version_kwarg: version_id}


class ChangedMeanwhile(StageError, writer.TargetChanged):
    """The target changed while git data was writing beside it: it is kept."""


def _commit(sink: writer.GuardedFile, **kw: Any) -> tuple[str, int]:
    try:
        return sink.commit(**kw)
    except writer.TargetChanged as err:
        raise ChangedMeanwhile(f"{sink.dest} changed while it was being staged; kept it as it is") from err


def _stream(storage: Storage, key: str, pointer: Pointer, sink: writer.GuardedFile) -> None:
    """Read ``key`` (its recorded version) into ``sink``: bounded by the recorded size as it
    arrives, checked against the recorded size and md5 at the end; ``sink`` is aborted on a
    mismatch."""
    kwargs = open_kwargs(storage, pointer.get("version-id"))
    expected = _expected_md5(pointer)
    md5 = hashlib.md5(usedforsecurity=False) if expected else None
    with storage.open_read(key, whole=True, **kwargs) as f:  # one GET, no HEAD first
        while chunk := f.read(CHUNK * 4):
            _check_bound(storage, key, pointer, sink.size + len(chunk), sink.abort)
            sink.write(chunk)
            report_bytes(len(chunk))
            if md5 is not None:
                md5.update(chunk)
    _check(storage, key, pointer, sink.size, md5, expected, sink.abort)


def _download_to_cache(project: Project, storage: Storage, key: str, pointer: Pointer) -> str:
    """Into the local cache, verified; returns the content oid."""
    with project.cache.writer(project.algorithm) as w:
        _stream(storage, key, pointer, w)
        oid, _ = w.commit()
    return oid


def _download_to_file(
    project: Project, storage: Storage, key: str, pointer: Pointer, dest: str | safepath.Target,
    expect: tuple[int, int, int] | None = None,
) -> str:
    with writer.guarded(dest, project.algorithm, expect=expect) as sink:
        _stream(storage, key, pointer, sink)
        oid, _ = _commit(sink)
    return oid


def check_registered_size(path: str, pointer: Pointer) -> None:
    """A registered file must state its size: it bounds every read of its source."""
    if pointer.oid is None and pointer.size is None:
        raise StageError(
            f"{path}: the registered pointer has no size, so a read of its source could not be "
            "bounded; register it again (`git data update`) to record its size"
        )


def _check_bound(storage: Storage, key: str, pointer: Pointer, size: int, abort: Callable[[], None]) -> None:
    """Stop reading as soon as more bytes arrive than the pointer records."""
    if pointer.size is not None and size > pointer.size:
        abort()
        raise RemoteChanged(
            f"{storage.display}/{key} has more than the {pointer.size} bytes that were recorded: "
            "the remote changed (or the pointer lies); stopped reading. Run `git data update` to "
            "record the new version"
        )


def _copy_to_file(source: BinaryIO, dest: str | safepath.Target, algorithm: str, expect: tuple[int, int, int] | None,
                  oid: str | None = None) -> str:
    """Copy an open file to ``dest`` through the guarded writer; with ``oid``,
    only if the bytes hash to it. Returns the oid of what was written."""
    with writer.guarded(dest, algorithm, expect=expect) as sink:
        sink.copy_from(source)
        try:
            written, _size = _commit(sink, expected_oid=oid)
        except writer.ContentMismatch as err:
            raise CacheError(f"cached object {oid} is corrupt; delete it and run `git data fetch`") from err
    return written


def _check(storage: Storage, key: str, pointer: Pointer, size: int, md5: Any, expected: str | None, abort: Callable[[], None]) -> None:
    where = f"{storage.display}/{key}"
    if pointer.size is not None and size != pointer.size:
        abort()
        raise RemoteChanged(
            f"{where} has {size} bytes, {pointer.size} were recorded: the remote changed; "
            "run `git data update` to record the new version"
        )
    if md5 is not None and expected and md5.hexdigest() != expected:
        abort()
        raise RemoteChanged(
            f"{where}: content md5 {md5.hexdigest()} differs from the recorded {expected}: the "
            "remote changed; run `git data update` to record the new version"
        )
