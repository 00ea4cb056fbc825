"""Storage over fsspec: one class, thin backend adapters, translated errors."""

from .core import Storage, normalize_url, open_filesystem
from .errors import (
    AccessDenied,
    BackendMissing,
    DiskFull,
    ObjectNotFound,
    PreconditionFailed,
    StorageError,
    StorageUnreachable,
    UnsupportedURL,
    redact_url,
)
from .fingerprint import Fingerprint
from .objects import ObjectStore, key_to_oid, oid_to_key

__all__ = [
    "AccessDenied",
    "BackendMissing",
    "DiskFull",
    "Fingerprint",
    "ObjectNotFound",
    "ObjectStore",
    "PreconditionFailed",
    "Storage",
    "StorageError",
    "StorageUnreachable",
    "UnsupportedURL",
    "key_to_oid",
    "normalize_url",
    "oid_to_key",
    "open_filesystem",
    "redact_url",
]
