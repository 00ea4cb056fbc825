"""The tracked paths of the index or of a commit, with their folders (what ``gitdata://`` lists)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..datasets import manifest as mf
from ..datasets import model as ds_model
from ..datasets import objects
from ..pointer import Pointer
from ..project import Project
from ..scan import _scan_blobs


@dataclass(frozen=True)
class TrackedFile:
    path: str
    blob: str  # git blob id of the pointer (or of the plain file)
    size: int | None
    pointer: Pointer | None  # None: a plain git file
    malformed: str | None = None


class Snapshot:
    """The tracked paths of the index (``rev=None``) or of a commit, with their folders."""

    def __init__(self, project: Project, rev: str | None = None, paths: list[str] | None = None,
                 prefix: str | None = None) -> None:  # fmt: skip
        """``paths``: only these files (one ``gitdata.open`` needs one entry, not the whole index);
        ``prefix``: only the files under this folder (a dataset mount)."""
        repo = project.repo
        self.commit = None
        if rev is not None:
            commit = repo.rev_parse(rev)
            if commit is None:
                raise FileNotFoundError(f"no commit {rev!r} in {project.root}")
            self.commit = commit
        if paths is not None and all("\n" not in p for p in paths):
            # a few paths (gitdata.open): two git processes, not a scan of the whole index
            pairs, pointers, malformed, sizes = _few(repo, self.commit, paths)
            missing = set(paths) - {p for p, _sha in pairs}
            if missing:  # recorded in a dataset's manifest? (its pointer is in a folder above)
                above = sorted({f"{d}/{mf.NAME}" for p in missing for d in _parents(p)})
                more = _few(repo, self.commit, above)
                pairs += more[0]
                pointers.update(more[1])
        else:
            some = paths or ([prefix.strip("/")] if prefix and prefix.strip("/") else ())
            pairs = (
                list(repo.ls_index(some))
                if rev is None
                else list(repo.ls_tree(self.commit or "", some))
            )
            scan = _scan_blobs(repo, pairs)
            pointers = {f.path: f.pointer for f in scan.found}
            malformed = scan.malformed
            sizes = {
                sha: n
                for sha, (_t, n) in repo.blob_sizes(
                    sha for p, sha in pairs if p not in pointers
                ).items()
            }
        self.files: dict[str, TrackedFile] = {}
        self.dirs: dict[str, set[str]] = {"": set()}
        wanted = set(paths) if paths is not None else None
        for path, sha in pairs:
            p = pointers.get(path)
            if p is not None and p.is_manifest and mf.is_manifest_path(path):
                try:
                    expanded = _expand(project, path, sha, p)
                except mf.ManifestError as err:  # refused (a clone's or a bucket's): that dataset only,
                    self._add(TrackedFile(path, sha, p.size, None, f"its manifest was refused: {err}"))
                    continue  # shown as one malformed entry; every other path reads as before
                for tf in expanded:
                    if wanted is None or tf.path in wanted:
                        self._add(tf)
                continue
            if p is not None:
                tf = TrackedFile(path, sha, p.size, p)
            else:
                tf = TrackedFile(path, sha, sizes.get(sha, 0), None, malformed.get(path))
            self._add(tf)

    def _add(self, tf: TrackedFile) -> None:
        path = tf.path
        self.files[path] = tf
        parent = ""
        for part in path.split("/")[:-1]:
            child = f"{parent}/{part}" if parent else part
            self.dirs.setdefault(parent, set()).add(child)
            self.dirs.setdefault(child, set())
            parent = child
        self.dirs.setdefault(parent, set()).add(path)


def _parents(path: str) -> list[str]:
    parts = path.split("/")[:-1]
    return ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _expand(project: Project, path: str, blob: str, pointer: Pointer) -> list[TrackedFile]:
    """The files a dataset's manifest (at ``path``) records; ``blob`` is the manifest pointer's."""
    ds = ds_model.dataset_at(project, mf.folder_of(path))
    return [TrackedFile(f.path, blob, f.pointer.size, f.pointer) for f in objects.expand(project, ds, pointer)]


def _few(
    repo: Any, commit: str | None, paths: list[str]
) -> tuple[list[tuple[str, str]], dict[str, Pointer], dict[str, str], dict[str, int]]:
    """``(pairs, pointers, malformed, sizes)`` of ``paths`` in the index (``:path``) or a commit
    (``commit:path``): one ``cat-file --batch-check`` and one ``--batch`` of the small blobs."""
    from ..pointer import MAGIC, MAX_SIZE, PointerError, parse

    prefix = commit or ""
    out = repo.git(
        "cat-file", "--batch-check", input="".join(f"{prefix}:{p}\n" for p in paths).encode()
    )
    found = []
    for path, line in zip(paths, out.decode().splitlines()):
        fields = line.split()
        if len(fields) == 3 and fields[1] == "blob":
            found.append((path, fields[0], int(fields[2])))
    blobs = repo.read_blobs([sha for _p, sha, n in found if n < MAX_SIZE])
    pointers: dict[str, Pointer] = {}
    malformed: dict[str, str] = {}
    for path, sha, _n in found:
        data = blobs.get(sha)
        if data is not None and data.startswith(MAGIC):
            try:
                pointers[path] = parse(data)
            except PointerError as err:
                malformed[path] = str(err)
    return [(p, sha) for p, sha, _n in found], pointers, malformed, {sha: n for _p, sha, n in found}
