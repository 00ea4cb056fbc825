"""What a storage is, for credential purposes: provider, endpoint, bucket.

:class:`Target` names the place credentials are for, :class:`Secret` holds
them; the providers are the only provider-specific code (which options count
as explicit credentials, which chain the SDK walks, how a secret becomes
storage options).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..errors import GitDataError
from ..storage.errors import redact_url, userinfo_problem


class CredentialsError(GitDataError):
    pass


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


def _config_home(environ: Mapping[str, str]) -> str:
    xdg = environ.get("XDG_CONFIG_HOME")
    if xdg and os.path.isabs(xdg):
        return xdg
    return os.path.join(os.path.expanduser("~"), ".config")


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
