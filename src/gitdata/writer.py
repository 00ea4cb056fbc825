"""The one guarded writer: every byte git data puts into a file goes through here.

Work-tree files, ``--location`` folders, storage folders, the cache, a local
storage's objects and git data's own small state files are all written the
same way:

1. into a temporary name beside the target (or in a given temporary folder),
   named by :func:`gitdata.fileio.tmp_prefix` so a stale one (its writer was
   killed) is recognised and removed later;
2. hashing while writing, so the bytes are read once; short writes are
   retried and a full disk becomes one error that says what to do;
3. on :meth:`GuardedFile.commit`: the size written is checked, the content
   against an expected oid if one is given, and the target against what the
   caller last saw there (``expect``: its :func:`signature`, or ``check``: a
   callable that raises), so a file the user changed meanwhile is kept;
4. the file gets the target's mode, or a new file's under the user's umask
   (never the 0600 of a temporary file), is fsynced where durability is
   promised, and is renamed into place (``create_only``: linked, failing if
   something appeared there);
5. on any failure, or an exit from the ``with`` block by an exception, the
   temporary file is removed: nothing half-written is ever visible under the
   target's name.

What may be written where (a pointer, bytes git data put there before) is
decided by :mod:`gitdata.guard`; this module only makes the write itself
safe.
"""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from collections.abc import Callable
from typing import BinaryIO

from . import safepath
from .errors import GitDataError
from .fileio import tmp_prefix, worktree_mode, write_all
from .hashing import Hasher, new_hasher, oid_of_file

CHUNK = 1 << 20

_FICLONE = 0x40049409  # ioctl: share the blocks of another file (btrfs, xfs)

#: ``expect`` value meaning "do not compare the target with anything"
ANY = object()


class WriteFailed(GitDataError):
    """A guarded write could not be completed; nothing was left behind."""

    #: the disk was full (the same write may succeed once space is freed)
    no_space = False


class TargetChanged(WriteFailed):
    """The target changed while git data was writing beside it: it is kept."""


class ContentMismatch(WriteFailed):
    """The bytes written do not hash to (or are not as long as) what was expected."""


def signature(full: str, dir_fd: int | None = None) -> tuple[int, int, int] | None:
    """``(inode, size, mtime_ns)`` of the file at ``full`` (a name in the folder ``dir_fd``,
    if given), None if there is none."""
    try:
        st = os.stat(full, dir_fd=dir_fd, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _no_space(failed: type[WriteFailed], dest: str, hint: str | None) -> WriteFailed:
    err = failed(f"no space left writing {dest}; {hint or 'free some space and run the command again'}")
    err.no_space = True
    return err


class GuardedFile:
    """Stream bytes to ``dest`` through a temporary file; see the module docstring.

    ``algorithm`` names the content hash (``sha256``); ``md5=True`` also keeps
    an md5 (to compare with an S3 ETag). ``tmp_dir`` puts the temporary file
    elsewhere than beside ``dest`` (the cache's own tmp folder; ``dest`` may
    then be given only to :meth:`commit`). ``full_disk_hint`` finishes the
    message of a full disk ("move the cache with …"). ``dir_fd`` and ``name``: the
    target is ``name`` in the folder open as ``dir_fd`` (:meth:`gitdata.safepath.Folders.target`),
    and every step (the temporary file, the checks, the rename) is taken relative to that
    descriptor, never by path; ``dest`` is then only what messages call it.
    """

    #: the error a full disk or a short write raises (a subclass may name its own)
    Failed: type[WriteFailed] = WriteFailed

    def __init__(
        self, dest: str | None, algorithm: str, *, tmp_dir: str | None = None, md5: bool = False,
        expect: object = ANY, full_disk_hint: str | None = None, dir_fd: int | None = None,
        name: str | None = None,
    ) -> None:  # fmt: skip
        assert (dir_fd is None) == (name is None) and (dir_fd is None or tmp_dir is None), "dir_fd comes with name"
        self.dest = dest
        self._dir_fd = dir_fd
        #: the target as the file calls take it: a name in ``dir_fd``, or a path
        self._target = name
        self.algorithm = algorithm
        self.expect = expect
        self.size = 0
        self._hint = full_disk_hint
        self._h: Hasher | None = new_hasher(algorithm)
        self._md5 = hashlib.md5(usedforsecurity=False) if md5 else None
        where = tmp_dir or os.path.dirname(os.path.abspath(dest or "."))
        try:
            if dir_fd is not None:  # a folder already checked and open: nothing is made by path
                fd, name_tmp = _create_at(dir_fd)
                self.tmp = os.path.join(where, name_tmp)
            else:
                fd, self.tmp = tempfile.mkstemp(dir=where, prefix=tmp_prefix())
                name_tmp = self.tmp
        except FileNotFoundError:
            if dir_fd is not None:
                raise
            os.makedirs(where, exist_ok=True)
            fd, self.tmp = tempfile.mkstemp(dir=where, prefix=tmp_prefix())
            name_tmp = self.tmp
        except OSError as err:
            if err.errno == errno.ENOSPC:
                raise _no_space(self.Failed, dest or where, full_disk_hint) from err
            raise
        #: the temporary file as the file calls take it (a name in ``dir_fd``, or a path)
        self._tmp = name_tmp
        self._fd: int | None = fd

    # -- writing --------------------------------------------------------------------

    def write(self, data: bytes | memoryview) -> None:
        assert self._fd is not None and self._h is not None, "write after commit, abort or a reflink"
        self._h.update(data)
        if self._md5 is not None:
            self._md5.update(data)
        try:
            write_all(self._fd, data)  # loops over short writes (a full disk)
        except OSError as err:
            self.abort()
            if err.errno == errno.ENOSPC:
                raise _no_space(self.Failed, self.dest or self.tmp, self._hint) from err
            raise
        self.size += len(data)

    def copy_from(self, source: BinaryIO, read: Callable[[BinaryIO], bytes] | None = None) -> None:
        """Write everything ``source`` yields (``read``: how to read one chunk)."""
        while chunk := (read(source) if read is not None else source.read(CHUNK)):
            self.write(chunk)

    def clone_from(self, source: str) -> None:
        """Fill the temporary file from the file ``source``, sharing its blocks (a reflink)
        where the filesystem can; else copied through :meth:`write`. After a reflink
        nothing was read: :attr:`oid` then hashes the file once, if asked."""
        assert self._fd is not None and self.size == 0, "clone_from into a fresh writer only"
        assert self._dir_fd is None, "clone_from by path only (oid hashes the temporary file by its path)"
        try:
            import fcntl

            with open(source, "rb") as f:
                fcntl.ioctl(self._fd, _FICLONE, f.fileno())
            self.size = os.fstat(self._fd).st_size
            self._h = None  # type: ignore[assignment]
            return
        except (OSError, ImportError):
            pass
        with open(source, "rb") as f:
            self.copy_from(f)

    @property
    def oid(self) -> str:
        if self._h is None:  # filled by a reflink: hash what is there
            return oid_of_file(self.tmp, self.algorithm)[0]
        return f"{self.algorithm}:{self._h.hexdigest()}"

    @property
    def md5(self) -> str | None:
        return self._md5.hexdigest() if self._md5 is not None else None

    # -- finishing ------------------------------------------------------------------

    def _close(self, fsync: bool) -> None:
        assert self._fd is not None, "commit after commit or abort"
        fd, self._fd = self._fd, None
        try:
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)

    def commit(
        self, dest: str | None = None, *, expected_oid: str | None = None, expected_size: int | None = None,
        check: Callable[[], None] | None = None, mode: int | None = None, fsync: bool = False,
        create_only: bool = False,
    ) -> tuple[str, int]:  # fmt: skip
        """Verify, then rename into place; returns ``(oid, size)``.

        ``check`` runs right before the rename (it raises to keep the target);
        ``mode`` overrides the target's. Raises :class:`ContentMismatch`,
        :class:`TargetChanged`, :class:`WriteFailed`; the temporary file is
        gone after any of them.
        """
        assert dest is None or self._dir_fd is None or dest == self.dest, "the target of a dir_fd writer is fixed"
        dest = dest or self.dest
        assert dest is not None, "no target"
        at = self._dir_fd
        target: str = self._target if at is not None and self._target is not None else dest
        try:
            self._close(fsync)
            try:
                written = os.stat(self._tmp, dir_fd=at, follow_symlinks=False).st_size
            except FileNotFoundError:
                written = -1  # removed meanwhile (a sweep of stale temporary files)
            if written != self.size:
                raise self.Failed(f"writing {dest} came out short; is the disk full?")
            if expected_size is not None and self.size != expected_size:
                raise ContentMismatch(f"{dest}: {self.size} bytes arrived, {expected_size} were expected")
            if expected_oid is not None and self.oid != expected_oid:
                raise ContentMismatch(f"{dest}: content hashes to {self.oid}, expected {expected_oid}")
            if self.expect is not ANY and signature(target, at) != self.expect:
                raise TargetChanged(f"{dest} changed while git data was writing it; kept it as it is")
            if check is not None:
                check()
            os.chmod(self._tmp, mode if mode is not None else worktree_mode(target, at), dir_fd=at)
            if at is not None:
                if create_only:
                    os.link(self._tmp, target, src_dir_fd=at, dst_dir_fd=at, follow_symlinks=False)
                    os.unlink(self._tmp, dir_fd=at)
                else:
                    os.replace(self._tmp, target, src_dir_fd=at, dst_dir_fd=at)
            else:
                self._place(dest, create_only)
        except BaseException as err:
            self.abort()
            if isinstance(err, OSError) and err.errno == errno.ENOSPC:
                raise _no_space(self.Failed, dest, self._hint) from err
            raise
        return self.oid, self.size

    def _place(self, dest: str, create_only: bool) -> None:
        try:
            if create_only:
                os.link(self.tmp, dest)  # FileExistsError if someone was first
                os.unlink(self.tmp)
            else:
                os.replace(self.tmp, dest)
        except FileNotFoundError:
            if os.path.isdir(os.path.dirname(dest)) or not os.path.exists(self.tmp):
                raise
            os.makedirs(os.path.dirname(dest), exist_ok=True)  # first file in a fan-out folder
            self._place(dest, create_only)

    def abort(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None
        try:
            os.unlink(self._tmp, dir_fd=self._dir_fd)
        except FileNotFoundError:
            pass

    def __enter__(self) -> GuardedFile:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None or self._fd is not None:
            self.abort()  # an exception, or a block that never committed


def guarded(dest: str | safepath.Target, algorithm: str, *, expect: object = ANY) -> GuardedFile:
    """The guarded writer for ``dest``: a path, or a file in a checked folder held open
    (:meth:`gitdata.safepath.Folders.target`), which is then written relative to it."""
    if isinstance(dest, safepath.Target):
        return GuardedFile(dest.full, algorithm, expect=expect, dir_fd=dest.dir_fd, name=dest.name)
    return GuardedFile(dest, algorithm, expect=expect)


def _create_at(dir_fd: int) -> tuple[int, str]:
    """A new temporary file in the folder ``dir_fd``: ``(descriptor, name)``, created
    exclusively (never through a link), readable by its owner only until committed."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    prefix = tmp_prefix()
    for _attempt in range(100):
        name = prefix + os.urandom(6).hex()
        try:
            return os.open(name, flags, 0o600, dir_fd=dir_fd), name
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", prefix)


def copy_file(
    source: str, dest: str, *, algorithm: str, expected_oid: str | None = None,
    check: Callable[[], None] | None = None, expect: object = ANY,
) -> tuple[str, int]:  # fmt: skip
    """Copy the file ``source`` to ``dest`` through :class:`GuardedFile`, streaming."""
    with GuardedFile(dest, algorithm, expect=expect) as w, open(source, "rb") as f:
        w.copy_from(f)
        return w.commit(expected_oid=expected_oid, check=check)


def write_small(path: str, data: bytes, *, mode: int | None = None, fsync: bool = False) -> None:
    """Replace the small file ``path`` (git data's state, a hook, a config) atomically."""
    with GuardedFile(path, "sha256") as w:
        w.write(data)
        w.commit(mode=mode, fsync=fsync)
