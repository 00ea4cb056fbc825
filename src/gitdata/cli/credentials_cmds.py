"""``git data credentials``: set, list and remove storage credentials.

Secrets are read from the terminal (hidden) or from standard input, never
from the command line, and never printed.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from .. import config as config_mod
from .. import credentials as cred
from ..errors import GitDataError
from ..git.repo import NotARepository, run_git
from ..project import Project
from ..storage.errors import AccessDenied, StorageError, redact_url
from . import cli
from .base import emit_json, table


def _maybe_project() -> Project | None:
    try:
        return Project.open()
    except NotARepository:
        return None


def _locate(arg: str, option_pairs: tuple[str, ...]) -> tuple[str | None, str, dict[str, Any], Project | None]:
    """``(name, url, options, project)`` for a storage name or a URL."""
    project = _maybe_project()
    if "://" in arg:
        options = config_mod.parse_options(list(option_pairs))
        return None, arg, options, project
    if project is None:
        raise GitDataError(
            f"{arg!r} is not a URL and this is not a git repository; run this in the project "
            f"that defines storage {arg!r}, or give the storage URL (s3://bucket -o endpoint_url=...)"
        )
    storages = {s.name: s for s in cred.project_storages(project)}
    if arg not in storages and (bucket := _bucket_remote(project, arg)) is not None:
        url, options = bucket
        return arg, url, {**options, **config_mod.parse_options(list(option_pairs))}, project
    if arg not in storages:
        known = ", ".join(sorted(storages)) or "none"
        raise GitDataError(
            f"no storage named {arg!r} in .gitdata (known: {known}); give its URL instead, e.g. "
            f"`git data credentials set s3://BUCKET -o endpoint_url=URL`"
        )
    s = storages[arg]
    options = {**s.options, **config_mod.parse_options(list(option_pairs))}
    return s.name, s.url, options, project


def _bucket_remote(project: Project, name: str) -> tuple[str, dict[str, Any]] | None:
    """A git remote kept in a bucket (``s3data::s3://...``): its bucket URL and
    options, so that the hint the remote helper prints (``git data credentials
    set origin``) is a command that works."""
    from ..remote.helper import is_bucket_url, storage_options

    url = project.repo.config_get(f"remote.{name}.url") or ""
    if not url.startswith("s3data::") or not is_bucket_url(url[len("s3data::") :]):
        return None
    return url[len("s3data::") :], storage_options(project.repo, name)


def _target(name: str | None, url: str, options: dict[str, Any]) -> cred.Target:
    target = cred.target_for(url, options, name)
    if target is None:
        raise GitDataError(f"{name or redact_url(url)} ({redact_url(url)}) needs no credentials")
    return target


def _read_secret(target: cred.Target, key: str | None, token_file: str | None, from_stdin: bool) -> cred.Secret:
    if target.scheme == "gs":
        if not token_file:
            if from_stdin:
                token_file = sys.stdin.readline().strip()
            elif sys.stdin.isatty():
                token_file = click.prompt("Service account key file (JSON)", err=True).strip()
        if not token_file:
            raise GitDataError("give the service account key file with --token-file PATH")
        path = os.path.abspath(os.path.expanduser(token_file))
        if not os.path.isfile(path):
            raise GitDataError(f"no such file: {path}")
        return cred.Secret(token=path)
    if from_stdin:
        lines = [line.rstrip("\r\n") for line in sys.stdin]
        if key is None:
            if not lines:
                raise GitDataError("--stdin: expected the access key and the secret on two lines")
            key, lines = lines[0].strip(), lines[1:]
        secret = lines[0].strip() if lines else ""
    elif sys.stdin.isatty():
        if key is None:
            key = click.prompt("Access key", err=True).strip()
        secret = click.prompt("Secret key (hidden)", hide_input=True, err=True).strip()
    else:
        raise GitDataError(
            "standard input is not a terminal: pipe the access key and the secret on two "
            "lines with --stdin (never put a secret on the command line)"
        )
    if not key or not secret:
        raise GitDataError("both an access key and a secret are needed")
    return cred.Secret(key=key, secret=secret)


def _check_bucket(name: str | None, url: str, options: dict[str, Any], target: cred.Target) -> None:
    """The credentials were accepted; the bucket must exist too, or "(verified)" would mislead."""
    from ..bucketcheck import CHECK_RETRY, BucketMissing, root_problem
    from ..storage import Storage

    try:
        missing = root_problem(Storage(url, options, name=name, retry=CHECK_RETRY))
    except StorageError as err:
        raise GitDataError(f"{err}; nothing was stored (use --no-check to store anyway)") from err
    if missing:
        raise BucketMissing(
            f"{missing} at {target.endpoint}: the credentials were accepted, but nothing was stored; "
            "create the bucket or correct the URL (--no-check stores them anyway)"
        )


def _helper_configured(cwd: str | None) -> bool:
    out = run_git(["config", "--get-all", "credential.helper"], cwd=cwd, check=False)
    return any(line.strip() for line in out.decode().splitlines())


@cli.group()
def credentials() -> None:
    """Credentials for storages: asked once, kept outside the repository.

    Resolution order: explicit options, environment and the provider's own
    configuration (AWS_PROFILE, ~/.aws/credentials, GOOGLE_APPLICATION_CREDENTIALS,
    ...); then git's credential helpers; then the git data credentials file
    ($XDG_CONFIG_HOME/gitdata/credentials, mode 0600); then a prompt on the
    terminal. Secrets are never shown.
    """


@credentials.command("set")
@click.argument("storage")
@click.option("--key", help="Access key id (S3). Without it, the key is read with the secret.")
@click.option("--token-file", type=click.Path(dir_okay=False), help="Service account JSON key file (GCS).")
@click.option("--stdin", "from_stdin", is_flag=True, help="Read the key and the secret from standard input, one per line (for scripts).")
@click.option(
    "-o", "--option", "option_pairs", multiple=True, metavar="KEY=VALUE",
    help="Storage option for a URL, e.g. endpoint_url=http://127.0.0.1:9000 (repeatable).",
)
@click.option("--helper", "to_helper", is_flag=True, help="Store through git's credential helper instead of the git data credentials file.")
@click.option("--no-verify", is_flag=True, help="Store without first checking the credentials against the storage.")
@click.option("--no-check", is_flag=True, help="Verify the credentials but do not check that the bucket exists.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (never contains the secret).")
def credentials_set(
    storage: str, key: str | None, token_file: str | None, from_stdin: bool,
    option_pairs: tuple[str, ...], to_helper: bool, no_verify: bool, no_check: bool, as_json: bool,
) -> None:  # fmt: skip
    """Store credentials for STORAGE (a storage name in .gitdata, or a URL).

    The secret is asked for on the terminal with hidden input, or read from
    standard input with --stdin; it is checked against the storage with one
    small request before it is stored (unless --no-verify).
    """
    name, url, options, project = _locate(storage, option_pairs)
    target = _target(name, url, options)
    cwd = project.root if project else None
    secret = _read_secret(target, key, token_file, from_stdin)
    provider = cred.PROVIDERS[target.scheme]
    verified = False
    if not no_verify:
        try:
            cred.probe(url, {**options, **provider.to_options(secret)}, name)
        except AccessDenied as err:
            raise AccessDenied(
                f"access denied for {target.label} with these credentials; nothing was stored"
            ) from err
        except StorageError as err:
            raise GitDataError(f"{err}; nothing was stored (use --no-verify to store anyway)") from err
        if not no_check:
            _check_bucket(name, url, {**options, **provider.to_options(secret)}, target)
        verified = True
    if to_helper:
        if not _helper_configured(cwd):
            raise GitDataError(
                "no git credential helper is configured; set one (e.g. `git config --global "
                "credential.helper store`) or store in the git data credentials file (drop --helper)"
            )
        cred.git_approve(target, secret, cwd)
        where = "git credential helper"
    else:
        cfile = cred.CredentialsFile()
        cfile.set(target.ident, secret, name)
        where = cfile.path
    first = cred.find_source(target, options, cwd=cwd)
    shadowed = first.source in ("options", "provider")
    if as_json:
        emit_json({
            "storage": name, "target": target.ident, "endpoint": target.endpoint,
            "key": cred.mask(secret.key), "stored_in": where, "verified": verified,
            "used": not shadowed, "used_instead": first.detail or first.source if shadowed else None,
        })  # fmt: skip
        return
    click.echo(f"stored credentials for {target.label} in {where}" + (" (verified)" if verified else ""))
    if shadowed:
        click.echo(
            f"note: {first.detail or 'explicit storage options'} come first and will be used "
            f"instead; unset them to use these",
            err=True,
        )


@credentials.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (never contains a secret).")
def credentials_ls(as_json: bool) -> None:
    """List storages and where their credentials come from (never the secret).

    Shows every storage of this project that needs credentials, and every
    entry of the git data credentials file.
    """
    project = _maybe_project()
    cwd = project.root if project else None
    cfile = cred.CredentialsFile()
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for s in cred.project_storages(project) if project else []:
        target = cred.target_for(s.url, s.options, s.name)
        if target is None:
            continue
        res = cred.find_source(target, s.options, cwd=cwd, credentials_file=cfile)
        seen.add(target.ident)
        rows.append({
            "storage": s.name, "kind": s.kind, "target": target.ident, "endpoint": target.endpoint,
            "source": res.source, "detail": res.detail,
            "key": cred.mask(res.secret.key) if res.secret else "",
        })  # fmt: skip
    for entry in cfile.entries():
        if entry.ident in seen:
            continue
        rows.append({
            "storage": " ".join(entry.storages) or None, "kind": None, "target": entry.ident,
            "endpoint": None, "source": "file", "detail": cfile.path, "key": cred.mask(entry.secret.key),
        })  # fmt: skip
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo(f"no storages need credentials here, and {cfile.path} holds none")
        return
    table(
        [[r["storage"], r["target"], r["source"], r["key"] or None] for r in rows],
        ["STORAGE", "TARGET", "SOURCE", "KEY"],
    )


@credentials.command("rm")
@click.argument("storage")
@click.option(
    "-o", "--option", "option_pairs", multiple=True, metavar="KEY=VALUE",
    help="Storage option for a URL, e.g. endpoint_url=http://127.0.0.1:9000 (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def credentials_rm(storage: str, option_pairs: tuple[str, ...], as_json: bool) -> None:
    """Forget the stored credentials for STORAGE (a storage name, or a URL).

    Removes them from the git data credentials file and asks git's
    credential helpers to erase theirs. Nothing changes in the storage.
    """
    name, url, options, project = _locate(storage, option_pairs)
    target = _target(name, url, options)
    cwd = project.root if project else None
    removed = []
    cfile = cred.CredentialsFile()
    if cfile.remove(target.ident):
        removed.append(cfile.path)
    if cred.git_fill(target, cwd) is not None:
        cred.git_reject(target, None, cwd)
        removed.append("git credential helper")
    if as_json:
        emit_json({"storage": name, "target": target.ident, "removed_from": removed})
        return
    if not removed:
        raise GitDataError(f"no stored credentials for {target.label}")
    click.echo(f"removed credentials for {target.label} from {', '.join(removed)}")
