"""The mount service's requests, checked (pure: no I/O).

A request body is JSON. Everything in it is untrusted: it comes from a
session process of another user. :func:`parse_mount` turns a body into a
:class:`MountRequest` or raises :class:`ApiError` with the HTTP status and
one reason; the service never sees a half-checked request.
"""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

KINDS = ("dataset", "storage")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
MAX_BODY = 64 << 10
CREDENTIAL_KEYS = ("key", "secret", "token")
OPTION_KEYS = ("endpoint_url", "region_name", "anon")


class ApiError(Exception):
    """An answer other than success: ``status`` (4xx/5xx) and one ``reason``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class MountRequest:
    kind: str
    name: str
    project: str  # absolute, normalized
    mountpoint: str  # absolute, normalized, inside project
    url: str | None = None  # storages: s3:// URL
    options: dict[str, Any] = field(default_factory=dict)
    credentials: dict[str, str] = field(default_factory=dict)
    for_uid: int | None = None  # root callers only: whose mount this is (start-of-session mounts)

    def public(self) -> dict[str, Any]:
        """What may be echoed back or logged: never the credentials."""
        return {"kind": self.kind, "name": self.name, "project": self.project, "mountpoint": self.mountpoint,
                "url": self.url}  # fmt: skip


def _abs_path(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ApiError(400, f"{what} must be a non-empty string")
    if any(c in value for c in "\0\n\r"):
        raise ApiError(400, f"{what} holds a NUL or line break")
    if not value.startswith("/"):
        raise ApiError(400, f"{what} must be an absolute path")
    if ".." in value.split("/"):
        raise ApiError(400, f"{what} must not contain '..'")
    if len(value) > 4096:
        raise ApiError(400, f"{what} is too long")
    return posixpath.normpath(value)


def decode(body: bytes) -> dict[str, Any]:
    if len(body) > MAX_BODY:
        raise ApiError(413, f"the request body is over {MAX_BODY} bytes")
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise ApiError(400, f"the request body is not JSON: {err}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return data


def parse_mount(body: bytes) -> MountRequest:
    """A checked mount request (what ``POST /v1/mounts`` takes)."""
    data = decode(body)
    unknown = set(data) - {"kind", "name", "project", "mountpoint", "url", "options", "credentials", "for_uid"}
    if unknown:
        raise ApiError(400, f"unknown field(s): {', '.join(sorted(unknown))}")
    kind = data.get("kind")
    if kind not in KINDS:
        raise ApiError(400, f"kind must be one of {', '.join(KINDS)}")
    name = data.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise ApiError(400, "name must be 1-100 letters, digits, '.', '_' or '-', not starting with a dot")
    project = _abs_path(data.get("project"), "project")
    mountpoint = _abs_path(data.get("mountpoint"), "mountpoint")
    if not mountpoint.startswith(project.rstrip("/") + "/"):
        raise ApiError(400, "mountpoint must be inside the project")
    if ".git" in [p.lower() for p in mountpoint[len(project) :].split("/")]:
        raise ApiError(400, "mountpoint must not be inside .git")
    options = data.get("options") or {}
    credentials = data.get("credentials") or {}
    if not isinstance(options, dict) or set(options) - set(OPTION_KEYS):
        raise ApiError(400, f"options may only hold {', '.join(OPTION_KEYS)}")
    if not isinstance(credentials, dict) or set(credentials) - set(CREDENTIAL_KEYS) or not all(
        isinstance(v, str) and v and len(v) < 4096 for v in credentials.values()
    ):
        raise ApiError(400, f"credentials may only hold non-empty strings {', '.join(CREDENTIAL_KEYS)}")
    if credentials and not {"key", "secret"} <= set(credentials):
        raise ApiError(400, "credentials need both key and secret")
    url = data.get("url")
    if kind == "storage":
        if not isinstance(url, str) or urlsplit(url).scheme not in ("s3", "s3a") or not urlsplit(url).netloc:
            raise ApiError(400, "a storage mount needs an s3:// url (the service mounts no local folders)")
        if not credentials and not options.get("anon"):
            raise ApiError(400, "a storage mount needs credentials (key and secret) or options.anon")
        endpoint = options.get("endpoint_url")
        if endpoint is not None and (not isinstance(endpoint, str)
                                     or urlsplit(endpoint).scheme not in ("http", "https")):  # fmt: skip
            raise ApiError(400, "options.endpoint_url must be an http(s) URL")
    elif url is not None:
        raise ApiError(400, "url is only for storage mounts")
    for k in ("region_name",):
        if k in options and (not isinstance(options[k], str) or not re.match(r"^[a-z0-9-]{1,40}$", options[k])):
            raise ApiError(400, f"options.{k} is not a region name")
    if "anon" in options and not isinstance(options["anon"], bool):
        raise ApiError(400, "options.anon must be true or false")
    for_uid = data.get("for_uid")
    if for_uid is not None and (isinstance(for_uid, bool) or not isinstance(for_uid, int) or not 0 <= for_uid < 2**31):
        raise ApiError(400, "for_uid must be a user id")
    return MountRequest(kind=kind, name=name, project=project, mountpoint=mountpoint, url=url,
                        options=dict(options), credentials=dict(credentials), for_uid=for_uid)  # fmt: skip
