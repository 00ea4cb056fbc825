"""Per-clone state in ``<git-dir>/gitdata/state.sqlite``; never tracked.

``staged``: for a registered pointer (``source`` without ``oid``) whose bytes
were staged into the work tree, which content was staged, so that the clean
filter gives back the tracked pointer byte for byte while the bytes are
unchanged.

``written``: for each file git data wrote into a ``--location`` folder, the
oid of the bytes it wrote and the file's size and mtime right after. A file
whose stat still matches holds those bytes (git trusts its index the same
way); anything else is hashed before git data decides it may replace it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite3


class State:
    def __init__(self, data_dir: str) -> None:
        self.path = os.path.join(data_dir, "state.sqlite")
        self._db: sqlite3.Connection | None = None

    def _conn(self, create: bool) -> sqlite3.Connection | None:
        if self._db is None:
            if not create and not os.path.exists(self.path):
                return None
            import sqlite3  # not imported by every filter start

            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            db.execute(
                "CREATE TABLE IF NOT EXISTS staged ("
                " path TEXT PRIMARY KEY, content_oid TEXT NOT NULL, pointer BLOB NOT NULL)"
            )
            db.execute(
                "CREATE TABLE IF NOT EXISTS written ("
                " path TEXT PRIMARY KEY, oid TEXT NOT NULL, size INTEGER NOT NULL,"
                " mtime_ns INTEGER NOT NULL)"
            )
            self._db = db
        return self._db

    def staged_pointer(self, path: str, content_oid: str) -> bytes | None:
        db = self._conn(create=False)
        if db is None:
            return None
        row = db.execute(
            "SELECT pointer FROM staged WHERE path = ? AND content_oid = ?", (path, content_oid)
        ).fetchone()
        return bytes(row[0]) if row else None

    def record_staged(self, items: Iterable[tuple[str, str, bytes]]) -> None:
        db = self._conn(create=True)
        assert db is not None
        with db:
            db.executemany(
                "INSERT OR REPLACE INTO staged (path, content_oid, pointer) VALUES (?, ?, ?)",
                list(items),
            )

    def staged_oids(self, paths: Iterable[str]) -> dict[str, str]:
        """``path -> content_oid`` of the given paths that have a staged record."""
        db = self._conn(create=False)
        if db is None:
            return {}
        out = {}
        for path in paths:
            row = db.execute("SELECT content_oid FROM staged WHERE path = ?", (path,)).fetchone()
            if row:
                out[path] = row[0]
        return out

    def staged_records(self, paths: Iterable[str]) -> dict[str, tuple[str, bytes]]:
        """``path -> (content_oid, pointer)`` of the given paths that have a staged record."""
        db = self._conn(create=False)
        if db is None:
            return {}
        out = {}
        for path in paths:
            row = db.execute("SELECT content_oid, pointer FROM staged WHERE path = ?", (path,)).fetchone()
            if row:
                out[path] = (row[0], bytes(row[1]))
        return out

    def forget_staged(self, paths: Iterable[str]) -> None:
        db = self._conn(create=False)
        if db is None:
            return
        with db:
            db.executemany("DELETE FROM staged WHERE path = ?", [(p,) for p in paths])

    def record_written(self, items: Iterable[tuple[str, str, int, int]]) -> None:
        """``(path, oid, size, mtime_ns)`` of files just written."""
        db = self._conn(create=True)
        assert db is not None
        with db:
            db.executemany(
                "INSERT OR REPLACE INTO written (path, oid, size, mtime_ns) VALUES (?, ?, ?, ?)",
                list(items),
            )

    def written(self, paths: Iterable[str]) -> dict[str, tuple[str, int, int]]:
        """``path -> (oid, size, mtime_ns)`` of the given paths git data wrote."""
        db = self._conn(create=False)
        if db is None:
            return {}
        out = {}
        for path in paths:
            row = db.execute("SELECT oid, size, mtime_ns FROM written WHERE path = ?", (path,)).fetchone()
            if row:
                out[path] = (row[0], int(row[1]), int(row[2]))
        return out

    def forget_written(self, paths: Iterable[str]) -> None:
        db = self._conn(create=False)
        if db is None:
            return
        with db:
            db.executemany("DELETE FROM written WHERE path = ?", [(p,) for p in paths])

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
