"""``git data dataset copy``: every object of a dataset into another bucket, then the dataset points there.

A copy, not a move: the origin is left as it is and named in the pointers
(``origin-*`` keys) and in ``.gitdata`` (``origin`` lines), so where the data
came from stays on record (docs/datasets.md, "Copying a dataset").

Target layout under the URL the user gives (``T``):

- ``T/<path in the dataset>`` for every registered file: a readable mirror
  of the dataset folder, registered again from there;
- ``T/.gitdata/objects/ab/cd/<hex>`` for the project's own files (content
  addressed, as on a data remote): ``T/.gitdata`` becomes the dataset's
  ``storage``. Listings of ``T`` as a source skip that prefix
  (:func:`gitdata.datasets.model.list_source`).

Nothing is written into the project folder but pointers and ``.gitdata``,
and those only once every object is at the target: a run that fails for
some objects changes nothing in the project and can simply be run again
(objects already at the target with the right size and md5, or oid, are not
copied again).
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from .. import config as config_mod
from .. import safepath, trust
from ..errors import GitDataError
from ..hashing import new_hasher
from ..pointer import Pointer, PointerError
from ..project import Project
from ..scan import Found
from ..storage import ObjectStore, Storage, StorageError, normalize_url, oid_to_key
from ..storage.errors import userinfo_problem
from ..storage.fingerprint import Fingerprint, compare, is_plain_md5_etag
from . import model as ds_mod
from . import objects
from .download import check_registered_size
from .modes import RemoteChanged, StageError, _expected_md5, current_mode

#: The prefix of the target that holds the project's own files (content addressed).
OWN_PREFIX = ".gitdata"
#: Pointer keys that keep the origin of a copied file: ``origin-`` + these.
ORIGIN_FIELDS = ("source", "etag", "md5", "version-id", "mtime")


class CopyError(ds_mod.DatasetError):
    pass


@dataclass
class CopyReport:
    dataset: str
    target: str
    copied: list[str] = field(default_factory=list)
    server_side: int = 0
    streamed: int = 0
    already: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    bytes: int = 0
    recorded: bool = False  #: pointers and .gitdata now name the target

    def as_dict(self) -> dict[str, object]:
        return {
            "dataset": self.dataset,
            "target": self.target,
            "copied": len(self.copied),
            "server_side": self.server_side,
            "streamed": self.streamed,
            "already": len(self.already),
            "failed": dict(sorted(self.failed.items())),
            "bytes": self.bytes,
            "recorded": self.recorded,
        }


@dataclass
class _Item:
    found: Found
    key: str  #: where it goes under the target (registered) or the own store
    src_root: str | None = None  #: registered: the declared source it lies under
    src_key: str | None = None


def check_target(ds: ds_mod.Dataset, url: str) -> str:
    """The target URL, normalized; refused if it carries secrets or overlaps the origin."""
    if problem := userinfo_problem(url):
        raise CopyError(f"{problem} (use `git data credentials set` or the environment)")
    url = normalize_url(url)
    if url.endswith("://"):
        raise CopyError(f"{url} names no bucket or folder to copy to")
    places = [s.url for s in ds.sources] + ([ds.storage] if ds.storage else [])
    for place in places:
        a, b = normalize_url(place).rstrip("/") + "/", url.rstrip("/") + "/"
        if a.startswith(b) or b.startswith(a):
            raise CopyError(
                f"{url} overlaps {place}, where dataset {ds.name!r} is read from now; copy it to "
                "another bucket or prefix"
            )
    return url


def target_key(ds: ds_mod.Dataset, f: Found) -> str:
    """Where a registered file goes under the target: its path in the dataset folder.

    The path comes from the index (a clone): checked as a relative path that
    stays under the target, and kept out of the prefix of the own objects.
    """
    rel = ds.rel(f.path)
    try:
        rel = safepath.check_relpath(rel, "dataset path")
    except safepath.UnsafePath as err:
        raise ds_mod.UnsafePath(f"{f.path}: {err}; not copied") from err
    if rel.split("/", 1)[0] == OWN_PREFIX:
        raise ds_mod.UnsafePath(
            f"{f.path}: paths under {OWN_PREFIX}/ of a dataset are where a copy keeps the project's own "
            "files; rename it (git mv) before copying"
        )
    return rel


def _plan(project: Project, ds: ds_mod.Dataset, found: list[Found], report: CopyReport) -> list[_Item]:
    items = []
    for f in found:
        try:
            if f.pointer.oid is not None:
                items.append(_Item(f, oid_to_key(f.pointer.oid)))
                continue
            check_registered_size(f.path, f.pointer)
            root, key = ds_mod.split_source(ds, f.pointer.source or "", f.path)
            items.append(_Item(f, target_key(ds, f), root, key))
        except GitDataError as err:
            report.failed[f.path] = str(err)
    return items


def _listing(storage: Storage, prefix: str = "") -> dict[str, Fingerprint]:
    try:
        return dict(storage.list(prefix))
    except StorageError as err:
        if getattr(err, "transient", False):
            raise
        return {}


def _already(item: _Item, there: Fingerprint | None) -> bool:
    """Whether the target already holds this object (a run that was cut short)."""
    if there is None:
        return False
    p = item.found.pointer
    if there.size != p.size:
        return False
    if p.oid is not None:
        return True  # content addressed and published whole: that key holds these bytes
    want = _expected_md5(p)
    have = there.md5 or (there.etag.strip('"') if is_plain_md5_etag(there.etag) else None)
    return bool(want and have and want == have)


class _Verifier:
    """Checks a stream against what the pointer records: size as it arrives, then md5 or oid."""

    def __init__(self, where: str, pointer: Pointer) -> None:
        self.where = where
        self.pointer = pointer
        self.size = 0
        self.md5_expected = _expected_md5(pointer) if pointer.oid is None else None
        self.md5 = hashlib.md5(usedforsecurity=False) if self.md5_expected else None
        self.hasher = new_hasher(pointer.algorithm) if pointer.oid is not None else None

    def __call__(self, chunk: bytes | None) -> None:
        p = self.pointer
        if chunk is not None:
            self.size += len(chunk)
            if p.size is not None and self.size > p.size:
                raise RemoteChanged(f"{self.where} has more than the {p.size} bytes recorded; not copied")
            for h in (self.md5, self.hasher):
                if h is not None:
                    h.update(chunk)
            return
        if p.size is not None and self.size != p.size:
            raise RemoteChanged(f"{self.where} has {self.size} bytes, {p.size} were recorded; not copied")
        if self.md5 is not None and self.md5.hexdigest() != self.md5_expected:
            raise RemoteChanged(
                f"{self.where}: content md5 {self.md5.hexdigest()} differs from the recorded "
                f"{self.md5_expected}; not copied"
            )
        if self.hasher is not None and f"{p.algorithm}:{self.hasher.hexdigest()}" != p.oid:
            raise StageError(f"{self.where} does not hash to {p.oid} (corrupt); not copied")


def copy(
    project: Project, name: str, url: str, *, options: list[str] | tuple[str, ...] = (), jobs: int | None = None
) -> CopyReport:
    """Copy every object of dataset ``name`` to ``url``, then record it there (see the module doc)."""
    ds = ds_mod.get(project, name)
    mode, _location = current_mode(project, name)
    if mode not in (None, "reference"):
        raise CopyError(
            f"dataset {name} is staged ({mode}); run `git data dataset unstage {name}` first, then copy, "
            "then stage it again (a copy never downloads into the project)"
        )
    url = check_target(ds, url)
    option_lines = list(options)
    parsed = config_mod.parse_options(option_lines)
    for key, value in parsed.items():
        config_mod.check_not_secret(key, str(value))
    target = project.open_storage(url, parsed, name=name)
    own_store = project.open_storage(f"{url}/{OWN_PREFIX}", parsed, name=name, tracked=False)
    report = CopyReport(dataset=name, target=url)
    found = ds_mod.files(project, ds)
    if not found:
        raise CopyError(f"dataset {name} has no files to copy")
    items = _plan(project, ds, found, report)

    # what is at the origin now (one listing per source) and at the target already (one listing)
    sources: dict[str, Storage] = {}
    current: dict[str, dict[str, Fingerprint]] = {}
    for root in sorted({i.src_root for i in items if i.src_root}):
        wants_version = any(i.found.pointer.get("version-id") for i in items if i.src_root == root)
        sources[root] = ds_mod.open_source(project, ds, root, versioned=wants_version)
        listing = dict(ds_mod.list_source(project, ds, root)[1]) if root in {s.url.rstrip("/") for s in ds.sources} else {}
        current[root] = listing
    there = _listing(target)
    there_own = _listing(own_store, "objects")
    origin_store: ObjectStore | None = None

    work: list[_Item] = []
    for item in items:
        p = item.found.pointer
        if item.src_root is not None:
            now = current[item.src_root].get(item.src_key or "")
            if now is None and current[item.src_root]:
                report.failed[item.found.path] = f"{p.source} is gone from the origin; not copied"
                continue
            pinned = p.get("version-id") and ds_mod.is_versioned(sources[item.src_root])
            recorded = Fingerprint.from_pointer_fields(p.size, dict(p.extra))
            if now is not None and not pinned and compare(recorded, now) == "changed":
                report.failed[item.found.path] = (
                    f"{p.source} changed since it was recorded (and the origin keeps no versions); not "
                    f"copied. Run `git data update {name}` to record the new version, then copy again"
                )
                continue
            if _already(item, there.get(item.key)):
                report.already.append(item.found.path)
                continue
        elif _already(item, there_own.get(item.key)):
            report.already.append(item.found.path)
            continue
        work.append(item)

    def one(item: _Item) -> tuple[_Item, str]:
        nonlocal origin_store
        p = item.found.pointer
        if item.src_root is not None:
            src = sources[item.src_root]
            version = p.get("version-id") if ds_mod.is_versioned(src) else None
            check = _Verifier(f"{src.display}/{item.src_key}", p)
            how = target.copy_from(src, item.src_key or "", item.key, version_id=version, size=p.size, check=check)
            if how == "server":
                _check_server_copy(target, item)
            return item, how
        oid = p.oid or ""
        if project.cache.has(oid, p.size):
            ObjectStore(own_store).upload_cached(oid, project.cache)  # verified when it entered the cache
            return item, "stream"
        if origin_store is None:
            origin_store = ds_mod.object_store_for(project, ds)
        check = _Verifier(f"{origin_store.storage.display}/{item.key}", p)
        how = own_store.copy_from(origin_store.storage, item.key, item.key, size=p.size, check=check)
        if how == "server":
            _check_server_copy(own_store, item)
        return item, how

    workers = max(1, min(jobs or project.jobs, len(work) or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(one, item) for item in work]
        for fut in futures:
            try:
                item, how = fut.result()
            except GitDataError as err:
                failed_item = work[futures.index(fut)]
                report.failed[failed_item.found.path] = str(err)
                continue
            report.copied.append(item.found.path)
            report.bytes += item.found.pointer.size or 0
            if how == "server":
                report.server_side += 1
            else:
                report.streamed += 1
    if report.failed:
        return report
    _record(project, ds, url, option_lines, target, items)
    report.recorded = True
    return report


def _check_server_copy(storage: Storage, item: _Item) -> None:
    """A copy made inside the service: its size (and md5 where both sides state one) as recorded."""
    p = item.found.pointer
    now = storage.info(item.key)
    if p.size is not None and now.size != p.size:
        raise RemoteChanged(f"the copy of {item.found.path} has {now.size} bytes, {p.size} were recorded")
    want = _expected_md5(p) if p.oid is None else None
    have = now.md5 or (now.etag.strip('"') if is_plain_md5_etag(now.etag) else None)
    if want and have and want != have:
        raise RemoteChanged(f"the copy of {item.found.path} has md5 {have}, {want} was recorded")


def copied_pointer(old: Pointer, new_url: str, fp: Fingerprint) -> Pointer:
    """The pointer of a registered file after a copy: the new place and fingerprint, and
    the origin (the first one, for a copy of a copy) in ``origin-*`` keys."""
    fields: dict[str, str | None] = {k: v for k, v in old.extra if not k.startswith("origin-")}
    origin = {k: v for k, v in old.extra if k.startswith("origin-")}
    if not origin:
        origin = {f"origin-{k}": fields.get(k) for k in ORIGIN_FIELDS if fields.get(k)}
    for k in ("etag", "md5", "version-id", "mtime"):
        fields.pop(k, None)
    fields.update({"source": new_url, **fp.pointer_fields()})
    out = Pointer.make(None, old.size, {**fields, **origin})
    try:
        out.encode()
    except PointerError:
        origin.pop("origin-mtime", None)  # the least useful fact, dropped before giving up
        out = Pointer.make(None, old.size, {**fields, **origin})
        out.encode()
    return out


def _record(
    project: Project, ds: ds_mod.Dataset, url: str, option_lines: list[str], target: Storage, items: list[_Item]
) -> None:
    """Point the dataset at the target: new pointers for registered files, ``.gitdata``."""
    registered = [i for i in items if i.src_root is not None]
    changed = []
    manifest = ds_mod.recorded_manifest(project, ds)
    recorded: dict[str, Pointer] = {}
    if registered:
        moved = ds_mod.Dataset(name=ds.name, path=ds.path, option_lines=option_lines, sources=[ds_mod.Source(url)])
        now = dict(ds_mod.list_source(project, moved, url)[1])
        for item in registered:
            fp = now.get(item.key)
            if fp is None:
                raise CopyError(f"{url}/{item.key} was copied but is not listed there; run the copy again")
            pointer = copied_pointer(item.found.pointer, f"{url}/{item.key}", fp)
            if manifest is not None:
                recorded[item.found.path] = pointer
                continue
            ds_mod.write_pointer_at(project, item.found.path, pointer.encode())
            changed.append(item.found.path)
    if manifest is not None and recorded:
        changed.append(objects.rewrite_manifest(project, ds, manifest, recorded))
    cfg = config_mod.ConfigFile(project.repo)
    keys = project.config.sections("dataset").get(ds.name, {})
    items_out: dict[str, str | list[str]] = {"source": url, "storage": f"{url}/{OWN_PREFIX}"}
    if not keys.get("origin"):
        items_out["origin"] = [s.encode() for s in ds.sources] or [ds.storage or "the data remote"]
    if ds.option_lines and not keys.get("origin-option"):
        items_out["origin-option"] = list(ds.option_lines)
    for key in ("source", "storage", "option"):
        cfg.unset_all(f"{ds.section}.{key}")
    if option_lines:
        items_out["option"] = option_lines
    cfg.set_many(ds.section, items_out)
    project.reload()
    trust.acknowledge(project)
    ds_mod.git_add(project, changed, pointers=True)
    ds_mod.git_add(project, [".gitdata"])


def describe_failure(report: CopyReport) -> str:
    return (
        f"{len(report.failed)} file(s) of {report.dataset} could not be copied to {report.target}; "
        "the project is unchanged (pointers and .gitdata still name the origin). Fix what is said "
        "above and run the same command again: objects already copied are not copied again"
    )
