"""Keep git's checkout out of mounted dataset folders: sparse-checkout patterns that leave them out.

Skip-worktree bits alone do not stop ``git checkout``: an entry that changes
between the two commits is written to the work tree (into the mount: EROFS),
and a mounted file that "differs" from the index makes git refuse the whole
checkout ("local changes would be overwritten"). Sparse checkout is git's own
way to say "never materialize these paths": with ``core.sparseCheckout`` on
and a pattern ``!/data/NAME/``, every entry under the folder, also the new
ones a checkout brings, stays skip-worktree and git writes nothing there.
``sparse.expectFilesOutsideOfPatterns`` keeps git from clearing those bits
because the mount shows files at those paths.

If this clone did not use sparse checkout, git data turns it on with ``/*``
(everything) plus its own lines and turns it off again at the last unmount;
a clone that already uses non-cone sparse checkout gets only its lines
appended and removed; cone mode cannot leave out one folder and is refused.
What git data changed is remembered in ``<git-dir>/gitdata/mounts/sparse.json``.
"""

from __future__ import annotations

import json
import os

from ..project import Project
from . import MountError

EVERYTHING = "/*"


def write_small(path: str, data: bytes) -> None:
    """Write a small file atomically (a temporary file beside it, then rename)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.gitdata-tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def pattern(folder: str) -> str:
    return "!/" + folder.strip("/") + "/"


def edit(lines: list[str], folder: str, on: bool, *, ours: bool) -> list[str]:
    """The sparse-checkout file after leaving ``folder`` out (``on``) or in again (pure).

    ``ours``: git data made the file (``/*`` first, then its lines).
    """
    line = pattern(folder)
    out = [x for x in lines if x.strip() != line]
    if on:
        if ours and EVERYTHING not in (x.strip() for x in out):
            out.insert(0, EVERYTHING)
        out.append(line)
    return out


def _file(project: Project) -> str:
    out = project.repo.git("rev-parse", "--git-path", "info/sparse-checkout").decode().strip()
    return out if os.path.isabs(out) else os.path.join(project.root, out)


def _memo_path(project: Project) -> str:
    return os.path.join(project.repo.data_dir, "mounts", "sparse.json")


def _memo(project: Project) -> dict:
    try:
        with open(_memo_path(project), encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (FileNotFoundError, ValueError):
        return {}


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "yes", "on", "1")


def check(project: Project) -> None:
    """Refuse early where the folder cannot be left out (cone-mode sparse checkout)."""
    repo = project.repo
    if _memo(project).get("enabled"):
        return
    if _true(repo.config_get("core.sparseCheckout")) and _true(repo.config_get("core.sparseCheckoutCone")):
        raise MountError(
            "this clone uses cone-mode sparse checkout, which cannot leave out one dataset folder; "
            "`git sparse-checkout disable` first, or stage the dataset with --copy or --reference"
        )


def leave_out(project: Project, folder: str, on: bool) -> None:
    """Leave ``folder`` out of git's checkouts (``on``), or stop doing so."""
    repo = project.repo
    memo = _memo(project)
    sparse_on = _true(repo.config_get("core.sparseCheckout"))
    if on:
        check(project)
    fn = _file(project)
    try:
        with open(fn, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        lines = []
    if on and not sparse_on:
        memo["enabled"] = True  # ours: turned off again at the last unmount
        lines = [x for x in lines if x.strip() != EVERYTHING]
    ours = bool(memo.get("enabled"))
    new = edit(lines, folder, on, ours=ours)
    folders = set(memo.get("folders", [])) - {folder.strip("/")}
    if on:
        folders.add(folder.strip("/"))
    memo["folders"] = sorted(folders)
    left = bool(folders)
    if ours and not left:
        try:
            os.unlink(fn)
        except FileNotFoundError:
            pass
        repo.git("config", "--local", "--unset-all", "core.sparseCheckout", check=False)
    elif new != lines:
        write_small(fn, ("\n".join(new) + "\n").encode())
    if on and not _true(repo.config_get("sparse.expectFilesOutsideOfPatterns")):
        memo["expect"] = True
        repo.config_set("sparse.expectFilesOutsideOfPatterns", "true")
    if not left and memo.get("expect"):
        repo.git("config", "--local", "--unset-all", "sparse.expectFilesOutsideOfPatterns", check=False)
        memo.pop("expect")
    if on and not sparse_on:
        repo.config_set("core.sparseCheckout", "true")
    if not left:
        memo.pop("enabled", None)
        memo.pop("folders", None)
    repo.forget_config()
    if memo:
        write_small(_memo_path(project), json.dumps(memo).encode())
    else:
        try:
            os.unlink(_memo_path(project))
        except FileNotFoundError:
            pass
