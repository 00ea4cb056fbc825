"""Set-up and object commands: install, track, push, fetch, checkout, ..."""

from __future__ import annotations

import fnmatch
import os

import click

from .. import install as install_mod
from .. import status as status_mod
from ..errors import GitDataError
from ..fetch import WorktreeFile, download_many, materialize, read_worktree_pointer
from ..git.repo import NotARepository, Repo
from ..maintenance import fsck as fsck_run
from ..maintenance import ls_files as ls_files_run
from ..maintenance import prune as prune_run
from ..maintenance import remove_stale_tmp
from ..push import push_objects
from ..refresh import refresh_index
from ..scan import scan_history, scan_index, scan_tree
from . import cli
from .base import emit_json, ensure_filter, human_size, open_project, table


def _maybe_repo() -> Repo | None:
    try:
        return Repo.discover()
    except NotARepository:
        return None


@cli.command()
@click.option("--global", "scope", flag_value="global", default=True, help="For this user (default).")
@click.option("--local", "scope", flag_value="local", help="For the current repository only.")
def install(scope: str) -> None:
    """Register the s3data filter with git, and hooks in the current repository.

    Run once per user (--global), or per repository (--local). Inside a
    repository it also installs the pre-push and pre-commit hooks. It also
    writes the man pages `git data --help` reads (see `git data help`).
    """
    from .help_cmds import install_man_pages

    for line in install_mod.install(scope, _maybe_repo()):
        click.echo(line)
    click.echo(install_man_pages(cli))
    click.echo("git data is installed.")


@cli.command()
@click.option("--global", "scope", flag_value="global", default=True, help="For this user (default).")
@click.option("--local", "scope", flag_value="local", help="For the current repository only.")
def uninstall(scope: str) -> None:
    """Remove what `git data install` registered (and our hooks here)."""
    for line in install_mod.uninstall(scope, _maybe_repo()):
        click.echo(line)


@cli.command()
@click.argument("patterns", nargs=-1)
def track(patterns: tuple[str, ...]) -> None:
    """Track files matching PATTERNS with git data (edits .gitattributes).

    Without PATTERNS, lists the tracked patterns. Quote patterns so the
    shell does not expand them: git data track 'data/**' '*.h5'
    """
    project = open_project()
    if not patterns:
        for p in install_mod.tracked_patterns(project.root):
            click.echo(p)
        return
    added = install_mod.track(project.root, list(patterns))
    for p in added:
        click.echo(f"tracking {p}")
    for p in patterns:
        if p not in added:
            click.echo(f"already tracked: {p}")


@cli.command()
@click.argument("patterns", nargs=-1, required=True)
def untrack(patterns: tuple[str, ...]) -> None:
    """Stop tracking PATTERNS (files already committed keep their pointers)."""
    project = open_project()
    removed = install_mod.untrack(project.root, list(patterns))
    for p in removed:
        click.echo(f"untracked {p}")
    if not removed:
        raise click.ClickException("none of these patterns were tracked; see `git data track`")


@cli.command()
@click.argument("remote", required=False)
@click.option("--all", "all_refs", is_flag=True, help="Objects of every local branch and tag, not just HEAD.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary.")
def push(remote: str | None, all_refs: bool, as_json: bool) -> None:
    """Upload data objects to REMOTE (default: the default data remote).

    Uploads every cached object referenced by HEAD's history (or all refs
    with --all) that the data remote lacks. `git push` does this by itself
    through the pre-push hook.
    """
    project = open_project()
    include = ["--all"] if all_refs else (["HEAD"] if project.repo.rev_parse("HEAD") else [])
    scan = scan_history(project.repo, include) if include else scan_index(project.repo)
    report = push_objects(project, scan, remote=remote)
    if as_json:
        emit_json(report.as_dict())
    else:
        click.echo(
            f"{len(report.uploaded)} object(s) uploaded to {report.remote}, "
            f"{report.already} already there"
        )


def _select(paths_pointers, include: tuple[str, ...], exclude: tuple[str, ...]):
    for f in paths_pointers:
        if include and not any(fnmatch.fnmatch(f.path, g) for g in include):
            continue
        if exclude and any(fnmatch.fnmatch(f.path, g) for g in exclude):
            continue
        yield f


def _fetch(project, refs, include, exclude, remote, explicit: bool = False):
    """``explicit``: the command line chose the files (paths or globs), so
    ``gitdata.fetchInclude``/``fetchExclude`` do not apply."""
    found = []
    for ref in refs or ["HEAD"]:
        found += scan_tree(project.repo, ref).found
    found += scan_index(project.repo).found
    wanted = project.fetch_filter.wants if not (include or exclude or explicit) else (lambda _p: True)
    chosen = [f for f in _select(found, include, exclude) if f.pointer.oid and wanted(f.path)]
    if all(project.cache.has(f.pointer.oid, f.pointer.size) for f in chosen):
        return 0, {}  # before any storage is opened (a dataset's may ask for credentials)
    from ..datasets import split_by_storage
    from ..scan import ScanResult

    # files of a dataset with its own storage come from there
    rest, routed = split_by_storage(project, ScanResult(chosen, {}))
    by_oid = {f.pointer.oid: f.path for f in chosen}
    done, failed = 0, {}
    for store, part in [(None, rest), *routed]:
        wanted = {f.pointer.oid: f.pointer.size for f in part.found}
        if all(project.cache.has(oid, size) for oid, size in wanted.items()):
            continue
        outcome = download_many(store or project.object_store(remote), project.cache, wanted, jobs=project.jobs)
        done += len(outcome.done)
        failed.update({by_oid[oid]: str(err) for oid, err in outcome.failed.items()})
    return done, failed


@cli.command()
@click.argument("refs", nargs=-1)
@click.option("-r", "--remote", help="Data remote to fetch from (default: the default one).")
@click.option("-I", "--include", multiple=True, metavar="GLOB", help="Only paths matching GLOB (repeatable).")
@click.option("-X", "--exclude", multiple=True, metavar="GLOB", help="Skip paths matching GLOB (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary: {downloaded, failed}.")
def fetch(refs: tuple[str, ...], remote: str | None, include: tuple[str, ...], exclude: tuple[str, ...],
          as_json: bool) -> None:  # fmt: skip
    """Download the data objects REFS (default HEAD) need into the cache.

    Files that gitdata.fetchInclude / gitdata.fetchExclude leave out are
    not downloaded, unless --include or --exclude is given (they replace
    those settings for this run).
    """
    project = open_project()
    n, failed = _fetch(project, refs, include, exclude, remote)
    if as_json:
        emit_json({"downloaded": n, "failed": failed})
    else:
        click.echo(f"{n} object(s) downloaded")
    _report_failures(failed)


def _report_failures(failed: dict[str, str]) -> None:
    if failed:
        for path, reason in sorted(failed.items()):
            click.echo(f"error: {path}: {reason}", err=True)
        raise GitDataError(f"{len(failed)} file(s) could not be fetched")


def _checkout(project, paths: tuple[str, ...], *, filtered: bool = False) -> tuple[int, dict[str, str]]:
    """``filtered``: leave out what ``gitdata.fetchInclude``/``fetchExclude`` leave out
    (``pull`` without PATHS; files not fetched are not checked out either)."""
    scan = scan_index(project.repo)
    remove_stale_tmp(project, scan)  # left by a killed checkout
    files = []
    wanted = project.fetch_filter.wants if filtered and not paths else (lambda _p: True)
    for f in scan.found:
        if f.pointer.oid is None or f.pointer.is_manifest or not wanted(f.path):
            continue
        if paths and not any(f.path == p or f.path.startswith(p.rstrip("/") + "/") or fnmatch.fnmatch(f.path, p) for p in paths):
            continue
        wt = read_worktree_pointer(project.root, f.path)
        if wt is not None and wt.oid == f.pointer.oid:
            files.append(WorktreeFile(f.path, f.pointer))
    outcome = materialize(project.cache, project.root, files)
    if outcome.done:
        refresh_index(project, outcome.done)
    failed = {p: str(e) for p, e in outcome.failed.items()}
    for path, reason in scan.malformed.items():
        if not paths or any(path == p or path.startswith(p.rstrip("/") + "/") or fnmatch.fnmatch(path, p) for p in paths):
            failed[path] = (
                f"malformed gitdata pointer ({reason}); left as it is: restore a good pointer "
                "(or the content) and commit it"
            )
    return len(outcome.done), failed


@cli.command()
@click.argument("paths", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary: {checked_out, failed}.")
def checkout(paths: tuple[str, ...], as_json: bool) -> None:
    """Replace pointer files in the work tree by their content from the cache.

    PATHS limit it to files, folders or globs. Run `git data fetch` first,
    or use `git data pull` for both.
    """
    project = open_project()
    ensure_filter(project)
    n, failed = _checkout(project, paths)
    if as_json:
        emit_json({"checked_out": n, "failed": failed})
    else:
        click.echo(f"{n} file(s) checked out")
    _report_failures(failed)


@cli.command()
@click.argument("paths", nargs=-1)
@click.option("-r", "--remote", help="Data remote to fetch from (default: the default one).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary: {downloaded, checked_out, failed}.")
def pull(paths: tuple[str, ...], remote: str | None, as_json: bool) -> None:
    """Fetch the objects HEAD needs and check them out (fetch + checkout).

    Without PATHS, files that gitdata.fetchInclude / gitdata.fetchExclude
    leave out stay pointers; PATHS (files, folders or globs) are fetched
    whatever those say.
    """
    project = open_project()
    ensure_filter(project)
    unfinished = status_mod.unfinished_checkout(project)
    if unfinished:
        raise GitDataError(unfinished)
    include = tuple(p if any(c in p for c in "*?[") else p.rstrip("/") + "*" for p in paths)
    n, failed = _fetch(project, (), include, (), remote, explicit=bool(paths))
    m, failed2 = _checkout(project, paths, filtered=True)
    failed = {**failed2, **failed}  # a fetch error explains a checkout miss
    if as_json:
        emit_json({"downloaded": n, "checked_out": m, "failed": failed})
    else:
        click.echo(f"{n} object(s) downloaded, {m} file(s) checked out")
    _report_failures(failed)


@cli.command("ls-files")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--offline", is_flag=True, help="Do not ask the data remote which objects it has.")
def ls_files(as_json: bool, offline: bool) -> None:
    """List files tracked by git data: path, oid, size, in cache, on remote."""
    project = open_project()
    rows = ls_files_run(project, check_remote=not offline)
    if as_json:
        emit_json([r.as_dict() for r in rows])
        return
    def yn(v):
        return "-" if v is None else ("yes" if v else "no")
    table(
        [[r.path, (r.oid or "-")[:19], human_size(r.size), yn(r.cached), yn(r.on_remote)] for r in rows],
        ["PATH", "OID", "SIZE", "CACHED", "ON REMOTE"],
    )


@cli.command("diff")
@click.argument("old", required=False)
@click.argument("new", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (each file's record before and after).")
@click.option("--exit-code", "exit_code", is_flag=True, help="Exit 1 when anything differs, like `git diff --exit-code`.")
def diff_cmd(old: str | None, new: str | None, as_json: bool, exit_code: bool) -> None:
    """Show which data files differ: OLD (default HEAD) against NEW (default the index).

    Datasets recorded by a manifest are compared file by file, not as one
    changed `.gitdata-manifest`. Prints `A`, `D` or `M` and the path.
    """
    from ..datasets.diff import diff

    project = open_project()
    for rev in (old, new):
        if rev is not None and project.repo.rev_parse(rev) is None:
            raise GitDataError(f"no commit {rev!r} in this repository")
    changes = diff(project, old or "HEAD", new)
    if as_json:
        emit_json([c.as_dict() for c in changes])
    else:
        for c in changes:
            click.echo(f"{c.state[0].upper()}\t{c.path}")
    if exit_code and changes:
        raise SystemExit(1)


@cli.command()
@click.option("--remote", "check_remote", is_flag=True, help="Also check that the data remote has every object (no download).")
@click.option("-r", "remote_name", help="Which data remote to check (default: the default one).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def fsck(check_remote: bool, remote_name: str | None, as_json: bool) -> None:
    """Check pointers parse and cached objects match their oid.

    Exits 1 if anything is wrong.
    """
    project = open_project()
    report = fsck_run(project, remote=check_remote, remote_name=remote_name)
    if as_json:
        emit_json(report.as_dict())
    else:
        for path, reason in sorted(report.malformed.items()):
            click.echo(f"malformed pointer: {path}: {reason}")
        for oid, path in sorted(report.corrupt.items()):
            click.echo(f"corrupt cached object: {oid} ({path}); delete it and run `git data fetch`")
        for oid, path in sorted(report.missing_on_remote.items()):
            click.echo(f"missing on data remote: {oid} ({path}); push it with `git data push`")
        for path in sorted(report.not_materialized):
            click.echo(f"not materialized: {path} (the work tree holds its pointer); run `git data pull`")
        for path in report.removed_tmp:
            click.echo(f"removed a stale temporary file: {os.path.relpath(path)}")
        for path in report.stale_temp:
            click.echo(f"stale temporary file (left by a killed process): {path}; `git data prune` removes it")
        click.echo(
            f"checked {report.checked_pointers} pointer(s), {report.checked_objects} cached object(s): "
            + ("ok" if report.ok else "problems found")
        )
    if not report.ok:
        raise SystemExit(1)


@cli.command()
@click.option("-n", "--dry-run", is_flag=True, help="Only say what would be removed.")
@click.option("--remote", "on_remote", is_flag=True,
              help="Also abort the data remote's incomplete uploads (killed pushes) older than gitdata.tempMaxAge.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def prune(dry_run: bool, on_remote: bool, as_json: bool) -> None:
    """Delete cached objects that no local ref or the index references.

    Never deletes an object the data remote lacks (not pushed yet). Also
    removes temporary files killed processes left in the cache (older than
    gitdata.tempMaxAge). With --remote, also aborts incomplete multipart
    uploads that killed pushes left on the data remote (invisible, but
    stored and billed); younger ones may still be running and are listed.
    """
    project = open_project()
    report = prune_run(project, dry_run=dry_run, remote=on_remote)
    if as_json:
        emit_json({**report.as_dict(), "dry_run": dry_run})
        return
    verb = "would remove" if dry_run else "removed"
    click.echo(f"{verb} {len(report.removed)} object(s), {human_size(report.freed_bytes)}")
    if report.removed_temp:
        click.echo(f"{verb} {len(report.removed_temp)} stale temporary file(s) of killed processes")
    if on_remote:
        for key in report.aborted_uploads:
            click.echo(f"{'would abort' if dry_run else 'aborted'} incomplete upload: {key}")
        for key in report.running_uploads:
            click.echo(f"kept incomplete upload (younger than gitdata.tempMaxAge, may be running): {key}")
    if report.kept_unpushed:
        click.echo(f"kept {len(report.kept_unpushed)} unreferenced object(s) not on the data remote")
