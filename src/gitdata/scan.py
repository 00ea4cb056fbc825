"""Finding pointers in git: in commits, trees and the index."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .git.repo import Repo
from .pointer import MAGIC, MAX_SIZE, Pointer, PointerError, parse


@dataclass(frozen=True)
class Found:
    path: str
    pointer: Pointer


@dataclass
class ScanResult:
    found: list[Found]
    malformed: dict[str, str]  # path -> reason

    def by_oid(self) -> dict[str, Found]:
        out: dict[str, Found] = {}
        for f in self.found:
            if f.pointer.oid is not None:
                out.setdefault(f.pointer.oid, f)
        return out


def _scan_blobs(repo: Repo, pairs: Iterable[tuple[str, str]]) -> ScanResult:
    """``pairs`` are ``(path, blob sha)``; read the small ones and parse."""
    pairs = list(pairs)
    shas = list(dict.fromkeys(sha for _p, sha in pairs))
    sizes = repo.blob_sizes(shas)
    small = [s for s in shas if sizes.get(s, ("", MAX_SIZE))[0] == "blob" and sizes[s][1] < MAX_SIZE]
    blobs = repo.read_blobs(small)
    found: list[Found] = []
    malformed: dict[str, str] = {}
    parsed: dict[str, Pointer | str] = {}
    for sha, data in blobs.items():
        if not data.startswith(MAGIC):
            continue
        try:
            parsed[sha] = parse(data)
        except PointerError as err:
            parsed[sha] = str(err)
    for path, sha in pairs:
        p = parsed.get(sha)
        if isinstance(p, Pointer):
            found.append(Found(path, p))
        elif isinstance(p, str):
            malformed[path] = p
    return ScanResult(found, malformed)


def scan_index(repo: Repo) -> ScanResult:
    return _scan_blobs(repo, repo.ls_index())


def scan_tree(repo: Repo, rev: str = "HEAD") -> ScanResult:
    if repo.rev_parse(rev) is None:
        return ScanResult([], {})
    return _scan_blobs(repo, repo.ls_tree(rev))


def scan_history(repo: Repo, include: Sequence[str], exclude: Sequence[str] = ()) -> ScanResult:
    """Pointers in every commit reachable from ``include`` and not from ``exclude``."""
    args = [*include]
    if exclude:
        args += ["--not", *exclude]
    pairs = [(path, sha) for sha, path in repo.rev_list_objects(args)]
    return _scan_blobs(repo, pairs)


EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
LARGE_FILES_STAGED = (
    "large files are staged without the git data filter; track them with "
    "`git data track PATTERN`, then `git add` them again (or raise "
    "gitdata.maxBlobSize, or commit with --no-verify)"
)


def staged_large_files(repo: Repo, limit: int) -> list[tuple[str, int]]:
    """``(path, size)`` of added or modified blobs in the index larger than ``limit``."""
    head = repo.rev_parse("HEAD") or EMPTY_TREE
    out = repo.git("diff-index", "--cached", "-z", "--diff-filter=AM", head)
    fields = out.split(b"\0")
    pairs = []
    for i in range(0, len(fields) - 1, 2):
        meta, path = fields[i].decode(), fields[i + 1].decode("utf-8", "surrogateescape")
        parts = meta.split()
        if len(parts) >= 4:
            pairs.append((path, parts[3]))
    sizes = repo.blob_sizes([sha for _p, sha in pairs])
    return [(p, sizes[s][1]) for p, s in pairs if s in sizes and sizes[s][1] > limit]
