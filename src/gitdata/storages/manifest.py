"""The base manifest of a storage in this clone: what both sides held after the last sync (``<git-dir>/gitdata/storages/NAME.sqlite``)."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .. import syncplan as sp
from ..storage import Fingerprint

if TYPE_CHECKING:
    from ..project import Project




def _fp_to_json(fp: Fingerprint) -> str:
    return json.dumps(fp.stated(), sort_keys=True)


def _fp_from_json(text: str) -> Fingerprint:
    return Fingerprint(**json.loads(text))


class Manifest:
    """The base of the three-way comparison for one storage, in this clone only."""

    def __init__(self, data_dir: str, name: str) -> None:
        self.path = os.path.join(data_dir, "storages", f"{name}.sqlite")
        self._db: sqlite3.Connection | None = None

    def exists(self) -> bool:
        return os.path.exists(self.path)

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            db = sqlite3.connect(self.path, timeout=30)
            db.execute(
                "CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER NOT NULL,"
                " remote TEXT NOT NULL, local_hash TEXT NOT NULL, mtime_ns INTEGER NOT NULL)"
            )
            db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._db = db
        return self._db

    def load(self) -> dict[str, sp.BaseEntry]:
        if not self.exists():
            return {}
        rows = self._conn().execute("SELECT path, size, remote, local_hash, mtime_ns FROM files")
        return {
            p: sp.BaseEntry(size=s, remote=_fp_from_json(r), local_hash=h, mtime_ns=m)
            for p, s, r, h, m in rows
        }

    def write(self, updates: Mapping[str, sp.BaseEntry | None]) -> None:
        if not updates:
            return
        db = self._conn()
        with db:
            db.executemany(
                "DELETE FROM files WHERE path = ?", [(p,) for p, e in updates.items() if e is None]
            )
            db.executemany(
                "INSERT OR REPLACE INTO files (path, size, remote, local_hash, mtime_ns)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (p, e.size, _fp_to_json(e.remote), e.local_hash, e.mtime_ns)
                    for p, e in updates.items()
                    if e is not None
                ],
            )

    def get_meta(self, key: str) -> Any:
        if not self.exists():
            return None
        row = self._conn().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def set_meta(self, key: str, value: Any) -> None:
        db = self._conn()
        with db:
            db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value))
            )

    def scope(self) -> sp.Scope:
        raw = self.get_meta("scope") or {}
        return sp.Scope(
            paths=tuple(raw.get("paths", ())),
            include=tuple(raw.get("include", ())),
            exclude=tuple(raw.get("exclude", ())),
        )

    def set_scope(self, scope: sp.Scope) -> None:
        self.set_meta(
            "scope", {"paths": list(scope.paths), "include": list(scope.include), "exclude": list(scope.exclude)}
        )

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def drop(self) -> None:
        self.close()
        for suffix in ("", "-journal", "-wal", "-shm"):
            if os.path.exists(self.path + suffix):
                os.unlink(self.path + suffix)


def manifest_for(project: Project, name: str) -> Manifest:
    return Manifest(project.repo.data_dir, name)
