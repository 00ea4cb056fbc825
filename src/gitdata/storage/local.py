"""A storage in a local folder (``file://`` without options), through ``os``.

git's hooks and filter open a local data remote on every command, so the
common operations here never import fsspec (about 0.17 s here); anything the
interface does not cover opens fsspec's local filesystem on first use
(:attr:`LocalStorage.fs`). Objects are published whole: written under a
temporary name beside the target, then renamed (or linked, for a create-only
write) into place. Nothing here is transient, so nothing is retried.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any, BinaryIO

from .base import TMP_PREFIX, Capabilities, Storage, local_root_of
from .fingerprint import Fingerprint, from_info
from .folder import LOCAL, publish_bytes, publish_file, write_object


class LocalStorage(Storage):
    priority = 10

    @classmethod
    def serves(cls, url: str, options: Mapping[str, Any] | None, fs: Any) -> bool:
        return fs is None and not options and local_root_of(url) is not None

    def __init__(self, url: str, options: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(url, options, **kwargs)
        self.local_root = local_root_of(self.url)
        self.root = self.local_root or "/"
        self._fs: Any = None

    @property
    def capabilities(self) -> Capabilities:
        return LOCAL

    @property
    def fs(self) -> Any:
        if self._fs is None:
            from .fsspec import open_filesystem

            self._fs, _root = open_filesystem(self.url, self.options, self.retry)
        return self._fs

    def info(self, key: str) -> Fingerprint:
        path = self.path(key)
        try:
            return from_info(stat_info(path, os.stat(path)))
        except Exception as err:
            raise self._err(err, f"look up {key}") from err

    def exists(self, key: str) -> bool:
        return os.path.exists(self.path(key))

    def list(self, prefix: str = "") -> Iterator[tuple[str, Fingerprint]]:
        """As :meth:`Storage.list`, streamed: one folder's entries in memory at a time."""
        top = self.path(prefix)
        try:
            if os.path.isfile(top):
                yield self.rel(top), from_info(stat_info(top, os.stat(top)))
                return
            for path, st in walk_sorted(top):
                if path.rsplit("/", 1)[-1].startswith(TMP_PREFIX):
                    continue
                yield self.rel(path), from_info(stat_info(path, st))
        except FileNotFoundError:
            return
        except OSError as err:
            raise self._err(err, f"list {prefix or '/'}") from err

    def cat(self, key: str) -> bytes:
        try:
            with open(self.path(key), "rb") as f:
                return f.read()
        except Exception as err:
            raise self._err(err, f"download {key}") from err

    def _open(self, key: str, kwargs: dict[str, Any], whole: bool = False) -> BinaryIO:
        try:
            if not kwargs:
                return open(self.path(key), "rb")  # noqa: SIM115 - the caller closes it
            kwargs = dict(kwargs)
            return self.fs.open(self.versioned_path(key, kwargs), "rb", **kwargs)
        except Exception as err:
            raise self._err(err, f"download {key}") from err

    def put_file(
        self, local_path: str, key: str, *, create_only: bool = False, if_match: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        try:
            publish_file(local_path, self.path(key), create_only)
        except Exception as err:
            raise self._err(err, f"upload {key}") from err

    def put_bytes(self, data: bytes, key: str) -> None:
        try:
            publish_bytes(self.path(key), data)
        except Exception as err:
            raise self._err(err, f"upload {key}") from err

    def open_write(self, key: str) -> Any:
        return write_object(self.path(key))

    def delete(self, key: str) -> None:
        try:
            os.unlink(self.path(key))
        except Exception as err:
            raise self._err(err, f"delete {key}") from err


def stat_info(path: str, st: os.stat_result) -> dict[str, Any]:
    """An fsspec-style info dict from a stat."""
    return {"name": path, "size": st.st_size, "type": "file", "mtime": st.st_mtime}


def walk_sorted(top: str) -> Iterator[tuple[str, os.stat_result]]:
    """Every regular file under ``top`` with its stat, like ``fs.find``, in the
    order object stores list keys (by their bytes). Symlinks are not followed at
    all: in a shared folder, a co-writer's link to ``~/.ssh/id_rsa`` would
    otherwise list (and stage) the reader's own file.

    Each folder's entries are sorted by name, a folder's as ``NAME/``, and
    folders are entered where they sort: so ``a.txt`` comes before ``a/b``
    ('.' sorts before '/'), as in an S3 listing. One folder's entries are
    held at a time (and the path down to it), not the whole tree.
    """
    stack = [iter(_sorted_entries(top))]
    while stack:
        entry = next(stack[-1], None)
        if entry is None:
            stack.pop()
        elif entry.is_dir(follow_symlinks=False):
            stack.append(iter(_sorted_entries(entry.path)))
        elif not entry.is_symlink():
            try:
                yield entry.path, entry.stat()
            except FileNotFoundError:
                continue  # removed meanwhile


def _sorted_entries(folder: str) -> list[os.DirEntry[str]]:
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(entries, key=lambda e: os.fsencode(e.name) + (b"/" if e.is_dir(follow_symlinks=False) else b""))
