"""``git-remote-s3data``: git's remote helper for ``s3data::<url>`` remotes.

Two kinds of URL (see docs/remote-helper.md):

* ``s3data::<git-url>`` (https, ssh, git, file, a plain path): git traffic goes
  to the real URL through git itself (``ls-remote``, ``fetch``, ``push
  --porcelain``), so ref reporting is git's own. Before any ref moves, the data
  objects of the pushed commits go to the data remote; a failed upload stops
  the push.
* ``s3data::s3://bucket/prefix`` (``gs://``, ``file://`` to a non-repository):
  the repository itself lives in the bucket (:mod:`gitdata.bucketrepo`).

Run by hand, the same program offers maintenance commands for bucket-hosted
remotes: ``git remote-s3data compact|unlock|log REMOTE``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from .bucketrepo import BucketRepo, PushSpec
from .errors import GitDataError
from .git.repo import NotARepository, Repo, git_process
from .project import Project
from .storage import StorageError

if TYPE_CHECKING:
    import subprocess

#: URL schemes whose URLs name a bucket (the repository lives in storage).
BUCKET_SCHEMES = ("s3", "s3a", "gs", "gcs", "memory", "az", "abfs")
SUBCOMMANDS = ("compact", "unlock", "log")


class HelperError(GitDataError):
    pass


# --------------------------------------------------------------------------
# Pure parsing


@dataclass(frozen=True)
class RefSpec:
    src: str  # "" = delete
    dst: str
    force: bool


def parse_push_line(line: str) -> RefSpec:
    spec = line.split(" ", 1)[1]
    force = spec.startswith("+")
    src, _, dst = spec.lstrip("+").partition(":")
    return RefSpec(src=src, dst=dst, force=force)


def parse_porcelain(out: str) -> dict[str, str | None]:
    """``git push --porcelain`` output -> ``dst -> None (ok) | reason``."""
    res: dict[str, str | None] = {}
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) < 3 or len(parts[0]) != 1:
            continue
        flag, refs, summary = parts[0], parts[1], parts[2]
        dst = refs.rpartition(":")[2]
        if flag == "!":
            reason = summary
            if summary.endswith(")") and "(" in summary:
                reason = summary[summary.rindex("(") + 1 : -1]
            res[dst] = reason or "rejected"
        else:
            res[dst] = None
    return res


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
    from .config import check_not_secret
    from .config import parse_options as parse

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


@dataclass
class Options:
    dry_run: bool = False
    atomic: bool = False
    verbosity: int = 1
    progress: bool = False
    push_options: list[str] = field(default_factory=list)
    cas: list[str] = field(default_factory=list)


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
    def upload_data(self, include: list[str], exclude: list[str], *, default_store: Any = None) -> None:
        """Upload the data objects of ``include`` not reachable from ``exclude``."""
        from .push import push_objects
        from .scan import scan_history

        repo = self.project.repo
        excl = list(exclude)
        if self.named:
            excl.append(f"--remotes={self.name}")
        scan = scan_history(repo, include, excl)
        if not scan.found and not scan.malformed:
            return
        data_remote = self.project.data_remote_for(self.name) if self.named else None
        store = None
        if data_remote is None:
            if default_store is not None:
                store = default_store
            elif not any(f.pointer.oid for f in scan.found):
                return
            else:
                data_remote = self.project.remote_name(None)  # raises with how to add one
        try:
            report = push_objects(self.project, scan, remote=data_remote, store=store, progress=False)
        except StorageError as err:  # before any upload: the data remote is unusable
            paths = sorted({f.path for f in scan.found if f.pointer.oid})
            shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
            label = data_remote or (store.name if store is not None else None) or "-"
            raise HelperError(
                f"could not upload the data of {shown} to data remote {label!r}: {err}"
            ) from err
        if report.uploaded:
            self.log(f"git data: uploaded {len(report.uploaded)} object(s) to data remote {report.remote}")


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
    """The repository lives in a bucket (:class:`gitdata.bucketrepo.BucketRepo`)."""

    def __init__(self, project: Project, name: str, url: str, log: Callable[[str], None]) -> None:
        super().__init__(project, name, url, log)
        self.options = storage_options(project.repo, name if self.named else None)
        # options from the user's own git config (s3data.option): any option is allowed
        storage = project.open_storage(url, dict(self.options), name=name if self.named else None, tracked=False)
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
            from .storage import ObjectStore

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


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _non_interactive() -> None:
    try:
        from .credentials import Session, use_session  # type: ignore[attr-defined]
    except ImportError:
        return
    use_session(Session(interactive=False))  # stdin is git's protocol pipe


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and (argv[0] in SUBCOMMANDS or argv[0] in ("-h", "--help")) and "GIT_DIR" not in os.environ:
        _maintenance_cli().main(args=argv, prog_name="git remote-s3data")
        return
    if not argv or len(argv) > 2:
        print(
            "usage: git-remote-s3data <remote> [<url>] (git runs this for s3data:: URLs)\n"
            "       git remote-s3data compact|unlock|log REMOTE  (see --help)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    name = argv[0]
    url = argv[1] if len(argv) == 2 else argv[0]
    _non_interactive()
    try:
        project = local_project()
        remote = open_remote(project, name, url, _log)
        stdin = os.fdopen(sys.stdin.fileno(), "r", closefd=False)
        Helper(remote, stdin, sys.stdout).serve()
    except (GitDataError, NotARepository) as err:
        _log(f"fatal: s3data: {err}{_endpoint_hint(err, name, url)}")
        raise SystemExit(128) from None
    except BrokenPipeError:
        raise SystemExit(1) from None


def _endpoint_hint(err: BaseException, name: str, url: str) -> str:
    """For an unreachable s3:// bucket with no endpoint set anywhere: how to give one."""
    from .storage.errors import StorageUnreachable

    bucket_url = url[len("s3data::") :] if url.startswith("s3data::") else url
    if not isinstance(err, StorageUnreachable) or not bucket_url.startswith("s3://"):
        return ""
    if os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_S3"):
        return ""
    try:
        options = storage_options(local_project().repo, None if name == url else name)
    except (GitDataError, NotARepository):
        options = {}
    if "endpoint_url" in options:
        return ""
    remote = "origin" if name == url else name
    return (
        f"; no endpoint is set for this bucket, so AWS S3 was asked: for another S3 service give it "
        f"with `git clone -c remote.{remote}.s3dataOption=endpoint_url=URL s3data::{bucket_url}` "
        f"(in a clone: `git config remote.{remote}.s3dataOption endpoint_url=URL`), or once for "
        f"every bucket: `git config --global s3data.option endpoint_url=URL`"
    )


# --------------------------------------------------------------------------
# Maintenance commands (run by hand: `git remote-s3data compact origin`)


def _bucket_for(target: str) -> tuple[Project, BucketRemote]:
    project = local_project()
    name, url = target, target
    if "://" not in target and not target.startswith("s3data::"):
        url = project.repo.config_get(f"remote.{target}.url") or ""
        if not url:
            raise HelperError(f"no git remote named {target!r}; give its name or its s3data:: URL")
    else:
        name = url
    if url.startswith("s3data::"):
        url = url[len("s3data::") :]
    if not is_bucket_url(url):
        raise HelperError(f"{target} is not a bucket-hosted remote (its URL is {url})")
    return project, BucketRemote(project, name, url, _log)


def _maintenance_cli() -> Any:
    import json
    import time as _time

    import click

    def emit(obj: Any) -> None:
        click.echo(json.dumps(obj, indent=2, sort_keys=True))

    def run(fn: Callable[[], None]) -> None:
        try:
            fn()
        except GitDataError as err:
            click.echo(f"error: {err}", err=True)
            raise SystemExit(err.exit_code) from None

    @click.group(help="Maintenance of bucket-hosted s3data:: remotes (git runs the helper itself).")
    def cli() -> None:
        pass

    @cli.command("log")
    @click.argument("remote")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    def log_cmd(remote: str, as_json: bool) -> None:
        """Every recorded push to REMOTE: refs created, updated, forced, deleted."""

        def go() -> None:
            _p, br = _bucket_for(remote)
            hist = br.bucket.history()
            if as_json:
                emit([
                    {"seq": m.seq, "time": m.time, "by": m.by, "compacted": m.compacted,
                     "updates": [u.__dict__ for u in m.updates], "packs": len(m.packs)}
                    for m in hist
                ])  # fmt: skip
                return
            for m in hist:
                when = _time.strftime("%Y-%m-%d %H:%M:%S", _time.localtime(m.time))
                if m.compacted:
                    click.echo(f"#{m.seq} {when} {m.by}: compacted to {len(m.packs)} pack(s)")
                for u in m.updates:
                    if u.new is None:
                        what = f"deleted (was {u.old[:12] if u.old else '?'})"
                    elif u.old is None:
                        what = f"created at {u.new[:12]}"
                    else:
                        what = f"{u.old[:12]}..{u.new[:12]}" + (" (forced)" if u.forced else "")
                    click.echo(f"#{m.seq} {when} {m.by}: {u.ref} {what}")

        run(go)

    @cli.command("unlock")
    @click.argument("remote")
    @click.option("--force", is_flag=True, help="Also clear locks that are not stale yet.")
    @click.option("--dry-run", is_flag=True, help="Only show the locks.")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    def unlock_cmd(remote: str, force: bool, dry_run: bool, as_json: bool) -> None:
        """Clear stale locks a crashed push left on REMOTE (lock-based backends)."""

        def go() -> None:
            _p, br = _bucket_for(remote)
            if dry_run:
                locks = br.bucket.locks()
            else:
                locks = br.bucket.clear_locks(stale_only=not force)
            rows = [{"key": lk.key, "age_seconds": round(lk.age, 1), "holder": lk.holder} for lk in locks]
            if as_json:
                emit({"cleared": [] if dry_run else rows, "locks": rows if dry_run else []})
                return
            verb = "lock" if dry_run else "cleared"
            for r in rows:
                click.echo(f"{verb} {r['key']} ({r['age_seconds']:.0f} s old, {r['holder']})")
            if not rows:
                click.echo("no locks" if dry_run or force else "no stale locks")

        run(go)

    @cli.command("compact")
    @click.argument("remote")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    def compact_cmd(remote: str, as_json: bool) -> None:
        """Replace REMOTE's packs by one (run in a clone; fetches what it lacks)."""

        def go() -> None:
            _p, br = _bucket_for(remote)
            rep = br.bucket.compact()
            if as_json:
                emit(rep.__dict__)
                return
            click.echo(
                f"compacted {rep.packs_before} pack(s) into {rep.packs_after}; "
                f"deleted {len(rep.deleted)} (state #{rep.seq})"
            )

        run(go)

    return cli
