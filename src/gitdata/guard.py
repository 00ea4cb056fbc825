"""Whether git data may write a file: is it still what git data last put there?

Before git data writes content at a path (a ``--location`` folder, the work
tree) it looks at what is there now:

========  ===============================================  =================
state     what the path holds                              git data
========  ===============================================  =================
missing   nothing                                          writes
pointer   pointer text                                     writes
current   the bytes the pointer stands for                 leaves it (done)
outdated  bytes git data wrote there before, for an        writes
          older pointer
user      anything else: the user's                        keeps, reports
========  ===============================================  =================

What git data "put there" is per-clone state (:mod:`gitdata.state`): the
content staged for a registered pointer, and for ``--location`` files the
oid, size and mtime written. A file whose size and mtime still match the
record is taken to hold the recorded bytes without reading it (as git trusts
its index); any other file is hashed. :func:`decide` is the table; the rest
gathers its inputs.
"""

from __future__ import annotations

import os
import stat as stat_mod
from collections.abc import Callable
from dataclasses import dataclass, field

from .hashing import oid_of_file
from .pointer import MAX_SIZE, PointerError, is_pointer_like, parse
from .writer import signature

__all__ = ["CURRENT", "MISSING", "OUTDATED", "POINTER", "USER", "WRITABLE", "Expect", "decide", "inspect", "signature"]

MISSING = "missing"
POINTER = "pointer"
CURRENT = "current"
OUTDATED = "outdated"
USER = "user"

#: states in which git data may (re)write the path
WRITABLE = frozenset({MISSING, POINTER, OUTDATED})


@dataclass(frozen=True)
class Expect:
    """What git data knows about one path."""

    #: the oid of the content the tracked pointer stands for, if known
    wanted: str | None = None
    #: oids of bytes git data put at this path before (any pointer)
    ours: frozenset[str] = field(default_factory=frozenset)
    #: ``(oid, size, mtime_ns)`` recorded right after git data wrote the file
    written: tuple[str, int, int] | None = None

    @property
    def known(self) -> bool:
        return bool(self.wanted or self.ours or self.written)


def decide(kind: str, content_oid: str | None, expect: Expect, fallback_current: bool = False) -> str:
    """The state of a path (see the module table).

    ``kind`` is "missing", "pointer", "other" (not a regular file: a folder,
    a symlink) or "content" with ``content_oid`` the oid of its bytes.
    ``fallback_current`` is the verdict of a weaker check (size, a recorded
    md5) used only when git data has no record of the path at all.
    """
    if kind in (MISSING, POINTER):
        return kind
    if kind != "content":
        return USER
    if content_oid is not None and content_oid == expect.wanted:
        return CURRENT
    written = expect.written[0] if expect.written else None
    if content_oid is not None and (content_oid in expect.ours or content_oid == written):
        return OUTDATED
    if not expect.known and fallback_current:
        return CURRENT
    return USER


def inspect(
    full: str, expect: Expect, *, algorithm: str, fallback: Callable[[str], bool] | None = None
) -> tuple[str, str | None]:
    """``(state, content oid or None)`` of ``full``; reads or hashes it only as needed."""
    try:
        st = os.lstat(full)
    except (FileNotFoundError, NotADirectoryError):
        return MISSING, None
    if not stat_mod.S_ISREG(st.st_mode):
        return USER, None
    if st.st_size < MAX_SIZE:
        with open(full, "rb") as f:
            head = f.read(MAX_SIZE)
        if is_pointer_like(head):
            try:
                parse(head)
                return POINTER, None
            except PointerError:
                pass  # pointer-like text the user wrote: content
    if expect.written and (st.st_size, st.st_mtime_ns) == expect.written[1:]:
        oid: str | None = expect.written[0]
    elif expect.known:
        some = expect.wanted or (expect.written[0] if expect.written else None) or next(iter(expect.ours))
        oid, _size = oid_of_file(full, some.split(":", 1)[0])
    else:
        oid = None
    verdict = bool(fallback and not expect.known and fallback(full))
    state = decide("content", oid, expect, fallback_current=verdict)
    if state == CURRENT and oid is None:
        oid, _size = oid_of_file(full, algorithm)
    return state, oid
