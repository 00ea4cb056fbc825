"""``git data storage``: buckets (or any fsspec URL) mapped into the project, synced both ways."""

from __future__ import annotations

import os

import click

from .. import storages as storages_mod
from .. import syncplan as sp
from .. import trust
from ..errors import GitDataError
from ..storage import redact_url
from . import cli
from .base import JsonItems, emit_json, open_project, table

_ACTION_WORDS = {
    sp.UPLOAD: "upload",
    sp.DOWNLOAD: "download",
    sp.DELETE_REMOTE: "delete remote",
    sp.DELETE_LOCAL: "delete local",
    sp.ADOPT: "same bytes",
    sp.FORGET: "forget",
}


class SyncIncomplete(GitDataError):
    pass


@cli.group()
def storage() -> None:
    """Map storages (a bucket prefix, a shared folder) into the project and sync them.

    A mapping is recorded in the tracked .gitdata so clones know it; its
    project folder is gitignored. `stage` copies it down, `sync` compares
    the base of the last sync, the local folder and one remote listing, and
    moves only what changed, on either side, never overwriting a change it
    has not seen.
    """


@storage.command("add")
@click.argument("name")
@click.argument("url")
@click.option("--to", "to", metavar="PATH", help="Project folder it maps to (default storages/NAME).")
@click.option(
    "--mode", type=click.Choice(storages_mod.MODES), default="copy", show_default=True,
    help="copy: bytes on local disk; mount: FUSE mount; reference: read through the Python API.",
)
@click.option(
    "-o", "--option", "options", multiple=True, metavar="KEY=VALUE",
    help="A non-secret storage option, e.g. endpoint_url=http://127.0.0.1:9000 (repeatable).",
)
@click.option("--no-check", is_flag=True, help="Do not check that the bucket exists and the credentials work.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def storage_add(name: str, url: str, to: str | None, mode: str, options: tuple[str, ...], no_check: bool,
                as_json: bool) -> None:  # fmt: skip
    """Map storage NAME at URL into the project. Nothing is transferred.

    The bucket must exist and answer with the credentials that would be
    used (one small request; --no-check skips it).
    """
    project = open_project()
    if not no_check and name not in storages_mod.load_all(project):
        from .. import config as config_mod
        from ..bucketcheck import check_new_storage

        # what `add` refuses is refused before any request is made with it
        config_mod.check_name("storage", name)
        parsed = config_mod.parse_options(list(options))
        for key, value in parsed.items():
            config_mod.check_not_secret(key, str(value))
        config_mod.check_tracked_options(url, parsed, f"storage {name!r}", name)
        if "@" not in url.split("://", 1)[-1].split("/", 1)[0]:
            note = check_new_storage(project, name, url, parsed, "--no-check")
            if note:
                click.echo(f"note: {note}", err=True)
    spec = storages_mod.add(project, name, url, to=to, mode=mode, option_pairs=list(options))
    if as_json:
        emit_json(spec.as_dict() | {"url": redact_url(spec.url)})
        return
    click.echo(f"mapped storage {spec.name} ({redact_url(spec.url)}) to {spec.to} [{spec.mode}]")
    click.echo(f"stage it with: git data storage stage {spec.name}")


@storage.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def storage_ls(as_json: bool) -> None:
    """List mapped storages and where their bytes are on this machine."""
    project = open_project()
    rows = []
    for spec in storages_mod.load_all(project).values():
        staged = storages_mod.is_staged(project, spec.name)
        where = storages_mod.local_dir(project, spec) if staged and spec.mode == "copy" else None
        rows.append(
            {
                "type": "storage",
                "name": spec.name,
                "url": redact_url(spec.url),
                "mode": spec.mode,
                "location": where,
                "path": spec.to,
                "staged": staged,
            }
        )
    if as_json:
        emit_json(rows)
        return
    table(
        [[r["type"], r["name"], r["url"], r["mode"], r["location"] or "none", r["path"]] for r in rows],
        ["TYPE", "NAME", "URL", "MODE", "LOCATION", "PROJECT PATH"],
    )


def _print_plan(res: storages_mod.SyncResult, dry_run: bool, problems_only: bool = False) -> None:
    """The plan, a line an action (``problems_only``: only those that failed), then what
    was refused, held, kept and the counts."""
    prep = res.prepared
    plan = prep.plan
    name = prep.spec.name
    verb = "would " if dry_run else ""
    for a in plan.iter_actions():
        if a.kind == sp.REFRESH:
            continue
        word = _ACTION_WORDS[a.kind]
        extra = f"  ({a.reason}" + (f", keeping the {a.keep} version" if a.keep else "") + ")" if a.keep or a.reason in (
            sp.DELETED_LOCAL_CHANGED_REMOTE, sp.CHANGED_LOCAL_DELETED_REMOTE) else ""  # fmt: skip
        status = ""
        if not dry_run:
            if a.path in res.races:
                status = "  CONFLICT: " + res.races[a.path]
            elif a.path in res.failed:
                status = "  FAILED: " + str(res.failed[a.path])
        if problems_only and not status:
            continue
        click.echo(f"{verb}{word:<13} {name}:{a.path}{extra}{status}", err=bool(status))
    for c in plan.conflicts:
        click.echo(f"conflict ({c.kind}) {name}:{c.path}")
    for key, why in sorted(prep.refused.items()):
        click.echo(f"refused       {name}:{key!r}: {why}", err=True)
    for path, reason in plan.pending:
        click.echo(f"pending       {name}:{path}: {reason}")
    for kept in res.kept:
        if "version_id" in kept:
            click.echo(f"kept remote version {kept['version_id']} of {name}:{kept['path']}")
        else:
            click.echo(f"kept the {kept['side']} version of {name}:{kept['path']} as {kept['conflict_copy']}")
    counts = plan.counts()
    if not dry_run:  # what was done, not what was planned
        for kind in sp.TRANSFERS:
            counts[kind] = res.done_counts[kind]
    summary = ", ".join(
        f"{counts[k]} {w}" for k, w in (
            (sp.UPLOAD, "to upload" if dry_run else "uploaded"),
            (sp.DOWNLOAD, "to download" if dry_run else "downloaded"),
            (sp.DELETE_REMOTE, "remote deletions"),
            (sp.DELETE_LOCAL, "local deletions"),
            ("conflicts", "conflicts"),
            ("pending", "pending"),
            ("unchanged", "unchanged"),
        )
    )  # fmt: skip
    if not dry_run and (res.failed or res.races):
        summary += f", {len(res.failed) + len(res.races)} failed"
    click.echo(f"{name}: {summary}" + (" (dry run: nothing changed)" if dry_run else ""))
    if plan.blocked:
        folders = sorted({f or "." for _p, f in plan.held} | {(c.path.rsplit("/", 1)[0] if "/" in c.path else ".") for c in plan.conflicts})
        what = "nothing was changed" if next(plan.iter_actions(), None) is None else "everything else was synced"
        click.echo(
            f"{name}: {len(plan.conflicts)} conflict(s) held back the files of their folder(s) "
            f"({', '.join(folders)}); {what}; resolve with `git data storage sync {name} --prefer local` "
            f"or `--prefer remote` (the other version is kept), optionally followed by the PATHS to resolve",
            err=True,
        )


def _finish(results: list[storages_mod.SyncResult], dry_run: bool, as_json: bool) -> None:
    if as_json:
        emit_json([storages_mod.result_json(r, dry_run, JsonItems) for r in results])
    else:
        for r in results:
            _print_plan(r, dry_run)
    bad = [r for r in results if not r.ok]
    if bad:
        names = ", ".join(r.prepared.spec.name for r in bad)
        raise SyncIncomplete(f"not everything was synced ({names}); see above")


@storage.command("stage")
@click.argument("name", required=False)
@click.argument("paths", nargs=-1)
@click.option("--all", "stage_all", is_flag=True, help="Stage every mapped storage (what a fresh clone needs).")
@click.option("--location", metavar="DIR", help="Keep the bytes in DIR; the project path becomes a link to it.")
@click.option("--mount", "mount", is_flag=True,
              help="Mount the storage read-write at its project path (rclone mount) instead of copying.")
@click.option("--include", "include", multiple=True, metavar="GLOB", help="Only files matching GLOB (repeatable).")
@click.option("--exclude", "exclude", multiple=True, metavar="GLOB", help="Skip files matching GLOB (repeatable).")
@click.option("-j", "--jobs", type=click.IntRange(1, 256), help="Parallel transfers (default gitdata.jobs or 8).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def storage_stage(
    name: str | None, paths: tuple[str, ...], stage_all: bool, location: str | None, mount: bool,
    include: tuple[str, ...], exclude: tuple[str, ...], jobs: int | None, as_json: bool,
) -> None:  # fmt: skip
    """Copy storage NAME (or only PATHS inside it) into the project, in parallel.

    Records the base for later syncs in the git directory. Staging again
    widens the staged folders; existing local files are compared, never
    overwritten. With --mount (or mode = mount in .gitdata) the storage is
    mounted read-write at its project path instead: nothing is copied.
    """
    project = open_project()
    trust.notice_once(project, lambda m: click.echo(m, err=True))
    if stage_all == bool(name):
        raise click.UsageError("give a storage NAME, or --all")
    if stage_all and (paths or location or include or exclude):
        raise click.UsageError("--all takes no PATHS, --location, --include or --exclude")
    specs = storages_mod.load_all(project)
    if mount and (stage_all or paths or location or include or exclude):
        raise click.UsageError("--mount mounts the whole storage: no --all, PATHS, --location, --include or --exclude")
    if mount or (name in specs and specs[name].mode == "mount" and not (paths or location or include or exclude)):
        _mount_storage(project, name or "", as_json)
        return
    names = [n for n, s in specs.items() if s.mode == "copy"] if stage_all else [name or ""]
    results = []
    refused: list[str] = []
    if stage_all:
        for n, err in sorted(storages_mod.refused(project).items()):
            click.echo(f"error: {err}", err=True)
            refused.append(n)
    for n in [n for n, s in specs.items() if s.mode == "mount"] if stage_all else []:
        try:
            _mount_storage(project, n, as_json, say=not as_json)
        except GitDataError as err:
            click.echo(f"error: {n}: {err}", err=True)
            refused.append(n)
    for n in names:
        if not stage_all:
            from ..mount import rclone as mount_rc

            if mount_rc.unmount(project, n):  # leaving mount mode: nothing is copied into a mount
                click.echo(f"unmounted storage {n} (its writes are uploaded); copying it now", err=True)
        try:
            res = storages_mod.stage(
                project, n, paths=paths, include=include, exclude=exclude, location=location, jobs=jobs
            )
        except GitDataError as err:
            if not stage_all:
                raise
            click.echo(f"error: {n}: {err}", err=True)
            refused.append(n)
            continue
        if res is None:
            if not as_json:
                click.echo(f"{n}: reference mode: nothing to copy; read it through the Python API")
            continue
        results.append(res)
    if as_json:
        emit_json([storages_mod.result_json(r, False, JsonItems) for r in results])
    else:
        for r in results:
            p = r.prepared
            got = r.done_counts[sp.DOWNLOAD]
            click.echo(f"staged {p.spec.name}: {got} file(s) downloaded to {os.path.relpath(p.root)}")
            if not r.ok:  # what went wrong, not a line for each of a million files that did not
                _print_plan(r, False, problems_only=True)
    bad = [r.prepared.spec.name for r in results if not r.ok] + refused
    if bad:
        raise SyncIncomplete(
            f"staging was incomplete ({', '.join(bad)}); "
            "fix the cause shown above and run the same command again"
        )


def _mount_storage(project, name: str, as_json: bool, say: bool = True) -> None:
    from ..mount import rclone as mount_rc

    st = mount_rc.mount(project, name, os.environ)  # the CLI edge hands rclone its environment
    if not say:
        return
    if as_json:
        emit_json({"storage": name, "mode": "mount", "mountpoint": st.mountpoint, "pid": st.pid})
    else:
        click.echo(f"mounted storage {name} at {os.path.relpath(st.mountpoint)} (read-write, rclone pid {st.pid})")


def _unmount_first(project, name: str, verb: str, say: bool = True) -> bool:
    """Unmount storage ``name`` if it is mounted (its writes are uploaded first); nothing is
    ever deleted through a mount. True if it was mounted."""
    from ..mount import rclone as mount_rc
    from ..mount import runner

    if runner.get(project, "storage", name) is None:
        return False
    mount_rc.unmount(project, name)
    if say:
        click.echo(f"unmounted storage {name} (its writes are in the bucket); nothing local to "
                   f"{'remove' if verb == 'unstage' else 'keep'}")  # fmt: skip
    return True


def _refuse_mounted(project, names: tuple[str, ...]) -> None:
    from ..mount import runner

    for n in names:
        if runner.get(project, "storage", n) is not None:
            raise GitDataError(
                f"storage {n!r} is mounted: what is written there goes to the bucket directly, there is "
                f"nothing to sync; `git data unmount {n}`, then `git data storage stage {n}` to copy it"
            )


@storage.command("sync")
@click.argument("names", nargs=-1, metavar="[NAMES]... | NAME --prefer SIDE PATH...")
@click.option("-n", "--dry-run", is_flag=True, help="Print the plan a real run would carry out; change nothing.")
@click.option("--prefer", type=click.Choice(["local", "remote"]), help="Resolve conflicts; the other version is kept.")
@click.option("--delete", is_flag=True, help="Propagate deletions (only of files the other side did not change).")
@click.option("-j", "--jobs", type=click.IntRange(1, 256), help="Parallel transfers (default gitdata.jobs or 8).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def storage_sync(
    names: tuple[str, ...], dry_run: bool, prefer: str | None, delete: bool, jobs: int | None, as_json: bool
) -> None:
    """Two-way sync of staged storages NAMES (default: every staged one).

    Changed on one side only: copied to the other. Changed on both: a
    conflict; the files of its folder are not changed (files in other
    folders are synced) and the command exits 1, unless --prefer says which
    side wins (the losing version is kept as NAME.conflict-TIME, or as the
    remote's previous version id in a versioned bucket). With --prefer,
    `NAME PATH...` resolves only the conflicts at or under PATHs (as typed:
    relative to the current folder); other conflicts stay.
    """
    project = open_project()
    trust.notice_once(project, lambda m: click.echo(m, err=True))
    prefer_paths = None
    if prefer and len(names) > 1:
        names, prefer_paths = names[:1], _storage_relpaths(project, names[0], names[1:])
    if not names:
        names = tuple(
            n for n, s in storages_mod.load_all(project).items()
            if s.mode == "copy" and storages_mod.is_staged(project, n)
        )  # fmt: skip
        if not names:
            raise click.UsageError("no storage is staged in this clone; stage one with `git data storage stage NAME`")
    _refuse_mounted(project, names)
    results = [
        storages_mod.sync(
            project, n, prefer=prefer, delete=delete, jobs=jobs, dry_run=dry_run, prefer_paths=prefer_paths
        )
        for n in names
    ]
    _finish(results, dry_run, as_json)


def _storage_relpaths(project, name: str, paths: tuple[str, ...]) -> list[str]:
    """PATHS as typed (relative to the current folder) as paths inside storage NAME's folder."""
    spec = storages_mod.get(project, name)
    root = os.path.realpath(os.path.join(project.root, spec.to))
    out = []
    for p in paths:
        full = os.path.realpath(os.path.abspath(p))
        rel = os.path.relpath(full, root).replace(os.sep, "/")
        if rel == ".":
            rel = ""
        elif rel == ".." or rel.startswith("../"):
            raise click.UsageError(
                f"{p} is not in storage {name!r}'s folder {spec.to}/ (with --prefer, the arguments are "
                "NAME PATH...: one storage, then paths inside its folder)"
            )
        out.append(rel)
    return out


@storage.command("unstage")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def storage_unstage(name: str, as_json: bool) -> None:
    """Remove the local copy of NAME; refuses while local changes are not synced.

    A mounted storage is unmounted instead (its writes are uploaded first);
    nothing is deleted through a mount.
    """
    project = open_project()
    if _unmount_first(project, name, "unstage"):
        if as_json:
            emit_json({"storage": name, "removed": 0, "kept_unknown_files": False, "unmounted": True})
        return
    out = storages_mod.unstage(project, name)
    if as_json:
        emit_json(out)
        return
    click.echo(f"unstaged {name}: removed {out['removed']} file(s)")
    if out["kept_unknown_files"]:
        click.echo(f"{name}: files outside the staged scope were left in place")


@storage.command("rm")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def storage_rm(name: str, as_json: bool) -> None:
    """Remove the mapping NAME. Never deletes remote data; unstage first to remove the local copy.

    A mounted storage is unmounted first.
    """
    project = open_project()
    _unmount_first(project, name, "rm", say=not as_json)
    if storages_mod.is_staged(project, name) and storages_mod.unsynced_local(project, name):
        raise storages_mod.Unsynced(
            f"storage {name!r} has local changes that are not synced; run "
            f"`git data storage sync {name}` or `git data storage unstage {name}` first"
        )
    spec = storages_mod.remove(project, name)
    storages_mod.manifest_for(project, name).drop()
    if as_json:
        emit_json({"removed": spec.name, "url": redact_url(spec.url), "local_files_left": spec.to})
        return
    click.echo(f"removed storage {name} (remote data untouched; local files, if any, left in {spec.to})")
