"""Storage exceptions, and the one place vendor errors are translated into them."""

from __future__ import annotations

import errno
from urllib.parse import urlsplit, urlunsplit

from ..errors import GitDataError


def redact_url(url: str) -> str:
    """Drop user info (``user:secret@``) from a URL so it can be shown."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, "***@" + host, parts.path, parts.query, parts.fragment))


def userinfo_problem(url: str) -> str | None:
    """The start of the error for a URL that carries user info (``user:secret@host``), else
    None. The one check of its kind: `.gitdata`, remotes, datasets and credentials use it."""
    authority = url.split("://", 1)[1].split("/", 1)[0] if "://" in url else ""
    if "@" not in authority:
        return None
    return f"URL {redact_url(url)} carries user info; credentials never go in a URL or in .gitdata"


class StorageError(GitDataError):
    """A storage operation failed.

    ``transient``: the same request may succeed if sent again (the server is
    unreachable or overloaded, the connection broke mid-transfer). Set by
    :func:`translate` from exception types and service codes only; the one
    retry policy (:mod:`gitdata.retry`) retries these and nothing else.
    """

    transient = False


class ObjectNotFound(StorageError):
    pass


class AccessDenied(StorageError):
    exit_code = 3


class StorageUnreachable(StorageError):
    transient = True


class TransientStorageError(StorageError):
    transient = True


class BackendMissing(StorageError):
    pass


class UnsupportedURL(StorageError):
    pass


class PreconditionFailed(StorageError):
    """A conditional write lost: the object exists or changed meanwhile."""


class DiskFull(StorageError):
    pass


_UNREACHABLE_NAMES = frozenset(
    {
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ClientConnectorError",
        "ServerDisconnectedError",
        "ConnectionClosedError",
        "ReadTimeoutError",
        "ClientOSError",
        "ConnectError",
        "ConnectTimeout",
    }
)
#: A response or a body cut short: the request may succeed if sent again.
_BROKEN_TRANSFER_NAMES = frozenset(
    {"IncompleteRead", "ClientPayloadError", "ResponseStreamingError", "ResponseParserError", "HTTPClientError"}
)
_DENIED_CODES = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden", "401", "403"}
)
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "NotFound", "404"})
_PRECONDITION_CODES = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict"})
_TRANSIENT_CODES = frozenset(
    {
        "SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "Throttling",
        "ThrottlingException", "RequestLimitExceeded", "TooManyRequests", "BandwidthLimitExceeded",
        "429", "500", "502", "503", "504",
    }
)  # fmt: skip


def _error_code(err: BaseException) -> str | None:
    response = getattr(err, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
    code = getattr(err, "code", None)
    if isinstance(code, int | str) and not isinstance(err, OSError):
        return str(code)
    return None


def from_service(err: BaseException) -> bool:
    """Whether ``err`` (or what caused it) is a service's answer: it carries a
    service error code (s3fs raises ``PermissionError`` from a botocore 403)."""
    e: BaseException | None = err
    for _ in range(8):
        if e is None:
            return False
        if _error_code(e):
            return True
        e = e.__cause__
    return False


def translate(
    err: BaseException, what: str, where: str, storage_name: str | None = None, anonymous: bool = False
) -> StorageError:
    """Map an exception raised by fsspec or a vendor SDK to a :class:`StorageError`.

    ``what`` says what was being done ("upload data/x.bin"), ``where`` is the
    (already redacted) location. Decided by exception types and service error
    codes, never by matching message text.
    """
    if isinstance(err, StorageError):
        return err
    label = f"storage {storage_name!r} at {where}" if storage_name else where
    chain: list[BaseException] = []
    e: BaseException | None = err
    while e is not None and len(chain) < 8:
        chain.append(e)
        e = e.__cause__ or e.__context__
    names = {cls.__name__ for x in chain for cls in type(x).__mro__}
    codes = {c for x in chain if (c := _error_code(x))}
    if (isinstance(err, PermissionError) or codes & _DENIED_CODES) and anonymous:
        return AccessDenied(
            f"access denied for {label} while trying to {what}: it was read anonymously (anon=true), "
            "and the bucket does not let anyone read that; ask its owner for access, then remove "
            "anon=true and store credentials with "
            f"`git data credentials set {storage_name or 'URL'}`"
        )
    if isinstance(err, PermissionError) or codes & _DENIED_CODES:
        fix = (
            f"run `git data credentials set {storage_name}`"
            if storage_name
            else "check the credentials for this storage"
        )
        return AccessDenied(f"access denied for {label} while trying to {what}; {fix}")
    if codes & _PRECONDITION_CODES:
        return PreconditionFailed(f"{what}: {label} changed meanwhile (conditional write refused)")
    if isinstance(err, FileNotFoundError) or codes & _NOT_FOUND_CODES:
        return ObjectNotFound(f"{what}: not found on {label}")
    if isinstance(err, FileExistsError):
        return PreconditionFailed(f"{what}: already exists on {label}")
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        return DiskFull(f"{what}: no space left on device ({label}); free some space and retry")
    if names & _UNREACHABLE_NAMES or isinstance(err, ConnectionError | TimeoutError):
        return StorageUnreachable(
            f"cannot reach {label} to {what}: is the endpoint right and the server up? "
            f"({type(err).__name__})"
        )
    if codes & _TRANSIENT_CODES:
        return TransientStorageError(
            f"{what}: {label} answered {sorted(codes & _TRANSIENT_CODES)[0]} (busy or failing); "
            "retry later"
        )
    if names & _BROKEN_TRANSFER_NAMES:
        return TransientStorageError(f"{what}: the transfer from {label} broke off ({type(err).__name__}); retry later")
    detail = str(err) or type(err).__name__
    return StorageError(f"{what} on {label} failed: {type(err).__name__}: {detail}")
