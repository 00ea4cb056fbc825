"""Does a storage's bucket exist? Asked when a storage is added and by `git data doctor`.

A missing bucket otherwise shows up much later, as "upload objects/…: not
found" in the middle of a push. One lookup of the bucket itself tells a
missing bucket apart from refused credentials and from a server that does
not answer (those fail the credentials probe first).
"""

from __future__ import annotations

import os
from typing import Any

from . import credentials as cred
from .project import Project
from .retry import RetryPolicy
from .storage import Storage
from .storage.errors import (
    BackendMissing,
    ObjectNotFound,
    StorageError,
    UnsupportedURL,
    redact_url,
    translate,
)

#: Checks answer quickly: a dead server is reported, not waited for.
CHECK_RETRY = RetryPolicy(attempts=2, max_time=5.0)


class BucketMissing(StorageError):
    """The storage's bucket (or, for a folder given with options, the folder) does not exist."""


def root_problem(storage: Storage) -> str | None:
    """What is missing at the storage's root, or None: its bucket, or its folder."""
    if storage.url.startswith("file:"):
        root = storage.local_root or storage.root
        return None if os.path.isdir(root) else f"folder {root} does not exist"
    bucket = storage.root.split("/", 1)[0]
    try:
        storage.fs.invalidate_cache(bucket)
        storage.fs.info(bucket)
    except Exception as err:  # vendor errors: translated here, once
        translated = translate(err, f"look up bucket {bucket}", storage.display, storage.name)
        if isinstance(translated, ObjectNotFound):
            return f"bucket {bucket} does not exist"
        raise translated from err
    return None


def at_endpoint(url: str, options: dict[str, Any]) -> str:
    """`` at http://host:port`` (the endpoint of an object store), else ``""``."""
    target = cred.target_for(url, options)
    return f" at {target.endpoint}" if target is not None else ""


def check_new_storage(project: Project | None, name: str, url: str, options: dict[str, Any], skip_hint: str) -> str | None:
    """Before ``remote add`` / ``storage add`` records ``url``: raise when its bucket
    is missing or the credentials are refused.

    Local folders are not checked (the first push creates them). Returns a
    note when the check could not be made (no credentials yet, or the server
    did not answer: being offline is no reason to refuse), else None.
    ``skip_hint`` names the option that skips the check, for the messages.
    """
    if "://" not in url or url.startswith("file:"):
        return None
    try:
        if project is not None:
            opened = project.open_storage(url, dict(options), name=name, tracked=False)
            options = opened.options
        storage = Storage(url, options, name=name, retry=CHECK_RETRY)
        storage.exists(cred.PROBE_KEY)  # refused credentials, dead servers
        missing = root_problem(storage)
    except (UnsupportedURL, BackendMissing):
        return None  # the caller reports these with its own words
    except cred.CredentialsMissing:
        return (
            f"the bucket of {name} was not checked: no credentials for it yet; store them with "
            f"`git data credentials set {name}`"
        )
    except StorageError as err:
        if err.transient:  # no answer is no verdict: one may add a storage while offline
            return f"the bucket of {name} was not checked: {err}; `git data doctor` checks it later"
        raise type(err)(f"{err} ({skip_hint} adds it without this check)") from err
    if missing:
        raise BucketMissing(
            f"{missing}{at_endpoint(url, options)} ({name} at {redact_url(url)}): create it first, "
            f"or correct the URL ({skip_hint} adds it without this check)"
        )
    return None
