"""A sync's working set on disk: the remote listing, the local scan and the plan's actions.

A sync compares three sides per path (:mod:`gitdata.syncplan`). Held as mappings, a
million-object storage costs several hundred bytes per object in each of them; here they
are rows of a temporary SQLite database (deleted when its connection closes, or when the
process ends), joined with the base manifest in path order, so a sync holds one row at a
time whatever the object count. The join does not depend on the order a server lists
keys in: SQLite sorts.
"""

from __future__ import annotations

import os
import pathlib
import sqlite3
from collections.abc import Callable, Iterable, Iterator

from .. import syncplan as sp
from ..storage import Fingerprint
from .listing import local_entry, walk_local
from .manifest import Manifest, _fp_from_json

#: rows written together
_CHUNK = 5000

_FP = ("size", "etag", "md5", "version_id", "mtime")


def _fp_row(fp: Fingerprint | None) -> tuple:
    return (None,) * 5 if fp is None else (fp.size, fp.etag, fp.md5, fp.version_id, fp.mtime)


def _fp(row: tuple) -> Fingerprint | None:
    return None if row[0] is None else Fingerprint(*row)


class Spool:
    """One sync's listing, scan and actions; ``base`` is the base manifest's file (None: no base yet)."""

    def __init__(self, base: str | None) -> None:
        # a private temporary database, on disk, deleted on close; uri: the base is attached by
        # a file URI, so a clone path holding '?' or '#' names the file it names
        db = sqlite3.connect("", uri=True)
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        if base is not None:
            # read-only: the sync writes the base through the manifest's own connection
            db.execute("ATTACH DATABASE ? AS base", (pathlib.Path(os.path.abspath(base)).as_uri() + "?mode=ro",))
        else:
            db.execute("ATTACH DATABASE ':memory:' AS base")
            db.execute(
                "CREATE TABLE base.files (path TEXT PRIMARY KEY, size INTEGER NOT NULL, remote TEXT NOT NULL,"
                " local_hash TEXT NOT NULL, mtime_ns INTEGER NOT NULL)"
            )
        cols = ", ".join(f"r_{c}" for c in _FP)
        db.execute(f"CREATE TABLE listing (path TEXT PRIMARY KEY, {cols}) WITHOUT ROWID")
        db.execute("CREATE TABLE scan (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER) WITHOUT ROWID")
        db.execute(
            f"CREATE TABLE actions (path TEXT PRIMARY KEY, kind TEXT, {cols}, l_size INTEGER, l_mtime_ns INTEGER,"
            " l_hash TEXT, keep TEXT, reason TEXT, done INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID"
        )
        self.db = db
        self.listed = 0

    def close(self) -> None:
        self.db.close()

    # -- filling ------------------------------------------------------------

    def _insert(self, sql: str, rows: Iterable[tuple]) -> int:
        n, chunk = 0, []
        with self.db:
            for row in rows:
                chunk.append(row)
                if len(chunk) >= _CHUNK:
                    self.db.executemany(sql, chunk)
                    n += len(chunk)
                    chunk.clear()
            self.db.executemany(sql, chunk)
        return n + len(chunk)

    def add_listing(self, listing: Iterable[tuple[str, Fingerprint]]) -> None:
        self.listed += self._insert(
            "INSERT OR REPLACE INTO listing VALUES (?, ?, ?, ?, ?, ?)", ((k, *_fp_row(fp)) for k, fp in listing)
        )

    def add_scan(self, scan: Iterable[tuple[str, int, int]]) -> None:
        self._insert("INSERT OR REPLACE INTO scan VALUES (?, ?, ?)", scan)

    def rows(self) -> Iterator[tuple[str, sp.BaseEntry | None, tuple[int, int] | None, Fingerprint | None]]:
        """``(path, base, (local size, mtime_ns), remote)`` of every path on any side, in path order."""
        fp_cols = ", ".join(f"r.r_{c}" for c in _FP)
        cur = self.db.execute(
            "SELECT p.path, f.size, f.remote, f.local_hash, f.mtime_ns, s.size, s.mtime_ns, " + fp_cols + " FROM"
            " (SELECT path FROM base.files UNION SELECT path FROM scan UNION SELECT path FROM listing) AS p"
            " LEFT JOIN base.files AS f ON f.path = p.path LEFT JOIN scan AS s ON s.path = p.path"
            " LEFT JOIN listing AS r ON r.path = p.path ORDER BY p.path"
        )
        for path, bsize, bremote, bhash, bmtime, lsize, lmtime, *fp in cur:
            base = None if bsize is None else sp.BaseEntry(bsize, _fp_from_json(bremote), bhash, bmtime)
            yield path, base, None if lsize is None else (lsize, lmtime), _fp(tuple(fp))

    def fill(
        self, root: str, scope: sp.Scope, listing: Iterable[tuple[str, Fingerprint]] | None,
        refused: dict[str, str] | None = None,
    ) -> None:
        """The local scan of ``root`` and (unless None) the listing. Local names no key can
        hold go to ``refused`` (:func:`.listing.walk_local`)."""
        if listing is not None:
            self.add_listing(listing)
        self.add_scan((r, st.st_size, st.st_mtime_ns) for r, st in walk_local(root, scope, refused))

    def sides(
        self, root: str, scope: sp.Scope, algorithm: str
    ) -> Iterator[tuple[str, sp.BaseEntry | None, sp.LocalEntry | None, Fingerprint | None]]:
        """Base, local file (hashed only where its size or mtime moved) and remote object of
        every path in scope, in path order: one row at a time."""
        for path, b, stat, ro in self.rows():
            if scope.contains(path):  # (a base entry of a folder outside the scope is not)
                yield path, b, None if stat is None else local_entry(root, path, stat[0], stat[1], b, algorithm), ro

    # -- the plan -----------------------------------------------------------

    def actions_writer(self) -> tuple[Callable[[sp.Action], None], Callable[[], None]]:
        """``(emit, flush)``: store actions as they are decided (written in chunks)."""
        chunk: list[tuple] = []

        def flush() -> None:
            with self.db:
                self.db.executemany(
                    "INSERT OR REPLACE INTO actions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)", chunk
                )
            chunk.clear()

        def emit(a: sp.Action) -> None:
            lo = a.local
            chunk.append((
                a.path, a.kind, *_fp_row(a.remote),
                *((None, None, None) if lo is None else (lo.size, lo.mtime_ns, lo.hash)), a.keep, a.reason,
            ))  # fmt: skip
            if len(chunk) >= _CHUNK:
                flush()

        return emit, flush

    def actions(self, *, done: bool | None = None, page: int = 1000) -> Iterator[sp.Action]:
        """The stored actions in path order (``done``: only those done, or not done), read a
        page at a time: no statement stays open between pages, so the caller may write
        (mark actions done) while it reads."""
        where = "" if done is None else f" AND done = {int(done)}"
        cols = ", ".join(f"r_{c}" for c in _FP)
        after = ""
        while True:
            got = self.db.execute(
                f"SELECT path, kind, {cols}, l_size, l_mtime_ns, l_hash, keep, reason FROM actions"
                f" WHERE path > ?{where} ORDER BY path LIMIT ?", (after, page),
            ).fetchall()  # fmt: skip
            for path, kind, *rest in got:
                fp, (lsize, lmtime, lhash, keep, reason) = _fp(tuple(rest[:5])), rest[5:]
                lo = None if lsize is None else sp.LocalEntry(lsize, lmtime, lhash)
                yield sp.Action(kind, path, fp, lo, keep, reason)
            if len(got) < page:
                return
            after = got[-1][0]

    def count(self, kinds: Iterable[str]) -> int:
        """How many stored actions are of these kinds."""
        kinds = tuple(kinds)
        marks = ", ".join("?" * len(kinds))
        return self.db.execute(f"SELECT COUNT(*) FROM actions WHERE kind IN ({marks})", kinds).fetchone()[0]

    def mark_done(self, paths: Iterable[str]) -> None:
        with self.db:
            self.db.executemany("UPDATE actions SET done = 1 WHERE path = ?", ((p,) for p in paths))


def sides(
    manifest: Manifest | None, root: str, scope: sp.Scope, algorithm: str,
    listing: Iterable[tuple[str, Fingerprint]] | None, refused: dict[str, str] | None = None,
) -> Iterator[tuple[str, sp.BaseEntry | None, sp.LocalEntry | None, Fingerprint | None]]:
    """:meth:`Spool.sides` of a spool of its own (closed when the walk ends): nothing of the
    storage is held in memory."""
    spool = Spool(manifest.path if manifest is not None and manifest.exists() else None)
    try:
        spool.fill(root, scope, listing, refused)
        yield from spool.sides(root, scope, algorithm)
    finally:
        spool.close()
