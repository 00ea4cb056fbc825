"""Three-way merge of pointer files: the decision, pure (no I/O).

git runs ``git data merge-driver %O %A %B %P`` when both sides of a merge
touched a tracked path (``.gitattributes``: ``merge=s3data``). Data is never
merged; a pointer names one whole version, so the question is only which
side's version the merged commit keeps:

============================  =========================================
base / ours / theirs           merged
============================  =========================================
ours == theirs                 ours (both made the same change)
base == theirs                 ours (only ours changed)
base == ours                   theirs (only theirs changed)
ours, theirs same content      ours (the same version recorded twice:
                               same oid, or same source and fingerprint)
anything else                  conflict: the user chooses a side
============================  =========================================

"Same content" compares parsed pointers, so two clones that recorded one
version with different optional fields (a newer writer's extra key) do not
conflict. Anything that does not parse as a pointer is compared as bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from .pointer import parse_or_none

Outcome = Literal["ours", "theirs", "conflict"]

#: pointer keys that say which version of a registered source this is
_VERSION_KEYS = ("source", "version-id", "etag", "md5")


@dataclass(frozen=True)
class Merge:
    outcome: Outcome
    #: why, for the message shown on a conflict
    reason: str = ""


def same_version(a: bytes, b: bytes) -> bool:
    """Whether two pointer texts name the same version of a file."""
    if a == b:
        return True
    pa, pb = parse_or_none(a), parse_or_none(b)
    if pa is None or pb is None or pa.size != pb.size:
        return False
    if pa.oid is not None or pb.oid is not None:
        return pa.oid == pb.oid
    ea, eb = dict(pa.extra), dict(pb.extra)
    named = [k for k in _VERSION_KEYS if k in ea or k in eb]
    return bool(named) and "source" in ea and all(ea.get(k) == eb.get(k) for k in named)


def merge_pointers(base: bytes, ours: bytes, theirs: bytes) -> Merge:
    """Which side the merge keeps (see the module's table)."""
    if ours == theirs or base == theirs:
        return Merge("ours")
    if base == ours:
        return Merge("theirs")
    if same_version(ours, theirs):
        return Merge("ours")
    if parse_or_none(ours) is None or parse_or_none(theirs) is None:
        return Merge("conflict", "one side is not a valid pointer")
    return Merge("conflict", "both sides recorded a different version")


def merge_records(base: Iterable[Any], ours: Iterable[Any], theirs: Iterable[Any], conflicts: list[str]) -> Iterator[Any]:
    """Three-way merge of three sorted streams of manifest entries (``.path``, ``.pointer``), by path.

    The table above, per path (a missing entry is a deletion): one side's
    change wins over no change, the same change on both sides is taken
    once. A path both sides changed differently keeps ours and is appended
    to ``conflicts``; the caller decides what a conflict means.
    """
    heads = [iter(base), iter(ours), iter(theirs)]
    cur = [next(it, None) for it in heads]
    while any(c is not None for c in cur):
        path = min(c.path.encode() for c in cur if c is not None)
        here = []
        for i, c in enumerate(cur):
            if c is not None and c.path.encode() == path:
                here.append(c)
                cur[i] = next(heads[i], None)
            else:
                here.append(None)
        b, o, t = (None if e is None else e.pointer for e in here)
        if o == t or b == t:
            keep = here[1]
        elif b == o:
            keep = here[2]
        elif o is not None and t is not None and same_version(o.encode(), t.encode()):
            keep = here[1]
        else:
            conflicts.append(path.decode("utf-8", "surrogateescape"))
            keep = here[1] if here[1] is not None else here[2]
        if keep is not None:
            yield keep
