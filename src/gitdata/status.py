"""``git data status``: what is staged, changed, pushed, and whether remotes still match.

The report is built from *section providers*: each takes the project and the
options and returns rows. Datasets are one section; other kinds of data (for
example mapped storages) add their own provider to :data:`SECTIONS`.

The datasets' own section (and its pure comparisons) is
:mod:`gitdata.datasets.status`; ``git data update`` is
:mod:`gitdata.datasets.update`.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from . import datasets as ds_mod
from .datasets.status import dataset_rows, local_state, recorded_fingerprint, remote_states  # noqa: F401 - re-exported
from .errors import GitDataError
from .project import Project
from .statusrows import (  # noqa: F401 - the row model, re-exported for status's users
    CHANGED,
    DELETED,
    LINKED,
    MISSING,
    MODIFIED,
    NEW,
    NOT_MATERIALIZED,
    NOT_PUSHED,
    POINTER,
    REFERENCE,
    REFUSED,
    STAGED,
    STALE,
    UNCHANGED,
    UNCHECKED,
    UNREADABLE,
    StatusOptions,
    StatusRow,
)

SectionProvider = Callable[[Project, StatusOptions], list[StatusRow]]


def storage_rows(project: Project, options: StatusOptions) -> list[StatusRow]:
    from .storages.status import status_rows  # imported late: the sync engine is heavier

    return status_rows(project, options)


def _storage_names(project: Project) -> set[str]:
    from .storages import load_all

    return set(load_all(project))


def worktree_rows(project: Project, options: StatusOptions) -> list[StatusRow]:
    """Files outside datasets whose content never reached the work tree (a
    failed or killed checkout: the pointer is still there); removes the
    temporary files such a checkout left."""
    if options.names:
        return []
    from .maintenance import not_materialized, remove_stale_tmp
    from .scan import scan_index

    scan = scan_index(project.repo)
    remove_stale_tmp(project, scan)
    return [
        StatusRow("files", "work tree", path, NOT_MATERIALIZED, detail="run `git data pull`")
        for path in sorted(not_materialized(project, scan))
    ]


def run_rows(project: Project, options: StatusOptions, rows: list[StatusRow]) -> list[StatusRow]:
    """Recorded runs (gitdata.provenance): stale ones with the reason, from the rows above."""
    from .provenance.observe import status_rows

    return status_rows(project, options, rows, dataset_rows)


def _run_names(project: Project) -> set[str]:
    from .provenance.observe import run_names

    return run_names(project)


#: Every section of ``git data status``, in order. Add a provider here.
SECTIONS: list[SectionProvider] = [worktree_rows, dataset_rows, storage_rows]

#: Sections that read the rows of :data:`SECTIONS` (runs reuse the datasets' listings), after them.
DERIVED: list[Callable[[Project, StatusOptions, list[StatusRow]], list[StatusRow]]] = [run_rows]

#: The names each section knows (``git data status NAME`` must match one). Add yours here.
NAMES: list[Callable[[Project], set[str]]] = [
    lambda project: set(ds_mod.load_all(project)),
    _storage_names,
    _run_names,
]


class UnknownName(GitDataError):
    pass


def collect(project: Project, options: StatusOptions) -> list[StatusRow]:
    if options.names:
        known: set[str] = set()
        for names in NAMES:
            known |= names(project)
        unknown = [n for n in options.names if n not in known]
        if unknown:
            raise UnknownName(
                f"no dataset named {unknown[0]!r} (known: {', '.join(sorted(known)) or 'none yet'}); "
                "see `git data dataset ls`"
            )
    rows: list[StatusRow] = []
    for provider in SECTIONS:
        rows += provider(project, options)
    for derived in DERIVED:
        rows += derived(project, options, rows)
    return rows


UNFINISHED_CHECKOUT = (
    "the last checkout did not finish: git's index is empty while HEAD has files (was git "
    "data's filter killed, or the disk full?); run `git restore --source=HEAD --staged --worktree :/`, "
    "then `git data pull`"
)


#: an index with no entries is a 12-byte header, extensions and a hash: far below this
_EMPTY_INDEX_MAX = 4096


def unfinished_checkout(project: Project) -> str | None:
    """What to do when a checkout was cut off (git's filter process died mid-way, which makes
    git abort with an empty index), or None. A sizeable index file answers at once; a small
    one costs one ``ls-files`` (a split index keeps its entries elsewhere), ``ls-tree`` only then."""
    repo = project.repo
    try:  # an index file this size holds entries: no git process on every status and pull
        if os.path.getsize(os.path.join(repo.git_dir, "index")) > _EMPTY_INDEX_MAX:
            return None
    except OSError:
        pass  # no index file at all: ask git
    if next(iter(repo.ls_index()), None) is not None or repo.rev_parse("HEAD") is None:
        return None
    return UNFINISHED_CHECKOUT if next(iter(repo.ls_tree("HEAD")), None) is not None else None
