"""After a checkout: the files git wrote in the index's own second are made clean by stat,
so that the next ``git status`` does not start the filter to re-read them.

Git trusts an index entry by its stat data only if the file's mtime is older than the
index file (seconds: "racy git", Documentation/technical/racy-git.txt). A checkout writes
its last files and the index within the same second, so the first ``git status`` re-cleans
those files: for data files that means starting our filter process (a Python start-up)
and streaming their bytes through it. git-annex and git-lfs pay the same.

What this does, in a process of its own that the filter starts as it ends (the checkout
is not kept waiting, see :func:`start`):

1. list the index (``git ls-files -s --debug``) and keep the racy entries: mtime at or after
   the index's second;
2. wait until that second has passed: from then on any change to such a file gives it a
   newer mtime, which git sees by stat alone;
3. check every racy entry whose stat data still matches its file by content: a file the
   filter wrote must hash to what the filter wrote (its object, or the pointer text); any
   other by ``git hash-object --no-filters`` to the blob the index records. One mismatch,
   a symlink, a submodule or a conflict entry, and nothing is done;
4. touch the index file (its mtime only: its bytes stay git's) through a descriptor whose
   file is checked to be the index that was listed: if git wrote a new index meanwhile,
   the touch lands on the old, unlinked file and changes nothing.

So nothing is trusted that was not read: an entry is clean by stat after this only if its
bytes were checked after its second had passed, which is what git's own refresh would
have done, in its own process. ``gitdata.settleIndex false`` turns it off.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .errors import GitDataError

#: ``path -> oid of what the filter gave git to write there`` (the records file of
#: :func:`gitdata.refresh.read_expected`)
Written = Mapping[str, str]


@dataclass(frozen=True)
class Entry:
    path: str
    mode: str
    oid: str
    stage: int
    mtime: tuple[int, int]  # seconds, nanoseconds
    ino: int
    size: int


_DEBUG_LINES = 5


def parse_entries(out: bytes) -> list[Entry]:
    """``git ls-files -s --debug -z`` as entries (pure).

    Each entry is ``MODE OID STAGE<TAB>PATH`` ended by NUL, then its five debug lines
    (ctime; mtime; dev, ino; uid, gid; size, flags); a path may hold any byte but NUL, so
    the next entry's header starts after the fifth line break."""
    chunks = out.split(b"\0")
    entries: list[Entry] = []
    header = chunks[0]
    for chunk in chunks[1:]:
        end = -1
        for _ in range(_DEBUG_LINES):
            end = chunk.find(b"\n", end + 1)
            if end < 0:
                raise ValueError("unexpected `git ls-files --debug` output")
        debug, nxt = chunk[: end + 1], chunk[end + 1 :]
        meta, _, path = header.partition(b"\t")
        mode, oid, stage = meta.split(b" ")
        fields = {}
        for line in debug.decode("ascii", "replace").split("\n"):
            for part in line.split("\t"):
                key, sep, value = part.strip().partition(": ")
                if sep:
                    fields[key] = value
        sec, _, nsec = fields["mtime"].partition(":")
        entries.append(Entry(path.decode("utf-8", "surrogateescape"), mode.decode(), oid.decode(), int(stage),
                             (int(sec), int(nsec or 0)), int(fields["ino"]), int(fields["size"])))  # fmt: skip
        header = nxt
    return entries


def racy(entries: Iterable[Entry], index_mtime_s: int) -> list[Entry]:
    """The entries git would not trust by stat against an index of this mtime (pure)."""
    return [e for e in entries if e.mtime[0] >= index_mtime_s]


def _git(root: str, *args: str, data: bytes | None = None) -> bytes:
    from .git.repo import run_git

    return run_git(args, cwd=root, input=data)


def _seen_by_stat(e: Entry, st: os.stat_result) -> bool:
    """Whether git finds ``e`` changed by stat alone, whatever its build (size and mtime
    seconds are always compared; nanoseconds, inode and ctime not everywhere)."""
    return (e.size, e.mtime[0]) != (st.st_size, int(st.st_mtime))


def _same_stat(e: Entry, st: os.stat_result) -> bool:
    """Whether ``st`` is exactly what the index recorded (then only the bytes can tell)."""
    nsec = st.st_mtime_ns % 1_000_000_000
    return (e.size, e.mtime[0], e.ino) == (st.st_size, int(st.st_mtime), st.st_ino) and e.mtime[1] in (0, nsec)


_TICK = 0.02  # longer than a kernel tick at HZ >= 100
_TOUCHES = 50  # one second of ticks


def settle(root: str, index: str, written: Written, *, sleep=time.sleep, clock=time.time) -> bool:
    """Steps 1-4 of the module docstring for the work tree ``root`` and its index file
    ``index``; True if the index was touched."""
    from .hashing import oid_of_file

    before = os.stat(index)
    entries = racy(parse_entries(_git(root, "ls-files", "-s", "--debug", "-z")), int(before.st_mtime))
    if not entries:
        return False
    if any(e.stage != 0 or e.mode not in ("100644", "100755") for e in entries):
        return False  # a conflict, a symlink or a submodule: git's own check decides
    second = max(max(e.mtime[0] for e in entries), int(before.st_mtime)) + 1
    # A file system stamps times from the kernel's coarse clock, which lags time.time() by
    # up to a tick (4 ms at HZ=250): wait a little longer, and check the stamp after touching.
    wait = second - clock() + _TICK
    if wait > 0:
        sleep(wait)
    checked: list[tuple[Entry, os.stat_result]] = []
    others: list[Entry] = []
    for e in entries:
        full = os.path.join(root, e.path)
        try:
            st = os.lstat(full)
        except OSError:
            continue  # gone: git sees that by stat
        if _seen_by_stat(e, st):
            continue  # changed: git sees that by stat too
        if not _same_stat(e, st):
            return False  # changed in a way only some builds of git see: left to git
        if e.path in written:
            oid = written[e.path]
            if oid_of_file(full, oid.split(":", 1)[0])[0] != oid:
                return False
        else:
            others.append(e)
        checked.append((e, st))
    if others:
        data = "".join(e.path + "\n" for e in others).encode("utf-8", "surrogateescape")
        if any("\n" in e.path for e in others):
            return False
        got = _git(root, "hash-object", "--no-filters", "--stdin-paths", data=data).split()
        if [g.decode() for g in got] != [e.oid for e in others]:
            return False
    fd = os.open(index, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        now = os.fstat(fd)
        if (now.st_ino, now.st_size, now.st_mtime_ns) != (before.st_ino, before.st_size, before.st_mtime_ns):
            return False  # git wrote the index meanwhile: its own timestamps stand
        for e, st in checked:
            try:
                again = os.lstat(os.path.join(root, e.path))
            except OSError:
                return False
            if (again.st_ino, again.st_size, again.st_mtime_ns, again.st_ctime_ns) != (
                st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns):  # fmt: skip
                return False
        for _ in range(_TOUCHES):
            os.utime(fd)
            if int(os.fstat(fd).st_mtime) >= second:
                return True
            sleep(_TICK)
        return False  # the file system's clock stays behind: git's own check decides
    finally:
        os.close(fd)


def start(root: str, index: str, written: Written) -> None:
    """Run :func:`settle` in a detached process; the records go through a private temporary
    file (mode 0600) outside the repository, which that process removes first."""
    import tempfile

    from .refresh import encode_expected

    if not written:
        return
    fd, path = tempfile.mkstemp(prefix="gitdata-settle-")
    with os.fdopen(fd, "wb") as f:
        f.write(encode_expected(written))
    try:
        subprocess.Popen(  # noqa: S603 - our own module, by the interpreter running us
            [sys.executable, "-m", "gitdata.settle", root, index, path],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True,
        )  # fmt: skip
    except OSError:
        os.unlink(path)


def main(argv: list[str]) -> int:
    from .refresh import read_expected

    root, index, records = argv
    try:
        written = read_expected(records)
    finally:
        try:
            os.unlink(records)
        except OSError:
            pass
    try:
        settle(root, index, written)
    except (OSError, ValueError, KeyError, GitDataError):
        return 1  # best effort: the next `git status` checks the files itself, as without this
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
