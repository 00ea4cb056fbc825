"""Small file-writing helpers shared by the cache, the local storage backend
and the writers of work-tree files."""

from __future__ import annotations

import errno
import functools
import os
import re
from collections.abc import Iterable


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write all of ``data`` to ``fd``.

    A raw write may write less than asked (a full disk does this before it
    raises ENOSPC): loop, or the file would be truncated; a write of nothing
    is taken as a full disk.
    """
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n == 0:
            raise OSError(errno.ENOSPC, "short write")
        view = view[n:]


def write_new(path: str, data: bytes | memoryview) -> None:
    """Create ``path``, which must not exist yet, holding ``data``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)


# -- temporary names in the work tree ---------------------------------------------
#
# Every temporary file git data creates beside a file of the work tree (or of a
# --location folder) is named ``.gitdata-tmp-<pid>-<random>``, or, for small
# files, ``<name>.gitdata-tmp-<pid>``: the writer's process id in the name
# tells a stale one (its writer is gone, e.g. killed) from one being written.

TMP_MARK = ".gitdata-tmp-"
_TMP_RE = re.compile(r"(?:^\.gitdata-tmp-(\d+)-[^/]+|\.gitdata-tmp-(\d+))$")


def tmp_prefix() -> str:
    """The prefix of this process's temporary names (``tempfile``'s ``prefix=``)."""
    return f"{TMP_MARK}{os.getpid()}-"


def tmp_owner(name: str) -> int | None:
    """The process id in a temporary name git data created, or None if it is not one."""
    m = _TMP_RE.search(name)
    if m is None:
        return None
    return int(m.group(1) or m.group(2))


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """A killed process not yet reaped by its parent still answers ``kill(pid, 0)``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False  # no /proc here: trust kill()
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] == b"Z"


def remove_stale_tmp(folders: Iterable[str]) -> list[str]:
    """Delete temporary files in ``folders`` whose writer is no longer running.

    Returns the paths removed. Only names :func:`tmp_owner` recognises are
    touched, and only regular files.
    """
    removed = []
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except OSError:  # missing, not a folder, no permission, a broken (stale) mount
            continue
        for e in entries:
            pid = tmp_owner(e.name)
            if pid is None or _alive(pid) or not e.is_file(follow_symlinks=False):
                continue
            try:
                os.unlink(e.path)
            except FileNotFoundError:
                continue
            removed.append(e.path)
    return removed


def worktree_mode(dest: str, dir_fd: int | None = None) -> int:
    """The mode a file written at ``dest`` gets: ``dest``'s own if it exists,
    else a new file's under the user's umask (0644 under umask 022). With
    ``dir_fd``, ``dest`` is a name in that folder and a link there is not followed."""
    try:
        return os.stat(dest, dir_fd=dir_fd, follow_symlinks=dir_fd is None).st_mode & 0o777
    except FileNotFoundError:
        return 0o666 & ~_umask()


@functools.lru_cache(maxsize=1)
def _umask() -> int:
    """The process umask. Read from /proc where it can be: setting it to read it
    back (the portable way) would briefly change it for every other thread."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask
