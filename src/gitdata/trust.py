"""Where a cloned ``.gitdata`` sends data: said once per clone, as git-lfs's ``.lfsconfig`` is used.

A tracked ``.gitdata`` may name the data remote a push uploads to and the
storages a stage writes into and syncs with. That is the project's right
(a push goes where the project says), but it arrives with a clone, so git
data tells the user once per clone, and again whenever those destinations
change, before the first command that would use them. Configuration the
user made in this clone (``git data remote add``, ``storage add``,
``dataset create --storage``) is acknowledged as it is made.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import writer
from .storage.errors import redact_url

if TYPE_CHECKING:
    from .project import Project

MARKER = "trusted-destinations"


def destinations(project: Project) -> list[str]:
    """One line per place ``.gitdata`` sends or takes data (no secrets: URLs are redacted)."""
    cfg = project.config
    lines = []
    for name, remote in sorted(cfg.remotes.items()):
        default = " (default)" if name == cfg.default_remote else ""
        lines.append(f"data remote {name}{default}: git push uploads data to {redact_url(remote.url)}")
    for name, keys in sorted(cfg.sections("dataset").items()):
        storage = (keys.get("storage") or [""])[-1]
        if storage:
            lines.append(f"dataset {name}: git push uploads its files to {redact_url(storage)}")
    for name, keys in sorted(cfg.sections("storage").items()):
        url = (keys.get("url") or [""])[-1]
        to = (keys.get("to") or [f"storages/{name}"])[-1]
        if url:
            lines.append(f"storage {name}: `git data storage stage/sync` writes {redact_url(url)} into {to} and uploads back")
    return lines


def _digest(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode("utf-8", "surrogateescape")).hexdigest()


def _marker(project: Project) -> str:
    return os.path.join(project.repo.data_dir, MARKER)


def acknowledge(project: Project) -> None:
    """The user made this configuration here: nothing to tell them about it."""
    project.reload()
    path = _marker(project)
    writer.write_small(path, (_digest(destinations(project)) + "\n").encode())


def notice_once(project: Project, say: Callable[[str], None]) -> bool:
    """Tell the user where ``.gitdata`` sends data, if not yet told for this configuration.

    Returns whether anything was said. Never fails a command: a marker that
    cannot be written means the notice comes again next time.
    """
    try:
        lines = destinations(project)
    except Exception:  # noqa: BLE001 - a broken .gitdata is reported by the command itself
        return False
    if not lines:
        return False
    digest = _digest(lines)
    path = _marker(project)
    try:
        with open(path, encoding="utf-8") as f:
            if f.read().strip() == digest:
                return False
    except OSError:
        pass
    say("git data: this project's .gitdata (tracked: it came with the clone) says where data goes:")
    for line in lines:
        say(f"git data:   {line}")
    say("git data: if you did not expect this, review .gitdata before you push or stage "
        "(shown once per clone, and again when it changes)")
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(digest + "\n")
    except OSError:
        pass
    return True
