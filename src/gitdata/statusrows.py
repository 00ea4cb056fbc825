"""The rows of ``git data status``: one file's local and remote state (no I/O).

Every section of the status (work-tree files, datasets, storages, and any
feature that adds its own) builds these rows; :mod:`gitdata.status` collects
them. Kept apart so that a section's module and the collector do not import
each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .storage.fingerprint import Fingerprint

# local states
STAGED = "staged"
POINTER = "pointer only"
MODIFIED = "modified"
NOT_PUSHED = "not pushed"
MISSING = "missing"
LINKED = "staged (linked)"
REFERENCE = "reference"
NOT_MATERIALIZED = "not materialized"
# remote states
UNCHANGED = "unchanged"
CHANGED = "changed"
DELETED = "deleted"
NEW = "new"
REFUSED = "refused"  # a registered source outside the dataset's sources: never read
UNCHECKED = "not checked"  # the remote could not be asked (no credentials, unreachable): detail says why
# run states (section "runs", gitdata.provenance)
STALE = "stale"
UNREADABLE = "unreadable"


@dataclass(frozen=True)
class StatusOptions:
    names: tuple[str, ...] = ()  # limit to these datasets (or other named things)
    remote: bool = False  # compare with the remotes (listings only)
    #: a row per file (``status -v``, ``--json``, the API); False: a row per file that is
    #: :attr:`StatusRow.notable`, the others counted in aggregate rows (``count``, path "")
    every_file: bool = True


@dataclass(slots=True)
class StatusRow:
    section: str  # "datasets", ...
    name: str  # the dataset (or storage) the file belongs to
    path: str
    local: str | None
    remote: str | None = None
    detail: str = ""
    #: the remote's current fingerprint, when it was listed (not shown)
    current: Fingerprint | None = field(default=None, repr=False, compare=False)
    #: a changed file's recorded source (not shown): what ``update`` records the change under
    source: str | None = field(default=None, repr=False, compare=False)
    #: how many files the row stands for: 1, or (an aggregate row, path "", never notable) the
    #: files of the dataset in these states that ``every_file=False`` did not list one by one
    count: int = 1

    @property
    def aggregate(self) -> bool:
        """A row counting files in unremarkable states, not one file (``every_file=False``)."""
        return not self.path and self.local is not None and not self.notable

    def as_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in _ROW_FIELDS}

    @property
    def notable(self) -> bool:
        """Worth showing in the short listing."""
        return is_notable(self.local, self.remote)


def is_notable(local: str | None, remote: str | None) -> bool:
    """Whether a file in these states is worth showing in the short listing (:attr:`StatusRow.notable`)."""
    return local in _NOTABLE_LOCAL or remote in _NOTABLE_REMOTE


_NOTABLE_LOCAL = frozenset((MODIFIED, NOT_PUSHED, MISSING, NOT_MATERIALIZED, STALE, UNREADABLE))
_NOTABLE_REMOTE = frozenset((CHANGED, DELETED, NEW, REFUSED, STALE, UNCHECKED))
#: what ``--json`` shows of a row (not the listed fingerprint, not the aggregate count)
_ROW_FIELDS = tuple(f for f in StatusRow.__dataclass_fields__ if f not in ("current", "source", "count"))
