"""``git data status``, ``git data update`` and ``git data cat``."""

from __future__ import annotations

import sys
from collections import Counter

import click

from .. import datasets as ds_mod
from .. import status as status_mod
from ..errors import GitDataError
from . import cli
from .base import emit_json, open_project, table


@cli.command()
@click.argument("names", nargs=-1)
@click.option("--remote", is_flag=True, help="Compare with the remotes: listings only, no downloads.")
@click.option("-v", "--verbose", is_flag=True, help="List every file, not only those that need attention.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (every file).")
@click.option("--exit-code", "exit_code", is_flag=True,
              help="Exit 1 when anything needs attention (what the short listing shows: a changed file, a stale run), like `git diff --exit-code`.")  # fmt: skip
def status(names: tuple[str, ...], remote: bool, verbose: bool, as_json: bool, exit_code: bool) -> None:
    """Show the state of datasets, storages and recorded runs (NAMES limit it).

    Per file: local state (staged / pointer only / modified / not pushed /
    missing; outside datasets: not materialized) and, with --remote, whether the remote object still matches
    its recorded fingerprint (unchanged / changed / deleted), and new
    objects under registered prefixes. Per run (`git data run`): stale or
    up to date, with the reason.
    """
    project = open_project()
    _stale_mounts(project)
    unfinished = status_mod.unfinished_checkout(project)
    if unfinished:
        click.echo(f"warning: {unfinished}", err=True)
    _filter_missing(project)
    # the short listing needs the files worth showing, and counts of the rest (flat memory at a
    # million files); -v and --json list every file
    every_file = verbose or as_json
    rows = status_mod.collect(project, status_mod.StatusOptions(names=names, remote=remote, every_file=every_file))
    _print_status(rows, remote, verbose, as_json)
    unchecked = {(r.section, r.name): r.detail for r in rows if r.remote == status_mod.UNCHECKED}
    for (section, name), why in unchecked.items():
        click.echo(f"error: {section} {name}: not compared with its remote: {why}", err=True)
    refused = [r for r in rows if r.section == "datasets" and r.local == status_mod.UNREADABLE]
    for r in refused:  # its manifest was refused: nothing of the dataset is read, the others are shown
        click.echo(f"error: dataset {r.name}: {r.detail}", err=True)
    if unchecked or refused or (exit_code and any(r.notable for r in rows)):
        raise SystemExit(1)


def _print_status(rows: list[status_mod.StatusRow], remote: bool, verbose: bool, as_json: bool) -> None:
    if as_json:
        emit_json([r.as_dict() for r in rows])
    else:
        _print(rows, remote, verbose)


def _print(rows: list[status_mod.StatusRow], remote: bool, verbose: bool) -> None:
    groups: dict[tuple[str, str], list[status_mod.StatusRow]] = {}
    for r in rows:
        groups.setdefault((r.section, r.name), []).append(r)
    if not groups:
        click.echo("nothing to report (no datasets; see `git data dataset create`)")
        return
    for (section, name), group in groups.items():
        local: Counter[str] = Counter()
        rem: Counter[str] = Counter()
        for r in group:  # an aggregate row (the short listing's) counts many files
            if r.local:
                local[r.local] += r.count
            if r.remote:
                rem[r.remote] += r.count
        parts = [f"{n} {state}" for state, n in sorted(local.items())]
        if remote:
            parts += [f"{n} {state} on remote" for state, n in sorted(rem.items())]
        if section == "runs":  # one row per run
            parts = [f"{group[0].local}"] + ([f"{group[0].remote} on remote"] if group[0].remote else [])
        title = f"{name} files" if section == "files" else f"{section[:-1]} {name}"
        click.echo(f"{title}: " + (", ".join(parts) or "empty"))
        shown = [r for r in group if not r.aggregate] if verbose else [r for r in group if r.notable]
        if section == "runs":
            for r in shown:
                for why in r.detail.split("; ") if r.detail else []:
                    click.echo(f"  {why}")
        elif shown:
            table([["  " + r.path, r.local or "-", r.remote or "-"] for r in shown], ["  PATH", "LOCAL", "REMOTE"])


def _filter_missing(project) -> None:
    """Say why a clone holds pointer files: git data was never installed for this user."""
    from ..install import filter_configured, tracked_patterns

    if tracked_patterns(project.root) and not filter_configured(project.repo):
        click.echo("warning: the git data filter is not set up here, so git keeps pointer files "
                   "instead of data; run `git data install` (once per user), then `git data pull`",
                   err=True)  # fmt: skip


def _stale_mounts(project) -> None:
    """A line on stderr per stale mount of this clone (the mount process died)."""
    from ..mount import runner

    for st in runner.load_all(project):
        if runner.health(st) != "healthy":
            click.echo(f"warning: {st.kind} {st.name} is mounted but stale (its process {st.pid} is gone "
                       f"or its mount broke); run `git data unmount {st.name}`", err=True)  # fmt: skip


@cli.command()
@click.argument("dataset")
@click.argument("paths", nargs=-1)
@click.option("--no-new", is_flag=True, help="Do not add objects that appeared under registered prefixes.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def update(dataset: str, paths: tuple[str, ...], no_new: bool, as_json: bool) -> None:
    """Re-record the remote fingerprints of DATASET's changed objects.

    Changed objects get new pointers, deleted ones lose theirs, and new
    objects under a registered prefix get one (PATHS limit it). Only the
    work tree changes: review with `git diff`, then commit. A dataset
    recorded by a manifest gets a new manifest, staged at once: review it
    with `git data diff`.
    """
    project = open_project()
    report = ds_mod.update(project, dataset, paths, new=not no_new)
    if as_json:
        emit_json(report.as_dict())
    else:
        manifest = ds_mod.recorded_manifest(project, ds_mod.get(project, dataset)) is not None
        click.echo(
            f"{dataset}: {len(report.changed)} changed, {len(report.added)} new, "
            f"{len(report.deleted)} deleted; review with `git {'data ' if manifest else ''}diff`, then commit"
        )
    if report.kept:
        for path, why in sorted(report.kept.items()):
            click.echo(f"error: kept {path}: {why}; not updated", err=True)
        raise GitDataError(
            f"{len(report.kept)} file(s) of {dataset} were left as they are: commit your change "
            "(`git add PATH`) or discard it (`git restore PATH`, or move the untracked file "
            f"away), then run `git data update {dataset}` again"
        )


@cli.command()
@click.argument("path")
def cat(path: str) -> None:
    """Write the bytes of tracked file PATH to stdout.

    From the work tree when staged, else the local cache, the file's
    registered source, or the data remote. Nothing is written to disk.
    """
    project = open_project()
    out = sys.stdout.buffer
    for chunk in ds_mod.open_file(project, path):
        out.write(chunk)
    out.flush()
