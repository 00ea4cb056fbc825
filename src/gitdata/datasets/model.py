"""Datasets: what `.gitdata` declares (the model), its sources, and the files a dataset holds."""

from __future__ import annotations

import datetime as _dt
import fnmatch
import os
import posixpath
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain, islice
from typing import Any

from .. import config as config_mod
from .. import install as install_mod
from .. import safepath, trust, writer
from ..errors import GitDataError
from ..git.repo import run_git
from ..pointer import MAX_SIZE, Pointer, PointerError, parse_or_none
from ..progress import Progress
from ..project import Project
from ..scan import Found, _scan_blobs, scan_index
from ..storage import Storage, StorageError, normalize_url
from ..storage.errors import AccessDenied, ObjectNotFound, StorageUnreachable, userinfo_problem
from ..storage.fsspec import adapter_for_protocol
from . import manifest as manifest_mod
from . import objects

DEFAULT_ROOT = "data"


SOURCE_SEP = " -> "


class DatasetError(GitDataError):
    pass


class UnknownDataset(DatasetError):
    pass


class NameClash(DatasetError):
    pass


class UnsafePath(DatasetError, safepath.UnsafePath):
    """An object key or path that would land outside the dataset folder."""


class UnsafeSource(UnsafePath):
    """A registered pointer whose ``source`` is not under its dataset's declared sources."""


@dataclass(frozen=True)
class Source:
    """A registered external location: ``url``, placed under ``to`` in the folder."""

    url: str
    to: str = ""

    def encode(self) -> str:
        return self.url + (SOURCE_SEP + self.to if self.to else "")

    @classmethod
    def decode(cls, value: str) -> Source:
        url, sep, to = value.rpartition(SOURCE_SEP)
        return cls(url=url, to=to) if sep else cls(url=value)


@dataclass
class Dataset:
    name: str
    path: str
    storage: str | None = None
    option_lines: list[str] = field(default_factory=list)
    created: str | None = None
    title: str | None = None
    description: str | None = None
    creators: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)

    @property
    def options(self) -> dict[str, Any]:
        return config_mod.parse_options(self.option_lines)

    @property
    def section(self) -> str:
        return f"dataset.{self.name}"

    def contains(self, path: str) -> bool:
        return path == self.path or path.startswith(self.path + "/")

    def rel(self, path: str) -> str:
        return path[len(self.path) + 1 :]


def _last(keys: dict[str, list[str]], key: str) -> str | None:
    vals = keys.get(key)
    return vals[-1] if vals else None


def _load_checked(project: Project) -> tuple[dict[str, Dataset], dict[str, UnsafePath]]:
    """Every dataset of ``.gitdata``; those whose folder is unsafe apart, with the reason.

    ``.gitdata`` arrives with a clone: a ``path`` that climbs out of the
    project or into ``.git`` is refused here, where it is read.
    """
    out: dict[str, Dataset] = {}
    refused: dict[str, UnsafePath] = {}
    for name, keys in project.config.sections("dataset").items():
        path = (_last(keys, "path") or f"{DEFAULT_ROOT}/{name}").rstrip("/")
        try:
            safepath.check_place(path, f"dataset {name!r} folder (path in .gitdata)")
        except safepath.UnsafePath as err:
            refused[name] = UnsafePath(f"{err}; fix or remove [dataset \"{name}\"] in .gitdata")
            continue
        out[name] = Dataset(
            name=name,
            path=path,
            storage=_last(keys, "storage"),
            option_lines=list(keys.get("option", [])),
            created=_last(keys, "created"),
            title=_last(keys, "title"),
            description=_last(keys, "description"),
            creators=list(keys.get("creator", [])),
            keywords=list(keys.get("keyword", [])),
            sources=[Source.decode(v) for v in keys.get("source", [])],
        )
    return out, refused


def load_all(project: Project) -> dict[str, Dataset]:
    """The datasets of ``.gitdata`` whose folder is safe (see :func:`refused`)."""
    return _load_checked(project)[0]


def refused(project: Project) -> dict[str, UnsafePath]:
    """Datasets of ``.gitdata`` that are ignored because their folder is unsafe."""
    return _load_checked(project)[1]


def get(project: Project, name: str) -> Dataset:
    datasets, bad = _load_checked(project)
    if name in bad:
        raise bad[name]
    if name not in datasets:
        known = ", ".join(sorted(datasets)) or "none yet"
        raise UnknownDataset(
            f"no dataset named {name!r} (known: {known}); create it with "
            f"`git data dataset create {name}`"
        )
    return datasets[name]


def default_creator(project: Project) -> str | None:
    name = project.repo.config_get("user.name")
    email = project.repo.config_get("user.email")
    if name and email:
        return f"{name} <{email}>"
    return name or None


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_folder(project: Project, folder: str) -> str:
    """A normalized project-relative folder for a dataset, refused if unsafe."""
    folder = folder.strip().replace(os.sep, "/").strip("/")
    norm = posixpath.normpath(folder) if folder else ""
    if not norm or norm in (".", "..") or norm.startswith("../") or posixpath.isabs(folder):
        raise UnsafePath(f"dataset folder {folder!r} must be a relative path inside the project")
    try:
        safepath.check_place(norm, "dataset folder")
    except safepath.UnsafePath as err:
        raise UnsafePath(str(err)) from err
    return norm


def create(
    project: Project,
    name: str,
    *,
    storage: str | None = None,
    options: Iterable[str] = (),
    title: str | None = None,
    description: str | None = None,
    creators: Iterable[str] = (),
    keywords: Iterable[str] = (),
    path: str | None = None,
) -> Dataset:
    """Record a new dataset in ``.gitdata`` and route its folder through the filter."""
    config_mod.check_name("dataset", name)
    existing = load_all(project)
    if name in existing:
        raise NameClash(
            f"dataset {name!r} exists already; add data to it with `git data dataset add {name} ...`"
        )
    folder = check_folder(project, path or f"{DEFAULT_ROOT}/{name}")
    for other in existing.values():
        if other.contains(folder) or folder == other.path or other.path.startswith(folder + "/"):
            raise NameClash(
                f"folder {folder} overlaps dataset {other.name!r} ({other.path}); choose another "
                "with --path"
            )
    if os.path.lexists(os.path.join(project.root, folder)) or _index_has_prefix(project, folder):
        raise NameClash(
            f"{folder} already exists in the project; choose another folder with --path, or move it"
        )
    option_lines = list(options)
    parsed = config_mod.parse_options(option_lines)
    for key, value in parsed.items():
        config_mod.check_not_secret(key, str(value))
    if storage is not None:
        _check_url_has_no_userinfo(storage)
        project.open_storage(storage, parsed, name=name)  # unknown scheme / missing package: fail now
        if "://" not in storage:
            storage = normalize_url(storage)
    creators = list(creators) or [c for c in [default_creator(project)] if c]
    cfg = config_mod.ConfigFile(project.repo)
    items: dict[str, str | list[str]] = {"path": folder, "created": _now()}
    if storage:
        items["storage"] = storage
    if option_lines:
        items["option"] = option_lines
    if title:
        items["title"] = title
    if description:
        items["description"] = description
    if creators:
        items["creator"] = creators
    if keywords:
        items["keyword"] = list(keywords)
    cfg.set_many(f"dataset.{name}", items)
    install_mod.track(project.root, [f"{folder}/**"])
    project.reload()
    ds = get(project, name)
    if storage:
        trust.acknowledge(project)
    git_add(project, [".gitdata", ".gitattributes"])
    return ds


def edit(project: Project, name: str, changes: dict[str, str | list[str] | None]) -> Dataset:
    """Change metadata; ``None`` removes a key, a list replaces all values.

    ``option`` lines are checked as :func:`create` checks them (no secrets)
    before anything is written."""
    ds = get(project, name)
    if isinstance(changes.get("option"), list):
        for key, value in config_mod.parse_options(list(changes["option"] or [])).items():
            config_mod.check_not_secret(key, str(value))
    cfg = config_mod.ConfigFile(project.repo)
    for key, value in changes.items():
        full = f"{ds.section}.{key}"
        if value is None:
            cfg.unset_all(full)
        else:
            cfg.set_many(ds.section, {key: value})
    project.reload()
    git_add(project, [".gitdata"])
    return get(project, name)


def _check_url_has_no_userinfo(url: str) -> None:
    if problem := userinfo_problem(url):
        raise DatasetError(f"{problem} (use `git data credentials set` or the environment)")


def _index_has_prefix(project: Project, folder: str) -> bool:
    out = project.repo.git("ls-files", "-z", "--", folder)
    return bool(out)


def safe_relpath(key: str) -> str:
    """``key`` as a relative POSIX path that cannot leave its folder, or :class:`UnsafePath`."""
    try:
        return safepath.check_relpath(key, "object key")
    except safepath.UnsafePath as err:
        raise UnsafePath(f"{err}; rename the object, or --exclude it") from err


def within(root: str, path: str) -> bool:
    root = os.path.realpath(root)
    return os.path.commonpath([root, os.path.realpath(path)]) == root


def select(rel: str, include: Iterable[str], exclude: Iterable[str]) -> bool:
    include = list(include)
    if include and not any(fnmatch.fnmatch(rel, g) for g in include):
        return False
    return not any(fnmatch.fnmatch(rel, g) for g in exclude)


def open_source(project: Project, ds: Dataset, url: str, *, versioned: bool = True) -> Storage:
    """A storage for a registered source, version-aware where the backend allows it.

    Version-aware listing (S3 ``ListObjectVersions``) gives each object's
    version id, so staging can read exactly the recorded version. Servers
    that do not implement it (``rclone serve s3``) fall back to a plain
    listing.
    """
    opts = ds.options
    option = adapter_for_protocol(normalize_url(url).split("://", 1)[0]).capabilities.versions_option
    if versioned and option and option not in opts:
        return project.open_storage(url, {**opts, option: True}, name=ds.name)
    return project.open_storage(url, opts, name=ds.name)


def is_versioned(storage: Storage) -> bool:
    return bool(storage.options.get("version_aware"))


def list_source(project: Project, ds: Dataset, url: str) -> tuple[Storage, Iterator[tuple[str, Any]], str]:
    """One listing of ``url``: ``(storage, (key, fingerprint) as listed, single_object)``.

    The pairs stream as the listing's pages arrive (nothing is held for a
    million keys). ``single_object`` is the object's base name when ``url``
    names one object rather than a prefix (its key is then that name and the
    storage is its parent), else "".
    """
    storage = open_source(project, ds, url)
    try:
        listed = _counted(storage.list(), f"Listing {storage.display}")
        head = list(islice(listed, 2))
    except (AccessDenied, StorageUnreachable, ObjectNotFound):
        raise
    except StorageError:
        if not is_versioned(storage) or "version_aware" in ds.options:
            raise
        storage = open_source(project, ds, url, versioned=False)
        listed = _counted(storage.list(), f"Listing {storage.display}")
        head = list(islice(listed, 2))
    if len(head) == 1 and head[0][0] == storage.root:
        parent_url, _, base = storage.url.rpartition("/")
        parent = project.open_storage(parent_url, storage.options, name=ds.name, tracked=False)
        return parent, iter([(base, head[0][1])]), base
    entries = chain(head, listed)
    return storage, fill_sizes(storage, _drop_own_objects(ds, storage, _drop_dir_markers(entries))), ""


def _counted(listing: Iterable[tuple[str, Any]], label: str) -> Iterator[tuple[str, Any]]:
    """The listing as it comes, counted (a running count on a terminal, gone at its end)."""
    bar = Progress(label, None, unit_bytes=False)
    n = 0
    try:
        for entry in listing:
            yield entry
            n += 1
            if n % 256 == 0:
                bar.advance(256)
    finally:
        bar.close()


def _drop_own_objects(ds: Dataset, storage: Storage, entries: Iterable[tuple[str, Any]]) -> Iterator[tuple[str, Any]]:
    """Leave out the dataset's own content-addressed objects when its ``storage`` lies under
    the listed prefix (``dataset copy`` puts them at ``TARGET/.gitdata``): they are not
    registered files, so neither ``status --remote`` nor ``update`` takes them for new ones."""
    own = normalize_url(ds.storage).rstrip("/") if ds.storage else ""
    if not own.startswith(storage.url.rstrip("/") + "/"):
        yield from entries
        return
    prefix = own[len(storage.url.rstrip("/")) + 1 :]
    yield from ((k, fp) for k, fp in entries if k != prefix and not k.startswith(prefix + "/"))


def fill_sizes(storage: Storage, entries: Iterable[tuple[str, Any]]) -> Iterator[tuple[str, Any]]:
    """Ask about entries listed with size 0 one by one.

    Object stores state every size in the listing (a 0 there is a real empty
    object, rare); an HTTP index page states none, and only a HEAD per file
    tells. Everything else keeps the one listing.
    """
    for key, fp in entries:
        if fp.size == 0:
            try:
                fp = storage.info(key)
            except ObjectNotFound:
                continue
        yield key, fp


def _drop_dir_markers(entries: Iterable[tuple[str, Any]]) -> Iterator[tuple[str, Any]]:
    """Drop empty "folder" marker objects (``a`` or ``a/`` in S3) that have children.

    Streamed: an empty object is held back (with what is listed after it) only
    until the listing shows whether anything lies under it; that needs the
    listing sorted (``Storage.list`` sorts). Anything else passes at once.
    """
    held: list[tuple[str, Any]] = []  # from the first undecided empty object on, in order
    markers: list[str] = []  # the undecided empty objects' names, in order

    for key, fp in entries:
        if not key:
            continue
        undecided = []
        for name in markers:  # what this key settles
            if key.startswith(name + "/"):  # a child: the marker is a folder's, dropped
                held = [h for h in held if h[0] != name]
            elif key < name + "/":  # its children could still come
                undecided.append(name)
            # else: past where its children would be: a real empty object, kept
        markers = undecided
        if held:  # what no undecided marker holds back goes on
            cut = next(i for i, h in enumerate(held) if h[0] == markers[0]) if markers else len(held)
            yield from held[:cut]
            del held[:cut]
        if key.endswith("/"):  # a folder's own marker object: it only told about the ones before it
            continue
        if fp.size == 0:
            markers.append(key)
            held.append((key, fp))
        elif markers:
            held.append((key, fp))
        else:
            yield key, fp
    yield from held


def source_roots(ds: Dataset) -> list[Source]:
    return sorted(ds.sources, key=lambda s: len(s.url), reverse=True)


def split_source(ds: Dataset, object_url: str, path: str = "") -> tuple[str, str]:
    """``(storage url, key)`` for a pointer's ``source``, which must lie under a declared source.

    A pointer arrives with a clone: its ``source`` is read only where the
    dataset's ``.gitdata`` section says its data comes from (a prefix, or
    one registered object), with a key that cannot climb out of it. Anything
    else (``file:///home/...``, another bucket) is :class:`UnsafeSource`.
    """
    for src in source_roots(ds):
        root = src.url.rstrip("/")
        if object_url.startswith(root + "/"):
            key = object_url[len(root) + 1 :]
            try:
                safepath.check_relpath(key, "source key")
            except safepath.UnsafePath as err:
                raise UnsafeSource(f"{path or object_url}: {err}; the pointer was not read") from err
            return root, key
        if object_url == root and "/" in root.split("://", 1)[-1]:
            parent, _, base = root.rpartition("/")
            return parent, base
    where = f"dataset {ds.name!r}" if ds.name else "no dataset"
    declared = ", ".join(s.url for s in ds.sources) or "none"
    raise UnsafeSource(
        f"{path or 'a registered file'}: its source {object_url} is not under a source of {where} "
        f"(declared: {declared}); refusing to read it. A pointer can only name data its dataset "
        "registered; `git data dataset add NAME URL` registers a source"
    )


def files(project: Project, ds: Dataset) -> list[Found]:
    """The dataset's files, by path: pointers in the index under its folder, and the
    files its manifest records (``.gitdata-manifest``, see :mod:`.manifest`) in their place."""
    mine = index_files(project, ds)
    manifest = objects.manifest_pointer_of(project, ds, mine)
    if manifest is None:
        return sorted(mine, key=lambda f: f.path)
    listed = list(objects.expand(project, ds, manifest))
    seen = {f.path for f in listed}
    own = [f for f in mine if f.path != objects.manifest_path(ds) and f.path not in seen]
    return sorted(listed + own, key=lambda f: f.path)


def iter_files(project: Project, ds: Dataset, index: list[Found] | None = None) -> Iterator[Found]:
    """:func:`files`, streamed: a manifest's entries are read as they come (one line at a time),
    merged by path with the index's own pointers (``index``: :func:`index_files`, given when the
    caller reads the stream more than once). Memory does not grow with the manifest; a bad line
    raises :class:`.manifest.ManifestError` where it is read."""
    mine = index_files(project, ds) if index is None else index
    manifest = objects.manifest_pointer_of(project, ds, mine)
    if manifest is None:
        yield from mine
        return
    own = sorted((f for f in mine if f.path != objects.manifest_path(ds)), key=_found_key)
    # the manifest's entry wins over an index pointer at the same path (as in files())
    yield from manifest_mod.merge(own, objects.expand(project, ds, manifest), key=_found_key)


def _found_key(f: Found) -> bytes:
    return f.path.encode("utf-8", "surrogateescape")


def index_files(project: Project, ds: Dataset) -> list[Found]:
    """The pointers in git's index under the dataset folder (a manifest's pointer, not its files)."""
    scan = scan_index(project.repo)
    if scan.malformed:
        bad = {p: r for p, r in scan.malformed.items() if ds.contains(p)}
        if bad:
            path, reason = next(iter(bad.items()))
            raise PointerError(f"{path}: malformed gitdata pointer: {reason}")
    return sorted((f for f in scan.found if ds.contains(f.path)), key=lambda f: f.path)


def recorded_manifest(project: Project, ds: Dataset) -> Pointer | None:
    """The dataset's manifest pointer in the index, if it is recorded by one.

    Asks git for that one path (a small call), not a scan of the whole index: asked on every status.
    """
    path = objects.manifest_path(ds)
    found = _scan_blobs(project.repo, project.repo.ls_index([path])).found
    return next((f.pointer for f in found if f.path == path and manifest_mod.is_manifest_pointer(f.pointer)), None)


def dataset_at(project: Project, folder: str) -> Dataset:
    """The dataset of ``folder`` (where a manifest pointer was found): the one ``.gitdata`` declares,
    else a bare one (``name`` empty: no sources, no storage of its own)."""
    declared = next((d for d in load_all(project).values() if d.path == folder), None)
    return declared or Dataset(name="", path=folder)


def forget_index_entries(project: Project, paths: list[str]) -> None:
    """Remove ``paths`` from the index (the work tree is left as it is)."""
    if paths:
        data = "".join(p + "\0" for p in paths).encode("utf-8", "surrogateescape")
        run_git(["update-index", "--force-remove", "-z", "--stdin"], cwd=project.root, input=data)


def git_add(project: Project, paths: list[str], *, intent_only: bool = False, pointers: bool = False) -> None:
    """``git add`` many paths (literal, NUL-separated through stdin).

    ``pointers=True`` says every file is a canonical pointer we just wrote:
    the clean filter would give each back unchanged, so git hashes them
    itself, without a round trip through the filter per file.
    """
    paths = [p for p in paths if os.path.lexists(os.path.join(project.root, p))]
    if not paths:
        return
    data = "".join(p + "\0" for p in paths).encode("utf-8", "surrogateescape")
    args = ["--literal-pathspecs"]
    if pointers:
        args += ["-c", f"filter.{install_mod.DRIVER}.process=", "-c", f"filter.{install_mod.DRIVER}.required=false",
                 "-c", f"filter.{install_mod.DRIVER}.clean=", "-c", f"filter.{install_mod.DRIVER}.smudge="]
        if not intent_only:
            # `git add --pathspec-from-file` matches every literal path against every file: quadratic
            # (100,000 pointers: minutes). update-index takes the paths as they are: linear.
            run_git([*args, "update-index", "--add", "-z", "--stdin"], cwd=project.root, input=data)
            return
    args += ["add", "-f"]
    if intent_only:
        args.append("-N")
    args += ["--pathspec-from-file=-", "--pathspec-file-nul"]
    run_git(args, cwd=project.root, input=data)


def write_small(path: str, data: bytes) -> None:
    """Write a small file (a pointer) through the guarded writer."""
    writer.write_small(path, data)


def checked_path(project: Project, rel: str, *, create: bool = True, what: str = "dataset file") -> str:
    """The full path of project path ``rel``, walked right now with ``O_NOFOLLOW``
    (:func:`gitdata.safepath.checked_target`): no folder on the way is a link a clone brought
    (``data -> ../../elsewhere``), and the file itself is absent or a regular file. Raises
    :class:`gitdata.safepath.UnsafePath` naming the link."""
    return safepath.checked_target(project.root, rel, create=create, what=f"{what} {rel}")


def write_pointer_at(project: Project, rel: str, data: bytes) -> str:
    """Write a pointer (or a manifest's pointer) at project path ``rel`` of a dataset folder,
    after :func:`checked_path`; returns the full path."""
    full = checked_path(project, rel)
    writer.write_small(full, data)
    return full


def read_pointer_file(full: str) -> Pointer | None:
    """The pointer a work-tree file holds (None for content, symlinks, missing)."""
    try:
        if os.path.islink(full) or os.path.getsize(full) >= MAX_SIZE:
            return None
        with open(full, "rb") as f:
            data = f.read(MAX_SIZE)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    return parse_or_none(data)


def remove(project: Project, name: str) -> dict[str, object]:
    """Stop tracking the dataset: config section, pattern, index entries, pointer files.

    Content files in the folder (staged data) stay on disk, untracked.
    Nothing in external storage is touched.
    """
    ds = get(project, name)
    found = files(project, ds)
    removed_pointers = 0
    kept = []
    for f in found:
        full = os.path.join(project.root, f.path)
        if read_pointer_file(full) is not None:
            os.unlink(full)
            removed_pointers += 1
        elif os.path.lexists(full):
            kept.append(f.path)
    project.repo.git("rm", "-r", "-q", "--cached", "--ignore-unmatch", "--", ds.path)
    project.state.forget_staged([f.path for f in found])
    cfg = config_mod.ConfigFile(project.repo)
    cfg.remove_section(ds.section)
    install_mod.untrack(project.root, [f"{ds.path}/**"])
    project.reload()
    git_add(project, [".gitdata", ".gitattributes"])
    return {"dataset": name, "untracked": len(found), "pointers_removed": removed_pointers, "kept_files": kept}


object_store_for = objects.object_store_for


def split_by_storage(project: Project, scan: Any) -> tuple[Any, list[tuple[Any, Any]]]:
    """Route pointers of datasets that have their own ``storage`` to it.

    Returns the scan without those pointers, and ``(ObjectStore, sub-scan)``
    per dataset storage, so that push uploads a dataset's files there.
    """
    from ..scan import ScanResult

    owners = [d for d in load_all(project).values() if d.storage]
    if not owners:
        return scan, []
    rest: list[Found] = []
    parts: dict[str, list[Found]] = {}
    for f in scan.found:
        owner = next((d for d in owners if d.contains(f.path)), None)
        if owner is None or f.pointer.oid is None:
            rest.append(f)
        else:
            parts.setdefault(owner.name, []).append(f)
    routed = []
    for name, found in parts.items():
        ds = next(d for d in owners if d.name == name)
        routed.append((object_store_for(project, ds), ScanResult(found, {})))
    return ScanResult(rest, scan.malformed), routed
