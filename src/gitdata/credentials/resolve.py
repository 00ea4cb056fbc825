"""Credential resolution: which source gives a storage's credentials.

The order of the sources is described in :mod:`gitdata.credentials`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..storage.errors import AccessDenied, StorageError
from .gitcred import git_approve, git_fill, git_reject
from .session import Session, current_session
from .store import CredentialsFile, credentials_path
from .target import PROVIDERS, Secret, Target, target_for


class Project(Protocol):
    """What credential resolution needs of a project (not :class:`gitdata.project.Project`
    itself: the project opens storages through this module, so it must not import it)."""

    @property
    def repo(self) -> Any: ...  # config_get_all(key), root

    @property
    def config(self) -> Any: ...  # sections(kind)


#: A probe key that never exists; looking it up tells whether the storage
#: accepts the credentials (404 = yes, 403 = no).
PROBE_KEY = ".gitdata-credentials-check"


class CredentialsMissing(AccessDenied):
    """No source has credentials for a storage and nobody can be asked."""


def _clone_overrides(project: Project, name: str | None, options: dict[str, Any]) -> dict[str, Any]:
    if not name:
        return options
    for line in project.repo.config_get_all(f"gitdata.remote.{name}.option"):
        key, sep, value = line.partition("=")
        if sep:
            from ..config import parse_option_value

            options[key] = parse_option_value(value)
    return options


def probe(url: str, options: Mapping[str, Any], name: str | None) -> None:
    """One small request with these options; raises :class:`AccessDenied` if refused."""
    from ..storage import Storage

    Storage(url, options, name=name).exists(PROBE_KEY)


@dataclass
class Resolution:
    """Where a storage's credentials come from (never the secret itself)."""

    target: Target | None
    source: str  # "none-needed", "options", "provider", "git-credential", "file", "prompt", "missing"
    detail: str = ""
    secret: Secret | None = None


def find_source(
    target: Target,
    options: Mapping[str, Any],
    *,
    cwd: str | None,
    environ: Mapping[str, str] | None = None,
    credentials_file: CredentialsFile | None = None,
) -> Resolution:
    """The first non-interactive source with credentials, without contacting the storage."""
    environ = os.environ if environ is None else environ
    provider = PROVIDERS[target.scheme]
    if provider.has_explicit(options):
        return Resolution(target, "options")
    found = provider.ambient(options, environ, network=False)
    if found:
        return Resolution(target, "provider", found)
    secret = git_fill(target, cwd, environ)
    if secret is not None:
        return Resolution(target, "git-credential", "git credential helper", secret)
    cfile = credentials_file or CredentialsFile(credentials_path(environ))
    secret = cfile.get(target.ident)
    if secret is not None and provider.complete(secret):
        return Resolution(target, "file", cfile.path, secret)
    secret = cfile.get(target.endpoint_ident)  # one pair for every bucket there; a bucket's own wins
    if secret is not None and provider.complete(secret):
        return Resolution(target, "file", f"{cfile.path} (every bucket at {target.endpoint})", secret)
    return Resolution(target, "missing")


def resolve_options(project: Project, name: str | None, url: str, options: dict[str, Any]) -> dict[str, Any]:
    """Storage options for storage ``name``: tracked options, per-clone overrides, credentials."""
    options = _clone_overrides(project, name, options)
    target = target_for(url, options, name)
    if target is None:
        return options
    session = current_session()
    cache_key = (name, target.ident)
    if cache_key in session.resolved:
        return {**options, **session.resolved[cache_key]}
    added = _resolve(project, url, target, options, session)
    session.resolved[cache_key] = added
    return {**options, **added}


def _resolve(project: Project, url: str, target: Target, options: dict[str, Any], session: Session) -> dict[str, Any]:
    provider = PROVIDERS[target.scheme]
    cwd = project.repo.root
    cfile = CredentialsFile()
    res = find_source(target, options, cwd=cwd, credentials_file=cfile)
    if res.source in ("options", "provider"):
        return {}
    if res.source == "git-credential":
        assert res.secret is not None
        added = provider.to_options(res.secret)
        try:
            probe(url, {**options, **added}, target.name)
        except AccessDenied:
            git_reject(target, res.secret, cwd)
            session.say(f"git data: the git credential helper's credentials for {target.label} were refused; they were rejected")
            secret = cfile.get(target.ident)
            res = Resolution(target, "file", cfile.path, secret) if secret and provider.complete(secret) else Resolution(target, "missing")
        except StorageError:
            return added  # unreachable etc.: the real operation will report it
        else:
            git_approve(target, res.secret, cwd)
            return added
    if res.source == "file":
        assert res.secret is not None
        secret_ident = target.ident if cfile.get(target.ident) is not None else target.endpoint_ident
        added = provider.to_options(res.secret)
        try:
            probe(url, {**options, **added}, target.name)
        except AccessDenied as err:
            if not session.interactive:
                where = "" if secret_ident == target.ident else f" for every bucket at {target.endpoint}"
                raise AccessDenied(
                    f"access denied for {target.label}: the credentials stored in {cfile.path}{where} "
                    f"were refused; run `{target.set_command}` to store a pair for this bucket"
                ) from err
            session.say(f"git data: the stored credentials for {target.label} were refused.")
        except StorageError:
            return added
        else:
            return added
    if provider.ambient(options, os.environ, network=True):
        return {}
    if not session.interactive:
        raise CredentialsMissing(
            f"no credentials for {target.label}; run `{target.set_command}` in a terminal "
            f"(or set {provider.env_hint})"
        )
    return _prompt(url, target, options, session, cfile)


def ask_secret(target: Target, session: Session) -> Secret | None:
    """Ask for credentials on the terminal; ``None`` if the user gives none."""
    session.say(f"git data: credentials needed for {target.label}")
    try:
        if target.scheme == "gs":
            token = session.ask("Service account key file (JSON; empty to skip): ", False).strip()
            return Secret(token=os.path.abspath(os.path.expanduser(token))) if token else None
        key = session.ask("Access key (empty to skip): ", False).strip()
        if not key:
            return None
        secret = session.ask("Secret key (hidden): ", True).strip()
    except EOFError:
        return None
    return Secret(key=key, secret=secret) if secret else None


def _prompt(url: str, target: Target, options: dict[str, Any], session: Session, cfile: CredentialsFile) -> dict[str, Any]:
    provider = PROVIDERS[target.scheme]
    secret = ask_secret(target, session)
    if secret is None:
        session.say("git data: no credentials given; trying the provider's defaults")
        return {}
    added = provider.to_options(secret)
    try:
        probe(url, {**options, **added}, target.name)
    except AccessDenied as err:
        raise AccessDenied(
            f"access denied for {target.label} with the credentials just entered; nothing was "
            f"stored; check them and run `{target.set_command}`"
        ) from err
    try:
        answer = session.ask("Store credentials? (y/N) ", False).strip().lower()
    except EOFError:
        answer = ""
    if answer in ("y", "yes"):
        try:
            wide = session.ask(f"Use these for every bucket at {target.endpoint}? (y/N) ", False).strip().lower()
        except EOFError:
            wide = ""
        if wide in ("y", "yes"):
            cfile.set(target.endpoint_ident, secret, target.name)
            session.say(
                f"git data: credentials for every bucket at {target.endpoint} stored in {cfile.path} "
                f"(mode 0600); a pair stored for one bucket (`git data credentials set URL`) still wins there"
            )
        else:
            cfile.set(target.ident, secret, target.name)
            session.say(f"git data: credentials for {target.label} stored in {cfile.path} (mode 0600)")
    else:
        session.say("git data: credentials not stored; they are used for this command only")
    return added


# --------------------------------------------------------------------------
# Storages of a project (for `git data credentials set NAME` and `ls`)


@dataclass
class NamedStorage:
    name: str
    kind: str  # "remote", "storage", "dataset"
    url: str
    options: dict[str, Any]


def project_storages(project: Project) -> list[NamedStorage]:
    """Every named thing with a URL in ``.gitdata``: data remotes, storages, datasets."""
    from ..config import parse_option_value

    out = []
    for kind in ("remote", "storage", "dataset"):
        for name, keys in sorted(project.config.sections(kind).items()):
            url = next(
                (v[-1] for k in ("url", "source", "storage") if (v := keys.get(k)) and "://" in v[-1]),
                None,
            )
            if not url:
                continue
            opts: dict[str, Any] = {}
            for line in keys.get("option", []):
                k, sep, v = line.partition("=")
                if sep:
                    opts[k] = parse_option_value(v)
            out.append(NamedStorage(name, kind, url, _clone_overrides(project, name, opts)))
    return out
