"""Lineage of a path: which run made it, from which inputs, recursively. Pure: no I/O.

:func:`lineage` is what ``git data log PATH --json`` prints; :func:`dot`
draws it for Graphviz (files and folders as boxes, runs as ellipses, an
edge from each input to its run and from the run to each output).
"""

from __future__ import annotations

from collections.abc import Mapping

from .model import Record


def producer(records: Mapping[str, Record], path: str) -> Record | None:
    """The run whose output is ``path`` or a folder holding it."""
    for rec in records.values():
        for out in rec.outputs:
            if path == out.path or path.startswith(out.path + "/"):
                return rec
    return None


def lineage(records: Mapping[str, Record], path: str, _seen: frozenset[str] = frozenset()) -> dict[str, object]:
    """Which run produced ``path``, from which inputs at which identities, recursively.

    ``{"path", "identity"?, "run"?: {...}, "inputs"?: [node, ...]}``; a path
    no recorded run produced is a leaf.
    """
    node: dict[str, object] = {"path": path}
    rec = producer(records, path)
    if rec is None:
        return node
    out = next(o for o in rec.outputs if path == o.path or path.startswith(o.path + "/"))
    if out.path == path:
        node["identity"] = out.identity
    node["run"] = {"name": rec.name, "command": list(rec.command), "cwd": rec.cwd, "env": dict(rec.env),
                   "started": rec.started, "ended": rec.ended, "commit": rec.commit, "tool": rec.tool}  # fmt: skip
    if rec.name in _seen:
        node["cycle"] = True
        return node
    node["inputs"] = [{**lineage(records, e.path, _seen | {rec.name}), **e.as_json()} for e in rec.inputs]
    return node


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def dot(tree: Mapping[str, object]) -> str:
    """A Graphviz digraph of :func:`lineage`: files and folders as boxes, runs as ellipses."""
    lines = ["digraph provenance {", "  rankdir=LR;", "  node [shape=box];"]
    seen: set[str] = set()

    def walk(node: Mapping[str, object]) -> None:
        path = str(node["path"])
        if path not in seen:
            seen.add(path)
            lines.append(f"  {_dot_quote('file:' + path)} [label={_dot_quote(path)}];")
        run = node.get("run")
        if not isinstance(run, Mapping):
            return
        rid = _dot_quote("run:" + str(run["name"]))
        if rid not in seen:
            seen.add(rid)
            label = f"run {run['name']}: " + " ".join(str(c) for c in run["command"])  # type: ignore[union-attr]
            lines.append(f"  {rid} [shape=ellipse, label={_dot_quote(label)}];")
        lines.append(f"  {rid} -> {_dot_quote('file:' + path)};")
        children = node.get("inputs") or []
        assert isinstance(children, list)
        for child in children:
            walk(child)
            lines.append(f"  {_dot_quote('file:' + str(child['path']))} -> {rid};")

    walk(tree)
    lines.append("}")
    return "\n".join(dict.fromkeys(lines)) + "\n"
