"""Credential resolution for storages.

Every storage git data opens goes through :func:`resolve_options` (called by
``Project.open_storage``). For a storage that needs credentials (S3, GCS) the
first source that has some wins:

1. explicit options (``key``/``secret``, ``profile``, ``anon``, ``token``) and
   the provider's own configuration that needs no network: environment
   variables, ``AWS_PROFILE``, ``~/.aws/credentials``, ``~/.aws/config``,
   ``GOOGLE_APPLICATION_CREDENTIALS``, gcloud's application default
   credentials. git data then adds nothing and s3fs/gcsfs use them.
2. git's credential helpers (``git credential fill``), keyed by
   ``protocol=s3|gs``, ``host=<endpoint>``, ``path=<bucket>``; ``approve`` after
   the credentials worked, ``reject`` when the storage refused them.
3. the user's git data credentials file (``$XDG_CONFIG_HOME/gitdata/credentials``,
   mode 0600; refused when others can read it).
4. the provider's network sources (EC2 instance role, GCE metadata server).
5. an interactive prompt, only when the CLI enabled it (stdin is a terminal);
   otherwise :class:`CredentialsMissing` names ``git data credentials set``.

Credentials found in 2, 3 or 5 are checked once with one small request before
use. Secrets never enter ``.gitdata``, output, error messages or the
environment of child processes; :class:`Secret` hides them from ``repr``.
"""

from __future__ import annotations

import configparser
import contextlib
import fcntl
import getpass
import io
import os
import stat
import sys
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from . import writer
from .errors import GitDataError
from .storage.errors import AccessDenied, StorageError, redact_url, userinfo_problem


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
FILE_MODE = 0o600


class CredentialsError(GitDataError):
    pass


class InsecureCredentialsFile(CredentialsError):
    pass


class CredentialsMissing(AccessDenied):
    """No source has credentials for a storage and nobody can be asked."""


# --------------------------------------------------------------------------
# What a storage is, for credential purposes: provider, endpoint, bucket


@dataclass(frozen=True)
class Target:
    """The place credentials are for: ``scheme://host/bucket`` (no secrets)."""

    scheme: str  # "s3" or "gs"
    host: str  # endpoint host[:port], or the provider's public host
    bucket: str
    endpoint: str  # the endpoint URL, for messages
    name: str | None = None  # the storage name in the project, if any

    @property
    def ident(self) -> str:
        return f"{self.scheme}://{self.host}/{self.bucket}"

    @property
    def endpoint_ident(self) -> str:
        """The credentials-file section for every bucket at this endpoint."""
        return f"{self.scheme}://{self.host}/{ENDPOINT_WIDE}"

    @property
    def label(self) -> str:
        where = f"bucket {self.bucket} at {self.endpoint}"
        return f"storage {self.name!r} ({where})" if self.name else where

    @property
    def set_command(self) -> str:
        return f"git data credentials set {self.name or self.ident}"


#: The bucket name of a credentials-file entry that holds for every bucket at its endpoint.
ENDPOINT_WIDE = "*"


@dataclass(frozen=True)
class Secret:
    """A key pair (S3) or a token file (GCS). ``repr`` never shows the secret."""

    key: str = ""
    secret: str = field(default="", repr=False)
    token: str = ""  # GCS: path of a service-account JSON file

    def __repr__(self) -> str:
        return f"Secret(key={mask(self.key)!r}, token={self.token!r}, secret=***)"

    __str__ = __repr__


def mask(value: str) -> str:
    """Enough of an access key to recognise it, never the whole of it."""
    if not value:
        return ""
    return "****" + value[-4:] if len(value) > 8 else "****"


# --------------------------------------------------------------------------
# Providers: the only provider-specific code (which options, which chain)


class Provider:
    scheme = ""
    default_host = ""
    explicit_options: frozenset[str] = frozenset()
    env_hint = ""

    def endpoint(self, options: Mapping[str, Any], environ: Mapping[str, str]) -> str | None:
        ep = options.get("endpoint_url") or (options.get("client_kwargs") or {}).get("endpoint_url")
        return str(ep) if ep else None

    def has_explicit(self, options: Mapping[str, Any]) -> bool:
        return any(options.get(k) not in (None, "", False) for k in self.explicit_options)

    def ambient(self, options: Mapping[str, Any], environ: Mapping[str, str], network: bool) -> str | None:
        """Where the provider's own chain finds credentials, or ``None``."""
        raise NotImplementedError

    def to_options(self, secret: Secret) -> dict[str, Any]:
        raise NotImplementedError

    def complete(self, secret: Secret) -> bool:
        raise NotImplementedError

    def portable(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """Options that carry the credentials this process found in its own
        environment or profile, for another machine that lacks them (a Dask
        worker): none by default."""
        return {}


class S3Provider(Provider):
    scheme = "s3"
    default_host = "s3.amazonaws.com"
    explicit_options = frozenset(
        {"key", "secret", "token", "anon", "profile", "session", "username", "password"}
    )
    env_hint = "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"

    def endpoint(self, options: Mapping[str, Any], environ: Mapping[str, str]) -> str | None:
        return (
            super().endpoint(options, environ)
            or environ.get("AWS_ENDPOINT_URL_S3")
            or environ.get("AWS_ENDPOINT_URL")
            or None
        )

    def has_explicit(self, options: Mapping[str, Any]) -> bool:
        ck = options.get("client_kwargs") or {}
        return super().has_explicit(options) or bool(ck.get("aws_access_key_id"))

    def ambient(self, options: Mapping[str, Any], environ: Mapping[str, str], network: bool) -> str | None:
        try:
            import botocore.session
            from botocore.exceptions import BotoCoreError
        except ImportError:  # s3fs will say what is missing
            return None
        try:
            session = botocore.session.Session()
            resolver = session.get_component("credential_provider")
            if not network:
                for name in ("container-role", "iam-role"):
                    with contextlib.suppress(Exception):
                        resolver.remove(name)
            creds = resolver.load_credentials()
        except BotoCoreError:
            return None
        if creds is None:
            return None
        return f"aws:{getattr(creds, 'method', 'provider')}"

    def to_options(self, secret: Secret) -> dict[str, Any]:
        return {"key": secret.key, "secret": secret.secret}

    def portable(self, options: Mapping[str, Any]) -> dict[str, Any]:
        if self.has_explicit(options):
            return {}
        try:
            import botocore.session
            from botocore.exceptions import BotoCoreError

            creds = botocore.session.Session().get_credentials()
            frozen = creds.get_frozen_credentials() if creds is not None else None
        except (ImportError, BotoCoreError):
            return {}
        if frozen is None or not frozen.access_key:
            return {}
        out = {"key": frozen.access_key, "secret": frozen.secret_key}
        if frozen.token:
            out["token"] = frozen.token
        return out

    def complete(self, secret: Secret) -> bool:
        return bool(secret.key and secret.secret)


class GcsProvider(Provider):
    scheme = "gs"
    default_host = "storage.googleapis.com"
    explicit_options = frozenset({"token"})
    env_hint = "GOOGLE_APPLICATION_CREDENTIALS"

    def ambient(self, options: Mapping[str, Any], environ: Mapping[str, str], network: bool) -> str | None:
        if environ.get("GOOGLE_APPLICATION_CREDENTIALS"):
            return "gcp:GOOGLE_APPLICATION_CREDENTIALS"
        cfg = environ.get("CLOUDSDK_CONFIG") or os.path.join(_config_home(environ), "gcloud")
        if os.path.isfile(os.path.join(cfg, "application_default_credentials.json")):
            return "gcp:application-default"
        if network:
            try:
                import google.auth
                from google.auth.exceptions import GoogleAuthError

                google.auth.default()
                return "gcp:default"
            except (ImportError, GoogleAuthError):
                return None
        return None

    def to_options(self, secret: Secret) -> dict[str, Any]:
        return {"token": secret.token}

    def complete(self, secret: Secret) -> bool:
        return bool(secret.token)


PROVIDERS: dict[str, Provider] = {"s3": S3Provider(), "s3a": S3Provider(), "gs": GcsProvider(), "gcs": GcsProvider()}


def portable_options(url: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` plus the ambient credentials of this process (environment,
    profile) for ``url``'s provider, so that another machine can use them."""
    provider = provider_for(url)
    return {**options, **(provider.portable(options) if provider is not None else {})}


def provider_for(url: str) -> Provider | None:
    return PROVIDERS.get(url.split("://", 1)[0].lower()) if "://" in url else None


def target_for(url: str, options: Mapping[str, Any], name: str | None = None, environ: Mapping[str, str] | None = None) -> Target | None:
    """The credential target of a storage URL, or ``None`` if it needs none."""
    environ = os.environ if environ is None else environ
    provider = provider_for(url)
    if provider is None:
        return None
    parts = urlsplit(url)
    if problem := userinfo_problem(url):
        raise CredentialsError(f"{problem}; give them with `git data credentials set`")
    bucket = parts.netloc or parts.path.lstrip("/").split("/", 1)[0]
    if not bucket:
        raise CredentialsError(f"URL {redact_url(url)} names no bucket")
    endpoint = provider.endpoint(options, environ)
    if endpoint:
        ep = urlsplit(endpoint)
        host = (ep.hostname or "") + (f":{ep.port}" if ep.port else "")
        shown = redact_url(endpoint)
    else:
        host = provider.default_host
        shown = f"https://{host}"
    return Target(scheme=provider.scheme, host=host.lower(), bucket=bucket, endpoint=shown, name=name)


# --------------------------------------------------------------------------
# git's credential helpers


def _git_env(environ: Mapping[str, str]) -> dict[str, str]:
    """Environment for ``git credential``: never prompts, carries no cloud secrets."""
    env = {
        k: v
        for k, v in environ.items()
        if k not in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
    }
    env.update({"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": ""})
    return env


def _git_credential(action: str, target: Target, secret: Secret | None, cwd: str | None, environ: Mapping[str, str]) -> dict[str, str] | None:
    from .git.repo import GitError, run_git

    lines = [f"protocol={target.scheme}", f"host={target.host}", f"path={target.bucket}"]
    if secret is not None:
        user, password = (secret.key, secret.secret) if secret.key else ("token", secret.token)
        lines += [f"username={user}", f"password={password}"]
    if any(c in line for line in lines for c in "\r\n\0"):
        return None  # a value with a line break would inject attributes
    data = ("\n".join(lines) + "\n\n").encode()
    try:
        out = run_git(
            ["-c", "credential.interactive=false", "credential", action],
            cwd=cwd, input=data, check=action == "fill", env=_git_env(environ),
        )  # fmt: skip
    except GitError:
        return None  # no helper had it (git would prompt, but prompts are off)
    result: dict[str, str] = {}
    for line in out.decode("utf-8", "replace").splitlines():
        k, sep, v = line.partition("=")
        if sep:
            result[k] = v
    return result


def git_fill(target: Target, cwd: str | None = None, environ: Mapping[str, str] | None = None) -> Secret | None:
    got = _git_credential("fill", target, None, cwd, os.environ if environ is None else environ)
    if not got or not got.get("password"):
        return None
    if target.scheme == "gs":
        return Secret(token=got["password"])
    return Secret(key=got.get("username", ""), secret=got["password"])


def git_approve(target: Target, secret: Secret, cwd: str | None = None, environ: Mapping[str, str] | None = None) -> None:
    _git_credential("approve", target, secret, cwd, os.environ if environ is None else environ)


def git_reject(target: Target, secret: Secret | None, cwd: str | None = None, environ: Mapping[str, str] | None = None) -> None:
    _git_credential("reject", target, secret, cwd, os.environ if environ is None else environ)


# --------------------------------------------------------------------------
# The user's credentials file


def _config_home(environ: Mapping[str, str]) -> str:
    xdg = environ.get("XDG_CONFIG_HOME")
    if xdg and os.path.isabs(xdg):
        return xdg
    return os.path.join(os.path.expanduser("~"), ".config")


def credentials_path(environ: Mapping[str, str] | None = None) -> str:
    return os.path.join(_config_home(os.environ if environ is None else environ), "gitdata", "credentials")


@dataclass
class StoredEntry:
    ident: str
    secret: Secret
    storages: list[str]


class CredentialsFile:
    """``$XDG_CONFIG_HOME/gitdata/credentials``: INI, one section per target.

    Written atomically with mode 0600 (under a lock); refused when group or
    others may read it, or when another user owns it.
    """

    def __init__(self, path: str | None = None) -> None:
        self.path = path or credentials_path()

    def _check_mode(self, fd: int) -> None:
        st = os.fstat(fd)
        if st.st_mode & 0o077 or st.st_uid != os.getuid():
            why = (
                f"its mode is {stat.filemode(st.st_mode)} (other users may read it)"
                if st.st_mode & 0o077
                else "it belongs to another user"
            )
            raise InsecureCredentialsFile(
                f"refusing to read credentials file {self.path}: {why}; fix it with "
                f"`chmod 600 {self.path}` (and consider replacing the keys it holds)"
            )

    def _read(self) -> configparser.ConfigParser:
        parser = configparser.ConfigParser(interpolation=None, default_section="\0")
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return parser
        with os.fdopen(fd, "r", encoding="utf-8") as f:
            self._check_mode(f.fileno())
            try:
                parser.read_file(f, source=self.path)
            except configparser.Error as err:
                # the parser's message may quote a line (a secret): give only its position
                where = getattr(err, "lineno", None)
                raise CredentialsError(
                    f"credentials file {self.path} is malformed"
                    + (f" near line {where}" if where else "")
                    + "; fix it or remove it and run `git data credentials set` again"
                ) from None
        return parser

    def entries(self) -> list[StoredEntry]:
        parser = self._read()
        out = []
        for ident in parser.sections():
            sec = parser[ident]
            secret = Secret(key=sec.get("key", ""), secret=sec.get("secret", ""), token=sec.get("token", ""))
            out.append(StoredEntry(ident, secret, sec.get("storages", "").split()))
        return out

    def get(self, ident: str) -> Secret | None:
        for entry in self.entries():
            if entry.ident == ident:
                return entry.secret
        return None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[configparser.ConfigParser]:
        directory = os.path.dirname(self.path)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        lock_fd = os.open(os.path.join(directory, ".credentials.lock"), os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            parser = self._read()
            yield parser
            self._write(parser)
        finally:
            os.close(lock_fd)

    def _write(self, parser: configparser.ConfigParser) -> None:
        buf = io.StringIO()
        buf.write("# git data credentials: secrets, keep private (mode 0600). Never commit this file.\n")
        parser.write(buf)
        # created 0600 (mkstemp) and kept so whatever the umask; durable before the rename
        writer.write_small(self.path, buf.getvalue().encode("utf-8"), mode=FILE_MODE, fsync=True)

    def set(self, ident: str, secret: Secret, storage: str | None = None) -> None:
        for name, value in (("key", secret.key), ("secret", secret.secret), ("token", secret.token)):
            if any(c in value for c in "\r\n\0"):
                raise CredentialsError(f"the {name} contains a line break or NUL; check what was pasted")
        with self._locked() as parser:
            old = parser[ident].get("storages", "").split() if parser.has_section(ident) else []
            if parser.has_section(ident):
                parser.remove_section(ident)
            parser.add_section(ident)
            names = sorted(set(old) | ({storage} if storage else set()))
            if names:
                parser[ident]["storages"] = " ".join(names)
            for key, value in (("key", secret.key), ("secret", secret.secret), ("token", secret.token)):
                if value:
                    parser[ident][key] = value

    def remove(self, ident: str) -> bool:
        if not os.path.exists(self.path):
            return False
        with self._locked() as parser:
            return parser.remove_section(ident)


# --------------------------------------------------------------------------
# Sessions: who may be asked, and what was resolved in this process


def _ask(text: str, hidden: bool) -> str:
    if hidden:
        return getpass.getpass(text, stream=sys.stderr)
    sys.stderr.write(text)
    sys.stderr.flush()
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return line.rstrip("\r\n")


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass
class Session:
    """Per-process credential state. ``interactive`` allows prompting."""

    interactive: bool = False
    ask: Callable[[str, bool], str] = _ask
    say: Callable[[str], None] = _say
    resolved: dict[tuple[str | None, str], dict[str, Any]] = field(default_factory=dict)


_SESSION: ContextVar[Session | None] = ContextVar("gitdata_credentials_session", default=None)


def use_session(session: Session) -> None:
    """Install ``session`` for this context (the CLI does, once, in ``main``)."""
    _SESSION.set(session)


def current_session() -> Session:
    return _SESSION.get() or Session()


# --------------------------------------------------------------------------
# Resolution


def _clone_overrides(project: Project, name: str | None, options: dict[str, Any]) -> dict[str, Any]:
    if not name:
        return options
    for line in project.repo.config_get_all(f"gitdata.remote.{name}.option"):
        key, sep, value = line.partition("=")
        if sep:
            from .config import parse_option_value

            options[key] = parse_option_value(value)
    return options


def probe(url: str, options: Mapping[str, Any], name: str | None) -> None:
    """One small request with these options; raises :class:`AccessDenied` if refused."""
    from .storage import Storage

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
    from .config import parse_option_value

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
