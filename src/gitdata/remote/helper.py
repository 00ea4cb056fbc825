"""``git-remote-s3data``: git's remote helper for ``s3data::<url>`` remotes.

Two kinds of URL (see docs/remote-helper.md):

* ``s3data::<git-url>`` (https, ssh, git, file, a plain path): git traffic goes
  to the real URL through git itself (``ls-remote``, ``fetch``, ``push
  --porcelain``), so ref reporting is git's own. Before any ref moves, the data
  objects of the pushed commits go to the data remote; a failed upload stops
  the push.
* ``s3data::s3://bucket/prefix`` (``gs://``, ``file://`` to a non-repository):
  the repository itself lives in the bucket (:mod:`gitdata.remote.bucket`).

Run by hand, the same program offers maintenance commands for bucket-hosted
remotes: ``git remote-s3data compact|unlock|log REMOTE``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING, Any

from ..errors import GitDataError
from ..git.repo import Repo, git_process
from ..project import Project
from ..storage import StorageError
from .bucket import BucketRepo
from .manifest import PushSpec
from .protocol import BUCKET_SCHEMES, Options, RefSpec, parse_porcelain, parse_push_line

if TYPE_CHECKING:
    import subprocess


class HelperError(GitDataError):
    pass


# --------------------------------------------------------------------------
# Pure parsing


def is_bucket_url(url: str) -> bool:
    """Whether ``url`` names a storage location rather than a git repository."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in BUCKET_SCHEMES:
        return True
    if scheme == "file":
        path = url[len("file://") :]
        return not _looks_like_git_repo(path)
    return False


def _looks_like_git_repo(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "HEAD")) or os.path.isdir(os.path.join(path, ".git"))


def parse_options(lines: Sequence[str]) -> dict[str, Any]:
    from ..config import check_not_secret
    from ..config import parse_options as parse

    opts = parse(list(lines))
    for k, v in opts.items():
        check_not_secret(k, str(v))
    return opts


# --------------------------------------------------------------------------
# The local side


def local_project() -> Project:
    """The repository git runs us for (``GIT_DIR``; during clone cwd is elsewhere)."""
    git_dir = os.environ.get("GIT_DIR")
    if not git_dir:
        return Project.open()
    git_dir = os.path.abspath(git_dir)
    os.environ["GIT_DIR"] = git_dir
    worktree = git_process(["config", "--get", "core.worktree"]).stdout.strip()
    if worktree:
        root = os.path.normpath(os.path.join(git_dir, worktree))
    elif os.path.basename(git_dir) == ".git":
        root = os.path.dirname(git_dir)
    else:
        root = git_dir  # bare
    common = git_process(["rev-parse", "--git-common-dir"], root).stdout.strip() or git_dir
    if not os.path.isabs(common):
        common = os.path.normpath(os.path.join(root, common))
    return Project(Repo(root=root, git_dir=git_dir, common_dir=common))


# --------------------------------------------------------------------------
# Remotes


class Remote:
    def __init__(self, project: Project, name: str, url: str, log: Callable[[str], None]) -> None:
        self.project = project
        self.name = name  # the git remote's name, or the URL for anonymous pushes
        self.url = url
        self.log = log

    @property
    def named(self) -> bool:
        return "://" not in self.name and not self.name.startswith("s3data::")

    def list(self, for_push: bool) -> list[str]:
        raise NotImplementedError

    def fetch(self, wants: list[tuple[str, str]], opts: Options) -> None:
        raise NotImplementedError

    def push(self, specs: list[RefSpec], opts: Options) -> dict[str, str | None]:
        raise NotImplementedError

    # -- data ---------------------------------------------------------------
    def upload_data(
        self, include: list[str], exclude: list[str], *, default_store: Any = None
    ) -> None:
        """Upload the data objects of ``include`` not reachable from ``exclude``."""
        from ..push import push_objects
        from ..scan import scan_history

        repo = self.project.repo
        excl = list(exclude)
        if self.named:
            excl.append(f"--remotes={self.name}")
        scan = scan_history(repo, include, excl)
        if not scan.found and not scan.malformed:
            return
        # A push to a bare URL (``git push s3data::s3://b/p main``) names no git
        # remote, so no per-remote mapping applies; the project's default data
        # remote still does, as it does for the clone that reads the data back.
        data_remote = self.project.data_remote_for(self.name if self.named else None)
        store = None
        if data_remote is None:
            if default_store is not None:
                store = default_store
            elif not any(f.pointer.oid for f in scan.found):
                return
            else:
                data_remote = self.project.remote_name(None)  # raises with how to add one
        try:
            report = push_objects(
                self.project, scan, remote=data_remote, store=store, progress=False
            )
        except StorageError as err:  # before any upload: the data remote is unusable
            paths = sorted({f.path for f in scan.found if f.pointer.oid})
            shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
            label = data_remote or (store.storage.display if store is not None else "-")
            raise HelperError(
                f"could not upload the data of {shown} to data remote {label!r}: {err}"
            ) from err
        if report.uploaded:
            where = f"data remote {data_remote}" if data_remote else f"the bucket ({self.url})"
            self.log(f"git data: uploaded {len(report.uploaded)} object(s) to {where}")


class GitUrlRemote(Remote):
    """Delegates everything to git on the real URL."""

    _refs: dict[str, str] | None = None

    def _git(self, args: Sequence[str], *, capture: bool = True) -> subprocess.CompletedProcess:
        return git_process(args, self.project.repo.root, capture=capture)

    def list(self, for_push: bool) -> list[str]:
        proc = self._git(["ls-remote", "--symref", self.url])
        if proc.returncode != 0:
            raise HelperError(f"could not list refs of {self.url}: {proc.stderr.strip()}")
        out, refs = [], {}
        for line in proc.stdout.splitlines():
            left, _, name = line.partition("\t")
            if name.endswith("^{}"):
                continue
            if left.startswith("ref: "):
                out.append(f"@{left[5:]} {name}")
            else:
                refs[name] = left
                out.append(f"{left} {name}")
        self._refs = refs
        return out

    def fetch(self, wants: list[tuple[str, str]], opts: Options) -> None:
        names = list(dict.fromkeys(name for _sha, name in wants))
        args = ["fetch", "--no-tags", "--no-write-fetch-head", "--no-auto-gc"]
        args.append("--quiet" if opts.verbosity < 2 and not opts.progress else "--progress")
        proc = self._git([*args, self.url, *names], capture=False)
        if proc.returncode != 0:
            raise HelperError(f"could not fetch from {self.url}")

    def push(self, specs: list[RefSpec], opts: Options) -> dict[str, str | None]:
        repo = self.project.repo
        include = []
        for s in specs:
            if s.src:
                sha = repo.git("rev-parse", "--verify", s.src).decode().strip()
                include.append(sha)
        if include and not opts.dry_run:
            remote_tips = list((self._refs or {}).values())
            present = repo.blob_sizes(remote_tips)
            try:
                self.upload_data(include, [s for s in remote_tips if s in present])
            except GitDataError as err:
                self.log(f"error: {err}")
                self.log("error: git data: no ref was updated, because the data upload failed")
                return {s.dst: "data upload failed (see above)" for s in specs}
        args = ["push", "--porcelain", "--no-verify"]
        if opts.dry_run:
            args.append("--dry-run")
        if opts.atomic:
            args.append("--atomic")
        if opts.verbosity < 1:
            args.append("--quiet")
        for o in opts.push_options:
            args += ["--push-option", o]
        for c in opts.cas:
            args.append(f"--force-with-lease={c}")
        refspecs = [("+" if s.force else "") + f"{s.src}:{s.dst}" for s in specs]
        proc = self._git([*args, self.url, *refspecs])
        res = parse_porcelain(proc.stdout)
        if proc.stderr.strip():
            for line in proc.stderr.rstrip().splitlines():
                if not line.startswith(("To ", "hint:")):
                    self.log(line)
        for s in specs:
            if s.dst not in res:
                res[s.dst] = "push failed (see above)" if proc.returncode else None
        return res


class BucketRemote(Remote):
    """The repository lives in a bucket (:class:`gitdata.remote.bucket.BucketRepo`)."""

    def __init__(self, project: Project, name: str, url: str, log: Callable[[str], None]) -> None:
        super().__init__(project, name, url, log)
        self.options = storage_options(project.repo, name if self.named else None)
        # options from the user's own git config (s3data.option): any option is allowed
        storage = project.open_storage(
            url, dict(self.options), name=name if self.named else None, tracked=False
        )
        hint = f"git remote-s3data unlock {name if self.named else url}"
        locking = project.setting("s3data.locking")
        self.bucket = BucketRepo(
            storage, project.repo, log=log, clear_lock_hint=hint,
            conditional=False if locking == "lock" else None,
        )  # fmt: skip

    def list(self, for_push: bool) -> list[str]:
        m = self.bucket.latest()
        out = [f"{sha} {ref}" for ref, sha in sorted(m.refs.items())]
        if m.head and m.head in m.refs:
            out.append(f"@{m.head} HEAD")
        return out

    def fetch(self, wants: list[tuple[str, str]], opts: Options) -> None:
        self.bucket.fetch([sha for sha, _n in wants], jobs=self.project.jobs)
        self.register_data_remote()

    def push(self, specs: list[RefSpec], opts: Options) -> dict[str, str | None]:
        repo = self.project.repo
        push_specs = []
        for s in specs:
            new = repo.git("rev-parse", "--verify", s.src).decode().strip() if s.src else None
            push_specs.append(PushSpec(dst=s.dst, new=new, force=s.force))
        failed: list[str] = []

        def upload(include: list[str], exclude: list[str]) -> None:
            from ..storage import ObjectStore

            same = ObjectStore(self.bucket.storage, jobs=self.project.jobs)
            try:
                self.upload_data(include, exclude, default_store=same)
            except GitDataError as err:
                failed.append(str(err))
                raise

        try:
            res = self.bucket.push(push_specs, upload_data=upload, dry_run=opts.dry_run)
        except GitDataError as err:
            self.log(f"error: {err}")
            what = "data upload failed" if failed else "push failed"
            self.log(f"error: git data: no ref was updated, because the {what}")
            return {s.dst: f"{what} (see above)" for s in specs}
        if not opts.dry_run:
            self.register_data_remote()
        return res

    def register_data_remote(self) -> None:
        """Let this clone's filter find data under the same prefix.

        Only when the project names no data remote for this git remote: then
        a per-clone data remote named like the git remote is recorded
        (``gitdata.remote.<name>.url`` and its options).
        """
        if not self.named or self.project.data_remote_for(self.name) is not None:
            return
        repo = self.project.repo
        key = f"gitdata.remote.{self.name}"
        if repo.config_get(f"{key}.url"):
            return
        repo.config_set(f"{key}.url", self.url)
        for line in _option_lines(repo, self.name):
            repo.git("config", "--add", f"{key}.option", line)


def _option_lines(repo: Repo, remote: str | None) -> list[str]:
    lines = repo.config_get_all("s3data.option")
    if remote:
        lines += repo.config_get_all(f"remote.{remote}.s3dataOption")
    return lines


def storage_options(repo: Repo, remote: str | None) -> dict[str, Any]:
    """fsspec options for a bucket-hosted remote: ``s3data.option`` then
    ``remote.<name>.s3dataOption`` (``key=value``, repeatable, non-secret)."""
    return parse_options(_option_lines(repo, remote))


def open_remote(project: Project, name: str, url: str, log: Callable[[str], None]) -> Remote:
    if url.startswith("s3data::"):
        url = url[len("s3data::") :]
    cls = BucketRemote if is_bucket_url(url) else GitUrlRemote
    return cls(project, name, url, log)


# --------------------------------------------------------------------------
# The protocol loop


class Helper:
    def __init__(self, remote: Remote, stdin: IO[str], stdout: IO[str]) -> None:
        self.remote = remote
        self.stdin = stdin
        self.stdout = stdout
        self.opts = Options()

    def _say(self, *lines: str) -> None:
        for line in lines:
            self.stdout.write(line + "\n")
        self.stdout.flush()

    def _batch(self, first: str) -> list[str]:
        lines = [first]
        for line in self.stdin:
            line = line.rstrip("\n")
            if not line:
                break
            lines.append(line)
        return lines

    def serve(self) -> None:
        for raw in self.stdin:
            line = raw.rstrip("\n")
            if not line:
                return
            cmd = line.split(" ", 1)[0]
            if cmd == "capabilities":
                self._say("fetch", "push", "option", "")
            elif cmd == "list":
                self._say(*self.remote.list(for_push=line == "list for-push"), "")
            elif cmd == "option":
                self._say(self.option(line))
            elif cmd == "fetch":
                wants = [tuple(x.split(" ")[1:3]) for x in self._batch(line)]
                self.remote.fetch([(w[0], w[1]) for w in wants], self.opts)
                self._say("")
            elif cmd == "push":
                specs = [parse_push_line(x) for x in self._batch(line)]
                res = self.remote.push(specs, self.opts)
                out = []
                for s in specs:
                    reason = res.get(s.dst)
                    out.append(f"ok {s.dst}" if reason is None else f"error {s.dst} {reason}")
                self._say(*out, "")
            else:
                raise HelperError(f"git asked for unknown command {cmd!r}")

    def option(self, line: str) -> str:
        _, name, value = (line.split(" ", 2) + [""])[:3]
        o = self.opts
        if name == "verbosity":
            o.verbosity = int(value)
        elif name == "progress":
            o.progress = value == "true"
        elif name == "dry-run":
            o.dry_run = value == "true"
        elif name == "atomic":
            o.atomic = value == "true"
        elif name == "push-option":
            o.push_options.append(value)
        elif name == "cas" and isinstance(self.remote, GitUrlRemote):
            o.cas.append(value)
        elif name in ("followtags", "cloning"):
            pass
        else:
            return "unsupported"
        return "ok"


def log(msg: str) -> None:
    """A line for the user: git shows the helper's stderr."""
    print(msg, file=sys.stderr, flush=True)
