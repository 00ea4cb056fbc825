"""What a storage's sync would do, as status rows and JSON."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from .. import syncplan as sp
from ..errors import GitDataError
from ..storage import Fingerprint
from . import spec as storages_mod

if TYPE_CHECKING:
    from ..project import Project
from .engine import Prepared, SyncResult
from .listing import iter_remote
from .manifest import manifest_for
from .spool import sides


def storage_status(project: Project, names: Iterable[str] | None = None, remote: bool = False) -> list[dict]:
    """Files of staged storages that changed since the base (locally; remotely with ``remote``).

    One row per changed file: ``{"storage", "path", "side", "state"}``.
    """
    specs = storages_mod.load_all(project)
    rows: list[dict] = []
    for name in sorted(names or specs):
        spec = storages_mod.get(project, name)
        manifest = manifest_for(project, name)
        if spec.mode != "copy" or not manifest.exists():
            continue
        scope = manifest.scope()
        root = storages_mod.checked_local_dir(project, spec, create=False)
        listing = iter_remote(storages_mod.open_remote(project, spec), scope) if remote else None
        remote_rows: list[dict] = []
        refused: dict[str, str] = {}  # local names no key can hold: sync refuses them too
        for path, b, lo, ro in sides(manifest, root, scope, project.algorithm, listing, project.cache.tmp_dir, refused):
            state = sp.local_state(b, lo)
            if state not in (sp.SAME, sp.NONE):
                rows.append({"storage": name, "path": path, "side": "local", "state": state})
            if remote:
                state = sp.remote_state(b, ro)
                if state not in (sp.SAME, sp.NONE):
                    remote_rows.append({"storage": name, "path": path, "side": "remote", "state": state})
        rows += remote_rows
        rows += [{"storage": name, "path": p, "side": "local", "state": sp.NEW, "refused": why}
                 for p, why in sorted(refused.items())]  # fmt: skip
    return rows


def status_rows(project: Project, options: Any) -> list[Any]:
    """The storages section of ``git data status`` (a provider for :data:`gitdata.status.SECTIONS`)."""
    from .. import statusrows as st

    specs = storages_mod.load_all(project)
    names = [n for n in specs if not options.names or n in options.names]
    local_words = {sp.CHANGED: st.MODIFIED, sp.NEW: st.NOT_PUSHED, sp.DELETED: st.MISSING}
    rows: dict[tuple[str, str], Any] = {}
    for name in names:  # one at a time: a storage that cannot be asked does not stop the others
        try:
            found = storage_status(project, [name], remote=options.remote)
        except GitDataError as err:
            rows[(name, "")] = st.StatusRow("storages", name, "", None, st.UNCHECKED, str(err))
            continue
        for r in found:
            key = (r["storage"], r["path"])
            row = rows.setdefault(key, st.StatusRow("storages", r["storage"], r["path"], None))
            if r["side"] == "local":
                row.local = local_words[r["state"]]
                if "refused" in r:  # never synced as it is named
                    row.remote, row.detail = st.REFUSED, r["refused"]
            else:
                row.remote = r["state"]
    return [rows[k] for k in sorted(rows)]


def fp_json(fp: Fingerprint | None) -> dict[str, Any] | None:
    return None if fp is None else fp.stated()


def action_rows(plan: sp.Plan) -> Iterator[dict[str, Any]]:
    """The plan's actions as ``plan_json`` lists them, one at a time (read from the spool)."""
    for a in plan.iter_actions():
        if a.kind != sp.REFRESH:
            yield {"action": a.kind, "path": a.path, "reason": a.reason, "keep": a.keep}


def _as_list(make: Callable[[], Iterable[Any]]) -> list[Any]:
    return list(make())


def plan_json(prep: Prepared, collect: Callable[[Callable[[], Iterable[Any]]], Any] = _as_list) -> dict[str, Any]:
    """What ``storage sync --json`` says of a plan. ``collect`` makes the actions' value from a
    maker of their rows (default a list; the CLI writes them as they are read)."""
    plan = prep.plan
    return {
        "storage": prep.spec.name,
        "url": prep.storage.display,
        "blocked": plan.blocked,
        "held": [{"path": p, "folder": f} for p, f in plan.held],
        "actions": collect(lambda: action_rows(plan)),
        "conflicts": [
            {
                "path": c.path,
                "kind": c.kind,
                "local": None if c.local is None else {"size": c.local.size, "hash": c.local.hash},
                "remote": fp_json(c.remote),
            }
            for c in plan.conflicts
        ],
        "pending": [{"path": p, "reason": r} for p, r in plan.pending],
        "refused": [{"key": k, "error": why} for k, why in sorted(prep.refused.items())],
        "resolved": [{"path": p, "resolution": r} for p, r in plan.resolved],
        "counts": plan.counts(),
    }


def result_json(
    res: SyncResult, dry_run: bool, collect: Callable[[Callable[[], Iterable[Any]]], Any] = _as_list
) -> dict[str, Any]:
    out = plan_json(res.prepared, collect)
    out["dry_run"] = dry_run
    out["ok"] = res.ok
    if not dry_run:
        out["done"] = sum(res.done_counts[k] for k in sp.TRANSFERS)
        out["failed"] = [{"path": p, "error": str(e)} for p, e in sorted(res.failed.items())]
        out["races"] = [{"path": p, "error": e} for p, e in sorted(res.races.items())]
        out["kept"] = res.kept
    return out
