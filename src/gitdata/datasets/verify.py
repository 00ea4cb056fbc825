"""``git data dataset verify``: hash registered sources and record their oids.

A registered pointer records where its bytes are (``source``) and the
remote's fingerprint (size, ETag, version id, mtime), not a content hash:
many servers' ETags are not one (multipart uploads, rclone, GCS composite
objects). Verify reads each selected source (its recorded version where
the backend keeps versions, bounded by the recorded size), hashes it with
the project's algorithm while it streams, and records the result in the
pointer as ``source-oid`` (docs/spec.md). The pointer stays a registered
one (no ``oid``): push, checkout and staging treat it as before.

The work is split in three, so that a Dask cluster can do the middle one:

1. :func:`plan` (client): the dataset's pointers, their sources checked
   against the dataset's declared sources, one listing per source to find
   objects whose fingerprint changed since registration (reported, never
   hashed or recorded).
2. :func:`hash_share` (anywhere): open one storage from a :class:`Share`
   (URL, sealed options, items) and hash its items; per-item failures are
   returned, not raised. Runs in a local thread pool, or on Dask workers
   (:mod:`.verify_dask`).
3. :func:`record` (client): the new pointers, written through the guarded
   writer and put in the index, only after every share came back.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import safepath
from ..errors import GitDataError
from ..hashing import CHUNK, new_hasher
from ..lock import clone_lock
from ..pointer import Pointer, PointerError
from ..project import Project
from ..retry import RetryPolicy
from ..storage import Storage
from ..storage.fingerprint import Fingerprint, compare
from ..transfer import run_parallel
from . import model as ds_mod
from . import objects
from .modes import _expected_md5, current_mode

#: The pointer key that records the oid of a registered source's bytes.
SOURCE_OID = "source-oid"


class VerifyFailed(GitDataError):
    """The run could not finish (a worker died, the cluster is unreachable): nothing was recorded."""


@dataclass(frozen=True)
class Item:
    """One file to hash: plain data, so that it travels to a Dask worker."""

    path: str
    key: str
    size: int
    version_id: str | None = None
    md5: str | None = None  #: a whole-object md5 the pointer records, checked too


class Sealed:
    """Storage options (credentials among them) that never show in a repr,
    a log line or a task's name; they pickle as they are (to a worker)."""

    __slots__ = ("_value",)

    def __init__(self, value: Mapping[str, Any]) -> None:
        self._value = dict(value)

    def open(self) -> dict[str, Any]:
        return dict(self._value)

    def __repr__(self) -> str:
        return f"<storage options: {len(self._value)} key(s), redacted>"

    __str__ = __repr__

    def __getstate__(self) -> dict[str, Any]:
        return self._value

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._value = state


@dataclass(frozen=True)
class Share:
    """Items of one storage, with what a process needs to open it."""

    url: str
    options: Sealed
    name: str | None
    retry: RetryPolicy
    algorithm: str
    items: tuple[Item, ...]
    jobs: int = 8

    def __repr__(self) -> str:
        return f"Share({self.name or '-'}: {len(self.items)} item(s))"


@dataclass(frozen=True)
class Result:
    path: str
    oid: str | None = None
    #: ``changed``: the bytes are not those recorded (size, md5); ``failed``: could not read
    problem: str | None = None
    reason: str | None = None


@dataclass
class VerifyReport:
    dataset: str
    #: path -> oid now recorded in the pointer
    recorded: dict[str, str] = field(default_factory=dict)
    #: paths whose pointer already recorded this oid
    unchanged: list[str] = field(default_factory=list)
    #: path -> why the source's bytes are not the ones registered (nothing recorded)
    changed: dict[str, str] = field(default_factory=dict)
    #: path -> why it could not be read (nothing recorded)
    failed: dict[str, str] = field(default_factory=dict)
    #: path -> why the new pointer was not written (a local change is kept)
    kept: dict[str, str] = field(default_factory=dict)
    #: files with an oid of their own (the project's data): nothing to verify
    own: int = 0
    bytes: int = 0
    where: str = "local"

    def as_dict(self) -> dict[str, object]:
        return {
            "dataset": self.dataset, "recorded": dict(sorted(self.recorded.items())),
            "unchanged": sorted(self.unchanged), "changed": dict(sorted(self.changed.items())),
            "failed": dict(sorted(self.failed.items())), "kept": dict(sorted(self.kept.items())),
            "own": self.own, "bytes": self.bytes, "where": self.where,
        }  # fmt: skip


@dataclass
class Plan:
    dataset: ds_mod.Dataset
    shares: list[Share]
    pointers: dict[str, Pointer]
    report: VerifyReport


# -- 1. plan (client) --------------------------------------------------------------


def plan(project: Project, name: str, include: Iterable[str] = (), *, jobs: int | None = None) -> Plan:
    """What to hash, grouped by storage; changed and unreadable sources already reported."""
    ds = ds_mod.get(project, name)
    include = tuple(include)
    report = VerifyReport(dataset=name)
    pointers: dict[str, Pointer] = {}
    by_root: dict[str, list[tuple[str, Pointer, str]]] = {}
    for f in ds_mod.files(project, ds):
        rel = ds.rel(f.path)
        if not ds_mod.select(rel, include, ()):
            continue
        if f.pointer.oid is not None:
            report.own += 1
            continue
        try:
            root, key = ds_mod.split_source(ds, f.pointer.source or "", f.path)
        except ds_mod.UnsafeSource as err:
            report.failed[f.path] = str(err)
            continue
        if f.pointer.size is None:
            report.failed[f.path] = (
                "the registered pointer has no size, so a read of its source could not be bounded; "
                "register it again (`git data update`) to record its size"
            )
            continue
        pointers[f.path] = f.pointer
        by_root.setdefault(root, []).append((f.path, f.pointer, key))
    shares = []
    for root, entries in sorted(by_root.items()):
        try:
            storage, listed, single = ds_mod.list_source(project, ds, root)
            current = dict(listed)
        except GitDataError as err:
            for path, _p, _k in entries:
                report.failed[path] = str(err)
            continue
        items = []
        for path, pointer, key in entries:
            if single:
                key = single
            fp = current.get(key)
            if fp is None:
                report.changed[path] = f"{pointer.source} is gone from the remote (deleted since registration)"
                continue
            recorded = Fingerprint.from_pointer_fields(pointer.size, dict(pointer.extra))
            if compare(recorded, fp) != "unchanged":
                report.changed[path] = (
                    f"{pointer.source} changed since registration (recorded {describe(recorded)}, now "
                    f"{describe(fp)}); run `git data update {name}` to record the new version, then verify"
                )
                continue
            items.append(Item(path, key, pointer.size or 0, pointer.get("version-id"), _expected_md5(pointer)))
        if items:
            shares.append(Share(
                url=storage.url, options=Sealed(storage.options), name=ds.name, retry=storage.retry,
                algorithm=project.algorithm, items=tuple(items),
                jobs=storage.workers(jobs or project.jobs, mean_size=sum(i.size for i in items) / len(items)),
            ))  # fmt: skip
    return Plan(ds, shares, pointers, report)


def describe(fp: Fingerprint) -> str:
    parts = [f"{fp.size} bytes"]
    for label, value in (("etag", fp.etag), ("version", fp.version_id), ("mtime", fp.mtime)):
        if value:
            parts.append(f"{label} {value}")
    return ", ".join(parts)


# -- 2. hash (client threads, or a Dask worker) ------------------------------------------


def hash_share(share: Share) -> list[Result]:
    """Hash every item of ``share`` on ``share.jobs`` threads, streaming
    (memory flat in file size). Per-item failures are results, not raised."""
    storage = Storage(share.url, share.options.open(), name=share.name, retry=share.retry)
    outcome = run_parallel(
        share.items, lambda it: _hash_item(storage, share.algorithm, it), jobs=share.jobs,
        label=f"Verifying {share.name}", weight=lambda it: it.size, progress=False,
    )
    out = list(outcome.done.values())
    out += [Result(it.path, problem="failed", reason=str(err)) for it, err in outcome.failed.items()]
    return out


def _hash_item(storage: Storage, algorithm: str, it: Item) -> Result:
    kwargs = {storage.version_kwarg: it.version_id} if it.version_id and storage.version_kwarg and ds_mod.is_versioned(storage) else {}
    h = new_hasher(algorithm)
    md5 = hashlib.md5(usedforsecurity=False) if it.md5 else None
    size = 0
    where = f"{storage.display}/{it.key}"
    with storage.open_read(it.key, whole=True, **kwargs) as f:
        while chunk := f.read(CHUNK * 4):
            size += len(chunk)
            if size > it.size:
                return Result(it.path, problem="changed", reason=(
                    f"{where} has more than the {it.size} bytes that were recorded: the remote changed; "
                    "stopped reading. Run `git data update` to record the new version"))  # fmt: skip
            h.update(chunk)
            if md5 is not None:
                md5.update(chunk)
    if size != it.size:
        return Result(it.path, problem="changed", reason=(
            f"{where} has {size} bytes, {it.size} were recorded: the remote changed; "
            "run `git data update` to record the new version"))  # fmt: skip
    if md5 is not None and md5.hexdigest() != it.md5:
        return Result(it.path, problem="changed", reason=(
            f"{where}: content md5 {md5.hexdigest()} differs from the recorded {it.md5}: the remote "
            "changed; run `git data update` to record the new version"))  # fmt: skip
    return Result(it.path, oid=f"{algorithm}:{h.hexdigest()}")


def hash_local(shares: list[Share]) -> list[Result]:
    out: list[Result] = []
    for share in shares:
        out += hash_share(share)
    return out


# -- 3. record (client) ------------------------------------------------------------------


def record(project: Project, p: Plan, results: Iterable[Result]) -> VerifyReport:
    """Write the new pointers (guarded writer) and put them in the index.

    A work-tree file that holds the old pointer text gets the new one; a
    staged copy (copy mode) keeps its bytes, and the clone's record of what
    was staged learns the new pointer, so ``git status`` stays clean and
    ``git add`` gives the new pointer. Anything else (changed locally,
    removed) is kept as it is and listed.
    """
    report = p.report
    texts: list[str] = []
    staged_new: list[tuple[str, str, bytes]] = []
    results = sorted(results, key=lambda r: r.path)
    staged = project.state.staged_records([r.path for r in results if r.oid])
    ds = ds_mod.get(project, report.dataset)
    manifest = ds_mod.recorded_manifest(project, ds)
    in_manifest: dict[str, Pointer] = {}  # new records of a dataset its manifest records
    for r in results:
        if r.oid is None:
            (report.changed if r.problem == "changed" else report.failed)[r.path] = r.reason or "failed"
            continue
        old = p.pointers[r.path]
        previous = old.get(SOURCE_OID)
        if previous == r.oid:
            report.unchanged.append(r.path)
            report.bytes += old.size or 0
            continue
        if previous is not None and previous.split(":", 1)[0] == r.oid.split(":", 1)[0]:
            report.changed[r.path] = (
                f"its source's bytes hash to {r.oid}, {previous} was recorded: the content changed "
                "although its fingerprint did not; run `git data update` and check the source"
            )
            continue
        try:
            new = old.replace(**{SOURCE_OID.replace("-", "_"): r.oid})
            data = new.encode()
        except PointerError as err:
            report.failed[r.path] = f"could not record the oid: {err}"
            continue
        full = os.path.join(project.root, r.path)
        if manifest is not None and (not os.path.lexists(full) or r.path in staged):
            if r.path in staged and staged[r.path][0] != r.oid:
                report.kept[r.path] = (
                    f"the staged copy is not the source's bytes ({staged[r.path][0]}, the source has "
                    f"{r.oid}); unstage the dataset and verify again"
                )
                continue
            in_manifest[r.path] = new
            if r.path in staged:
                staged_new.append((r.path, r.oid, data))
        elif manifest is None and ds_mod.read_pointer_file(full) == old:
            try:
                ds_mod.write_pointer_at(project, r.path, data)
            except safepath.UnsafePath as err:
                report.failed[r.path] = str(err)
                continue
            texts.append(r.path)
        elif r.path in staged and staged[r.path][1] == old.encode() and staged[r.path][0] == r.oid:
            staged_new.append((r.path, r.oid, data))
        elif r.path in staged and staged[r.path][1] == old.encode():
            report.kept[r.path] = (
                f"the staged copy is not the source's bytes ({staged[r.path][0]}, the source has "
                f"{r.oid}); unstage the dataset and verify again"
            )
            continue
        else:
            report.kept[r.path] = "the file was changed or removed in the work tree; left as it is"
            continue
        report.recorded[r.path] = r.oid
        report.bytes += old.size or 0
    if staged_new:
        project.state.record_staged(staged_new)
    if manifest is not None:
        if in_manifest:
            ds_mod.git_add(project, [objects.rewrite_manifest(project, ds, manifest, in_manifest)], pointers=True)
        return report
    ds_mod.git_add(project, texts, pointers=True)
    if staged_new:
        # the index's stat data says "unchanged": only a fresh clean (which now
        # answers with the new pointer for the staged bytes) updates the entry
        data = "".join(path + "\0" for path, _o, _d in staged_new).encode("utf-8", "surrogateescape")
        project.repo.git("--literal-pathspecs", "add", "--renormalize", "--pathspec-from-file=-",
                         "--pathspec-file-nul", input=data)
    return report


# -- the whole -------------------------------------------------------------------------


def verify(
    project: Project, name: str, include: Iterable[str] = (), *, jobs: int | None = None,
    run: Callable[[list[Share]], list[Result]] | None = None, where: str = "local",
) -> VerifyReport:
    """Hash dataset ``name``'s registered sources (those matching ``include``)
    and record their oids. ``run`` hashes the shares (default: here, in
    threads; :func:`gitdata.datasets.verify_dask.runner` on a cluster)."""
    mode, location = current_mode(project, name)
    if mode in ("mount",) or location or os.path.islink(os.path.join(project.root, ds_mod.get(project, name).path)):
        raise VerifyFailed(
            f"dataset {name!r} is staged {'mounted' if mode == 'mount' else 'at a location'}; run "
            f"`git data dataset unstage {name}` first, then verify, then stage again"
        )
    with clone_lock(project.repo.data_dir, f"dataset-{name}", f"dataset verify {name}"):
        p = plan(project, name, include, jobs=jobs)
        results = (run or hash_local)(p.shares)
        wanted = {it.path for s in p.shares for it in s.items}
        got = {r.path for r in results}
        if got != wanted:
            raise VerifyFailed(
                f"verifying {name}: {len(wanted - got)} file(s) came back without a result; nothing was "
                "recorded. Run it again"
            )
        p.report.where = where
        return record(project, p, results)


def token() -> str:
    """A random prefix for task names (no path, URL or option in them)."""
    return uuid.uuid4().hex[:12]
