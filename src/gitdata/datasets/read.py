"""Reading one tracked file's bytes without staging it (`git data cat`)."""

from __future__ import annotations

import os
from collections.abc import Iterator

from ..errors import GitDataError
from ..hashing import CHUNK
from ..pointer import Pointer
from ..project import Project
from ..storage import ObjectNotFound, Storage
from . import model as ds_mod
from . import objects
from .download import _check, _check_bound, check_registered_size, open_kwargs
from .model import Dataset, object_store_for
from .modes import modified_paths


def open_file(project: Project, path: str) -> Iterator[bytes]:
    """The bytes of a tracked file, from the work tree, cache, source or data remote."""
    path = os.path.relpath(os.path.abspath(path), project.root).replace(os.sep, "/")
    if path.startswith("../"):
        raise GitDataError(f"{path} is outside the project")
    pointer = _index_pointer(project, path)
    datasets = [d for d in ds_mod.load_all(project).values() if d.contains(path)]
    ds = datasets[0] if datasets else None
    full = os.path.join(project.root, path)
    if pointer is None and ds is not None:
        pointer = _manifest_pointer(project, ds, path)
    if pointer is None:
        raise GitDataError(f"{path} is not a file tracked by git data (see `git data ls-files`)")
    # a staged copy that is unchanged (or any file of a linked dataset of the right size)
    if os.path.isfile(full) and ds_mod.read_pointer_file(full) is None:
        if ds is None or path not in modified_paths(project, ds) or os.path.islink(os.path.join(project.root, ds.path)):
            if pointer.size is None or os.path.getsize(full) == pointer.size:
                return _file_chunks(full)
    if pointer.oid and project.cache.has(pointer.oid, pointer.size):
        return _cached_chunks(project, pointer.oid)
    if pointer.oid is None and pointer.source:
        fake = ds or Dataset(name="", path="")
        check_registered_size(path, pointer)
        root, key = ds_mod.split_source(fake, pointer.source, path)
        storage = ds_mod.open_source(project, fake, root, versioned=bool(pointer.get("version-id")))
        return _storage_chunks(storage, key, pointer)
    from ..fetch import download_object

    store = object_store_for(project, ds) if ds else project.object_store()
    download_object(store, project.cache, pointer.oid or "", pointer.size)
    return _cached_chunks(project, pointer.oid or "")


def _manifest_pointer(project: Project, ds: Dataset, path: str) -> Pointer | None:
    """``path``'s pointer in the dataset's manifest, if the dataset has one that records it."""
    manifest = ds_mod.recorded_manifest(project, ds)
    if manifest is None:
        return None
    rel = ds.rel(path)
    return next((e.pointer for e in objects.read_manifest(project, ds, manifest) if e.path == rel), None)


def _index_pointer(project: Project, path: str) -> Pointer | None:
    from ..scan import _scan_blobs

    out = project.repo.git("ls-files", "-s", "-z", "--", path)
    pairs = []
    for rec in out.split(b"\0"):
        if rec:
            meta, p = rec.split(b"\t", 1)
            pairs.append((p.decode("utf-8", "surrogateescape"), meta.decode().split()[1]))
    pairs = [(p, s) for p, s in pairs if p == path]
    res = _scan_blobs(project.repo, pairs)
    return res.found[0].pointer if res.found else None


def _cached_chunks(project: Project, oid: str) -> Iterator[bytes]:
    with project.cache.open(oid) as f:
        while True:
            chunk = f.read(CHUNK)
            if not chunk:
                return
            yield chunk


def _file_chunks(path: str) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while True:
            chunk = f.read(CHUNK)
            if not chunk:
                return
            yield chunk


def _storage_chunks(storage: Storage, key: str, pointer: Pointer) -> Iterator[bytes]:
    kwargs = open_kwargs(storage, pointer.get("version-id"))
    size = 0
    try:
        with storage.open_read(key, **kwargs) as f:
            while True:
                chunk = f.read(CHUNK)
                if not chunk:
                    _check(storage, key, pointer, size, None, None, lambda: None)
                    return
                size += len(chunk)
                _check_bound(storage, key, pointer, size, lambda: None)
                yield chunk
    except ObjectNotFound as err:
        raise GitDataError(f"{pointer.source} is gone from the remote: {err}") from err
