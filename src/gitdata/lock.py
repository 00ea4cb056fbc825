"""Per-clone locks for commands that must not run twice at once.

Two ``storage sync`` runs of one storage would each take the other's writes
for conflicts; two ``dataset stage`` runs of one dataset would write the
same files. Such a command holds ``<git-dir>/gitdata/locks/<name>.lock``
while it runs: an advisory ``flock`` on the file, which the kernel releases
when the process ends however it ends (``kill -9`` included), so a lock left
by a dead process is never in the way; the file holds the holder's pid and
command for the message. Where ``flock`` is not available the file is
created exclusively and a lock whose pid is no longer alive is taken over.

A process that already holds a lock may take it again (nested calls, e.g.
``stage`` switching modes calls ``unstage``): the inner one is a no-op.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import GitDataError


class Busy(GitDataError):
    """Another git data process holds the lock."""


def _lock_path(data_dir: str, name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    return os.path.join(data_dir, "locks", f"{safe}.lock")


def _holder(path: str) -> tuple[int | None, str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            pid_text, _sep, what = f.read(4096).partition("\n")
    except FileNotFoundError:
        return None, ""
    try:
        return int(pid_text), what.strip()
    except ValueError:
        return None, what.strip()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _busy(path: str, what: str, pid: int | None, theirs: str) -> Busy:
    return Busy(
        f"another git data {theirs or what} is running (pid {pid if pid is not None else '?'}); "
        f"wait for it to finish and run `git data {what}` again (the lock is {path})"
    )


@contextmanager
def clone_lock(data_dir: str, name: str, what: str) -> Iterator[None]:
    """Hold the lock ``name`` of this clone while the block runs.

    ``what`` names the command for the message another process gets, e.g.
    ``"storage sync raw"``. Raises :class:`Busy` if another process holds it.
    """
    path = _lock_path(data_dir, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        import fcntl
    except ImportError:  # no flock here: exclusive create, stale pid taken over
        with _pid_lock(path, what):
            yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid, theirs = _holder(path)
            if pid == os.getpid():
                yield  # ours already (a nested call)
                return
            raise _busy(path, what, pid, theirs) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n{what}\n".encode())
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def _pid_lock(path: str, what: str) -> Iterator[None]:
    for _attempt in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            pid, theirs = _holder(path)
            if pid == os.getpid():
                yield
                return
            if pid is not None and not _alive(pid):
                os.unlink(path)  # stale: its process is gone
                continue
            raise _busy(path, what, pid, theirs) from None
        try:
            os.write(fd, f"{os.getpid()}\n{what}\n".encode())
        finally:
            os.close(fd)
        try:
            yield
        finally:
            os.unlink(path)
        return
    raise _busy(path, what, None, "")
