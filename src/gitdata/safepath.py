"""Paths computed from untrusted input: checked by name, then on the real filesystem.

Whatever arrives through a clone (``.gitdata``, pointers, symlinks) or a
bucket (object keys, manifests) may name a path. Two checks keep such a path
inside its place (the project, a dataset or storage folder, ``.git/gitdata``):

* :func:`check_relpath` (pure): a relative POSIX path with no empty, ``.``
  or ``..`` part, no ``.git`` part in any case or spelling git itself
  refuses (``.GIT``, ``.git.``, ``git~1``), no NUL or line break, not
  absolute; the place it is joined to is the caller's.
* :func:`checked_dir` / :func:`checked_target` (I/O, right before a write):
  walk from the place's root one component at a time with ``O_NOFOLLOW``,
  creating missing folders, so that no component is a symlink that git data
  did not create. The only links allowed are the ones the caller names (a
  ``--location`` link git data made, whose target it recorded per clone).

A refused path is an :class:`UnsafePath` naming the entry; callers report it
and go on with the rest.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Mapping

from .errors import GitDataError

#: the longest file name ext4, xfs, btrfs, tmpfs and APFS hold (bytes)
NAME_MAX = 255


class UnsafePath(GitDataError):
    """A path from untrusted input that would leave its place or pass through a foreign link."""


def is_git_name(part: str) -> bool:
    """Whether a path component is one git treats as its own directory.

    Case-insensitive (macOS, Windows), with the trailing dots and spaces
    Windows drops, and the 8.3 short name ``git~1``, as git's
    ``verify_path`` refuses them.
    """
    low = part.lower().rstrip(". ")
    return low == ".git" or low == "git~1"


def check_relpath(rel: str, what: str = "path") -> str:
    """``rel`` if it is a relative POSIX path that cannot leave its folder, else :class:`UnsafePath`.

    ``what`` names the input in the message (``object key``, ``storage 'lab'
    folder``, ...).
    """
    if not isinstance(rel, str) or not rel:
        raise UnsafePath(f"{what} is empty")
    if rel.startswith("/"):
        raise UnsafePath(f"{what} {rel!r} is absolute; it must be relative to its folder")
    if "\0" in rel or "\n" in rel or "\r" in rel:
        raise UnsafePath(f"{what} {rel!r} has control characters (NUL or a line break)")
    # (called once per listed object and manifest line: the per-part checks run only where needed)
    maybe_git = "git" in rel.lower()
    for part in rel.split("/"):
        if part in ("", ".", ".."):
            raise UnsafePath(
                f"{what} {rel!r} has an empty, '.' or '..' part and could land outside its folder"
            )
        if maybe_git and is_git_name(part):
            raise UnsafePath(f"{what} {rel!r} has a '.git' part; nothing of git data goes into a git directory")
        if len(part) > NAME_MAX // 4 and len(part.encode("utf-8", "surrogateescape")) > NAME_MAX:
            raise UnsafePath(
                f"{what} {rel!r} has a name longer than {NAME_MAX} bytes, which no common filesystem can hold"
            )
    return rel


def check_place(rel: str, what: str) -> str:
    """A project-relative folder named in a tracked file (dataset ``path``, storage ``to``).

    Normalised (no trailing ``/``) and checked like :func:`check_relpath`;
    the project's own ``.gitdata`` is refused as well.
    """
    rel = rel.rstrip("/") if isinstance(rel, str) else rel  # a leading "/" is absolute: refused
    check_relpath(rel, what)
    if rel.split("/", 1)[0] in (".gitdata", ".gitattributes", ".gitignore", ".gitmodules"):
        raise UnsafePath(f"{what} {rel!r} is a file git or git data reads; choose another folder")
    return rel


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def _link_error(root: str, rel_so_far: str, what: str) -> UnsafePath:
    return UnsafePath(
        f"{what}: {os.path.join(root, rel_so_far)} is a symlink (or not a folder) that git data did "
        "not create; git data does not write through it (remove it, or move it away)"
    )


def checked_dir(
    root: str,
    rel: str = "",
    *,
    create: bool = True,
    links: Mapping[str, str] | None = None,
    what: str = "path",
) -> str:
    """The folder ``root/rel``, walked component by component without following links.

    Missing folders are created when ``create`` (else ``FileNotFoundError``).
    ``links`` maps a ``rel``-prefix (``data/scans``) to the target git data
    recorded for a link it created there; such a link is followed when it
    still points there, and the walk goes on inside the target. Anything
    else that is not a real folder raises :class:`UnsafePath`. ``root``
    itself is the caller's place and may be a link.
    """
    parts = [p for p in rel.split("/") if p] if rel else []
    if parts:
        check_relpath("/".join(parts), what)
    fd, here = _walk(root, parts, create=create, links=links, what=what)
    os.close(fd)
    return here


def _walk(
    root: str, parts: list[str], *, create: bool, links: Mapping[str, str] | None, what: str
) -> tuple[int, str]:
    """:func:`checked_dir`'s walk over checked ``parts``: ``(open descriptor, path)`` of the
    folder it ends in (the caller closes the descriptor)."""
    if create:
        os.makedirs(root, exist_ok=True)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    here = root
    try:
        for i, part in enumerate(parts):
            so_far = "/".join(parts[: i + 1])
            target = (links or {}).get(so_far)
            try:
                st = os.lstat(part, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(part, 0o777, dir_fd=fd)
                except FileExistsError:
                    pass
                st = os.lstat(part, dir_fd=fd)
            if stat.S_ISLNK(st.st_mode) and target is not None:
                real = os.path.realpath(os.path.join(here, part))
                if real != os.path.realpath(target):
                    raise _link_error(root, so_far, what)
                nfd = os.open(real, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
                here = real
            else:
                try:
                    nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as err:
                    if err.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                        raise _link_error(root, so_far, what) from err
                    raise
                here = os.path.join(here, part)
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd, here


def open_dir(root: str, rel: str, *, what: str = "path") -> int:
    """An open descriptor of the folder ``root/rel``, reached one component at a time without
    following links (as :func:`checked_dir`, nothing created): what a check then looks at
    stays the folder it checked, whatever is renamed or swapped by path meanwhile.
    The caller closes it."""
    parts = [p for p in rel.split("/") if p] if rel else []
    if parts:
        check_relpath("/".join(parts), what)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    try:
        for i, part in enumerate(parts):
            try:
                nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as err:
                if err.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                    raise _link_error(root, "/".join(parts[: i + 1]), what) from err
                raise
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd


def checked_target(
    root: str,
    rel: str,
    *,
    create: bool = True,
    links: Mapping[str, str] | None = None,
    what: str = "path",
) -> str:
    """The full path of file ``root/rel``, its parent checked by :func:`checked_dir`.

    The file itself may be missing or a regular file; a symlink, folder or
    device there is refused (a rename would replace a link, but a reader
    would follow it).
    """
    check_relpath(rel, what)
    parent_rel, _, name = rel.rpartition("/")
    parent = checked_dir(root, parent_rel, create=create, links=links, what=what)
    full = os.path.join(parent, name)
    try:
        st = os.lstat(full)
    except FileNotFoundError:
        return full
    if not stat.S_ISREG(st.st_mode):
        kind = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a regular file"
        raise UnsafePath(
            f"{what}: {full} is {kind}; git data only replaces regular files it wrote "
            "(remove it, or move it away)"
        )
    return full


class Folders:
    """Folders under ``root``, checked as :func:`checked_dir` checks them once, then held open.

    A run that writes many files (staging a dataset) names each by
    :meth:`target`: the file's folder comes as an open descriptor, walked
    without following links the first time it is asked for, and the file
    is then created, checked and renamed relative to that descriptor
    (:class:`gitdata.writer.GuardedFile` ``dir_fd``). Nothing is looked up
    by path again between the check and the write, so a folder swapped for
    a link meanwhile cannot redirect it, and a folder of 1,000 files is
    walked once instead of twice per file. At most ``keep`` idle
    descriptors stay open (least recently used closed first); one in use
    is never closed. Thread-safe; a forked child starts afresh (what it
    inherited is its parent's).
    """

    def __init__(
        self, root: str, *, links: Mapping[str, str] | None = None, what: str = "path", keep: int = 64
    ) -> None:
        self.root = root
        self.links = links
        self.what = what
        self.keep = keep
        self._reset()

    def _reset(self) -> None:
        import threading
        from collections import OrderedDict

        self._pid = os.getpid()
        self._lock = threading.Lock()
        #: folder (relative) -> [descriptor, its path, leases]; idle ones in use order
        self._open: OrderedDict[str, list] = OrderedDict()

    def _lease(self, parent: str, create: bool) -> list:
        if self._pid != os.getpid():
            self._reset()
        with self._lock:
            entry = self._open.get(parent)
            if entry is not None:
                entry[2] += 1
                self._open.move_to_end(parent)
                return entry
        parts = parent.split("/") if parent else []
        fd, here = _walk(self.root, parts, create=create, links=self.links, what=self.what)
        with self._lock:
            entry = self._open.get(parent)
            if entry is None:
                entry = self._open[parent] = [fd, here, 0]
            else:  # another thread walked it meanwhile
                os.close(fd)
            entry[2] += 1
            return entry

    def _release(self, entry: list) -> None:
        with self._lock:
            entry[2] -= 1
            if len(self._open) <= self.keep:
                return
            for name in [k for k, e in self._open.items() if e[2] == 0][: len(self._open) - self.keep]:
                os.close(self._open.pop(name)[0])

    def target(self, rel: str, *, create: bool = True) -> Target:
        """File ``root/rel`` as ``(folder descriptor, name, full path)``, to use in a ``with``
        block (the descriptor stays open until it ends). The file may be missing or a
        regular file; anything else there raises :class:`UnsafePath`, as a missing folder
        does ``FileNotFoundError`` when not ``create``."""
        check_relpath(rel, self.what)
        parent, _, name = rel.rpartition("/")
        entry = self._lease(parent, create)
        try:
            try:
                st = os.lstat(name, dir_fd=entry[0])
            except FileNotFoundError:
                pass
            else:
                if not stat.S_ISREG(st.st_mode):
                    kind = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a regular file"
                    raise UnsafePath(
                        f"{self.what}: {os.path.join(entry[1], name)} is {kind}; git data only replaces "
                        "regular files it wrote (remove it, or move it away)"
                    )
        except BaseException:
            self._release(entry)
            raise
        return Target(self, entry, name)

    def close(self) -> None:
        """Close every descriptor (none may be in use)."""
        if self._pid != os.getpid():
            self._reset()
            return
        with self._lock:
            while self._open:
                os.close(self._open.popitem()[1][0])

    def __enter__(self) -> Folders:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Target:
    """A leased folder descriptor and a file name in it (see :meth:`Folders.target`)."""

    __slots__ = ("_folders", "_entry", "name", "dir_fd", "full")

    _entry: list | None

    def __init__(self, folders: Folders, entry: list, name: str) -> None:
        self._folders, self._entry, self.name = folders, entry, name
        self.dir_fd: int = entry[0]
        self.full = os.path.join(entry[1], name)

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._entry is not None:
            self._folders._release(self._entry)
            self._entry = None
