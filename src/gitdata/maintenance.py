"""ls-files, fsck and prune."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .errors import GitDataError
from .project import Project
from .scan import Found, ScanResult, scan_history, scan_index, scan_tree
from .storage import ObjectStore


@dataclass
class FileRow:
    path: str
    oid: str | None
    size: int | None
    cached: bool
    on_remote: bool | None
    source: str | None

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def ls_files(project: Project, *, check_remote: bool = True) -> list[FileRow]:
    scan = scan_index(project.repo)
    if scan.malformed:
        path, reason = next(iter(scan.malformed.items()))
        raise GitDataError(f"{path}: malformed gitdata pointer: {reason}")
    present: set[str] | None = None
    oids = {f.pointer.oid for f in scan.found if f.pointer.oid}
    if check_remote and oids:
        try:
            store = project.object_store()
        except GitDataError:
            store = None
        if store is not None:
            present = oids - store.missing(oids)
    rows = []
    for f in sorted(_with_manifests(project, scan.found), key=lambda f: f.path):
        oid = f.pointer.oid
        rows.append(
            FileRow(
                path=f.path,
                oid=oid,
                size=f.pointer.size,
                cached=bool(oid and project.cache.has(oid)),
                on_remote=None if present is None or oid is None else oid in present,
                source=f.pointer.source,
            )
        )
    return rows


def _with_manifests(project: Project, found: list[Found]) -> list[Found]:
    """``found``, and the files each dataset manifest among them records (streamed from it)."""
    manifests = [f for f in found if f.pointer.is_manifest]
    if not manifests:
        return found
    from .datasets import dataset_at, objects
    from .datasets.manifest import folder_of

    out = list(found)
    for f in manifests:
        ds = dataset_at(project, folder_of(f.path))
        if ds.name:  # a manifest in a folder no dataset declares is listed as itself only
            out += objects.expand(project, ds, f.pointer)
    return out


def not_materialized(project: Project, scan: ScanResult | None = None) -> dict[str, str]:
    """``path -> oid``: files whose work tree still holds the pointer, not the content.

    What a failed or killed checkout leaves (git wrote the pointer; the
    content never arrived); ``git data pull`` completes them. Files of
    datasets are left out: a dataset's files are pointers on purpose until
    it is staged (``git data status`` shows them per dataset), and so are
    files ``gitdata.fetchInclude``/``fetchExclude`` leave out.
    """
    from .datasets import load_all
    from .fetch import read_worktree_pointer
    from .pointer import PointerError

    scan = scan or scan_index(project.repo)
    try:
        datasets = list(load_all(project).values())
    except GitDataError:
        datasets = []
    out = {}
    wanted = project.fetch_filter.wants
    for f in scan.found:
        if f.pointer.oid is None or any(d.contains(f.path) for d in datasets) or not wanted(f.path):
            continue  # (a file gitdata.fetchExclude leaves out is a pointer on purpose too)
        try:
            wt = read_worktree_pointer(project.root, f.path)
        except PointerError:
            continue
        if wt is not None and wt.oid == f.pointer.oid:
            out[f.path] = f.pointer.oid
    return out


def remove_stale_tmp(project: Project, scan: ScanResult | None = None) -> list[str]:
    """Delete temporary files a killed git data process left beside tracked
    files in the work tree (see :func:`gitdata.fileio.remove_stale_tmp`)."""
    import os

    from .fileio import remove_stale_tmp as remove

    scan = scan or scan_index(project.repo)
    folders = {os.path.join(project.root, os.path.dirname(f.path)) for f in scan.found}
    folders |= {os.path.join(project.root, os.path.dirname(p)) for p in scan.malformed}
    return remove(sorted(folders))


@dataclass
class FsckReport:
    checked_pointers: int = 0
    checked_objects: int = 0
    malformed: dict[str, str] = field(default_factory=dict)
    corrupt: dict[str, str] = field(default_factory=dict)  # oid -> path
    missing_on_remote: dict[str, str] = field(default_factory=dict)
    not_materialized: dict[str, str] = field(default_factory=dict)  # path -> oid
    removed_tmp: list[str] = field(default_factory=list)  # stale temporary files deleted
    #: temporary files a killed process left in the cache (removed by ``prune``); not an error
    stale_temp: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.malformed or self.corrupt or self.missing_on_remote or self.not_materialized)

    def as_dict(self) -> dict[str, object]:
        return {**self.__dict__, "ok": self.ok}


def fsck(project: Project, *, remote: bool = False, remote_name: str | None = None) -> FsckReport:
    report = FsckReport()
    repo = project.repo
    scans = [scan_index(repo), scan_tree(repo, "HEAD")]
    report.removed_tmp = remove_stale_tmp(project, scans[0])
    report.not_materialized = not_materialized(project, scans[0])
    by_oid: dict[str, str] = {}
    for scan in scans:
        report.malformed.update(scan.malformed)
        report.checked_pointers += len(scan.found)
        for f in scan.found:
            if f.pointer.oid:
                by_oid.setdefault(f.pointer.oid, f.path)
    for oid, path in sorted(by_oid.items()):
        if project.cache.has(oid):
            report.checked_objects += 1
            if not project.cache.verify(oid):
                report.corrupt[oid] = path
    if remote and by_oid:
        store = project.object_store(remote_name)
        for oid in store.missing(by_oid):
            report.missing_on_remote[oid] = by_oid[oid]
    report.stale_temp = [path for path, _age in project.cache.stale_temp()]
    return report


@dataclass
class PruneReport:
    removed: list[str] = field(default_factory=list)
    kept_unpushed: list[str] = field(default_factory=list)
    freed_bytes: int = 0
    #: stale temporary files of killed processes (older than gitdata.tempMaxAge)
    removed_temp: list[str] = field(default_factory=list)
    #: ``--remote``: keys of incomplete multipart uploads aborted (older than gitdata.tempMaxAge)
    aborted_uploads: list[str] = field(default_factory=list)
    #: ``--remote``: keys of incomplete uploads young enough to be still running
    running_uploads: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def prune(
    project: Project, *, dry_run: bool = False, store: ObjectStore | None = None, remote: bool = False
) -> PruneReport:
    """Drop cached objects no ref or the index references, if the remote has them.

    ``remote``: also abort the data remote's incomplete multipart uploads
    (killed pushes) older than ``gitdata.tempMaxAge``; younger ones may still
    be running and are only listed.
    """
    repo = project.repo
    referenced: set[str] = set()
    for scan in (scan_history(repo, ["--all"]), scan_index(repo)):
        referenced |= {f.pointer.oid for f in scan.found if f.pointer.oid}
    candidates = set(project.cache.iter_oids()) - referenced
    report = PruneReport()
    if dry_run:
        report.removed_temp = [path for path, _age in project.cache.stale_temp()]
    else:
        report.removed_temp = project.cache.sweep_temp()
    if remote:
        store = store or project.object_store()
        _prune_uploads(store, report, max_age=project.cache.temp_max_age, dry_run=dry_run)
    if not candidates:
        return report
    if store is None:
        try:
            store = project.object_store()
        except GitDataError:
            report.kept_unpushed = sorted(candidates)
            return report
    unpushed = store.missing(candidates)
    report.kept_unpushed = sorted(unpushed)
    for oid in sorted(candidates - unpushed):
        report.freed_bytes += project.cache.size_of(oid)
        report.removed.append(oid)
    if not dry_run:
        project.cache.remove_many(report.removed)
    return report


def _prune_uploads(store: ObjectStore, report: PruneReport, *, max_age: float, dry_run: bool) -> None:
    now = time.time()
    for key, upload in sorted(store.storage.incomplete_uploads(), key=lambda x: (x[0], x[1].upload_id)):
        if now - upload.initiated <= max_age:
            report.running_uploads.append(key)
            continue
        if not dry_run:
            store.storage.abort_upload(upload)
        report.aborted_uploads.append(key)
