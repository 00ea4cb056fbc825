"""``storage stage`` and ``storage unstage``: a storage's local folder in this clone (copy, ``--location``)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .. import safepath
from .. import syncplan as sp
from ..lock import clone_lock
from . import spec as storages_mod

if TYPE_CHECKING:
    from ..project import Project
from .engine import (
    NotStaged,
    SyncRefused,
    SyncResult,
    Unsynced,
    _prune_empty_dirs,
    execute,
    prepare,
)
from .manifest import manifest_for
from .spool import sides


def _link_location(project: Project, spec: storages_mod.StorageSpec, location: str) -> None:
    target = os.path.abspath(os.path.expanduser(location))
    link = storages_mod.project_path(project, spec)
    parent, _, _leaf = spec.to.rpartition("/")
    safepath.checked_dir(project.root, parent, what=f"storage {spec.name!r}")  # no foreign link on the way
    os.makedirs(target, exist_ok=True)
    if os.path.islink(link):
        if os.path.realpath(link) == os.path.realpath(target):
            return
        os.unlink(link)
    elif os.path.isdir(link):
        if os.listdir(link):
            raise SyncRefused(
                f"{spec.to} already holds files; unstage it (`git data storage unstage {spec.name}`) "
                "before staging it to another --location"
            )
        os.rmdir(link)
    elif os.path.lexists(link):
        raise SyncRefused(f"{spec.to} exists and is not a folder; move it away first")
    os.symlink(target, link, target_is_directory=True)
    storages_mod.set_location(project, spec.name, target)


def stage(
    project: Project,
    name: str,
    *,
    paths: Iterable[str] = (),
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    location: str | None = None,
    jobs: int | None = None,
    progress: bool | None = None,
) -> SyncResult | None:
    """Copy a storage (or some of its folders) down and record the base manifest.

    Staging again widens the staged folders; files already here are compared,
    not overwritten (a difference is a conflict). Returns ``None`` for
    ``reference`` mode, where nothing is copied.
    """
    with clone_lock(project.repo.data_dir, f"storage-{name}", f"storage stage {name}"):
        return _stage(project, name, paths=paths, include=include, exclude=exclude, location=location,
                      jobs=jobs, progress=progress)


def _stage(
    project: Project, name: str, *, paths: Iterable[str], include: Iterable[str], exclude: Iterable[str],
    location: str | None, jobs: int | None, progress: bool | None,
) -> SyncResult | None:
    spec = storages_mod.get(project, name)
    if spec.mode == "reference":
        return None
    if spec.mode == "mount":
        raise SyncRefused(
            f"storage {name!r} is in mount mode, which this version cannot mount yet; "
            f"use copy mode (`git config -f .gitdata storage.{name}.mode copy`) or reference mode"
        )
    manifest = manifest_for(project, name)
    old = manifest.scope() if manifest.exists() else None
    new_paths = tuple(sorted({p.strip("/") for p in paths if p.strip("/")}))
    if old is not None:
        # the whole storage stays whole; staging it whole widens any partial scope
        both = bool(old.paths) and bool(new_paths)
        new_paths = tuple(sorted(set(old.paths) | set(new_paths))) if both else ()
    scope = sp.Scope(
        paths=new_paths,
        include=tuple(include) or (old.include if old else ()),
        exclude=tuple(exclude) or (old.exclude if old else ()),
    )
    if location:
        _link_location(project, spec, location)
    storages_mod.checked_local_dir(project, spec, create=True)
    prep = prepare(project, name, jobs=jobs, scope=scope)
    manifest.set_scope(scope)
    manifest.set_meta("url", spec.url)
    return execute(prep, jobs=jobs, progress=progress)


def unsynced_local(project: Project, name: str) -> list[tuple[str, str]]:
    """``(path, "new"|"changed")`` of local files the remote does not have yet."""
    spec = storages_mod.get(project, name)
    manifest = manifest_for(project, name)
    root = storages_mod.checked_local_dir(project, spec, create=False)
    out = []
    for path, b, lo, _ro in sides(manifest, root, manifest.scope(), project.algorithm, None, project.cache.tmp_dir):
        state = sp.local_state(b, lo)
        if state in (sp.NEW, sp.CHANGED):
            out.append((path, state))
    return out


def unstage(project: Project, name: str) -> dict[str, Any]:
    """Remove the local copy; refuses while any local file is not synced."""
    spec = storages_mod.get(project, name)
    manifest = manifest_for(project, name)
    if not manifest.exists():
        raise NotStaged(f"storage {name!r} is not staged in this clone; nothing to unstage")
    pending = unsynced_local(project, name)
    if pending:
        listed = ", ".join(f"{p} ({s})" for p, s in pending[:10])
        more = f" and {len(pending) - 10} more" if len(pending) > 10 else ""
        raise Unsynced(
            f"storage {name!r} has local changes that are not synced: {listed}{more}; "
            f"run `git data storage sync {name}` first (or move those files away)"
        )
    root = storages_mod.checked_local_dir(project, spec, create=False)
    base = manifest.load()
    removed = 0
    for path in base:
        try:
            lp = safepath.checked_target(root, path, create=False)
        except (safepath.UnsafePath, FileNotFoundError):
            continue  # never delete through a link, nor outside the folder
        if os.path.isfile(lp) and not os.path.islink(lp):
            os.unlink(lp)
            removed += 1
            _prune_empty_dirs(os.path.dirname(lp), root)
    left = os.path.isdir(root) and bool(os.listdir(root))
    if not left and os.path.isdir(root):
        os.rmdir(root)
    link = storages_mod.project_path(project, spec)
    if os.path.islink(link) and not left:
        os.unlink(link)
        storages_mod.set_location(project, name, None)
    manifest.drop()
    return {"storage": name, "removed": removed, "kept_unknown_files": left}


def is_staged(project: Project, name: str) -> bool:
    return manifest_for(project, name).exists()
