"""Datasets: named folders of data that live outside git (see docs/datasets.md).

The package, one module per job:

- :mod:`.model` what ``.gitdata`` declares (datasets, their sources), the files a dataset holds
- :mod:`.register` adding data: registering external objects, copying local files in
- :mod:`.modes` how a dataset is staged in this clone, and git's view of its folder
- :mod:`.download` bytes onto disk: pinned, bounded, verified, through the guarded writer
- :mod:`.staging` ``dataset stage``: planning, and the copy, ``--location``, ``--existing`` modes
- :mod:`.unstage` ``dataset unstage``: back to pointers, keeping every changed file
- :mod:`.read` one tracked file's bytes without staging it (``git data cat``)
- :mod:`.status` the datasets section of ``git data status`` (local state, sources compared)
- :mod:`.update` ``git data update``: re-record what changed at the sources
- :mod:`.manifest` a big dataset's manifest (pure: the format), :mod:`.objects` its object (and where a dataset's objects go)
- :mod:`.diff` ``git data diff``: data files that differ between two commits, manifests file by file

The names below are the package's API (docs/api.md); submodules import each
other directly, never through this file.
"""

from .download import ChangedMeanwhile, check_registered_size, open_kwargs
from .model import (
    DEFAULT_ROOT,
    Dataset,
    DatasetError,
    NameClash,
    Source,
    UnknownDataset,
    UnsafePath,
    UnsafeSource,
    check_folder,
    create,
    dataset_at,
    default_creator,
    edit,
    files,
    fill_sizes,
    get,
    git_add,
    is_versioned,
    list_source,
    load_all,
    object_store_for,
    open_source,
    read_pointer_file,
    recorded_manifest,
    refused,
    remove,
    safe_relpath,
    select,
    source_roots,
    split_by_storage,
    split_source,
    within,
    write_small,
)
from .modes import (
    MODES,
    RemoteChanged,
    StageError,
    StageReport,
    TooLarge,
    check_folder_is_ours,
    current_mode,
    exclude_folder,
    has_content,
    linked_modified_paths,
    max_bytes,
    modified_paths,
    set_mode,
    skip_worktree,
    write_pointer,
)
from .read import open_file
from .register import AddReport, add_local, is_remote, register, registered_pointer
from .staging import stage
from .unstage import UnstageReport, unstage, unstage_unlocked
from .update import UpdateReport, update

__all__ = [
    "DEFAULT_ROOT", "MODES", "AddReport", "ChangedMeanwhile", "Dataset", "DatasetError", "NameClash",
    "RemoteChanged", "Source", "StageError", "StageReport", "TooLarge", "UnknownDataset", "UnsafePath",
    "UnsafeSource", "UnstageReport", "UpdateReport", "add_local", "check_folder", "check_folder_is_ours",
    "check_registered_size", "create", "current_mode", "dataset_at", "default_creator", "edit", "exclude_folder",
    "files", "fill_sizes", "get", "git_add", "has_content", "is_remote", "is_versioned",
    "linked_modified_paths", "list_source", "load_all", "max_bytes", "modified_paths",
    "object_store_for", "open_file", "open_kwargs", "open_source", "read_pointer_file", "recorded_manifest", "refused",
    "register", "registered_pointer", "remove", "safe_relpath", "select", "set_mode", "skip_worktree",
    "source_roots", "split_by_storage", "split_source", "stage", "unstage", "unstage_unlocked", "update",
    "within", "write_pointer", "write_small",
]  # fmt: skip
