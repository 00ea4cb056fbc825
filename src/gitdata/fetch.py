"""Getting objects from a data remote into the cache, and into the work tree."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from . import safepath, writer
from .cache import Cache, CorruptObject
from .errors import GitDataError
from .hashing import oid_of_file
from .pointer import MAX_SIZE, Pointer, PointerError, is_pointer_like, parse
from .storage import ObjectNotFound, ObjectStore, StorageError, oid_to_key
from .transfer import Outcome, report_bytes, run_parallel

#: Objects up to this size are fetched with one request and hashed in memory.
SMALL_OBJECT = 8 << 20
STREAM_CHUNK = 4 << 20


class ObjectMissing(GitDataError):
    pass


class WorktreeChanged(GitDataError):
    """A work-tree file changed while git data was writing its content beside it."""


def still_holds(full: str, expected: bytes | None) -> Callable[[], None]:
    """A check for :meth:`Cache.copy_to`: ``full`` still holds ``expected``
    (None: nothing), else :class:`WorktreeChanged` (the user's now: kept)."""

    def check() -> None:
        try:
            with open(full, "rb") as fh:
                now: bytes | None = fh.read(MAX_SIZE)
        except FileNotFoundError:
            now = None
        if now != expected:
            raise WorktreeChanged(f"{full} changed while its content was being written; kept it as it is")

    return check


class DownloadBrokeOff(StorageError):
    """Fewer (or more) bytes arrived than the pointer's size: the transfer
    broke off (some readers end a cut response without an error). Retried."""

    transient = True


def _check_length(got: int, size: int | None, oid: str, where: str) -> None:
    if size is not None and got != size:
        raise DownloadBrokeOff(f"download of {oid} from {where} broke off: {got} of {size} bytes arrived")


def download_object(store: ObjectStore, cache: Cache, oid: str, size: int | None) -> str:
    """Fetch ``oid`` into the cache, verifying it; returns the oid.

    Bytes that do not hash to ``oid`` are refused and nothing is written.
    """
    if cache.has(oid, size):
        return oid
    algo = oid.split(":", 1)[0]
    key = oid_to_key(oid)
    where = describe(store)
    try:
        if size is not None and size <= SMALL_OBJECT:
            with store.storage.open_read(key, whole=True) as f:
                data = f.read(size + 1)  # never more than the pointer says, plus one to notice
            if len(data) > size:
                check_size(len(data), size, oid, where)  # the pointer lies: refused, not retried
            _check_length(len(data), size, oid, where)  # short: the transfer broke off (retried)
            cache.put_bytes(data, algo, expected_oid=oid)
        else:
            with store.storage.open_read(key, whole=True) as f, cache.writer(algo) as w:
                while True:
                    chunk = f.read(STREAM_CHUNK)
                    if not chunk:
                        break
                    if size is not None and w.size + len(chunk) > size:
                        w.abort()
                        check_size(w.size + len(chunk), size, oid, where)
                    w.write(chunk)
                    report_bytes(len(chunk))
                _check_length(w.size, size, oid, where)
                w.commit(expected_oid=oid)
    except ObjectNotFound as err:
        raise ObjectMissing(f"object {oid} is missing on {where}") from err
    except CorruptObject as err:
        raise CorruptObject(f"refused object {oid} from {where}: {err}") from err
    return oid


class SizeMismatch(CorruptObject):
    """An object whose size is not the one its pointer records (the pointer lies, or the object)."""


def check_size(actual: int, recorded: int | None, oid: str, where: str) -> None:
    """The pointer's ``size`` bounds every read: more (or fewer) bytes are refused."""
    if recorded is not None and actual != recorded:
        more = "more than" if actual > recorded else "only"
        raise SizeMismatch(
            f"refused object {oid} from {where}: it has {more} {actual if actual < recorded else recorded} "
            f"bytes{'' if actual < recorded else ' (stopped reading)'}, the pointer records {recorded}; "
            "the pointer or the object is wrong (ask who committed it)"
        )
def fetch_object(store: ObjectStore, cache: Cache, oid: str, size: int | None) -> str:
    """:func:`download_object`, retried on transient errors under the store's
    shared retry policy (what a smudge download uses)."""
    return store.retrier.call(lambda: download_object(store, cache, oid, size))


def verify_file(path: str, oid: str, where: str) -> str:
    """Check that ``path`` (an object on a local data remote) hashes to ``oid``;
    returns the oid, or raises :class:`CorruptObject` as a download would."""
    try:
        actual, _size = oid_of_file(path, oid.split(":", 1)[0])
    except FileNotFoundError as err:
        raise ObjectMissing(f"object {oid} is missing on {where}") from err
    if actual != oid:
        raise CorruptObject(f"refused object {oid} from {where}: content hashes to {actual}")
    return oid


def describe(store: ObjectStore) -> str:
    """How messages name a data remote: its name and (redacted) location."""
    return f"data remote {store.name!r} ({store.storage.display})"


def download_many(
    store: ObjectStore, cache: Cache, wanted: dict[str, int | None], *, jobs: int, progress: bool | None = None
) -> Outcome[str, str]:
    """Fetch many objects in parallel; ``wanted`` maps oid to size."""
    todo = {oid: size for oid, size in wanted.items() if not cache.has(oid, size)}
    workers = store.storage.workers(jobs, mean_size=sum(v or 0 for v in todo.values()) / max(1, len(todo)))
    outcome = run_parallel(
        todo,
        lambda oid: download_object(store, cache, oid, todo[oid]),
        jobs=workers,
        label="Downloading",
        weight=lambda oid: todo[oid] or 0,
        retry=store.retrier,
        progress=progress,
    )
    full = [oid for oid, err in outcome.failed.items() if getattr(err, "no_space", False)]
    if full and workers > 1:
        # The disk filled while others were writing too: a large object's
        # temporary file (removed when it failed) may have taken the space a
        # small one needs. Each gets one more try, one at a time, smallest first.
        again = run_parallel(
            sorted(full, key=lambda oid: todo[oid] or 0),
            lambda oid: download_object(store, cache, oid, todo[oid]),
            jobs=1, label="Downloading", retry=store.retrier, progress=False,
        )  # fmt: skip
        for oid, path in again.done.items():
            outcome.failed.pop(oid, None)
            outcome.done[oid] = path
    return outcome


@dataclass
class WorktreeFile:
    path: str
    pointer: Pointer
    #: where the content is, if not in the cache (an object on a local data remote)
    source: str | None = None


def read_worktree_pointer(root: str, path: str) -> Pointer | None:
    """The pointer a work-tree file holds, or None if it holds content."""
    full = os.path.join(root, path)
    try:
        if os.path.islink(full) or os.path.getsize(full) >= MAX_SIZE:
            return None
        with open(full, "rb") as f:
            data = f.read(MAX_SIZE)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    if not is_pointer_like(data):
        return None
    try:
        return parse(data)
    except PointerError as err:
        raise PointerError(f"{path}: {err}") from err


def materialize(cache: Cache, root: str, files: Iterable[WorktreeFile]) -> Outcome[str, str]:
    """Replace pointer text in the work tree by content from the cache.

    Each file is written to a temporary name beside it and renamed, so a
    reader never sees half a file. A file whose work-tree bytes are no longer
    the pointer (the user changed it) is left alone.
    """
    outcome: Outcome[str, str] = Outcome()
    for f in files:
        oid = f.pointer.oid
        if oid is None:
            continue
        try:
            full = safepath.checked_target(root, f.path, what="work tree")  # no link on the way
        except (OSError, GitDataError) as err:
            outcome.failed[f.path] = err if isinstance(err, GitDataError) else GitDataError(f"{f.path}: {err}")
            continue
        if f.source is None and not cache.has(oid, f.pointer.size):
            outcome.failed[f.path] = ObjectMissing(f"object {oid} is not in the cache; run `git data fetch`")
            continue
        try:
            actual = os.path.getsize(f.source) if f.source is not None else cache.size_of(oid)
            check_size(actual, f.pointer.size, oid, "the cache" if f.source is None else f.source)
        except (OSError, GitDataError) as err:
            outcome.failed[f.path] = err if isinstance(err, GitDataError) else GitDataError(f"{f.path}: {err}")
            continue
        try:
            with open(full, "rb") as fh:
                current = fh.read(MAX_SIZE)
        except FileNotFoundError:
            current = None
        if current is not None and current != f.pointer.encode():
            continue
        check = still_holds(full, current)
        try:
            if f.source is not None:
                copy_verified(f.source, full, oid, check)
            else:
                cache.copy_to(oid, full, check, size=f.pointer.size)
        except WorktreeChanged:
            continue  # the user's now: left alone, as above
        except (OSError, GitDataError) as err:
            outcome.failed[f.path] = err if isinstance(err, GitDataError) else GitDataError(f"{f.path}: {err}")
            continue
        outcome.done[f.path] = oid
    return outcome


def copy_verified(source: str, dest: str, oid: str, check: Callable[[], None] | None = None) -> None:
    """Copy ``source`` over ``dest`` through the guarded writer, only if its bytes
    hash to ``oid``; ``check`` runs right before the rename (see :meth:`Cache.copy_to`)."""
    try:
        writer.copy_file(source, dest, algorithm=oid.split(":", 1)[0], expected_oid=oid, check=check)
    except writer.ContentMismatch as err:
        raise CorruptObject(f"refused object {oid} from {source}: {err}") from err
