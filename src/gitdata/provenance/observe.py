"""What the project holds now: identities of inputs and outputs, bucket changes, status rows.

Identities come from the index wherever git already knows them: a pointer
that ``git diff-files`` does not list is taken as it is (its oid, or its
registered source and fingerprint), so a staged dataset of any size is
never read. Only files git does not know, files changed in the work tree
and plain git files (scripts) are hashed.

Changes in a bucket come from listings only: for inputs in datasets, the
``datasets`` rows ``git data status --remote`` already computed (one
listing per registered prefix, shared by every run); for URL inputs, one
listing per distinct URL.
"""

from __future__ import annotations

import bisect
import os
import stat
from collections.abc import Callable, Iterable, Mapping
from functools import partial

from .. import datasets as ds_mod
from .. import safepath
from .. import statusrows as status_mod
from ..errors import GitDataError
from ..hashing import oid_of_bytes, oid_of_file
from ..pointer import MAX_SIZE, Pointer, PointerError, is_pointer_like, parse
from ..project import Project
from ..storage import Storage
from ..storage.fingerprint import Fingerprint, compare
from . import model

STALE = "stale"
UP_TO_DATE = "up to date"
UNREADABLE = "unreadable"


class UndeclaredURL(safepath.UnsafePath):
    """A URL input that lies under no declared source, storage or data remote."""


class NothingAtURL(GitDataError):
    """A URL input under which the listing finds no object."""


def pointer_identity(p: Pointer) -> str:
    if p.oid:
        return p.oid
    fields = {k: p.get(k) for k in ("etag", "md5", "version-id", "mtime")}
    return model.fingerprint_identity(p.source, {"size": p.size, **fields})


def fp_fields(fp: Fingerprint) -> dict[str, str]:
    return {k: str(v) for k, v in {"size": fp.size, **fp.pointer_fields()}.items() if v is not None}


# -- records on disk -----------------------------------------------------------------------


def load_records(project: Project) -> tuple[dict[str, model.Record], dict[str, str]]:
    """Every record of ``.gitdata-runs/``; unreadable ones apart (path -> reason).

    Records arrive with a clone: a ``.gitdata-runs`` that is a symlink, a
    record that is not a regular file, or one whose name does not match its
    file is refused.
    """
    try:
        folder = safepath.checked_dir(project.root, model.RUNS_DIR, create=False, what="run records")
    except FileNotFoundError:
        return {}, {}
    except safepath.UnsafePath as err:
        return {}, {model.RUNS_DIR: str(err)}
    records: dict[str, model.Record] = {}
    bad: dict[str, str] = {}
    for fn in sorted(os.listdir(folder)):
        if not fn.endswith(".json"):
            continue
        rel = f"{model.RUNS_DIR}/{fn}"
        full = os.path.join(folder, fn)
        st = os.lstat(full)
        if not stat.S_ISREG(st.st_mode):
            bad[rel] = f"{rel} is not a regular file (a symlink?); run records are plain files"
            continue
        try:
            if st.st_size > model.MAX_RECORD_BYTES:
                raise model.RecordError(f"{rel} is over the {model.MAX_RECORD_BYTES}-byte limit")
            with open(full, "rb") as f:
                rec = model.parse(f.read(model.MAX_RECORD_BYTES + 1), rel)
            if rec.name != fn[: -len(".json")]:
                raise model.RecordError(f"{rel} names run {rec.name!r}; a record's file is NAME.json")
        except model.RecordError as err:
            bad[rel] = str(err)
            continue
        records[rec.name] = rec
    return records, bad


def load_record(project: Project, name: str) -> model.Record:
    records, bad = load_records(project)
    path = model.record_path(model.check_name(name))
    if path in bad:
        raise model.RecordError(bad[path])
    if name not in records:
        known = ", ".join(sorted(records)) or "none yet"
        raise model.RecordError(f"no run named {name!r} (known: {known}); record one with `git data run -n {name} ...`")
    return records[name]


# -- identities now -----------------------------------------------------------------------


def _walk(top: str) -> list[str]:
    """Every file under ``top`` (relative POSIX paths), no symlinked folder followed, no ``.git``."""
    out = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = [d for d in dirnames if not safepath.is_git_name(d)]
        rel = os.path.relpath(dirpath, top).replace(os.sep, "/")
        out += [fn if rel == "." else f"{rel}/{fn}" for fn in filenames]
    return sorted(out)


class Observer:
    """Identities of project paths now, from one look at the index and the work tree."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.datasets = ds_mod.load_all(project)
        self.index = dict(project.repo.ls_index())  # path -> blob sha
        self.paths = sorted(self.index)
        out = project.repo.git("diff-files", "--name-only", "-z")
        self.modified = {p.decode("utf-8", "surrogateescape") for p in out.split(b"\0") if p}
        self._pointers: dict[str, Pointer | None] = {}
        self._memo: dict[str, tuple[str | None, int | None]] = {}

    def read_pointers(self, paths: Iterable[str]) -> None:
        """Read the index blobs of ``paths`` (one batch) and keep those that are pointers."""
        want = [p for p in paths if p in self.index and p not in self._pointers]
        if not want:
            return
        repo = self.project.repo
        shas = list(dict.fromkeys(self.index[p] for p in want))
        sizes = repo.blob_sizes(shas)
        blobs = repo.read_blobs([s for s in shas if sizes.get(s, ("", MAX_SIZE))[1] < MAX_SIZE])
        for p in want:
            data = blobs.get(self.index[p], b"")
            try:
                self._pointers[p] = parse(data) if is_pointer_like(data) else None
            except PointerError:
                self._pointers[p] = None

    def pointer(self, path: str) -> Pointer | None:
        self.read_pointers([path])
        return self._pointers.get(path)

    def dataset_of(self, path: str) -> ds_mod.Dataset | None:
        return next((d for d in self.datasets.values() if d.contains(path)), None)

    @staticmethod
    def _under(paths: list[str], folder: str) -> list[str]:
        lo = bisect.bisect_left(paths, folder + "/")
        hi = bisect.bisect_left(paths, folder + "/\U0010ffff")
        return paths[lo:hi]

    def is_folder(self, path: str) -> bool:
        full = os.path.join(self.project.root, path)
        return (os.path.isdir(full) and not os.path.islink(full)) or bool(self._under(self.paths, path))

    def file_identity(self, path: str) -> str | None:
        if path in self._memo:
            return self._memo[path][0]
        full = os.path.join(self.project.root, path)
        p = self.pointer(path)
        ident: str | None
        if p is not None and path not in self.modified:
            ident = pointer_identity(p)  # as the index says (skip-worktree entries too)
        elif os.path.islink(full):
            ident = oid_of_bytes(b"symlink " + os.fsencode(os.readlink(full)), self.project.algorithm)
        elif os.path.isfile(full):
            now = ds_mod.read_pointer_file(full)
            ident = pointer_identity(now) if now is not None else oid_of_file(full, self.project.algorithm)[0]
        else:
            ident = None
        self._memo[path] = (ident, None)
        return ident

    def folder_identity(self, path: str) -> tuple[str | None, int]:
        """A folder's files: those git tracks under it; where git tracks none (a mapped
        storage's folder, an untracked folder), every file on disk under it."""
        key = path + "/"
        if key in self._memo:
            ident, count = self._memo[key]
            return ident, count or 0
        full = os.path.join(self.project.root, path)
        tracked = self._under(self.paths, path)
        if tracked:
            # unchanged index entries by their blob (the pointer text, or a plain file's bytes): no
            # blob is read; changed files by their own identity
            items = [(f[len(path) + 1 :], ("git:" + self.index[f]) if f not in self.modified
                      else (self.file_identity(f) or "missing")) for f in tracked]  # fmt: skip
        elif os.path.isdir(full) and not os.path.islink(full):
            items = [(rel, self.file_identity(f"{path}/{rel}") or "missing") for rel in _walk(full)]
        else:
            self._memo[key] = (None, 0)
            return None, 0
        ident = model.tree_identity(items)
        self._memo[key] = (ident, len(items))
        return ident, len(items)

    def identity(self, entry: model.Entry) -> str | None:
        if entry.kind == model.FOLDER:
            return self.folder_identity(entry.path)[0]
        return self.file_identity(entry.path)

    def current(self, records: Iterable[model.Record]) -> dict[str, str | None]:
        """Identity now of every project path the records name (URLs are left to :func:`url_changes`)."""
        records = list(records)
        self.read_pointers(e.path for rec in records for e in (*rec.inputs, *rec.outputs) if e.kind == model.FILE)
        out: dict[str, str | None] = {}
        for rec in records:
            for e in (*rec.inputs, *rec.outputs):
                if e.kind != model.URL and e.path not in out:
                    out[e.path] = self.identity(e)
        return out


# -- URLs ---------------------------------------------------------------------------------


def _open_with(project: Project, options: dict, name: str, root: str) -> Storage:
    return project.open_storage(root, options, name=name)


def _open_mapped(project: Project, spec: object, _root: str) -> Storage:
    from .. import storages as storages_mod

    return storages_mod.open_remote(project, spec)  # type: ignore[arg-type]


def _open_remote(project: Project, name: str, _root: str) -> Storage:
    return project.storage(name)


def url_storage(project: Project, url: str) -> tuple[Storage, str]:
    """``(storage, key)`` for a URL input: it must lie under a place ``.gitdata`` declares.

    A record arrives with a clone: its URLs are listed only where the
    project says its data is (a dataset's sources or storage, a mapped
    storage, a data remote), with that place's options, never elsewhere.
    """
    from .. import storages as storages_mod

    url = url.rstrip("/")
    # (root, opens a storage at a root, whether root may be one registered object); longest first
    places: list[tuple[str, Callable[[str], Storage], bool]] = []
    for ds in ds_mod.load_all(project).values():
        places += [(s.url.rstrip("/"), partial(ds_mod.open_source, project, ds), True) for s in ds.sources]
        if ds.storage:
            places.append((ds.storage.rstrip("/"), partial(_open_with, project, ds.options, ds.name), False))
    for spec in storages_mod.load_all(project).values():
        places.append((spec.url.rstrip("/"), partial(_open_mapped, project, spec), False))
    for name in project.remotes:
        places.append((project.remotes[name].url.rstrip("/"), partial(_open_remote, project, name), False))
    for root, opener, may_be_object in sorted(places, key=lambda p: len(p[0]), reverse=True):
        if url != root and not url.startswith(root + "/"):
            continue
        if url == root:
            if may_be_object:  # a registered single object (or a whole prefix): its parent, and its name
                parent, _, base = root.rpartition("/")
                return opener(parent), base
            return opener(root), ""
        key = url[len(root) + 1 :]
        safepath.check_relpath(key, f"URL {url}")
        return opener(root), key
    raise UndeclaredURL(
        f"{url} lies under no dataset source, storage or data remote of .gitdata; register it first "
        "(`git data dataset add NAME URL`), so that others' clones know where the data is"
    )


def url_identity(project: Project, url: str) -> tuple[str, int | None, dict[str, str]]:
    """``(identity, count, fingerprint)`` of a URL now: one listing."""
    storage, key = url_storage(project, url)
    entries = dict(storage.list(key))
    if key in entries and len(entries) == 1:
        fields = fp_fields(entries[key])
        return model.fingerprint_identity(None, fields), None, fields
    under = {k[len(key) + 1 :] if key else k: fp for k, fp in entries.items() if not key or k.startswith(key + "/")}
    if not under:
        raise NothingAtURL(f"nothing at {url}; check the URL")
    items = [(k, model.fingerprint_identity(None, fp_fields(fp))) for k, fp in under.items()]
    return model.tree_identity(items), len(items), {}


def url_changes(project: Project, records: Iterable[model.Record]) -> tuple[dict[str, str], dict[str, str]]:
    """``({url: what changed}, {url: why it was not checked})``: one listing per distinct URL.

    One object is compared like with like (:func:`compare`: version ids,
    then md5s, then ETags of the same form); a prefix by its digest.
    """
    entries = {e.path: e for rec in records for e in rec.inputs if e.kind == model.URL}
    changed: dict[str, str] = {}
    unchecked: dict[str, str] = {}
    for url, e in sorted(entries.items()):
        try:
            ident, _count, fields = url_identity(project, url)
        except NothingAtURL:
            changed[url] = "deleted"
            continue
        except GitDataError as err:
            unchecked[url] = str(err)
            continue
        if e.fingerprint and fields:
            rec_fp = Fingerprint.from_pointer_fields(int(dict(e.fingerprint).get("size", "-1")), dict(e.fingerprint))
            cur_fp = Fingerprint.from_pointer_fields(int(fields.get("size", "-1")), fields)
            if compare(rec_fp, cur_fp) == "changed":
                changed[url] = "changed"
        elif ident != e.identity:
            changed[url] = "objects changed"
    return changed, unchecked


# -- inputs in datasets: the datasets rows of status --remote ---------------------------------


_REMOTE_CHANGES = (status_mod.CHANGED, status_mod.DELETED, status_mod.NEW)


#: computes the ``datasets`` rows of ``git data status`` (:func:`gitdata.status.dataset_rows`,
#: passed in: the status module collects this module's rows, so it is not imported here)
DatasetRows = Callable[[Project, status_mod.StatusOptions], list[status_mod.StatusRow]]


def dataset_changes(
    project: Project, records: Iterable[model.Record], rows: list[status_mod.StatusRow], dataset_rows: DatasetRows
) -> dict[str, str]:
    """Input path -> what changed in the bucket under it, from the ``datasets`` rows.

    Rows of datasets that ``rows`` lacks (``git data status NAME`` limited
    them) are computed here, once per dataset.
    """
    records = list(records)
    datasets = ds_mod.load_all(project)
    have = {r.name for r in rows if r.section == "datasets"}
    needed = set()
    for rec in records:
        for e in rec.inputs:
            if e.kind == model.URL:
                continue
            needed |= {d.name for d in datasets.values() if d.contains(e.path) or e.path == d.path
                       or d.path.startswith(e.path + "/")}  # fmt: skip
    missing = tuple(sorted(needed - have))
    if missing:
        # only the remote changes matter here: the notable rows (the rest are counted, not listed)
        rows = rows + dataset_rows(project, status_mod.StatusOptions(names=missing, remote=True, every_file=False))
    changes = dict(sorted((r.path, r.remote or "") for r in rows if r.section == "datasets" and r.remote in _REMOTE_CHANGES))
    paths = list(changes)
    out: dict[str, str] = {}
    for rec in records:
        for e in rec.inputs:
            if e.kind == model.URL or e.path in out:
                continue
            hits = ([e.path] if e.path in changes else []) + Observer._under(paths, e.path)
            if hits:
                more = f" (and {len(hits) - 3} more)" if len(hits) > 3 else ""
                out[e.path] = ", ".join(f"{p} {changes[p]}" for p in hits[:3]) + more
    return out


# -- status rows ------------------------------------------------------------------------------


def evaluate(
    project: Project, records: Mapping[str, model.Record], *, remote: bool, dataset_rows: DatasetRows,
    rows: list[status_mod.StatusRow] | None = None,
) -> tuple[dict[str, model.Verdict], dict[str, str], dict[str, str]]:
    """Verdicts for every run; URLs that could not be checked; what changed in the bucket per input."""
    observer = Observer(project)
    current = observer.current(records.values())
    changes: dict[str, str] = {}
    unchecked: dict[str, str] = {}
    if remote:
        changes = dataset_changes(project, records.values(), rows or [], dataset_rows)
        url_changed, unchecked = url_changes(project, records.values())
        changes.update(url_changed)
    return model.judge(records, current, changes), unchecked, changes


def status_rows(
    project: Project, options: status_mod.StatusOptions, rows: list[status_mod.StatusRow], dataset_rows: DatasetRows
) -> list[status_mod.StatusRow]:
    """The ``runs`` section of ``git data status``: one row per run, with the reasons."""
    records, bad = load_records(project)
    if not records and not bad:
        return []
    verdicts, unchecked, _changes = evaluate(project, records, remote=options.remote, rows=rows,
                                             dataset_rows=dataset_rows)  # fmt: skip
    out = []
    try:
        names = model.order(records)
    except model.CycleError:
        names = sorted(records)  # judge() says which runs; status still shows them all
    for name in names:
        if options.names and name not in options.names:
            continue
        v = verdicts[name]
        kinds = v.kinds()
        local = STALE if model.LOCAL in kinds else UP_TO_DATE
        rem = (STALE if model.REMOTE in kinds else status_mod.UNCHANGED) if options.remote else None
        notes = [text for _k, text in v.reasons]
        notes += [f"not checked: {why}" for e in records[name].inputs if (why := unchecked.get(e.path))]
        out.append(status_mod.StatusRow("runs", name, records[name].path, local, rem, "; ".join(notes)))
    for path, why in sorted(bad.items()):
        out.append(status_mod.StatusRow("runs", path.rsplit("/", 1)[-1].removesuffix(".json"), path, UNREADABLE, None, why))
    return out


def run_names(project: Project) -> set[str]:
    return set(load_records(project)[0])
