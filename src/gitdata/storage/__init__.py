"""Storage: one interface (:mod:`.base`), a local folder through ``os``
(:mod:`.local`), everything else through fsspec (:mod:`.fsspec`) with thin
per-backend adapters (:mod:`.backends`), and errors translated once
(:mod:`.errors`). ``Storage(url, options)`` returns the implementation that
serves the URL."""

from .base import TMP_PREFIX, Capabilities, Storage, normalize_url
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
from .fsspec import FsspecStorage, open_filesystem
from .local import LocalStorage
from .objects import ObjectStore, key_to_oid, oid_to_key

__all__ = [
    "TMP_PREFIX",
    "AccessDenied",
    "BackendMissing",
    "Capabilities",
    "DiskFull",
    "Fingerprint",
    "FsspecStorage",
    "LocalStorage",
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
