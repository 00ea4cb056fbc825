"""A dataset's manifest: one content-addressed object that records many registered files.

Above ``gitdata.manifestThreshold`` files, a registered dataset is recorded
not as one pointer file per object but as one pointer,
``<dataset folder>/.gitdata-manifest``, naming a manifest object (stored and
pushed like any object, what DVC's ``.dir`` objects are). The object is
gzip-compressed UTF-8 JSON lines (docs/spec.md):

    {"format": "gitdata-manifest/1"}
    {"path": "a/b.csv", "size": 12, "source": "s3://bucket/raw/a/b.csv", "etag": "..."}
    ...

one line per file after the header, sorted by ``path`` (relative to the
dataset folder, byte order of its UTF-8), each path once. Apart from
``path`` and ``size``, the keys are a registered pointer's keys, and each
line must make a valid registered pointer (``source`` required).

This module is pure: it turns lines into entries and back, merges and
compares sorted entry streams, all in constant memory. Reading is strict:
the first bad line stops the read with its line number, a path that could
leave the dataset folder or enter ``.git`` is refused (the manifest comes
from a clone or a bucket: untrusted input).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from ..errors import GitDataError
from ..pointer import MANIFEST_KEY, MAX_SIZE, VERSION_LINE, Pointer, PointerError
from ..safepath import UnsafePath, check_relpath

#: The pointer file's name inside the dataset folder.
NAME = ".gitdata-manifest"
#: The header line's format name (and the version readers must know).
FORMAT = "gitdata-manifest/1"
#: The pointer key that marks a pointer as a manifest's (its value: the format version).
KEY = MANIFEST_KEY
#: The pointer key with the number of files the manifest records (shown without reading it).
COUNT_KEY = "files"


T = TypeVar("T")

_POINTER_HEAD = VERSION_LINE + b"\n"
_decode = json.JSONDecoder().decode


class ManifestError(GitDataError):
    """A manifest object that is not what this version writes (or was tampered with)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One recorded file: its path inside the dataset folder, and its registered pointer."""

    path: str
    pointer: Pointer


def is_manifest_pointer(pointer: Pointer) -> bool:
    return pointer.is_manifest


def manifest_pointer(oid: str, size: int, count: int) -> Pointer:
    return Pointer.make(oid, size, {KEY: "1", COUNT_KEY: str(count)})


def is_manifest_path(path: str) -> bool:
    return path == NAME or path.endswith("/" + NAME)


def folder_of(path: str) -> str:
    """The dataset folder of a manifest pointer at ``path``."""
    return path.rsplit("/", 1)[0] if "/" in path else ""


def header() -> bytes:
    """The manifest's first line."""
    return json.dumps({"format": FORMAT}).encode() + b"\n"


def line(e: Entry) -> bytes:
    """One entry's line (ending in a newline). Deterministic: a pointer's keys are sorted,
    so two entries encode to the same bytes exactly when they record the same."""
    p = e.pointer
    if p.oid is not None or p.size is None:
        raise ManifestError(f"{e.path}: a manifest records registered files only (size and source, no oid)")
    record: dict[str, object] = {"path": e.path, "size": p.size}
    record.update(p.extra)
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def encode(entries: Iterable[Entry]) -> Iterator[bytes]:
    """The manifest's lines (each ending in a newline); entries must come sorted, each path once."""
    yield header()
    last: str | None = None
    for e in entries:
        if last is not None and e.path.encode() <= last.encode():
            raise ManifestError(f"manifest entries out of order or repeated: {last!r} then {e.path!r}")
        last = e.path
        yield line(e)


def keyed(entries: Iterable[Entry]) -> Iterator[tuple[bytes, bytes]]:
    """``(path as UTF-8, line)`` per entry: the form manifests are sorted and merged in."""
    for e in entries:
        yield e.path.encode(), line(e)


def parse(lines: Iterable[bytes]) -> Iterator[Entry]:
    """The entries of a manifest's lines, checked one by one (strict; see the module's docstring)."""
    it = iter(lines)
    first = next(it, b"")
    try:
        header = json.loads(first)
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ManifestError(
            f"not a {FORMAT} manifest (first line {first[:80]!r}); a newer git data may have written it"
        )
    last = b""
    folders: set[str] = set()  # folders whose path was checked already (lines come sorted: few)
    for n, line in enumerate(it, start=2):
        entry = _entry(line, n, folders)
        key = entry.path.encode()
        if key <= last:
            raise ManifestError(f"manifest line {n}: {entry.path!r} is out of order or repeated")
        last = key
        yield entry


def _entry(line: bytes, n: int, folders: set[str]) -> Entry:
    try:
        record = _decode(line.decode("utf-8"))
    except ValueError as err:  # (UnicodeDecodeError is one)
        raise ManifestError(f"manifest line {n}: not JSON ({err})") from err
    if not isinstance(record, dict):
        raise ManifestError(f"manifest line {n}: not an object")
    path, size = record.pop("path", None), record.pop("size", None)
    if not isinstance(path, str) or not path:
        raise ManifestError(f"manifest line {n}: no path")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestError(f"manifest line {n}: {path!r} has no valid size")
    folder, slash, name = path.rpartition("/")
    try:
        if slash and not folder:  # "/name": the folder check below would see no folder at all
            check_relpath(path, "manifest path")
        if folder and folder not in folders:
            check_relpath(folder, "manifest path")
            folders.add(folder)
        check_relpath(name, "manifest path")
    except UnsafePath as err:
        raise ManifestError(f"manifest line {n}: {path!r}: {err}") from err
    if path == NAME:
        raise ManifestError(f"manifest line {n}: {path!r} is the manifest's own pointer file")
    extra = {}
    length = len(_POINTER_HEAD) + len(str(size)) + 6
    for k, v in record.items():
        if not isinstance(v, str):
            raise ManifestError(f"manifest line {n}: {path!r}: every key but path and size takes a string")
        extra[sys.intern(k)] = v  # a million lines share a handful of keys
        length += len(k) + len(v.encode("utf-8", "surrogateescape")) + 2
    if length >= MAX_SIZE:
        raise ManifestError(f"manifest line {n}: {path!r}: its pointer would be over {MAX_SIZE} bytes")
    try:
        pointer = Pointer.make(None, size, extra)
    except PointerError as err:
        raise ManifestError(f"manifest line {n}: {path!r}: {err}") from err
    return Entry(path, pointer)


def _path_key(e: Entry) -> bytes:
    return e.path.encode()


def by_line_key(item: tuple[bytes, bytes]) -> bytes:
    """The sort key of a keyed line (:func:`keyed`): its path's bytes."""
    return item[0]


def merge(
    old: Iterable[T], new: Iterable[T], *, key: Callable[[T], bytes] = _path_key,  # type: ignore[assignment]
    counts: dict[str, int] | None = None,
) -> Iterator[T]:
    """Both sorted by ``key`` (entries by path; keyed lines with ``key=by_line_key``); an item
    of ``new`` replaces ``old``'s at the same key.

    ``counts["unchanged"]`` (when given) counts the replacements equal to what they replace
    (for keyed lines: the same bytes, so the same record).
    """
    a, b = iter(old), iter(new)
    x, y = next(a, None), next(b, None)
    while x is not None or y is not None:
        if y is None or (x is not None and key(x) < key(y)):
            assert x is not None
            yield x
            x = next(a, None)
        else:
            if x is not None and key(x) == key(y):
                if counts is not None and x == y:
                    counts["unchanged"] = counts.get("unchanged", 0) + 1
                x = next(a, None)
            yield y
            y = next(b, None)


def diff(old: Iterable[Entry], new: Iterable[Entry]) -> Iterator[tuple[str, Pointer | None, Pointer | None]]:
    """``(path, before, after)`` for each path added, deleted or recorded differently (sorted merge-join)."""
    a, b = iter(old), iter(new)
    x, y = next(a, None), next(b, None)
    while x is not None or y is not None:
        if y is None or (x is not None and x.path.encode() < y.path.encode()):
            assert x is not None
            yield x.path, x.pointer, None
            x = next(a, None)
        elif x is None or y.path.encode() < x.path.encode():
            yield y.path, None, y.pointer
            y = next(b, None)
        else:
            if x.pointer != y.pointer:
                yield x.path, x.pointer, y.pointer
            x, y = next(a, None), next(b, None)
