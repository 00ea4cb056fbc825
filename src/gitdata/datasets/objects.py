"""A dataset's own objects: where they are pushed and fetched, and its manifest object (read, write).

The manifest's format is :mod:`.manifest` (pure); here it is stored in the
cache gzip-compressed (deterministic: no name, no time) and read back as a
stream of entries, fetched from the data remote or the dataset's storage
first if this clone does not have it yet.
"""

from __future__ import annotations

import gzip
import io
import os
import struct
from collections.abc import Iterable, Iterator
from typing import Any

from .. import safepath
from ..fetch import fetch_object
from ..pointer import Pointer
from ..project import Project
from ..scan import Found
from ..storage import ObjectStore
from ..writer import write_small
from . import manifest as mf

#: The longest manifest line read (a hostile manifest cannot make one line fill memory).
MAX_LINE = 64 << 10


def object_store_for(project: Project, ds: Any) -> ObjectStore:
    """Where the dataset's own objects are pushed and fetched: its storage, or the data remote."""
    if ds.storage:
        return ObjectStore(project.open_storage(ds.storage, ds.options, name=ds.name), jobs=project.jobs)
    return project.object_store()


def manifest_path(ds: Any) -> str:
    return f"{ds.path}/{mf.NAME}"


def threshold(project: Project) -> int:
    return int(project.setting("gitdata.manifestThreshold"))


def write_manifest(project: Project, entries: Iterable[mf.Entry]) -> Pointer:
    """Store the manifest of ``entries`` (sorted) in the cache; its pointer (not yet written anywhere)."""
    return write_manifest_lines(project, mf.keyed(entries))


def write_manifest_lines(project: Project, lines: Iterable[tuple[bytes, bytes]]) -> Pointer:
    """Store a manifest of keyed lines (:func:`.manifest.keyed`, sorted, each path once) in the cache."""
    count = 0
    last = b""
    with project.cache.writer(project.algorithm) as w:
        with gzip.GzipFile(filename="", mode="wb", fileobj=w, mtime=0) as gz:  # type: ignore[arg-type]
            buf = io.BufferedWriter(gz, 1 << 20)  # type: ignore[arg-type]
            buf.write(mf.header())
            for key, line in lines:
                if count and key <= last:
                    raise mf.ManifestError(
                        f"manifest entries out of order or repeated: {last.decode(errors='replace')!r} "
                        f"then {key.decode(errors='replace')!r}"
                    )
                last = key
                count += 1
                buf.write(line)
            buf.flush()
        oid, size = w.commit()
    return mf.manifest_pointer(oid, size, count)


#: Entries sorted in memory at once by :func:`sorted_lines` (about 20 MB of lines; a
#: million entries are 20 runs, merged at a cost of under a second)
RUN = 50_000


def sorted_lines(project: Project, entries: Iterable[mf.Entry], run: int | None = None) -> Iterator[tuple[bytes, bytes]]:
    """The keyed lines of ``entries``, which may come in any order, sorted by path.

    Up to ``run`` (default :data:`RUN`) entries are sorted in memory. A longer stream is cut into
    sorted runs of ``run`` lines, each spilled to an anonymous temporary file
    beside the cache (nothing is left behind, even after a kill), and the runs
    are merged: memory stays flat however many entries come. A listing that
    arrives sorted (S3 sorts keys) costs the same; one that does not (a folder
    walk, some S3 servers) is sorted all the same.
    """
    import heapq
    import tempfile
    from itertools import islice

    run = run or RUN
    it = iter(entries)
    chunk = sorted(mf.keyed(islice(it, run)))
    if len(chunk) < run:
        yield from chunk
        return
    os.makedirs(project.cache.tmp_dir, exist_ok=True)
    runs = []
    try:
        while chunk:
            f = tempfile.TemporaryFile(dir=project.cache.tmp_dir)
            runs.append(f)
            for key, line in chunk:
                f.write(_FRAME.pack(len(key), len(line)) + key + line)
            f.seek(0)
            chunk = []  # spilled: freed before the next run is read (else two runs are held at once)
            chunk = sorted(mf.keyed(islice(it, run)))
        yield from heapq.merge(*(_read_run(f) for f in runs))
    finally:
        for f in runs:
            f.close()


_FRAME = struct.Struct(">II")


def _read_run(f: Any) -> Iterator[tuple[bytes, bytes]]:
    while True:
        head = f.read(_FRAME.size)
        if not head:
            return
        n, m = _FRAME.unpack(head)
        yield f.read(n), f.read(m)


def read_manifest(project: Project, ds: Any, pointer: Pointer) -> Iterator[mf.Entry]:
    """The entries of ``pointer``'s manifest, streamed (fetched into the cache first if need be)."""
    assert pointer.oid is not None
    cache = project.cache
    if not cache.has(pointer.oid, pointer.size):
        fetch_object(object_store_for(project, ds), cache, pointer.oid, pointer.size)
    with cache.open(pointer.oid) as raw, gzip.GzipFile(fileobj=raw, mode="rb") as gz:
        yield from mf.parse(_lines(gz, pointer.oid))


def _lines(f: Any, oid: str) -> Iterator[bytes]:
    while True:
        line = f.readline(MAX_LINE)
        if not line:
            return
        if not line.endswith(b"\n"):
            raise mf.ManifestError(f"manifest {oid}: a line longer than {MAX_LINE} bytes, or a truncated last line")
        yield line


def expand(project: Project, ds: Any, pointer: Pointer) -> Iterator[Found]:
    """The files a manifest records, as index pointers would be found (paths inside the project)."""
    for e in read_manifest(project, ds, pointer):
        yield Found(f"{ds.path}/{e.path}", e.pointer)


def manifest_pointer_of(project: Project, ds: Any, found: Iterable[Found]) -> Pointer | None:
    """The dataset's manifest pointer among ``found`` (index pointers), if it has one."""
    path = manifest_path(ds)
    for f in found:
        if f.path == path and mf.is_manifest_pointer(f.pointer):
            return f.pointer
    return None


def write_pointer_file(project: Project, ds: Any, pointer: Pointer) -> str:
    """Write the manifest pointer into the dataset folder; returns its path in the project."""
    path = manifest_path(ds)
    # walked right before the write: no folder on the way is a link a clone brought
    full = safepath.checked_target(project.root, path, what=f"dataset {ds.name!r} manifest {path}")
    write_small(full, pointer.encode())
    return path


def rewrite_manifest(
    project: Project, ds: Any, old: Pointer, recorded: dict[str, Pointer], deleted: Iterable[str] = ()
) -> str:
    """Write the dataset's manifest anew: ``recorded`` (project paths) replace or join its entries,
    ``deleted`` leave it; the pointer file is written. Returns its path (for the caller to ``git add``)."""
    gone = {ds.rel(p) for p in deleted}
    kept = (e for e in read_manifest(project, ds, old) if e.path not in gone)
    fresh = sorted((mf.Entry(ds.rel(p), ptr) for p, ptr in recorded.items()), key=lambda e: e.path.encode())
    return write_pointer_file(project, ds, write_manifest(project, mf.merge(kept, fresh)))
