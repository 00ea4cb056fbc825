"""Storages: bucket folders mapped into a project and synced both ways (docs/storages.md).

The package, one module per job:

- :mod:`.spec` what ``.gitdata`` declares (a storage's URL, options, project path, mode)
- :mod:`.manifest` the base manifest: what both sides held after the last sync
- :mod:`.listing` what each side holds now (a local walk, one remote listing)
- :mod:`gitdata.syncplan` the pure decision table (kept apart: it has no I/O at all)
- :mod:`.engine` carrying a plan out, every write conditional on the other side
- :mod:`.staging` ``storage stage`` / ``unstage``
- :mod:`.status` status rows and JSON

The names below are the package's API (docs/api.md); submodules import each
other directly, never through this file.
"""

from ..storage import TMP_PREFIX
from .engine import (
    NotStaged,
    Prepared,
    RaceConflict,
    SyncError,
    SyncRefused,
    SyncResult,
    Unsynced,
    execute,
    prepare,
    sync,
    utc_stamp,
)
from .listing import iter_remote, remote_md5, walk_local
from .manifest import Manifest, manifest_for
from .spec import (
    DEFAULT_ROOT,
    MODES,
    SECTION,
    StorageConfigError,
    StorageSpec,
    UnknownStorage,
    UnsafeStorage,
    add,
    checked_local_dir,
    get,
    ignore_path,
    load_all,
    local_dir,
    location,
    open_remote,
    project_path,
    refused,
    remove,
    set_location,
    unignore_path,
)
from .staging import is_staged, stage, unstage, unsynced_local
from .status import fp_json, plan_json, result_json, status_rows, storage_status

__all__ = [
    "DEFAULT_ROOT", "MODES", "SECTION", "TMP_PREFIX", "Manifest", "NotStaged", "Prepared",
    "RaceConflict", "StorageConfigError", "StorageSpec", "SyncError", "SyncRefused", "SyncResult",
    "UnknownStorage", "UnsafeStorage", "Unsynced", "add", "checked_local_dir", "execute", "fp_json",
    "get", "ignore_path", "is_staged", "iter_remote", "load_all", "local_dir", "location",
    "manifest_for", "open_remote", "plan_json", "prepare", "project_path", "refused", "remote_md5",
    "remove", "result_json", "set_location", "stage", "status_rows", "storage_status",
    "sync", "unignore_path", "unstage", "unsynced_local", "utc_stamp", "walk_local",
]  # fmt: skip
