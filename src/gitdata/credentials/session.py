"""Sessions: who may be asked, and what was resolved in this process."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any


def _ask(text: str, hidden: bool) -> str:
    if hidden:
        return getpass.getpass(text, stream=sys.stderr)
    sys.stderr.write(text)
    sys.stderr.flush()
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return line.rstrip("\r\n")


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass
class Session:
    """Per-process credential state. ``interactive`` allows prompting."""

    interactive: bool = False
    ask: Callable[[str, bool], str] = _ask
    say: Callable[[str], None] = _say
    resolved: dict[tuple[str | None, str], dict[str, Any]] = field(default_factory=dict)


_SESSION: ContextVar[Session | None] = ContextVar("gitdata_credentials_session", default=None)


def use_session(session: Session) -> None:
    """Install ``session`` for this context (the CLI does, once, in ``main``)."""
    _SESSION.set(session)


def current_session() -> Session:
    return _SESSION.get() or Session()
