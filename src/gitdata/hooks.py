"""The bodies of what git runs for us: the pre-commit and pre-push hooks and
the merge driver.

Both entry paths call these: the click-free fast path in
:func:`gitdata.cli.main` (git runs hooks on every commit and push, so they
start without click) and the ``git data hook …`` / ``merge-driver`` click
commands. ``say`` receives each line for the user (stderr).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .merge import merge_pointers
from .writer import write_small

if TYPE_CHECKING:
    from .project import Project

# push and scan are imported by the hook that needs them: a commit's hook
# should not pay for the push machinery's imports, nor a push's for scan's.

Say = Callable[[str], None]


def pre_commit_hook(project: Project, say: Say) -> None:
    """Refuse raw data at tracked paths, malformed pointers, and staged files
    over ``gitdata.maxBlobSize`` that are not pointers (raises on refusal)."""
    from .scan import pre_commit

    pre_commit(project.repo, say)


def pre_push_hook(project: Project, remote_name: str, url: str | None, refs: str, say: Say) -> None:
    """Upload the data objects of the pushed commits before git moves any ref."""
    from .push import pre_push

    report = pre_push(project, remote_name, url, refs, say=say)
    if report is not None and report.uploaded:
        say(f"git data: uploaded {len(report.uploaded)} object(s) to {report.remote}")


def merge_driver(base_path: str, ours_path: str, theirs_path: str, path: str, say: Say) -> int:
    """git's merge driver: leave the merged pointer in ``ours_path``; 0 merged, 1 conflict."""
    def read(p: str) -> bytes:
        with open(p, "rb") as f:
            return f.read()

    base, ours, theirs = read(base_path), read(ours_path), read(theirs_path)
    merged = merge_pointers(base, ours, theirs)
    if merged.outcome == "ours":
        return 0
    if merged.outcome == "theirs":
        write_small(ours_path, theirs)
        return 0
    shown = path or "a data file"
    say(
        f"git data: both sides changed {shown} ({merged.reason}); keep one with "
        f"`git checkout --ours {path}` or `git checkout --theirs {path}`, then `git add` it"
    )
    return 1
