"""Adding data to a dataset: registering external objects (pointers only) and copying local files in."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain, islice
from typing import Any

from .. import config as config_mod
from .. import safepath, writer
from ..pointer import Pointer, PointerError
from ..project import Project
from ..transfer import Progress
from . import manifest as mf
from . import objects
from .model import (
    Dataset,
    DatasetError,
    NameClash,
    Source,
    UnsafePath,
    _check_url_has_no_userinfo,
    checked_path,
    forget_index_entries,
    git_add,
    index_files,
    list_source,
    read_pointer_file,
    recorded_manifest,
    safe_relpath,
    select,
    within,
    write_small,
)

#: Registering fewer objects than this draws no progress bar (it is over at once).
PROGRESS_MIN = 1000


@dataclass
class AddReport:
    dataset: str
    source: str
    kind: str  # "registered" | "copied"
    files: list[str] = field(default_factory=list)  # the paths written (not kept for a manifest)
    count: int = 0  # files registered or copied
    unchanged: int = 0
    total_size: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "dataset": self.dataset,
            "source": self.source,
            "kind": self.kind,
            "files": self.count,
            "unchanged": self.unchanged,
            "total_size": self.total_size,
        }


def is_remote(source: str) -> bool:
    return "://" in source


def registered_pointer(url: str, fp: Any) -> Pointer:
    return Pointer.make(None, fp.size, {"source": url, **fp.pointer_fields()})


def _check_target(project: Project, ds: Dataset, to: str) -> str:
    if not to:
        return ""
    to = to.replace(os.sep, "/").strip("/")
    safe_relpath(to)
    return to


def register(
    project: Project,
    ds: Dataset,
    url: str,
    *,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    to: str = "",
) -> AddReport:
    """Record pointers for every object under ``url``: one listing, no download.

    The listing is consumed as it arrives. Up to ``gitdata.manifestThreshold``
    objects become pointer files; past it (or into a dataset recorded by a
    manifest already) the rest streams into the manifest, so memory does not
    grow with the number of objects.
    """
    _check_url_has_no_userinfo(url)
    to = _check_target(project, ds, to)
    storage, entries, single = list_source(project, ds, url)
    include, exclude = list(include), list(exclude)
    unsafe: list[str] = []

    def planned() -> Iterator[tuple[str, Pointer]]:
        for key, fp in entries:
            if not select(key, include, exclude):
                continue
            try:
                safe_relpath(key)
            except UnsafePath as err:
                unsafe.append(str(err))
                continue
            rel = f"{to}/{key}" if to else key
            obj_url = f"{storage.url}/{key}"
            try:
                pointer = registered_pointer(obj_url, fp)
                pointer.encode()
            except PointerError as err:
                raise DatasetError(f"cannot record {obj_url}: {err}") from err
            yield f"{ds.path}/{rel}", pointer

    def refuse_unsafe() -> None:
        if unsafe:
            more = f" (and {len(unsafe) - 1} more)" if len(unsafe) > 1 else ""
            raise UnsafePath(f"refusing to register {storage.display}: {unsafe[0]}{more}; nothing was written")

    limit = objects.threshold(project)
    old = recorded_manifest(project, ds)
    stream = planned()
    head = list(islice(stream, limit + 1)) if old is None and limit else []
    by_manifest = old is not None or (limit and len(head) > limit)
    if not by_manifest:
        head += stream  # gitdata.manifestThreshold 0: a pointer file per object, however many
        refuse_unsafe()
    source = f"{storage.url}/{single}" if single else storage.url
    report = AddReport(dataset=ds.name, source=source, kind="registered")
    if by_manifest:
        _register_in_manifest(project, ds, chain(head, stream), old, report, refuse_unsafe, storage.display, include or exclude)
        _record_source(project, ds, Source(url=report.source, to=to))
        return report
    _nothing_check(storage.display, len(head), include or exclude)
    _check_clashes(project, ds, [p for p, _ in head])
    changed: list[str] = []
    refused: list[str] = []
    bar = Progress(f"Registering {ds.name}", len(head) if len(head) >= PROGRESS_MIN else 0, unit_bytes=False)
    try:
        for path, pointer in head:
            data = pointer.encode()
            report.total_size += pointer.size or 0
            bar.advance(1)
            try:  # walked right before the write: no link a clone brought is written through
                full = checked_path(project, path)
            except safepath.UnsafePath as err:
                refused.append(str(err))
                continue
            current = read_pointer_file(full)
            if current is not None and current.encode() == data:
                report.unchanged += 1
                continue
            write_small(full, data)
            changed.append(path)
    finally:
        bar.close()
    report.files = [p for p, _ in head]
    report.count = len(head)
    git_add(project, changed, pointers=True)
    if refused:
        more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
        raise UnsafePath(f"{refused[0]}{more}; the other files of {ds.name} were registered, not these")
    _record_source(project, ds, Source(url=report.source, to=to))
    return report


def _nothing_check(display: str, count: int, filtered: object) -> None:
    if not count:
        raise DatasetError(
            f"nothing to register at {display}" + (" after --include/--exclude" if filtered else "")
            + "; check the URL (and that the prefix has objects)"
        )


def _record_source(project: Project, ds: Dataset, src: Source) -> None:
    if src not in ds.sources:
        config_mod.ConfigFile(project.repo).add(f"{ds.section}.source", src.encode())
        project.reload()
    git_add(project, [".gitdata", ".gitattributes"])


def _register_in_manifest(
    project: Project,
    ds: Dataset,
    planned: Iterable[tuple[str, Pointer]],
    old: Pointer | None,
    report: AddReport,
    refuse_unsafe: Callable[[], None],
    display: str,
    filtered: object,
) -> None:
    """Record ``planned`` (any order, streamed) in the dataset's manifest, a new one or
    merged into ``old``.

    The listing streams through a bounded sort (:func:`.objects.sorted_lines`)
    into the manifest object in the cache; only after it is complete, checked
    and stored does anything in the work tree change. Per-file pointers of the
    same paths leave the index and the work tree: the manifest records them now.
    """
    if not ds.storage and not project.remotes:
        raise DatasetError(
            f"dataset {ds.name}: more than gitdata.manifestThreshold "
            f"({objects.threshold(project)}) files are recorded in one manifest, which is pushed like "
            "data, and this project has nowhere to push it; add a data remote (`git data remote add NAME "
            "URL`), or keep a pointer file per object (`git config gitdata.manifestThreshold 0`); "
            "nothing was written"
        )
    own = {f.path for f in index_files(project, ds)}  # per-file pointers beside (or before) the manifest
    stale: list[str] = []

    def counted() -> Iterator[mf.Entry]:  # (the listing's own counter shows the progress)
        for path, p in planned:
            if path in own:
                stale.append(path)
            report.count += 1
            report.total_size += p.size or 0
            yield mf.Entry(ds.rel(path), p)

    counts: dict[str, int] = {}
    new = objects.sorted_lines(project, counted())
    if old is not None:  # the old manifest is read once: merged, and compared on the way
        new = mf.merge(mf.keyed(objects.read_manifest(project, ds, old)), new, key=mf.by_line_key, counts=counts)
    pointer = objects.write_manifest_lines(project, new)
    report.unchanged = counts.get("unchanged", 0)
    refuse_unsafe()
    _nothing_check(display, report.count, filtered)
    # their work-tree files are removed below: refused (nothing written) where one holds content
    # (a staged copy, an edit), and while the dataset is staged elsewhere
    _check_clashes(project, ds, stale)
    path = objects.write_pointer_file(project, ds, pointer)
    if stale:  # per-file pointers of these paths: the manifest records them now
        forget_index_entries(project, stale)
        folder = os.path.join(project.root, ds.path)
        for p in stale:
            full = checked_path(project, p, create=False)  # nothing removed through a link
            os.unlink(full)
            parent = os.path.dirname(full)
            while parent != folder and parent.startswith(folder + os.sep) and not os.listdir(parent):
                os.rmdir(parent)
                parent = os.path.dirname(parent)
    git_add(project, [path], pointers=True)


def _check_clashes(project: Project, ds: Dataset, paths: list[str]) -> None:
    """Refuse to overwrite a work-tree file that is content, or another source's pointer."""
    clashes = []
    seen_dirs: set[str] = set()
    for path in paths:
        full = os.path.join(project.root, path)
        parent = os.path.dirname(path)
        if parent not in seen_dirs:
            seen_dirs.add(parent)
            head = parent
            while head and head != ds.path:
                if os.path.isfile(os.path.join(project.root, head)) or os.path.islink(os.path.join(project.root, head)):
                    clashes.append(f"{head} is a file, but objects are to go under it")
                    break
                head = os.path.dirname(head)
        if os.path.isdir(full) and not os.path.islink(full):
            clashes.append(f"{path} is a folder")
        elif os.path.lexists(full) and read_pointer_file(full) is None:
            clashes.append(f"{path} exists with other content")
    root_link = os.path.join(project.root, ds.path)
    if os.path.islink(root_link):
        raise NameClash(
            f"{ds.path} is staged elsewhere (a link); run `git data dataset unstage {ds.name}` first"
        )
    if clashes:
        more = f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else ""
        raise NameClash(f"name clash in dataset {ds.name!r}: {clashes[0]}{more}; nothing was written")


def add_local(
    project: Project,
    ds: Dataset,
    source: str,
    *,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    to: str = "",
) -> AddReport:
    """Copy a local file or folder into the dataset folder and ``git add`` it."""

    src = os.path.abspath(os.path.expanduser(source))
    if not os.path.lexists(src):
        raise DatasetError(f"{source}: no such file or folder")
    for gd in {project.repo.git_dir, project.repo.common_dir}:
        if within(gd, src) or within(src, gd):
            raise UnsafePath(f"{source} is inside the git directory ({gd}); refusing to add it")
    if os.path.islink(os.path.join(project.root, ds.path)):
        raise NameClash(
            f"{ds.path} is staged elsewhere (a link); run `git data dataset unstage {ds.name}` first"
        )
    to = _check_target(project, ds, to)
    dest_root = os.path.join(project.root, ds.path, to) if to else os.path.join(project.root, ds.path)
    include, exclude = list(include), list(exclude)
    pairs: list[tuple[str, str]] = []  # (source file, project-relative dest)
    if os.path.isdir(src):
        for dirpath, dirnames, filenames in os.walk(src):
            dirnames[:] = sorted(d for d in dirnames if d != ".git")
            for fn in sorted(filenames):
                full = os.path.join(dirpath, fn)
                rel = os.path.relpath(full, src).replace(os.sep, "/")
                if select(rel, include, exclude):
                    pairs.append((full, rel))
    else:
        rel = os.path.basename(src)
        if select(rel, include, exclude):
            pairs.append((src, rel))
    if not pairs:
        raise DatasetError(f"no files to add from {source}")
    report = AddReport(dataset=ds.name, source=src, kind="copied")
    dests = []
    for full, rel in pairs:
        safe_relpath(rel)
        dest = os.path.join(dest_root, rel)
        dest_rel = os.path.relpath(dest, project.root).replace(os.sep, "/")
        dests.append(dest_rel)
        if os.path.realpath(full) == os.path.realpath(dest):
            continue  # already in place
        existing = read_pointer_file(dest)
        if os.path.lexists(dest) and existing is None:
            raise NameClash(f"{dest_rel} exists already; remove it or use --to SUBPATH")
        _oid, size = writer.copy_file(full, dest, algorithm=project.algorithm)
        report.total_size += size
    report.files = dests
    report.count = len(dests)
    git_add(project, [".gitdata", ".gitattributes", *dests])
    return report
