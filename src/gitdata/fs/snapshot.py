"""The tracked paths of the index or of a commit, with their folders (what ``gitdata://`` lists)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
        for path, sha in pairs:
            p = pointers.get(path)
            if p is not None:
                tf = TrackedFile(path, sha, p.size, p)
            else:
                tf = TrackedFile(path, sha, sizes.get(sha, 0), None, malformed.get(path))
            self.files[path] = tf
            parent = ""
            for part in path.split("/")[:-1]:
                child = f"{parent}/{part}" if parent else part
                self.dirs.setdefault(parent, set()).add(child)
                self.dirs.setdefault(child, set())
                parent = child
            self.dirs.setdefault(parent, set()).add(path)


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
