"""``git data doctor``: what a user trips over, checked one by one, each with its fix.

Checks: the git version; ``git-data`` and ``git-remote-s3data`` on PATH; the
filter registered for this repository; our hooks installed; every data
remote, mapped storage and dataset storage of ``.gitdata`` reachable with the
credentials that would be used (their source is named, never their value),
and its bucket present; FUSE usable. Nothing is written anywhere and nothing
is asked on the terminal.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass

from . import credentials as cred
from .bucketcheck import CHECK_RETRY, root_problem
from .errors import GitDataError
from .git.repo import Repo, run_git
from .install import HOOKS, _is_ours, filter_configured
from .project import Project
from .storage import Storage
from .storage.errors import AccessDenied, StorageUnreachable, redact_url

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"

#: git's ``delay`` filter capability (one parallel batch per checkout) came with 2.15.
MIN_GIT = (2, 15)
#: ``git init -b`` (the README's tour) came with 2.28; older works with a warning.
GOOD_GIT = (2, 28)

@dataclass(frozen=True)
class Check:
    name: str
    status: str  #: ok, warn, fail or skip
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def git_version(text: str) -> tuple[int, ...] | None:
    """``(2, 39, 5)`` from ``git version 2.39.5`` (None if it does not say)."""
    m = re.match(r"git version (\d+)\.(\d+)(?:\.(\d+))?", text.strip())
    return tuple(int(g) for g in m.groups() if g is not None) if m else None


def check_git() -> Check:
    text = run_git(["--version"]).decode(errors="replace").strip()
    version = git_version(text)
    if version is None:
        return Check("git", WARN, f"cannot tell the version from {text!r}")
    shown = ".".join(map(str, version))
    if version[:2] < MIN_GIT:
        return Check("git", FAIL, f"git {shown} is too old: the filter needs git 2.15 or newer",
                     "install a newer git (your distribution's backports, or git-scm.com)")  # fmt: skip
    if version[:2] < GOOD_GIT:
        return Check("git", WARN, f"git {shown} works, but `git init -b` and other commands the docs use need 2.28",
                     "install git 2.28 or newer")  # fmt: skip
    return Check("git", OK, f"git {shown}")


def check_path(which: Callable[[str], str | None] = shutil.which) -> Check:
    missing = [exe for exe in ("git-data", "git-remote-s3data") if which(exe) is None]
    if missing:
        return Check("path", FAIL, f"{' and '.join(missing)} not on PATH: git cannot run git data",
                     'put the folder with git-data on PATH, e.g. export PATH="$PWD/.venv/bin:$PATH"')  # fmt: skip
    return Check("path", OK, f"git-data and git-remote-s3data in {os.path.dirname(which('git-data') or '')}")


def check_filter(repo: Repo | None) -> Check:
    if repo is None:
        process = run_git(["config", "--global", "--get", "filter.s3data.process"], check=False).decode().strip()
        if process:
            return Check("filter", OK, "registered for this user (global config)")
        return Check("filter", FAIL, "the s3data filter is not registered for this user: clones keep pointer files",
                     "run `git data install`")  # fmt: skip
    if filter_configured(repo):
        return Check("filter", OK, f"git runs `{repo.config_get('filter.s3data.process')}` for tracked files")
    return Check("filter", FAIL, "the s3data filter is not set up for this repository: git keeps pointer files "
                 "and `git add` would commit raw data",
                 "run `git data install` (once per user), then `git data pull`")  # fmt: skip


def check_hooks(repo: Repo) -> Check:
    hooks = repo.hooks_dir()
    missing, foreign = [], []
    for name in HOOKS:
        path = os.path.join(hooks, name)
        if not os.path.exists(path):
            missing.append(name)
        elif not _is_ours(path) and not _calls_us(path, name):
            foreign.append(name)
    if missing:
        return Check("hooks", FAIL, f"hook(s) {', '.join(missing)} missing in {hooks}: "
                     "`git push` would not upload data first",
                     "run `git data install` in this repository")  # fmt: skip
    if foreign:
        lines = "; ".join(f'git-data hook {n} "$@"' for n in foreign)
        return Check("hooks", FAIL, f"hook(s) {', '.join(foreign)} in {hooks} are not ours and do not call git data",
                     f"add to them: {lines}")  # fmt: skip
    return Check("hooks", OK, ", ".join(HOOKS) + " installed")


def _calls_us(path: str, name: str) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f"git-data hook {name}" in f.read(65536)
    except OSError:
        return False


def _source(project: Project, ns: cred.NamedStorage) -> str:
    target = cred.target_for(ns.url, ns.options, ns.name)
    if target is None:
        return "needs no credentials"
    try:
        found = cred.find_source(target, ns.options, cwd=project.repo.root)
    except GitDataError as err:
        return f"credentials: {err}"
    where = {"options": "options (.gitdata or per clone)", "provider": f"the provider's configuration ({found.detail})",
             "git-credential": "git's credential helper", "file": f"{found.detail}",
             "missing": "none found"}.get(found.source, found.source)  # fmt: skip
    return f"credentials from {where}"


def check_storage(project: Project, ns: cred.NamedStorage) -> Check:
    """One small request with the credentials that would be used, then the bucket itself."""
    name = f"{ns.kind} {ns.name}"
    where = redact_url(ns.url)
    source = _source(project, ns)
    try:
        opened = project.open_storage(ns.url, dict(ns.options), name=ns.name)  # allow-list, credentials
        storage = Storage(ns.url, opened.options, name=ns.name, retry=CHECK_RETRY)
        storage.exists(cred.PROBE_KEY)  # refused credentials and dead servers fail here
        missing = root_problem(storage)
    except GitDataError as err:
        return Check(name, FAIL, f"{where}: {err}", _fix_for(err, ns))
    if missing:
        return Check(name, FAIL, f"{where}: {missing} ({source})",
                     "create it, or correct the URL in .gitdata (`git config -f .gitdata "
                     f"{ns.kind}.{ns.name}.url URL`)" if ns.kind != "dataset" else
                     "create it, or correct the dataset's URL in .gitdata")  # fmt: skip
    return Check(name, OK, f"{where} reachable ({source})")


def _fix_for(err: GitDataError, ns: cred.NamedStorage) -> str:
    """The fix, by the kind of failure (the message itself may say more)."""
    if isinstance(err, AccessDenied):
        return f"run `git data credentials set {ns.name}` (or fix the environment's credentials)"
    if isinstance(err, StorageUnreachable):
        return f"check the endpoint_url option of {ns.kind} {ns.name} (`git data remote ls`) and that the server is up"
    return f"check the URL and options of {ns.kind} {ns.name} in .gitdata"


def check_fuse(project: Project | None) -> Check:
    from .mount.runner import fuse_problem, fusermount_path

    fusermount = fusermount_path(project) if project is not None else "fusermount3"
    problem = fuse_problem(fusermount)
    if problem is None:
        return Check("fuse", OK, f"/dev/fuse usable, {fusermount} installed")
    needed = project is not None and _uses_mounts(project)
    fix = "install fuse3 (apt-get install fuse3) and make /dev/fuse available, or stage with --copy or --reference"
    if needed:
        return Check("fuse", FAIL, f"{problem}; a dataset or storage here is in mount mode", fix)
    return Check("fuse", WARN, f"{problem}; only `mount` mode needs it", fix)


def _uses_mounts(project: Project) -> bool:
    for kind in ("dataset", "storage"):
        for keys in project.config.sections(kind).values():
            if "mount" in keys.get("mode", []):
                return True
    return False


def run_checks(project: Project | None, repo_error: str | None = None) -> list[Check]:
    """Every check, in order. ``project`` is None outside a repository."""
    out = [check_git(), check_path(), check_filter(project.repo if project else None)]
    if project is None:
        out.append(Check("repository", SKIP, repo_error or "not in a git repository: repository checks skipped"))
    else:
        out.append(check_hooks(project.repo))
        storages = cred.project_storages(project)
        if not storages:
            out.append(Check("storages", SKIP, "no data remote, storage or dataset in .gitdata",
                             "add one with `git data remote add NAME URL`"))  # fmt: skip
        for ns in storages:
            out.append(check_storage(project, ns))
    out.append(check_fuse(project))
    return out
