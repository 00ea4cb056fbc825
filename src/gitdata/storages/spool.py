"""A sync's working set on disk: the remote listing, the local scan and the plan's actions.

A sync compares three sides per path (:mod:`gitdata.syncplan`). Held as mappings, a
million-object storage costs several hundred bytes per object in each of them; here they
are rows of a private SQLite database in the cache's ``tmp/`` folder (unlinked as soon as
it is open, so it is gone when the process ends, however it ends), joined with the base
manifest in path order, so a sync holds one row at a time whatever the object count. The
join does not depend on the order a server lists keys in: every path goes into one table
keyed by path, and reading that table is the sort. Nothing spills to SQLite's own temporary
folder, so a full disk is this folder's, and the error says so (:class:`SpoolFull`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import pathlib
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator
from itertools import islice

from .. import syncplan as sp
from ..errors import GitDataError
from ..fileio import tmp_prefix
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


class SpoolFull(GitDataError):
    """The folder holding a sync's working set has no room left."""

    def __init__(self, folder: str, rows: int) -> None:
        super().__init__(
            f"no space left in {folder} for the working list of this command ({rows:,} paths so far; "
            "it needs about 250 bytes a path): free space there, or point gitdata.cacheDir at a disk "
            "with room, and run the command again (what was done so far is recorded)"
        )
        self.folder = folder


def _full(err: sqlite3.Error) -> bool:
    return getattr(err, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL


class Spool:
    """One sync's listing, scan and actions, in a database file in ``folder`` (the cache's
    ``tmp/``); ``base`` is the base manifest's file (None: no base yet)."""

    def __init__(self, base: str | None, folder: str) -> None:
        try:
            os.makedirs(folder, exist_ok=True)
            # a folder of our own (0700): no one else can put a link where the file will be
            private = tempfile.mkdtemp(prefix=tmp_prefix() + "spool-", dir=folder)
        except OSError as err:
            if err.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
            folder = tempfile.gettempdir()  # a shared cache this user cannot write to
            private = tempfile.mkdtemp(prefix=tmp_prefix() + "spool-", dir=folder)
        path = os.path.join(private, "spool.sqlite")
        try:
            # uri: the file and the base are named by file URIs, so a path holding '?' or '#'
            # names the file it names
            db = sqlite3.connect(pathlib.Path(path).as_uri(), uri=True)
        finally:
            # SQLite holds the file open: it is gone with the connection or the process
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            os.rmdir(private)
        self.db = db
        self.folder = folder
        self.rows_in = 0
        self.listed = 0
        try:
            with self._room():
                self._create(db, base)
        except BaseException:
            db.close()
            raise

    @contextlib.contextmanager
    def _room(self) -> Iterator[None]:
        """SQLite's 'database or disk is full' as the error that says where and what to do."""
        try:
            yield
        except sqlite3.OperationalError as err:
            if _full(err):
                raise SpoolFull(self.folder, self.rows_in) from err
            raise

    @staticmethod
    def _create(db: sqlite3.Connection, base: str | None) -> None:
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA main.locking_mode=EXCLUSIVE")  # nobody else can open an unlinked file (not the base:
        # the sync writes it on another connection)
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
        # one row a path, whichever sides have it: reading it in key order is the join's sort
        # (no temporary b-tree, which SQLite would keep in a folder of its own choosing)
        db.execute(f"CREATE TABLE side (path TEXT PRIMARY KEY, {cols}, l_size INTEGER, l_mtime_ns INTEGER) WITHOUT ROWID")
        db.execute(
            f"CREATE TABLE actions (path TEXT PRIMARY KEY, kind TEXT, {cols}, l_size INTEGER, l_mtime_ns INTEGER,"
            " l_hash TEXT, keep TEXT, reason TEXT, done INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID"
        )

    def close(self) -> None:
        self.db.close()

    # -- filling ------------------------------------------------------------

    def _insert(self, sql: str, rows: Iterable[tuple]) -> int:
        """Write ``rows`` in chunks of :data:`_CHUNK`; how many there were."""
        before, it = self.rows_in, iter(rows)
        with self._room(), self.db:
            while chunk := list(islice(it, _CHUNK)):
                self.db.executemany(sql, chunk)
                self.rows_in += len(chunk)
        return self.rows_in - before

    def add_listing(self, listing: Iterable[tuple[str, Fingerprint]]) -> None:
        sets = ", ".join(f"r_{c} = excluded.r_{c}" for c in _FP)  # a key listed twice: the last
        self.listed += self._insert(
            f"INSERT INTO side (path, {', '.join(f'r_{c}' for c in _FP)}) VALUES (?, ?, ?, ?, ?, ?)"
            f" ON CONFLICT (path) DO UPDATE SET {sets}", ((k, *_fp_row(fp)) for k, fp in listing),
        )  # fmt: skip

    def add_scan(self, scan: Iterable[tuple[str, int, int]]) -> None:
        self._insert(
            "INSERT INTO side (path, l_size, l_mtime_ns) VALUES (?, ?, ?)"
            " ON CONFLICT (path) DO UPDATE SET l_size = excluded.l_size, l_mtime_ns = excluded.l_mtime_ns", scan,
        )  # fmt: skip

    def rows(self) -> Iterator[tuple[str, sp.BaseEntry | None, tuple[int, int] | None, Fingerprint | None]]:
        """``(path, base, (local size, mtime_ns), remote)`` of every path on any side, in path order."""
        fp_cols = ", ".join(f"s.r_{c}" for c in _FP)
        with self._room():
            with self.db:  # a path only the base has (gone from both sides) is a row too
                self.db.execute("INSERT OR IGNORE INTO side (path) SELECT path FROM base.files")
            cur = self.db.execute(
                "SELECT s.path, f.size, f.remote, f.local_hash, f.mtime_ns, s.l_size, s.l_mtime_ns, " + fp_cols +
                " FROM side AS s LEFT JOIN base.files AS f ON f.path = s.path ORDER BY s.path"
            )  # fmt: skip
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
            with self._room(), self.db:
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
        with self._room(), self.db:
            self.db.executemany("UPDATE actions SET done = 1 WHERE path = ?", ((p,) for p in paths))


def sides(
    manifest: Manifest | None, root: str, scope: sp.Scope, algorithm: str,
    listing: Iterable[tuple[str, Fingerprint]] | None, folder: str, refused: dict[str, str] | None = None,
) -> Iterator[tuple[str, sp.BaseEntry | None, sp.LocalEntry | None, Fingerprint | None]]:
    """:meth:`Spool.sides` of a spool of its own (closed when the walk ends): nothing of the
    storage is held in memory."""
    spool = Spool(manifest.path if manifest is not None and manifest.exists() else None, folder)
    try:
        spool.fill(root, scope, listing, refused)
        yield from spool.sides(root, scope, algorithm)
    finally:
        spool.close()
