"""The Python API: read tracked files, and work with datasets, as the CLI does.

``import gitdata`` is cheap (the filter process imports it); these names are
loaded on first use::

    import gitdata
    with gitdata.open("data/scans/s001.tif", "rb") as f: ...
    ds = gitdata.Dataset("scans")
    ds.files()
    ds.stage(mode="copy")                # or gitdata.api.stage("scans", mode="copy")
    gitdata.api.status(remote=True)      # the rows of `git data status --json`

``gitdata://PATH`` is the same as an fsspec filesystem (:mod:`gitdata.fs`).
"""

from __future__ import annotations

from typing import Any

from . import datasets as ds_mod
from .fs import GitDataFileSystem, ReadOnlyFileSystem, SourceChanged, open_file
from .project import Project

__all__ = ["Dataset", "GitDataFileSystem", "ReadOnlyFileSystem", "SourceChanged", "open", "stage", "status"]

open = open_file  # noqa: A001 - gitdata.open reads like the builtin


class Dataset:
    """A dataset of a project: its metadata, and its files with their state."""

    def __init__(self, name: str, repo: str | None = None) -> None:
        self.project = Project.open(repo)
        self._ds = ds_mod.get(self.project, name)

    name = property(lambda self: self._ds.name)
    path = property(lambda self: self._ds.path, doc="The dataset's folder, relative to the project.")
    title = property(lambda self: self._ds.title)
    description = property(lambda self: self._ds.description)
    creators = property(lambda self: list(self._ds.creators))
    keywords = property(lambda self: list(self._ds.keywords))
    created = property(lambda self: self._ds.created)
    storage = property(lambda self: self._ds.storage)
    sources = property(lambda self: [s.url for s in self._ds.sources])

    def files(self) -> list[dict[str, Any]]:
        """Per file: path, size, oid, source, fingerprint, and its local state (as `git data status`)."""
        from . import status as status_mod

        rows = {r.path: r for r in status_mod.collect(self.project, status_mod.StatusOptions(names=(self.name,)))}
        out = []
        for f in ds_mod.files(self.project, self._ds):
            p = f.pointer
            row = rows.get(f.path)
            out.append({
                "path": f.path, "size": p.size, "oid": p.oid, "source": p.source,
                "fingerprint": {k: v for k, v in p.extra if k != "source"},
                "state": row.local if row is not None else None,
            })  # fmt: skip
        return out

    def open(self, rel: str, mode: str = "rb", **kwargs: Any) -> Any:
        """Open a file of the dataset by its path inside the dataset folder."""
        return open_file(f"{self.path}/{rel}", mode, repo=self.project.root, **kwargs)

    def stage(self, mode: str = "copy", **kwargs: Any) -> dict[str, Any]:
        """Stage the dataset (see :func:`stage`)."""
        return stage(self.name, mode, repo=self.project.root, **kwargs)

    def status(self, remote: bool = False) -> list[dict[str, Any]]:
        """The dataset's rows of `git data status --json`."""
        return status(remote, (self.name,), repo=self.project.root)

    def __repr__(self) -> str:
        return f"gitdata.Dataset({self.name!r}, path={self.path!r})"


def stage(name: str, mode: str = "copy", *, repo: str | None = None, **kwargs: Any) -> dict[str, Any]:
    """Stage dataset ``name`` (``copy``, ``location`` with ``location=DIR``, ``reference``);
    returns what `git data dataset stage --json` prints."""
    from . import datasets as stage_mod

    project = Project.open(repo)
    return stage_mod.stage(project, name, mode=mode, **kwargs).as_dict()


def status(remote: bool = False, names: tuple[str, ...] = (), *, repo: str | None = None) -> list[dict[str, Any]]:
    """The rows of `git data status --json` (``remote=True``: compare with the remotes, listings only)."""
    from . import status as status_mod

    project = Project.open(repo)
    return [r.as_dict() for r in status_mod.collect(project, status_mod.StatusOptions(names=tuple(names), remote=remote))]
