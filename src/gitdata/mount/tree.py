"""The file tree a dataset mount shows: pure, from the tracked entries (no I/O).

Names and sizes come from the pointers of one snapshot (index or commit), so
opening a folder of the mount never lists a bucket.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class Tree:
    """``files``: mount-relative path -> (project path, size); ``dirs``: path -> child names."""

    files: dict[str, tuple[str, int]] = field(default_factory=dict)
    dirs: dict[str, list[str]] = field(default_factory=dict)

    def kind(self, rel: str) -> str | None:
        if rel in self.files:
            return "file"
        if rel in self.dirs:
            return "dir"
        return None


def build(prefix: str, entries: Iterable[tuple[str, int | None]]) -> Tree:
    """The tree under project folder ``prefix`` of ``entries`` (project path, size).

    A path outside ``prefix`` is left out; an unknown size shows as 0. A name
    that is both a file and a folder (possible only in a broken index) keeps
    the file.
    """
    prefix = prefix.strip("/")
    cut = len(prefix) + 1 if prefix else 0
    tree = Tree(dirs={"": []})
    children: dict[str, set[str]] = {"": set()}
    for path, size in entries:
        if prefix and not path.startswith(prefix + "/"):
            continue
        rel = path[cut:]
        if not rel:
            continue
        tree.files[rel] = (path, size or 0)
        parts = rel.split("/")
        parent = ""
        for part in parts[:-1]:
            here = f"{parent}/{part}" if parent else part
            children.setdefault(parent, set()).add(part)
            children.setdefault(here, set())
            parent = here
        children.setdefault(parent, set()).add(parts[-1])
    for d, names in children.items():
        if d in tree.files:
            continue
        tree.dirs[d] = sorted(names)
    return tree
