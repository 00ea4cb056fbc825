"""Access to a git repository by running git (the edge where subprocess lives)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

from ..errors import GitDataError


class GitError(GitDataError):
    pass


class NotARepository(GitError):
    pass


def run_git(
    args: Sequence[str],
    cwd: str | None = None,
    *,
    input: bytes | None = None,
    check: bool = True,
    env: dict[str, str] | None = None,
) -> bytes:
    try:
        proc = subprocess.run(
            ["git", *args], cwd=cwd, input=input, capture_output=True, env=env
        )
    except FileNotFoundError as err:
        raise GitError("git is not installed or not on PATH") from err
    if check and proc.returncode != 0:
        msg = proc.stderr.decode(errors="replace").strip()
        raise GitError(f"git {' '.join(args[:3])} failed: {msg}")
    return proc.stdout


def stream_git(args: Sequence[str], cwd: str | None = None) -> Iterator[bytes]:
    """git's stdout line by line, as git writes it: for output that grows with
    history (``rev-list --objects``), which is never held whole. A failure
    raises :class:`GitError` once the output ends."""
    import tempfile

    with tempfile.TemporaryFile() as errors:  # a pipe could fill and stall git
        try:
            proc = subprocess.Popen(["git", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=errors)
        except FileNotFoundError as err:
            raise GitError("git is not installed or not on PATH") from err
        assert proc.stdout is not None
        try:
            yield from proc.stdout
        finally:
            proc.stdout.close()
            code = proc.wait()
        if code != 0:
            errors.seek(0)
            msg = errors.read().decode(errors="replace").strip()
            raise GitError(f"git {' '.join(args[:3])} failed: {msg}")


def git_process(args: Sequence[str], cwd: str | None = None, *, capture: bool = True) -> subprocess.CompletedProcess:
    """Run git and hand back the whole result (text), for callers that read its status and
    stderr themselves; ``capture=False`` lets git's output through (a remote helper's)."""
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=capture, text=True)
    except FileNotFoundError as err:
        raise GitError("git is not installed or not on PATH") from err


@dataclass
class Repo:
    """A work tree and its git directory."""

    root: str
    git_dir: str
    common_dir: str

    @classmethod
    def discover(cls, path: str | None = None) -> Repo:
        path = path or os.getcwd()
        try:
            out = run_git(
                ["rev-parse", "--show-toplevel", "--absolute-git-dir", "--git-common-dir"], cwd=path
            )
        except GitError as err:
            raise NotARepository(
                f"{path} is not inside a git work tree; run this in a repository (or `git init` one)"
            ) from err
        root, git_dir, common = out.decode().splitlines()[:3]
        if not os.path.isabs(common):
            common = os.path.normpath(os.path.join(path, common))
        return cls(root=root, git_dir=git_dir, common_dir=common)

    def git(self, *args: str, input: bytes | None = None, check: bool = True) -> bytes:
        if args and args[0] == "config":
            self.forget_config()  # it may write; read the snapshot again next time
        return run_git(args, cwd=self.root, input=input, check=check)

    @cached_property
    def data_dir(self) -> str:
        """``<git-common-dir>/gitdata``: per-clone state, never tracked."""
        return os.path.join(self.common_dir, "gitdata")

    # -- configuration -----------------------------------------------------
    # One `git config --list -z` per Repo instead of one `git config --get` per
    # key: a pre-push hook or a filter start asked git about 8 times (3-5 ms
    # each). The snapshot includes every scope, includes and `git -c`.
    def _config(self) -> dict[str, list[str]]:
        snap = self.__dict__.get("_config_snapshot")
        if snap is None:
            snap = {}
            out = run_git(["config", "--list", "-z"], cwd=self.root, check=False)
            for rec in out.decode("utf-8", "surrogateescape").split("\0"):
                if not rec:
                    continue
                key, _sep, value = rec.partition("\n")
                snap.setdefault(_config_key(key), []).append(value)
            self.__dict__["_config_snapshot"] = snap
        return snap

    def config_items(self) -> list[tuple[str, list[str]]]:
        """Every configured key (section and name in lower case) with its values."""
        return list(self._config().items())

    def forget_config(self) -> None:
        self.__dict__.pop("_config_snapshot", None)

    def config_get(self, key: str, default: str | None = None) -> str | None:
        values = self._config().get(_config_key(key))
        text = values[-1].strip() if values else ""
        return text if text else default

    def config_get_all(self, key: str) -> list[str]:
        return [v for v in self._config().get(_config_key(key), []) if v]

    def config_set(self, key: str, value: str, *, scope: str = "--local") -> None:
        self.forget_config()
        run_git(["config", scope, key, value], cwd=self.root)

    def rev_parse(self, rev: str) -> str | None:
        out = run_git(["rev-parse", "--verify", "-q", rev + "^{commit}"], cwd=self.root, check=False)
        return out.decode().strip() or None

    def hooks_dir(self) -> str:
        out = run_git(["rev-parse", "--git-path", "hooks"], cwd=self.root).decode().strip()
        return out if os.path.isabs(out) else os.path.join(self.root, out)

    # -- reading blobs -----------------------------------------------------
    def blob_sizes(self, shas: Iterable[str]) -> dict[str, tuple[str, int]]:
        """``sha -> (type, size)`` in one ``cat-file --batch-check`` run."""
        data = "".join(s + "\n" for s in shas).encode()
        if not data:
            return {}
        out = run_git(["cat-file", "--batch-check"], cwd=self.root, input=data)
        res = {}
        for line in out.decode().splitlines():
            parts = line.split()
            if len(parts) == 3:
                res[parts[0]] = (parts[1], int(parts[2]))
        return res

    def read_blobs(self, shas: Sequence[str]) -> dict[str, bytes]:
        """Contents of many (small) blobs in one ``cat-file --batch`` run."""
        if not shas:
            return {}
        data = "".join(s + "\n" for s in shas).encode()
        out = run_git(["cat-file", "--batch"], cwd=self.root, input=data)
        res: dict[str, bytes] = {}
        pos = 0
        while pos < len(out):
            nl = out.index(b"\n", pos)
            header = out[pos:nl].decode().split()
            pos = nl + 1
            if len(header) < 3:
                continue
            size = int(header[2])
            res[header[0]] = out[pos : pos + size]
            pos += size + 1
        return res

    def ls_tree(self, rev: str, paths: Sequence[str] = ()) -> Iterator[tuple[str, str]]:
        """``(path, blob sha)`` of every blob in a commit's tree (only literal ``paths`` if given)."""
        spec = ["--literal-pathspecs"] if paths else []
        out = run_git([*spec, "ls-tree", "-r", "-z", "--full-tree", rev, *(["--", *paths] if paths else [])], cwd=self.root)
        for rec in out.split(b"\0"):
            if not rec:
                continue
            meta, path = rec.split(b"\t", 1)
            mode, kind, sha = meta.decode().split()
            if kind == "blob" and mode != "120000":
                yield path.decode("utf-8", "surrogateescape"), sha

    def ls_index(self, paths: Sequence[str] = ()) -> Iterator[tuple[str, str]]:
        """``(path, blob sha)`` of every stage-0 entry in the index (only literal ``paths`` if given)."""
        spec = ["--literal-pathspecs"] if paths else []
        out = run_git([*spec, "ls-files", "-s", "-z", *(["--", *paths] if paths else [])], cwd=self.root)
        for rec in out.split(b"\0"):
            if not rec:
                continue
            meta, path = rec.split(b"\t", 1)
            mode, sha, stage = meta.decode().split()
            if stage == "0" and mode != "120000" and mode != "160000":
                yield path.decode("utf-8", "surrogateescape"), sha

    def rev_list_objects(self, args: Sequence[str], *, blob_limit: int | None = None) -> Iterator[tuple[str, str]]:
        """``(sha, path)`` from ``git rev-list --objects ARGS`` (blobs and trees),
        streamed; ``blob_limit``: leave out blobs of that size or more (git's
        ``--filter=blob:limit``, so only pointer-sized blobs come back)."""
        opts = ["--objects"] + ([f"--filter=blob:limit={blob_limit}"] if blob_limit is not None else [])
        for raw in stream_git(["rev-list", *opts, *args], cwd=self.root):
            sha, _, path = raw.rstrip(b"\n").decode("utf-8", "surrogateescape").partition(" ")
            if path:
                yield sha, path


def _config_key(key: str) -> str:
    """git's key identity: section and variable names ignore case, a subsection does not."""
    section, _dot, rest = key.partition(".")
    sub, _dot2, name = rest.rpartition(".")
    return f"{section.lower()}.{sub}.{name.lower()}" if sub else f"{section.lower()}.{name.lower()}"
