"""Pointer files: strict parsing and the one canonical encoding. No I/O.

A pointer is small UTF-8 text::

    version gitdata/1
    oid xxh128:0123456789abcdef0123456789abcdef
    size 12345

The version line comes first; every other line is ``key value`` with keys in
byte order, each key at most once, LF line ends, no trailing spaces. Keys this
version does not know are kept as they are, so a newer writer's pointer
survives a round trip through an older reader.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import GitDataError

VERSION = "gitdata/1"
VERSION_LINE = b"version " + VERSION.encode()
#: Any blob that starts with this is meant to be a pointer (of some version).
MAGIC = b"version gitdata/"
MAX_SIZE = 1024

HASH_HEX_LENGTHS = {"xxh128": 32, "sha256": 64}

_KEY_RE = re.compile(r"^[a-z][a-z0-9-]*$")
_OID_RE = re.compile(r"^(xxh128|sha256):([0-9a-f]+)$")
_SIZE_RE = re.compile(r"^(0|[1-9][0-9]{0,18})$")
_RESERVED = frozenset({"version", "oid", "size"})

#: The key that makes a pointer a dataset manifest's (``gitdata.datasets.manifest``): its
#: object records many registered files, and it is never checked out in its place.
MANIFEST_KEY = "manifest"


class PointerError(GitDataError):
    """A blob that claims to be a pointer but is not a valid one."""


@dataclass(frozen=True, slots=True)
class Pointer:
    """The per-file facts a pointer records.

    ``oid`` may be ``None`` for data registered from a remote without being
    downloaded; such a pointer must carry ``source``.
    """

    oid: str | None
    size: int | None
    extra: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        if self.oid is not None:
            check_oid(self.oid)
        if self.size is not None and self.size < 0:
            raise PointerError(f"pointer size must not be negative, got {self.size}")
        seen = set()
        for key, value in self.extra:
            _check_key(key)
            if key in _RESERVED:
                raise PointerError(f"pointer key {key!r} is reserved")
            if key in seen:
                raise PointerError(f"pointer key {key!r} given twice")
            seen.add(key)
            _check_value(key, value)
        if self.oid is None and "source" not in seen:
            raise PointerError("a pointer needs an oid, or a source for registered data")
        if self.oid is not None and self.size is None:
            raise PointerError("a pointer with an oid needs a size")
        object.__setattr__(self, "extra", tuple(sorted(self.extra)))

    @classmethod
    def make(
        cls, oid: str | None, size: int | None, extra: Mapping[str, str] | None = None
    ) -> Pointer:
        """Build a pointer from a mapping of extra keys (``None`` values dropped)."""
        items = [(k, v) for k, v in (extra or {}).items() if v is not None]
        return cls(oid=oid, size=size, extra=tuple(items))

    def get(self, key: str) -> str | None:
        for k, v in self.extra:
            if k == key:
                return v
        return None

    @property
    def source(self) -> str | None:
        return self.get("source")

    @property
    def is_manifest(self) -> bool:
        return self.oid is not None and self.get(MANIFEST_KEY) is not None

    @property
    def algorithm(self) -> str | None:
        return None if self.oid is None else self.oid.split(":", 1)[0]

    @property
    def hexdigest(self) -> str | None:
        return None if self.oid is None else self.oid.split(":", 1)[1]

    def replace(self, **changes: str | int | None) -> Pointer:
        """A copy with some fields changed; extra keys by name (``-`` for ``_``)."""
        oid = changes.pop("oid", self.oid)
        size = changes.pop("size", self.size)
        extra = dict(self.extra)
        for key, value in changes.items():
            key = key.replace("_", "-")
            if value is None:
                extra.pop(key, None)
            else:
                extra[key] = str(value)
        return Pointer.make(oid if oid is None else str(oid), None if size is None else int(size), extra)

    def encode(self) -> bytes:
        """The canonical bytes of this pointer."""
        lines = [VERSION_LINE]
        fields: list[tuple[str, str]] = list(self.extra)
        if self.oid is not None:
            fields.append(("oid", self.oid))
        if self.size is not None:
            fields.append(("size", str(self.size)))
        for key, value in sorted(fields):
            lines.append(f"{key} {value}".encode())
        data = b"\n".join(lines) + b"\n"
        if len(data) >= MAX_SIZE:
            raise PointerError(
                f"pointer would be {len(data)} bytes, over the {MAX_SIZE}-byte limit "
                "(is a source URL or fingerprint unusually long?)"
            )
        return data


def check_oid(oid: str) -> None:
    m = _OID_RE.match(oid)
    if not m:
        raise PointerError(
            f"bad oid {oid!r}: expected 'xxh128:<32 hex>' or 'sha256:<64 hex>' in lowercase"
        )
    if len(m.group(2)) != HASH_HEX_LENGTHS[m.group(1)]:
        raise PointerError(
            f"bad oid {oid!r}: {m.group(1)} needs {HASH_HEX_LENGTHS[m.group(1)]} hex digits"
        )


def _check_key(key: str) -> None:
    if not _KEY_RE.match(key):
        raise PointerError(f"bad pointer key {key!r}: use lowercase letters, digits and '-'")


def _check_value(key: str, value: str) -> None:
    if value == "" or value != value.strip() or "\n" in value or "\r" in value:
        raise PointerError(f"bad value for pointer key {key!r}: {value!r}")


def is_pointer_like(data: bytes) -> bool:
    """True when ``data`` claims to be a pointer (it may still be invalid)."""
    return data.startswith(MAGIC)


def parse(data: bytes) -> Pointer:
    """Parse a pointer strictly. Raises :class:`PointerError` with the reason."""
    if len(data) >= MAX_SIZE:
        raise PointerError(f"pointer is {len(data)} bytes, limit is {MAX_SIZE - 1}")
    if not data.startswith(MAGIC):
        raise PointerError("not a pointer: does not start with 'version gitdata/'")
    if b"\r" in data:
        raise PointerError("pointer has CR characters: pointers use LF line ends only")
    if not data.endswith(b"\n"):
        raise PointerError("pointer must end with a newline")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise PointerError("pointer is not valid UTF-8") from err
    lines = text[:-1].split("\n")
    if lines[0] != VERSION_LINE.decode():
        raise PointerError(f"unsupported pointer version line {lines[0]!r} (this reads {VERSION})")
    keys: list[str] = []
    values: dict[str, str] = {}
    for n, line in enumerate(lines[1:], start=2):
        key, sep, value = line.partition(" ")
        if not sep:
            raise PointerError(f"line {n}: expected 'key value', got {line!r}")
        _check_key(key)
        if key == "version":
            raise PointerError(f"line {n}: version may only be the first line")
        if value != value.strip(" \t") or value == "":
            raise PointerError(f"line {n}: value of {key!r} is empty or has surrounding spaces")
        if key in values:
            raise PointerError(f"line {n}: key {key!r} given twice")
        if keys and key < keys[-1]:
            raise PointerError(f"line {n}: key {key!r} is out of order (keys must be sorted)")
        keys.append(key)
        values[key] = value
    oid = values.pop("oid", None)
    size_text = values.pop("size", None)
    size = None
    if size_text is not None:
        if not _SIZE_RE.match(size_text):
            raise PointerError(f"bad size {size_text!r}: expected a decimal number")
        size = int(size_text)
    pointer = Pointer(oid=oid, size=size, extra=tuple(values.items()))
    return pointer


def parse_or_none(data: bytes) -> Pointer | None:
    """The pointer ``data`` is, or ``None`` when the caller is to treat it as
    content: it does not claim to be a pointer, or it claims to and is
    invalid. For readers that only tell "a valid pointer" from "anything
    else" (the merge driver, a work-tree file); whoever must say *why* a
    pointer is invalid calls :func:`parse`."""
    if not is_pointer_like(data):
        return None
    try:
        return parse(data)
    except PointerError:
        return None
