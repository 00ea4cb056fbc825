"""``git data dataset``: named datasets backed by external storage."""

from __future__ import annotations

import os

import click

from .. import datasets as ds_mod
from .. import trust
from ..errors import GitDataError
from . import cli
from .base import emit_json, ensure_filter, human_size, open_project, table

_OPTION = click.option(
    "-o", "--option", "options", multiple=True, metavar="KEY=VALUE",
    help="A non-secret storage option for the dataset's storage and sources, e.g. "
    "endpoint_url=http://127.0.0.1:9000 (repeatable).",
)


@cli.group()
def dataset() -> None:
    """Datasets: named folders of data with metadata, stored outside git.

    Adding remote data (s3://, gs://, https://, file://) records only
    metadata: one listing, a pointer per object, nothing downloaded. Stage
    a dataset to get its bytes, in the mode you choose.
    """


@dataset.command("create")
@click.argument("name")
@click.option("--storage", metavar="URL", help="Where the dataset's own files are pushed (default: the data remote).")
@click.option("--path", "folder", metavar="DIR", help="The dataset folder in the project (default: data/NAME).")
@click.option("--title", help="A short title.")
@click.option("--description", help="A description.")
@click.option("--creator", "creators", multiple=True, metavar="'NAME <EMAIL>'", help="A creator (repeatable; default: git's user).")
@click.option("--keyword", "keywords", multiple=True, help="A keyword (repeatable).")
@_OPTION
@click.option("--no-check", is_flag=True, help="Do not check that the --storage bucket exists and the credentials work.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def dataset_create(name, storage, folder, title, description, creators, keywords, options, no_check, as_json) -> None:
    """Create dataset NAME (recorded in the tracked .gitdata).

    With --storage, its bucket must exist and answer with the credentials
    that would be used (one small request; --no-check skips it).
    """
    project = open_project()
    if storage is not None and not no_check:
        from .. import config as config_mod
        from ..bucketcheck import check_new_storage
        from ..storage.errors import userinfo_problem

        if userinfo_problem(storage) is None:  # (create refuses it, without echoing it)
            note = check_new_storage(project, name, storage, config_mod.parse_options(list(options)), "--no-check")
            if note:
                click.echo(f"note: {note}", err=True)
    ds = ds_mod.create(
        project, name, storage=storage, options=options, title=title, description=description,
        creators=creators, keywords=keywords, path=folder,
    )
    if as_json:
        emit_json(_describe(project, ds))
        return
    click.echo(f"created dataset {ds.name} in {ds.path}/")


@dataset.command("add")
@click.argument("name")
@click.argument("sources", nargs=-1, required=True)
@click.option("--create", "create_it", is_flag=True, help="Create the dataset if it does not exist.")
@click.option("-I", "--include", multiple=True, metavar="GLOB", help="Only keys/paths matching GLOB (repeatable).")
@click.option("-X", "--exclude", multiple=True, metavar="GLOB", help="Skip keys/paths matching GLOB (repeatable).")
@click.option("--to", "to", default="", metavar="SUBPATH", help="Put the files under SUBPATH of the dataset folder.")
@_OPTION
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def dataset_add(name, sources, create_it, include, exclude, to, options, as_json) -> None:
    """Add SOURCES to dataset NAME.

    A remote URL (s3://bucket/prefix, gs://..., https://..., file://...) is
    registered: one listing, a pointer per object with its source and remote
    fingerprint, nothing downloaded. A local file or folder is copied into
    the dataset folder and tracked like any git data file. The pointer files
    are added to git's index; commit them.
    """
    project = open_project()
    try:
        ds = ds_mod.get(project, name)
    except ds_mod.UnknownDataset:
        if not create_it:
            raise
        ds = ds_mod.create(project, name, options=options)
    else:
        if options:
            ds = ds_mod.edit(project, name, {"option": list(options)})
    reports = []
    for source in sources:
        if ds_mod.is_remote(source):
            rep = ds_mod.register(project, ds, source, include=include, exclude=exclude, to=to)
        else:
            rep = ds_mod.add_local(project, ds, source, include=include, exclude=exclude, to=to)
        project.reload()
        ds = ds_mod.get(project, name)
        reports.append(rep)
    if as_json:
        emit_json([r.as_dict() for r in reports])
        return
    for r in reports:
        verb = "registered (metadata only)" if r.kind == "registered" else "copied"
        click.echo(f"{name}: {r.count} file(s), {human_size(r.total_size)} {verb} from {r.source}")
    click.echo("the pointers are staged in git's index; commit them with `git commit`")


def _describe(project, ds: ds_mod.Dataset) -> dict[str, object]:
    found = ds_mod.files(project, ds)
    mode, location = ds_mod.current_mode(project, ds.name)
    sources = []
    for src in ds.sources:
        sources.append({"type": "registered", "url": src.url, "to": src.to or None, "location": location})
    if ds.storage:
        sources.append({"type": "storage", "url": ds.storage, "to": None, "location": location})
    return {
        "name": ds.name,
        "path": ds.path,
        "created": ds.created,
        "creators": ds.creators,
        "title": ds.title,
        "description": ds.description,
        "keywords": ds.keywords,
        "storage": ds.storage,
        "mode": mode,
        "location": location,
        "sources": sources,
        "files": len(found),
        "size": sum(f.pointer.size or 0 for f in found),
    }


@dataset.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def dataset_show(name: str, as_json: bool) -> None:
    """Show a dataset's metadata, sources, file count and size."""
    project = open_project()
    info = _describe(project, ds_mod.get(project, name))
    if as_json:
        emit_json(info)
        return
    for key in ("name", "path", "created", "title", "description", "storage", "mode", "location"):
        click.echo(f"{key + ':':13}{info[key] if info[key] is not None else 'None'}")
    click.echo(f"{'creators:':13}{', '.join(info['creators']) or '-'}")  # type: ignore[arg-type]
    click.echo(f"{'keywords:':13}{', '.join(info['keywords']) or '-'}")  # type: ignore[arg-type]
    click.echo(f"{'files:':13}{info['files']} ({human_size(info['size'])})")  # type: ignore[arg-type]
    click.echo("sources:")
    for s in info["sources"]:  # type: ignore[attr-defined]
        to = f" -> {s['to']}" if s["to"] else ""
        click.echo(f"  {s['type']:11} {s['url']}{to}  location: {s['location']}")


@dataset.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def dataset_ls(as_json: bool) -> None:
    """List the project's datasets."""
    project = open_project()
    infos = [_describe(project, ds) for ds in sorted(ds_mod.load_all(project).values(), key=lambda d: d.name)]
    if as_json:
        emit_json(infos)
        return
    table(
        [[i["name"], i["path"], i["files"], human_size(i["size"]), i["mode"] or "not staged", i["title"]] for i in infos],  # type: ignore[arg-type]
        ["NAME", "PATH", "FILES", "SIZE", "STAGED", "TITLE"],
    )


@dataset.command("edit")
@click.argument("name")
@click.option("--title", help="New title ('' removes it).")
@click.option("--description", help="New description ('' removes it).")
@click.option("--creator", "creators", multiple=True, help="Replace the creators (repeatable).")
@click.option("--keyword", "keywords", multiple=True, help="Replace the keywords (repeatable).")
@click.option("--storage", metavar="URL", help="New storage URL for the dataset's own files.")
@click.option("-o", "--option", "options", multiple=True, metavar="KEY=VALUE",
              help="Replace the dataset's non-secret storage options, e.g. anon=true (repeatable; "
              "-o '' removes them all).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def dataset_edit(name, title, description, creators, keywords, storage, options, as_json) -> None:
    """Change a dataset's metadata or storage options."""
    project = open_project()
    changes: dict[str, str | list[str] | None] = {}
    if options:
        lines = [o for o in options if o]
        changes["option"] = lines or None
    for key, value in (("title", title), ("description", description), ("storage", storage)):
        if value is not None:
            changes[key] = value or None
    if creators:
        changes["creator"] = list(creators)
    if keywords:
        changes["keyword"] = list(keywords)
    if not changes:
        raise click.UsageError(
            "nothing to change; give --title, --description, --creator, --keyword, --storage or -o"
        )
    ds = ds_mod.edit(project, name, changes)
    if as_json:
        emit_json(_describe(project, ds))
    else:
        click.echo(f"updated dataset {name}")


@dataset.command("copy")
@click.argument("name")
@click.option("--to-storage", "url", required=True, metavar="URL",
              help="The bucket or prefix to copy to (s3://, gs://, file://, a folder).")
@click.option("-o", "--option", "options", multiple=True, metavar="KEY=VALUE",
              help="A non-secret storage option for URL, e.g. endpoint_url=http://127.0.0.1:9000 "
              "(repeatable); recorded for the dataset in place of the origin's.")
@click.option("-j", "--jobs", type=int, help="Parallel copies (default: gitdata.jobs or 8).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def dataset_copy(name, url, options, jobs, as_json) -> None:
    """Copy every object of dataset NAME to URL, then read it from there.

    Registered files go to URL/PATH (PATH: the file's path in the dataset
    folder), the project's own files to URL/.gitdata/objects/. Inside the
    service where origin and URL share an endpoint (S3 CopyObject), streamed
    otherwise; in parallel; each object checked against the recorded size
    and md5 or oid. Only when every object is there do the pointers and
    .gitdata name URL, with the origin kept as provenance (origin-* keys);
    commit them. Run again after a failure: objects already copied are not
    copied again. Nothing is downloaded into the project.
    """
    from ..datasets import copy as copy_mod

    project = open_project()
    report = copy_mod.copy(project, name, url, options=options, jobs=jobs)
    if as_json:
        emit_json(report.as_dict())
    else:
        click.echo(
            f"{name}: {len(report.copied)} file(s) copied ({human_size(report.bytes)}) to {report.target}: "
            f"{report.server_side} inside the service, {report.streamed} streamed; "
            f"{len(report.already)} already there"
        )
    if report.failed:
        for path, reason in sorted(report.failed.items()):
            click.echo(f"error: {path}: {reason}", err=True)
        raise GitDataError(copy_mod.describe_failure(report))
    if not as_json:
        click.echo(f"the pointers and .gitdata now name {report.target}; commit them with `git commit`")


@dataset.command("rm")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def dataset_rm(name: str, as_json: bool) -> None:
    """Stop tracking dataset NAME.

    Removes its .gitdata section, its pointers from the index and the work
    tree, and unstages it first. Never deletes anything in external storage;
    staged content files stay on disk, untracked.
    """
    project = open_project()
    mode, _ = ds_mod.current_mode(project, name)
    ds_mod.get(project, name)
    if mode in ("location", "existing"):
        ds_mod.unstage(project, name)
    ds_mod.set_mode(project, name, None)
    result = ds_mod.remove(project, name)
    if as_json:
        emit_json(result)
        return
    click.echo(f"removed dataset {name}: {result['untracked']} file(s) untracked")
    if result["kept_files"]:
        click.echo(f"{len(result['kept_files'])} content file(s) left on disk in its folder")  # type: ignore[arg-type]


@dataset.command("stage")
@click.argument("name", required=False)
@click.option("--all", "stage_all", is_flag=True,
              help="Stage every dataset, each in its mode from .gitdata (what a fresh clone needs).")
@click.option("--copy", "mode", flag_value="copy", help="Copy the bytes into the dataset folder (the default).")
@click.option("--reference", "mode", flag_value="reference", help="Nothing on disk; read with `git data cat`.")
@click.option("--mount", "mode", flag_value="mount",
              help="Mount the dataset folder read-only (FUSE): nothing copied, bytes read on demand.")
@click.option("--location", metavar="DIR", help="Put the bytes in DIR/NAME and link the dataset folder to it.")
@click.option("--existing", metavar="PATH", help="The data is already at PATH: check and link it.")
@click.option("--verify", is_flag=True, help="With --existing: check hashes too, not only sizes.")
@click.option("-I", "--include", multiple=True, metavar="GLOB", help="Only files matching GLOB (relative to the dataset folder).")
@click.option("-X", "--exclude", multiple=True, metavar="GLOB", help="Skip files matching GLOB.")
@click.option("-j", "--jobs", type=int, help="Parallel downloads (default: gitdata.jobs or 8).")
@click.option("--force", is_flag=True, help="Stage even above gitdata.stageMaxBytes.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def dataset_stage(name, stage_all, mode, location, existing, verify, include, exclude, jobs, force, as_json) -> None:
    """Bring dataset NAME's bytes (every dataset's, with --all) to this machine.

    Each file is checked against its recorded fingerprint: a remote object
    that changed since it was recorded is reported, not silently taken
    (where the storage keeps versions, the recorded version is staged).
    Before copying more than gitdata.stageMaxBytes (default 50 GiB) or the
    free disk space, it stops and says so. Without a mode option, the
    dataset's `mode` in .gitdata (copy, mount or reference) is used.
    """
    project = open_project()
    trust.notice_once(project, lambda m: click.echo(m, err=True))
    if stage_all == bool(name):
        raise click.UsageError("give a dataset NAME, or --all")
    if stage_all and (mode or location or existing or verify or include or exclude):
        raise click.UsageError(
            "--all stages each dataset in its mode from .gitdata: no --copy/--reference/--mount, "
            "--location, --existing, --verify, --include or --exclude"
        )
    if not stage_all:
        report = _stage_one(project, name, mode, location, existing, verify, include, exclude, jobs, force)
        if as_json:
            emit_json(report.as_dict())
        else:
            _print_stage(report)
        _stage_failures(report)
        return
    reports, refused = [], []
    for n in sorted(project.config.sections("dataset")):
        try:
            report = _stage_one(project, n, None, None, None, False, (), (), jobs, force)
        except GitDataError as err:
            click.echo(f"error: {n}: {err}", err=True)
            refused.append(n)
            continue
        reports.append(report)
        if not as_json:
            _print_stage(report)
    if as_json:
        emit_json([r.as_dict() for r in reports])
    incomplete = []
    for report in reports:
        try:
            _stage_failures(report)
        except GitDataError as err:
            click.echo(f"error: {err}", err=True)
            incomplete.append(report.dataset)
    if refused or incomplete:
        raise GitDataError(
            f"staging was incomplete ({', '.join(sorted(refused + incomplete))}); the other datasets "
            "are staged: fix what is said above, then run `git data dataset stage --all` again"
        )
    if not reports and not as_json:
        click.echo("no datasets in .gitdata; see `git data dataset create`")


def _stage_one(project, name, mode, location, existing, verify, include, exclude, jobs, force):
    if mode is None:
        tracked = (project.config.sections("dataset").get(name, {}).get("mode") or ["copy"])[-1]
        mode = tracked if tracked in ("copy", "mount", "reference") and not (location or existing) else "copy"
    if location and existing:
        raise click.UsageError("give either --location or --existing, not both")
    if location:
        if mode != "copy":
            raise click.UsageError("--location copies the bytes; it does not combine with --reference/--mount")
        mode = "location"
    if existing:
        if mode != "copy":
            raise click.UsageError("--existing does not combine with --reference/--mount")
        mode = "existing"
    ensure_filter(project)
    return ds_mod.stage(
        project, name, mode=mode, location=location, existing=existing, verify=verify,
        include=include, exclude=exclude, jobs=jobs, force=force,
    )


def _print_stage(report) -> None:
    where = f" at {report.location}" if report.location else ""
    click.echo(
        f"{report.dataset}: {report.staged} file(s) staged ({human_size(report.bytes)}), "
        f"{report.already} already there, mode {report.mode}{where}"
    )
    for path, note in sorted(report.notes.items()):
        click.echo(f"note: {path}: {note}")
    for path, why in sorted(report.kept.items()):
        click.echo(f"kept {path}: {why}")


def _stage_failures(report) -> None:
    if report.failed:
        for path, reason in sorted(report.failed.items()):
            click.echo(f"error: {path}: {reason}", err=True)
        raise GitDataError(f"{len(report.failed)} file(s) of {report.dataset} could not be staged")


@dataset.command("unstage")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def dataset_unstage(name: str, as_json: bool) -> None:
    """Free the space dataset NAME takes; its pointers come back.

    Keeps anything that is neither pushed nor in external storage, and any
    file changed since it was staged. A folder given with --existing is
    never deleted, only unlinked. A mounted dataset is unmounted (nothing is
    deleted through the mount).
    """
    project = open_project()
    report = ds_mod.unstage(project, name)
    if as_json:
        emit_json(report.as_dict())
        return
    if report.mode == "mount":
        click.echo(f"unmounted dataset {name}; its pointers are back")
        return
    click.echo(f"{name}: {len(report.freed)} file(s) unstaged, {human_size(report.bytes)} freed")
    for path, why in sorted(report.kept.items()):
        click.echo(f"kept {os.path.relpath(path) if os.path.isabs(path) else path}: {why}")


# -- dataset verify ------------------------------------------------------------------


@dataset.command("verify")
@click.argument("name")
@click.option("-I", "--include", multiple=True, metavar="GLOB", help="Only files matching GLOB (relative to the dataset folder; repeatable).")
@click.option("-j", "--jobs", type=int, help="Parallel reads per storage (default: gitdata.jobs or 8).")
@click.option("--dask", "dask_address", metavar="SCHEDULER_ADDRESS",
              help="Hash on an existing Dask cluster (tcp://HOST:8786); needs pip install 'gitdata[dask]'.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def dataset_verify(name, include, jobs, dask_address, as_json) -> None:
    """Hash dataset NAME's registered sources and record their oids.

    Reads every registered file (its recorded version where the storage
    keeps versions, never more than its recorded size), hashes it while it
    streams and records the oid in its pointer as `source-oid`, in the
    index, ready to commit. `git data status --remote` then compares by
    content where a server's ETags are not content hashes. A source whose
    fingerprint changed since registration is reported, not recorded. With
    --dask, the reading runs on the cluster's workers, straight from the
    bucket; the pointers are written here once every result is back.
    """
    from ..datasets import verify as verify_mod

    project = open_project()
    trust.notice_once(project, lambda m: click.echo(m, err=True))
    if jobs is not None and jobs < 1:
        raise click.BadParameter("must be at least 1", param_hint="--jobs")
    run, where = None, "local"
    if dask_address:
        from ..datasets.verify_dask import runner

        run, where = runner(dask_address), "dask"
    report = verify_mod.verify(project, name, include, jobs=jobs, run=run, where=where)
    if as_json:
        emit_json(report.as_dict())
    else:
        click.echo(
            f"{name}: {len(report.recorded)} oid(s) recorded, {len(report.unchanged)} already recorded "
            f"({human_size(report.bytes)} read), {len(report.changed)} changed, {len(report.failed)} failed"
        )
        for path, why in sorted(report.changed.items()):
            click.echo(f"changed {path}: {why}")
        for path, why in sorted(report.kept.items()):
            click.echo(f"kept {path}: {why}")
        if report.recorded:
            click.echo("commit the pointers to share them: git commit -m 'verify " + name + "'")
    for path, why in sorted(report.failed.items()):
        click.echo(f"error: {path}: {why}", err=True)
    if report.failed or report.changed:
        raise GitDataError(
            f"{len(report.failed) + len(report.changed)} file(s) of {name} were not verified "
            "(see above); the others are recorded"
        )
