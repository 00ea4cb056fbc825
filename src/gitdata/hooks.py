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
    if merged.outcome == "conflict":
        done = _merge_manifests(base, ours, theirs, ours_path, path, say)
        if done is not None:
            return done
    shown = path or "a data file"
    say(
        f"git data: both sides changed {shown} ({merged.reason}); keep one with "
        f"`git checkout --ours {path}` or `git checkout --theirs {path}`, then `git add` it"
    )
    return 1


def _merge_manifests(base: bytes, ours: bytes, theirs: bytes, ours_path: str, path: str, say: Say) -> int | None:
    """Both sides changed a dataset's manifest: merge what it records, file by file.

    None: these are not three manifest pointers (the plain pointer rules apply)."""
    from .pointer import PointerError, parse

    try:
        o, t = parse(ours), parse(theirs)
        b = parse(base) if base.strip() else None
    except PointerError:
        return None
    if not (o.is_manifest and t.is_manifest and (b is None or b.is_manifest)):
        return None  # (checked before the datasets package is imported: a conflict of plain pointers)
    import os

    from .datasets import manifest as mf
    from .datasets import model as ds_model
    from .datasets import objects
    from .merge import merge_records
    from .project import Project

    if not mf.is_manifest_path(path):
        return None
    project = Project.open(os.getcwd())
    folder = mf.folder_of(path)
    ds = ds_model.dataset_at(project, folder)

    def entries(p: object) -> object:
        return iter(()) if p is None else objects.read_manifest(project, ds, p)  # type: ignore[arg-type]

    conflicts: list[str] = []
    merged = objects.write_manifest(project, merge_records(entries(b), entries(o), entries(t), conflicts))  # type: ignore[arg-type]
    if conflicts:
        more = f" (and {len(conflicts) - 1} more)" if len(conflicts) > 1 else ""
        say(
            f"git data: both sides recorded {folder}/{conflicts[0]}{more} differently in the dataset's "
            f"manifest; keep one side with `git checkout --ours {path}` or `--theirs {path}`, then `git add` it "
            f"(`git data diff` shows what each side recorded)"
        )
        return 1
    write_small(ours_path, merged.encode())
    say(f"git data: merged the manifest {path} file by file ({mf.COUNT_KEY} {merged.get(mf.COUNT_KEY)})")
    return 0
