"""``git data remote``: data remotes in ``.gitdata``."""

from __future__ import annotations

import click

from .. import config as config_mod
from .. import trust
from ..storage import open_filesystem, redact_url
from ..storage.errors import userinfo_problem
from . import cli
from .base import emit_json, open_project, table


@cli.group()
def remote() -> None:
    """Manage data remotes: where pushed data objects are stored.

    A data remote is any fsspec URL (a plain path, file://, s3://, gs://, ...).
    It is recorded in the tracked file .gitdata, so clones know it; secrets
    never are.
    """


@remote.command("add")
@click.argument("name")
@click.argument("url")
@click.option("--default", "make_default", is_flag=True, help="Make this the default data remote.")
@click.option(
    "-o", "--option", "options", multiple=True, metavar="KEY=VALUE",
    help="A non-secret storage option, e.g. endpoint_url=http://127.0.0.1:9000 (repeatable).",
)
@click.option(
    "--git-remote", "git_remotes", multiple=True, metavar="GIT_REMOTE",
    help="Pushes to this git remote upload their data here (per clone; repeatable).",
)
@click.option("--no-check", is_flag=True, help="Do not check that the bucket exists and the credentials work.")
def remote_add(
    name: str, url: str, make_default: bool, options: tuple[str, ...], git_remotes: tuple[str, ...],
    no_check: bool,
) -> None:  # fmt: skip
    """Add data remote NAME at URL.

    The bucket must exist and answer with the credentials that would be
    used (one small request; --no-check skips it).
    """
    project = open_project()
    config_mod.check_name("remote", name)
    if name in project.config.remotes:
        raise click.ClickException(f"data remote {name!r} exists; remove it first with `git data remote rm {name}`")
    parsed = config_mod.parse_options(list(options))
    for key, value in parsed.items():
        config_mod.check_not_secret(key, str(value))
    config_mod.check_tracked_options(url, parsed, f"remote {name!r}", name)
    if problem := userinfo_problem(url):
        raise click.ClickException(f"{problem} (use `git data credentials set {name}` or the environment)")
    open_filesystem(url, parsed)  # fails early for unknown schemes and missing backends
    if not no_check:
        from ..bucketcheck import check_new_storage

        note = check_new_storage(project, name, url, parsed, "--no-check")
        if note:
            click.echo(f"note: {note}", err=True)
    if "://" not in url:
        import os

        url = os.path.abspath(url)
    cfg = config_mod.ConfigFile(project.repo)
    cfg.set(f'remote.{name}.url', url)
    for line in options:
        cfg.add(f"remote.{name}.option", line)
    if make_default or not project.config.remotes:
        cfg.set("data.remote", name)
    for git_remote in git_remotes:
        project.repo.config_set(f"remote.{git_remote}.gitdataRemote", name)
    click.echo(f"added data remote {name} -> {redact_url(url)}" + (" (default)" if make_default or not project.config.remotes else ""))
    trust.acknowledge(project)  # the user chose this destination here


@remote.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def remote_ls(as_json: bool) -> None:
    """List data remotes."""
    project = open_project()
    cfg = project.config
    rows = [
        {"name": r.name, "url": redact_url(r.url), "default": r.name == cfg.default_remote, "options": r.option_lines}
        for r in cfg.remotes.values()
    ]
    if as_json:
        emit_json(rows)
        return
    table([[("* " if r["default"] else "  ") + r["name"], r["url"], " ".join(r["options"])] for r in rows], ["NAME", "URL", "OPTIONS"])


@remote.command("rm")
@click.argument("name")
def remote_rm(name: str) -> None:
    """Remove data remote NAME from .gitdata (deletes nothing in the storage)."""
    project = open_project()
    if name not in project.config.remotes:
        raise click.ClickException(f"no data remote named {name!r}")
    cfg = config_mod.ConfigFile(project.repo)
    cfg.remove_section(f"remote.{name}")
    if project.config.get("data.remote") == name:
        cfg.unset_all("data.remote")
    click.echo(f"removed data remote {name}")
    trust.acknowledge(project)
