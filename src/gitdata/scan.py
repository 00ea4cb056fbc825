"""Finding pointers in git: in commits, trees and the index."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from .git.repo import Repo
from .pointer import MAGIC, MAX_SIZE, Pointer, PointerError, parse


@dataclass(frozen=True, slots=True)
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
    pairs = [(path, sha) for sha, path in repo.rev_list_objects(args, blob_limit=MAX_SIZE)]
    return _scan_blobs(repo, pairs)


EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
LARGE_FILES_STAGED = (
    "large files are staged without the git data filter; track them with "
    "`git data track PATTERN`, then `git add` them again (or raise "
    "gitdata.maxBlobSize, or commit with --no-verify)"
)


def _staged_blobs(repo: Repo) -> list[tuple[str, str]]:
    """``(path, blob sha)`` of files added or modified in the index (vs HEAD)."""
    head = repo.rev_parse("HEAD") or EMPTY_TREE
    out = repo.git("diff-index", "--cached", "-z", "--diff-filter=AM", head)
    fields = out.split(b"\0")
    pairs = []
    for i in range(0, len(fields) - 1, 2):
        meta, path = fields[i].decode(), fields[i + 1].decode("utf-8", "surrogateescape")
        parts = meta.split()
        if len(parts) >= 4 and parts[1] != "160000":  # not a submodule
            pairs.append((path, parts[3]))
    return pairs


def staged_large_files(repo: Repo, limit: int) -> list[tuple[str, int]]:
    """``(path, size)`` of added or modified blobs in the index larger than ``limit``."""
    pairs = _staged_blobs(repo)
    sizes = repo.blob_sizes([sha for _p, sha in pairs])
    return [(p, sizes[s][1]) for p, s in pairs if s in sizes and sizes[s][1] > limit]


def filtered_paths(repo: Repo, paths: Sequence[str]) -> set[str]:
    """The ``paths`` whose ``.gitattributes`` (as staged) say ``filter=s3data``."""
    if not paths:
        return set()
    data = "".join(p + "\0" for p in paths).encode("utf-8", "surrogateescape")
    out = repo.git("check-attr", "--cached", "-z", "--stdin", "filter", input=data).split(b"\0")
    return {
        out[i].decode("utf-8", "surrogateescape")
        for i in range(0, len(out) - 2, 3)
        if out[i + 2] == b"s3data"
    }


@dataclass(frozen=True)
class CommitProblem:
    path: str
    message: str  # one line: what is wrong with this path


def check_commit_problems(
    pairs: Sequence[tuple[str, str]], tracked: set[str],
    sizes: dict[str, tuple[str, int]], blobs: dict[str, bytes],
) -> list[CommitProblem]:
    """Staged blobs that must not be committed: pure, given what git says.

    ``pairs`` are ``(path, sha)``; ``tracked`` the paths with filter=s3data;
    ``blobs`` the contents of the small ones. A tracked path must hold a
    pointer (or be empty); any path holding text that starts like a pointer
    must parse as one.
    """
    problems = []
    for path, sha in pairs:
        size = sizes.get(sha, ("blob", 0))[1]
        data = blobs.get(sha)
        if data is not None and data.startswith(MAGIC):
            try:
                parse(data)
            except PointerError as err:
                problems.append(CommitProblem(
                    path, f"{path} is a malformed gitdata pointer ({err}); restore it with "
                    f"`git checkout HEAD -- {path}` or put its content back, then `git add` it"
                ))
            continue
        if path in tracked and size > 0:
            problems.append(CommitProblem(
                path, f"{path} is staged as raw data ({size} bytes) although .gitattributes says "
                f"filter=s3data (the filter was not set up when it was added); run "
                f"`git data install`, then `git add {path}` again"
            ))
    return problems


COMMIT_REFUSED = "commit refused: git data found files that must not go into git as they are (see above)"


def pre_commit(repo: Repo, echo: Callable[[str], None]) -> None:
    """The pre-commit hook: print one ``error:`` line per problem through
    ``echo`` and raise :class:`GitDataError` if the commit must stop.

    Refuses raw content at a path tracked by git data, malformed pointers,
    and other files larger than ``gitdata.maxBlobSize``.
    """
    from . import settings
    from .errors import GitDataError

    limit = int(settings.read(repo.config_get, "gitdata.maxBlobSize"))  # type: ignore[call-overload]
    pairs = _staged_blobs(repo)
    if not pairs:
        return
    sizes = repo.blob_sizes([sha for _p, sha in pairs])
    small = [sha for _p, sha in pairs if sizes.get(sha, ("", MAX_SIZE))[1] < MAX_SIZE]
    blobs = repo.read_blobs(list(dict.fromkeys(small)))
    tracked = filtered_paths(repo, [p for p, _s in pairs])
    problems = check_commit_problems(pairs, tracked, sizes, blobs)
    for problem in problems:
        echo(f"error: {problem.message}")
    flagged = {p.path for p in problems}
    big = [(p, sizes[s][1]) for p, s in pairs if p not in flagged and s in sizes and sizes[s][1] > limit]
    for path, size in big:
        echo(f"error: {path} is {size} bytes and would go into git itself")
    if problems:
        if big:
            echo(f"error: {LARGE_FILES_STAGED}")
        raise GitDataError(COMMIT_REFUSED)
    if big:
        raise GitDataError(LARGE_FILES_STAGED)
