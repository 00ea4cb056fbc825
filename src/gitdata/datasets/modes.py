"""How a dataset is staged in this clone (copy, --location, --existing, reference): the per-clone mode, git's view of the folder (ignore and skip-worktree), and which staged files were changed."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

from .. import guard
from ..hashing import CHUNK, oid_of_file
from ..pointer import Pointer
from ..project import Project
from ..scan import Found
from ..storage.fingerprint import is_plain_md5_etag
from . import model as ds_mod
from .model import Dataset, DatasetError

DEFAULT_MAX_BYTES = 50 << 30


MODES = ("copy", "location", "existing", "reference")


class StageError(DatasetError):
    pass


class TooLarge(StageError):
    pass


class RemoteChanged(StageError):
    pass


@dataclass
class StageReport:
    dataset: str
    mode: str
    location: str | None = None
    #: files staged (a count: a stage of a million files holds no list of them)
    staged: int = 0
    already: int = 0
    bytes: int = 0
    notes: dict[str, str] = field(default_factory=dict)  # path -> note (e.g. older version staged)
    failed: dict[str, str] = field(default_factory=dict)  # path -> reason
    kept: dict[str, str] = field(default_factory=dict)  # path -> why it was not overwritten

    def as_dict(self) -> dict[str, object]:
        return {
            "kept": self.kept,
            "dataset": self.dataset,
            "mode": self.mode,
            "location": self.location,
            "staged": self.staged,
            "already": self.already,
            "bytes": self.bytes,
            "notes": self.notes,
            "failed": self.failed,
        }


def _key(name: str, var: str) -> str:
    return f"gitdata.dataset.{name}.{var}"


def current_mode(project: Project, name: str) -> tuple[str | None, str | None]:
    """``(mode, location)`` recorded for this clone (``None`` when not staged)."""
    repo = project.repo
    return repo.config_get(_key(name, "mode")), repo.config_get(_key(name, "location"))


def set_mode(project: Project, name: str, mode: str | None, location: str | None = None) -> None:
    repo = project.repo
    for var, value in (("mode", mode), ("location", location)):
        if value is None:
            repo.git("config", "--local", "--unset-all", _key(name, var), check=False)
        else:
            repo.config_set(_key(name, var), value)


def max_bytes(project: Project) -> int:
    return project.setting("gitdata.stageMaxBytes")


def _exclude_path(project: Project) -> str:
    return os.path.join(project.repo.common_dir, "info", "exclude")


def exclude_folder(project: Project, path: str, add: bool) -> None:
    line = "/" + path.strip("/")
    fn = _exclude_path(project)
    try:
        with open(fn, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        lines = []
    has = line in lines
    if add and not has:
        lines.append(line)
    elif not add and has:
        lines = [x for x in lines if x != line]
    else:
        return
    os.makedirs(os.path.dirname(fn), exist_ok=True)
    ds_mod.write_small(fn, ("\n".join(lines) + "\n").encode())


def skip_worktree(project: Project, paths: list[str], on: bool) -> None:
    if not paths:
        return
    data = "".join(p + "\0" for p in paths).encode("utf-8", "surrogateescape")
    flag = "--skip-worktree" if on else "--no-skip-worktree"
    project.repo.git("update-index", flag, "-z", "--stdin", input=data)


def modified_paths(project: Project, ds: Dataset) -> set[str]:
    """Tracked files of the dataset whose work-tree content differs from the index.

    ``git diff-files`` looks at stat data first and runs the clean filter only
    on files whose stat changed, so this is cheap on a clean tree.
    """
    out = project.repo.git("diff-files", "--name-only", "-z", "--", ds.path)
    return {p.decode("utf-8", "surrogateescape") for p in out.split(b"\0") if p}


def linked_modified_paths(project: Project, ds: Dataset, found: list[Found], mode: str | None) -> set[str]:
    """Files of a linked dataset whose bytes are not what was staged.

    ``--location``: what git data wrote there (stat first, then the hash, see
    :mod:`gitdata.guard`). ``--existing`` (the user's own folder, never
    written by git data): a size that differs from the recorded one.
    """
    folder = os.path.join(project.root, ds.path)
    out = set()
    expects = expectations(project, found) if mode == "location" else {}
    for f in found:
        full = os.path.join(folder, ds.rel(f.path))
        if mode != "location":
            try:
                if f.pointer.size is not None and os.path.getsize(full) != f.pointer.size:
                    out.add(f.path)
            except OSError:
                pass
            continue
        state, _oid = guard.inspect(
            full, expects[f.path], algorithm=project.algorithm,
            fallback=lambda path, p=f.pointer: _fallback_current(project, p, path),
        )
        if state in (guard.USER, guard.OUTDATED):
            out.add(f.path)
    return out


def _is_link(project: Project, ds: Dataset) -> bool:
    return os.path.islink(os.path.join(project.root, ds.path))


def _expected_md5(p: Pointer) -> str | None:
    if p.get("md5"):
        return p.get("md5")
    etag = p.get("etag")
    return etag.strip('"') if is_plain_md5_etag(etag) else None


def expectations(project: Project, found: list[Found]) -> dict[str, guard.Expect]:
    """What git data knows it put at each path (see :mod:`gitdata.guard`)."""
    paths = [f.path for f in found]
    staged = project.state.staged_records(paths)
    written = project.state.written(paths)
    out = {}
    nothing = guard.Expect()  # shared by every registered path git data has no record of
    for f in found:
        wanted = f.pointer.oid
        ours: frozenset[str] = frozenset()
        if f.path in staged:
            content, pointer = staged[f.path]
            if wanted is None and pointer == f.pointer.encode():
                wanted = content
            else:
                ours = frozenset((content,))
        done = written.get(f.path)
        out[f.path] = nothing if wanted is None and not ours and done is None else guard.Expect(wanted, ours, done)
    return out


def _fallback_current(project: Project, pointer: Pointer, full: str) -> bool:
    """No record of this path: the weaker check (size, and a recorded md5 where there is one)."""
    if pointer.size is not None and os.path.getsize(full) != pointer.size:
        return False
    return _verify_file(project, pointer, full) is None


def _verify_file(project: Project, pointer: Pointer, full: str) -> str | None:
    if pointer.oid:
        oid, _ = oid_of_file(full, pointer.algorithm or project.algorithm)
        return None if oid == pointer.oid else f"{full}: content hashes to {oid}, recorded {pointer.oid}"
    expected = _expected_md5(pointer)
    if not expected:
        return None  # nothing to compare a hash with (multipart ETag, no md5): size only
    h = hashlib.md5(usedforsecurity=False)
    with open(full, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return None if h.hexdigest() == expected else f"{full}: md5 {h.hexdigest()} differs from recorded {expected}"


def has_content(project: Project, ds: Dataset) -> bool:
    for f in ds_mod.files(project, ds):
        full = os.path.join(project.root, f.path)
        if os.path.lexists(full) and ds_mod.read_pointer_file(full) is None:
            return True
    return False


def check_folder_is_ours(project: Project, ds: Dataset, found: list[Found]) -> None:
    """Refuse to replace the folder if it holds anything git data did not put there."""
    folder = os.path.join(project.root, ds.path)
    if not os.path.isdir(folder) or os.path.islink(folder):
        return
    tracked = {f.path for f in found}
    for dirpath, _dirs, names in os.walk(folder):
        for fn in names:
            rel = os.path.relpath(os.path.join(dirpath, fn), project.root).replace(os.sep, "/")
            if rel not in tracked:
                raise StageError(
                    f"{rel} is in the dataset folder but not part of the dataset; move it away "
                    f"or `git data dataset add {ds.name}` it, then stage again"
                )


def write_pointer(project: Project, f: Found) -> None:
    ds_mod.write_pointer_at(project, f.path, f.pointer.encode())
