"""Read any tracked file without staging it: :func:`open_file` and the ``gitdata://`` filesystem.

For each tracked path the bytes come from the first place that has them:

1. a staged copy in the work tree (copy mode or ``--location``) of the
   recorded size; it is read whole only if it hashes to the recorded oid (or,
   for a registered file, to the content staged for it);
2. the local cache (the project's own data, by oid);
3. the data remote, or the dataset's own storage, that ``git clone`` would use;
4. a registered file's source, **pinned to the recorded version** (version
   id, GCS generation) where the backend keeps versions; elsewhere the
   source's fingerprint is compared on open and a change raises
   :class:`SourceChanged` unless ``allow_changed=True``.

Plain git files (not pointers) are read from git. Every reader is bounded
by the recorded size and, when a file is read whole from its start, checks
the recorded oid at the end: a mismatch raises instead of returning the
last bytes, so no wrong byte reaches the caller silently. Range reads fetch
blocks of ``block_size`` (default 4 MiB) with read-ahead.

There is no hidden global state: the filesystem is not kept in fsspec's
instance cache (two projects or revisions never share one), and storages
opened in a parent process are dropped after ``fork`` (dask workers).
"""

from __future__ import annotations

import io
import os
import posixpath
from typing import Any

from fsspec.spec import AbstractFileSystem

from ..errors import GitDataError
from ..project import Project
from .reader import DEFAULT_BLOCK, Reader, SourceChanged
from .snapshot import Snapshot, TrackedFile
from .verified import CorruptData, VerifiedReader

__all__ = [
    "CorruptData",
    "GitDataFileSystem",
    "ReadOnlyFileSystem",
    "Reader",
    "Snapshot",
    "SourceChanged",
    "TrackedFile",
    "VerifiedReader",
    "open_file",
]


class ReadOnlyFileSystem(GitDataError, PermissionError):
    """``gitdata://`` is read-only: data is written through storages."""


def _project_path(project: Project, path: str, *, relative_to_cwd: bool) -> str:
    if relative_to_cwd:
        full = os.path.abspath(path)
        rel = os.path.relpath(full, project.root).replace(os.sep, "/")
        if rel == ".." or rel.startswith("../"):
            raise FileNotFoundError(f"{path} is outside the project {project.root}")
        return rel
    return path.strip("/")


def open_file(path: str, mode: str = "rb", *, repo: str | None = None, rev: str | None = None,
              allow_changed: bool = False, cache: str | None = None, encoding: str | None = None) -> Any:  # fmt: skip
    """Open tracked file ``path`` for reading, staged or not (``gitdata.open``).

    ``path`` is relative to the current folder (or, with ``repo``, to the top of its project);
    ``rev`` reads the file as it was at a commit (``"HEAD~3"``, a tag).
    ``mode`` is ``"rb"`` or ``"r"`` (text, with ``encoding``).
    """
    if mode not in ("rb", "r", "rt"):
        raise ReadOnlyFileSystem(
            f"gitdata.open reads only (mode {mode!r}); write data into a storage "
            "(`git data storage add`) or into the project and `git add` it"
        )
    if repo is None:  # the project that holds the path (its nearest existing folder)
        where = os.path.dirname(os.path.abspath(path))
        while not os.path.isdir(where):
            where = os.path.dirname(where)
        project = Project.open(where)
    else:
        project = Project.open(repo)
    rel = _project_path(project, path, relative_to_cwd=repo is None)
    reader = Reader(project, rev, cache=cache, allow_changed=allow_changed, paths=[rel])
    f = reader.open(rel)
    if mode == "rb":
        return f
    return io.TextIOWrapper(f, encoding=encoding or "utf-8")


class GitDataFileSystem(AbstractFileSystem):
    """``gitdata://PATH``: the tracked files of a project, read-only.

    Options: ``repo`` (a folder inside the project, default the current
    one), ``rev`` (a commit; default the index), ``cache`` (``"local"``
    stores whole reads of the project's own objects in the cache),
    ``allow_changed``, ``block_size``.
    """

    protocol = "gitdata"
    root_marker = ""
    cachable = False  # never share an instance between projects or revisions

    def __init__(self, repo: str | None = None, rev: str | None = None, cache: str | None = None,
                 allow_changed: bool = False, block_size: int = DEFAULT_BLOCK, **kwargs: Any) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.repo = os.path.abspath(repo or os.getcwd())
        self.rev = rev
        self.reader = Reader(Project.open(self.repo), rev, cache=cache, allow_changed=allow_changed,
                             block_size=block_size)  # fmt: skip

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = str(path)
        if path.startswith("gitdata://"):
            path = path[len("gitdata://") :]
        return posixpath.normpath(path).strip("/") if path.strip("/") else ""

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        path = self._strip_protocol(path)
        snap = self.reader.snapshot
        if path in snap.files:
            entries = [path]
        elif path in snap.dirs:
            entries = sorted(snap.dirs[path])
        else:
            raise FileNotFoundError(f"{path} is not tracked in {self.repo}")
        if not detail:
            return entries
        return [self.info(e) for e in entries]

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        return self.reader.info(self._strip_protocol(path))

    def _open(self, path: str, mode: str = "rb", block_size: Any = None, autocommit: bool = True,
              cache_options: Any = None, **kwargs: Any) -> Any:  # fmt: skip
        if mode != "rb":
            raise ReadOnlyFileSystem(
                f"gitdata:// is read-only (mode {mode!r} for {path}); write into a mapped storage "
                "instead (`git data storage add NAME URL`, then write under its folder and "
                "`git data storage sync`)"
            )
        return self.reader.open(self._strip_protocol(path))

    def cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        with self.open(path, "rb") as f:
            if start is None and end is None:
                return f.read()
            size = self.info(path)["size"]
            start = 0 if start is None else (start if start >= 0 else max(0, size + start))
            end = size if end is None else (end if end >= 0 else max(0, size + end))
            f.seek(start)
            return f.read(max(0, end - start))

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise ReadOnlyFileSystem(
            "gitdata:// is read-only; write into a mapped storage (`git data storage add NAME URL`)"
        )

    mkdir = makedirs = rm_file = _rm = rm = touch = mv = cp_file = put_file = pipe_file = _refuse  # type: ignore[assignment]

    def __reduce__(self) -> Any:  # dask ships the filesystem to its workers
        r = self.reader
        return (GitDataFileSystem, (self.repo, self.rev, r.cache, r.allow_changed, r.block_size))
