"""``git data install``: git configuration, hooks, and ``.gitattributes`` patterns."""

from __future__ import annotations

import os
import stat

from . import writer
from .errors import GitDataError
from .fileio import worktree_mode
from .git.repo import Repo, run_git

DRIVER = "s3data"

FILTER_CONFIG = {
    f"filter.{DRIVER}.process": "git-data filter-process",
    f"filter.{DRIVER}.required": "true",
    f"diff.{DRIVER}.textconv": "cat",
    f"merge.{DRIVER}.name": "git data pointer merge",
    f"merge.{DRIVER}.driver": "git-data merge-driver %O %A %B %P",
}

HOOK_MARK = "# installed by git data"
HOOKS = {
    "pre-push": (
        "#!/bin/sh\n"
        f"{HOOK_MARK}: uploads data objects before git pushes the refs\n"
        "command -v git-data >/dev/null 2>&1 || {\n"
        "  echo >&2 'This repository uses git data, but git-data is not on PATH.'\n"
        "  echo >&2 'Install it (see the README) or push with --no-verify to skip data upload.'\n"
        "  exit 2\n"
        "}\n"
        'exec git-data hook pre-push "$@"\n'
    ),
    "pre-commit": (
        "#!/bin/sh\n"
        f"{HOOK_MARK}: refuses raw data, malformed pointers and large files that bypass the filter\n"
        "command -v git-data >/dev/null 2>&1 || exit 0\n"
        'exec git-data hook pre-commit "$@"\n'
    ),
}


class InstallError(GitDataError):
    pass


def install(scope: str, repo: Repo | None) -> list[str]:
    """Register the filter (``scope`` is "global" or "local"); install hooks in ``repo``."""
    done = []
    if scope == "local" and repo is None:
        raise InstallError("--local needs to run inside a git repository")
    for key, value in FILTER_CONFIG.items():
        run_git(["config", f"--{scope}", key, value], cwd=repo.root if repo else None)
        done.append(f"{scope} config {key}")
    if repo is not None:
        repo.forget_config()
        done += install_hooks(repo, quiet=False)
    return done


def filter_configured(repo: Repo) -> bool:
    """Whether git runs our filter in ``repo`` (from any config scope)."""
    required = (repo.config_get(f"filter.{DRIVER}.required") or "").lower()
    return bool(repo.config_get(f"filter.{DRIVER}.process")) and required in ("true", "yes", "on", "1")


def ensure_filter(repo: Repo) -> list[str]:
    """Before git data writes data into ``repo``'s work tree: make sure git
    will clean it back into pointers.

    Where the filter is not configured (``git data install`` never ran for
    this user or repository), it is set up for this repository only (local
    config) and our hooks are installed, as git-lfs's commands do; returns
    what was done, for the caller to say.
    """
    if filter_configured(repo):
        return []
    for key, value in FILTER_CONFIG.items():
        run_git(["config", "--local", key, value], cwd=repo.root)
    repo.forget_config()
    done = [
        "the git data filter was not set up for this repository: set it up here "
        "(git config --local filter.s3data.*); run `git data install` once to set it up "
        "for every repository"
    ]
    try:
        done += install_hooks(repo, quiet=True)
    except OSError as err:
        done.append(f"could not install the hooks: {err}")
    return done


def uninstall(scope: str, repo: Repo | None) -> list[str]:
    done = []
    for section in (f"filter.{DRIVER}", f"diff.{DRIVER}", f"merge.{DRIVER}"):
        run_git(["config", f"--{scope}", "--remove-section", section], cwd=repo.root if repo else None, check=False)
        done.append(f"{scope} config [{section}] removed")
    if repo is not None:
        repo.forget_config()
        hooks = repo.hooks_dir()
        for name in HOOKS:
            path = os.path.join(hooks, name)
            if _is_ours(path):
                os.unlink(path)
                done.append(f"hook {name} removed")
    return done


def _is_ours(path: str) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return HOOK_MARK in f.read(4096)
    except FileNotFoundError:
        return False


def install_hooks(repo: Repo, *, quiet: bool) -> list[str]:
    """Write our hooks; never overwrite a hook someone else wrote."""
    hooks = repo.hooks_dir()
    os.makedirs(hooks, exist_ok=True)
    done = []
    for name, text in HOOKS.items():
        path = os.path.join(hooks, name)
        if os.path.exists(path) and not _is_ours(path):
            if not quiet:
                done.append(
                    f"hook {name} exists and is not ours: left alone; add this line to it: "
                    f"git-data hook {name} \"$@\""
                )
            continue
        try:
            with open(path, encoding="utf-8") as f:
                if f.read() == text:
                    continue
        except FileNotFoundError:
            pass
        mode = worktree_mode(path) | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
        writer.write_small(path, text.encode("utf-8"), mode=mode)
        done.append(f"hook {name} installed")
    return done


# -- .gitattributes -----------------------------------------------------------

ATTRS = f"filter={DRIVER} diff={DRIVER} merge={DRIVER} -text"


def _escape_pattern(pattern: str) -> str:
    if not pattern or pattern.startswith("#") or "\n" in pattern:
        raise InstallError(f"invalid pattern {pattern!r}")
    return pattern.replace(" ", "[[:space:]]")


def tracked_patterns(root: str) -> list[str]:
    path = os.path.join(root, ".gitattributes")
    out = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and f"filter={DRIVER}" in parts[1:]:
                    out.append(parts[0])
    except FileNotFoundError:
        pass
    return out


def track(root: str, patterns: list[str]) -> list[str]:
    """Add patterns to ``.gitattributes``; returns the ones newly added."""
    existing = set(tracked_patterns(root))
    added = []
    lines = []
    for p in patterns:
        esc = _escape_pattern(p)
        if esc in existing or esc in added:
            continue
        added.append(esc)
        lines.append(f"{esc} {ATTRS}\n")
    if lines:
        path = os.path.join(root, ".gitattributes")
        prefix = ""
        if os.path.exists(path):
            with open(path, "rb") as f:
                data = f.read()
            if data and not data.endswith(b"\n"):
                prefix = "\n"
        with open(path, "a", encoding="utf-8") as f:
            f.write(prefix + "".join(lines))
    return added


def untrack(root: str, patterns: list[str]) -> list[str]:
    path = os.path.join(root, ".gitattributes")
    wanted = {_escape_pattern(p) for p in patterns}
    removed = []
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
    except FileNotFoundError:
        return []
    keep = []
    for line in lines:
        parts = line.split()
        if len(parts) >= 2 and parts[0] in wanted and f"filter={DRIVER}" in parts[1:]:
            removed.append(parts[0])
            continue
        keep.append(line)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(keep)
    return removed
