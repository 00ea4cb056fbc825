"""Which files a clone fetches: ``gitdata.fetchInclude`` / ``gitdata.fetchExclude``. Pure.

Like git-lfs's ``lfs.fetchinclude``/``lfs.fetchexclude``: each setting is a
comma-separated list of git-style path patterns. A file is fetched when it
matches an include pattern (or there are none) and no exclude pattern.
A pattern

- with a ``/`` (other than a trailing one) matches the path from the top of
  the work tree (a leading ``/`` is allowed), as a whole or as a leading
  folder: ``data/raw`` matches ``data/raw/x.bin``; ``*`` and ``?`` do not
  cross a ``/``, ``**`` does;
- without one matches the file's name or any folder name in its path:
  ``*.tif`` matches ``a/b/c.tif``, ``raw`` matches ``raw/x`` and ``a/raw/y``.

An excluded file stays a pointer at clone and checkout (unless its content
is already in the local cache) and is left out by ``git data fetch`` and
``git data pull``; naming it on the command line fetches it anyway.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache


def split_patterns(value: str | None) -> tuple[str, ...]:
    """``"a, b/c ,"`` -> ``("a", "b/c")``."""
    return tuple(p.strip() for p in (value or "").split(",") if p.strip())


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        out.append({"*": "[^/]*", "?": "[^/]"}.get(c, re.escape(c)))
        i += 1
    return re.compile("".join(out))


def matches(pattern: str, path: str) -> bool:
    """Whether git-style ``pattern`` matches ``path`` (a ``/``-separated path in the work tree)."""
    pat = pattern.rstrip("/")
    if not pat:
        return False
    if "/" in pat:
        rx = _regex(pat.lstrip("/"))
        parts = path.split("/")
        return any(rx.fullmatch("/".join(parts[:n])) for n in range(1, len(parts) + 1))
    rx = _regex(pat)
    return any(rx.fullmatch(part) for part in path.split("/"))


@dataclass(frozen=True)
class FetchFilter:
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, include: str | None, exclude: str | None) -> FetchFilter:
        return cls(split_patterns(include), split_patterns(exclude))

    @property
    def active(self) -> bool:
        return bool(self.include or self.exclude)

    def wants(self, path: str) -> bool:
        if self.include and not any(matches(p, path) for p in self.include):
            return False
        return not any(matches(p, path) for p in self.exclude)
