"""One storage class over an fsspec filesystem.

Keys are ``/``-separated paths relative to the storage URL. Every vendor error
is translated here, once, into :mod:`gitdata.storage.errors`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, BinaryIO, TypeVar

from ..errors import GitDataError
from ..retry import Retrier, RetryPolicy
from ..retry import active as retry_active
from .backends import LOCAL_ADAPTER, TMP_PREFIX, IncompleteUpload, adapter_for, adapter_for_protocol
from .errors import (
    AccessDenied,
    BackendMissing,
    UnsupportedURL,
    from_service,
    redact_url,
    translate,
)
from .fingerprint import Fingerprint, from_info


def normalize_url(url: str) -> str:
    """A plain path becomes an absolute ``file://`` URL; other URLs stay."""
    if "://" not in url:
        return "file://" + os.path.abspath(os.path.expanduser(url))
    return url.rstrip("/") if not url.endswith("://") else url


def open_filesystem(
    url: str, options: Mapping[str, Any] | None = None, retry: RetryPolicy | None = None
) -> tuple[Any, str]:
    """The fsspec filesystem and root path for ``url``; no instance caching.

    The SDK's own retries are capped (see :meth:`Adapter.transport_options`):
    callers retry with ``retry``'s policy instead."""
    import fsspec
    from fsspec.registry import known_implementations

    url = normalize_url(url)
    protocol = url.split("://", 1)[0]
    try:
        cls = fsspec.get_filesystem_class(protocol)
    except ImportError as err:
        hint = known_implementations.get(protocol, {}).get("err") or str(err)
        raise BackendMissing(
            f"cannot open {redact_url(url)}: {hint} (for example: pip install 'gitdata[{protocol}]')"
        ) from err
    except ValueError as err:
        known = ", ".join(sorted(p + "://" for p in ("file", "s3", "gs", "memory", "http", "https")))
        raise UnsupportedURL(
            f"unsupported storage URL {redact_url(url)}: unknown scheme {protocol!r}; "
            f"use one of {known} or another fsspec protocol"
        ) from err
    adapter = adapter_for_protocol(protocol)
    opts = adapter.transport_options(dict(options or {}), retry or RetryPolicy())
    opts.setdefault("skip_instance_cache", True)
    try:
        fs = cls(**opts)
    except Exception as err:  # noqa: BLE001 - vendor constructors raise anything
        raise translate(err, "open the storage", redact_url(url)) from err
    adapter.configure(fs, dict(options or {}))
    root = cls._strip_protocol(url).rstrip("/")
    return fs, root


def _local_root(url: str) -> str | None:
    """The absolute folder a ``file://`` URL names, or None for anything else."""
    if not url.startswith("file:///"):
        return None
    return url[len("file://") :].rstrip("/") or "/"


def _local_walk(top: str) -> Iterator[tuple[str, os.stat_result]]:
    """Every regular file under ``top`` with its stat, like ``fs.find``. Symlinks
    are not followed at all: in a shared folder, a co-writer's link to
    ``~/.ssh/id_rsa`` would otherwise list (and stage) the reader's own file."""
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
            elif entry.is_symlink():
                continue
            else:
                try:
                    yield entry.path, entry.stat()
                except FileNotFoundError:
                    continue  # removed meanwhile


F = TypeVar("F", bound=Callable[..., Any])


def _retried(method: F) -> F:
    """One request, retried under the storage's policy unless a caller
    already retries the whole (:func:`gitdata.retry.active`) or the storage
    is a local folder (nothing transient there)."""

    @functools.wraps(method)
    def wrapper(self: Storage, *args: Any, **kwargs: Any) -> Any:
        if self.local_root is not None or retry_active():
            return method(self, *args, **kwargs)
        return self.retrier.call(lambda: method(self, *args, **kwargs))

    return wrapper  # type: ignore[return-value]


def _stat_info(path: str, st: os.stat_result) -> dict[str, Any]:
    return {"name": path, "size": st.st_size, "type": "file", "mtime": st.st_mtime}


class Storage:
    """A place that holds bytes under keys: a bucket prefix, a folder, ..."""

    def __init__(
        self,
        url: str,
        options: Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
        fs: Any = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.url = normalize_url(url)
        self.name = name
        self.options = dict(options or {})
        #: how transfers against this storage are retried (:mod:`gitdata.retry`)
        self.retry = retry or RetryPolicy()
        #: the retry state shared by every operation on this storage in this process
        self.retrier = Retrier(self.retry)
        #: The folder of a ``file://`` storage, used with ``os`` directly; None otherwise.
        self.local_root = _local_root(self.url) if fs is None and not self.options else None
        self._fs = fs
        if self.local_root is not None:
            self.root = self.local_root
            self._adapter = LOCAL_ADAPTER
            return
        if fs is None:
            fs, root = open_filesystem(self.url, self.options, self.retry)
        else:
            root = type(fs)._strip_protocol(self.url).rstrip("/")
        self._fs = fs
        self.root = root
        self._adapter = adapter_for(fs)

    @property
    def fs(self) -> Any:
        """The fsspec filesystem. Opened on first use for a local folder, whose
        common operations go through ``os`` so that git's hooks and filter do
        not pay for importing fsspec (about 0.17 s here) on every command."""
        if self._fs is None:
            self._fs, _root = open_filesystem(self.url, self.options, self.retry)
        return self._fs

    # -- helpers -----------------------------------------------------------
    @property
    def display(self) -> str:
        return redact_url(self.url)

    @property
    def version_kwarg(self) -> str | None:
        """The ``open_read`` keyword naming one version of an object here (None: no versions)."""
        return self._adapter.version_kwarg

    @property
    def open_takes_size(self) -> bool:
        """Whether ``open_read(size=N)`` is understood (a size just listed spares a HEAD)."""
        return self._adapter.open_takes_size

    @property
    def atomic_create(self) -> bool:
        """Whether ``put_file(create_only=True)`` can be atomic on this backend.

        The server must still honour it (some S3 servers ignore
        If-None-Match): probe before relying on it.
        """
        return self._adapter.atomic_create

    def workers(self, jobs: int, *, mean_size: float | None = None) -> int:
        """How many parallel transfers to run against this storage.

        ``jobs`` for network storage (latency-bound). For a local folder the
        work is CPU and syscalls: small objects (``mean_size`` under 1 MiB)
        are copied in one thread, since per-object Python work holds the GIL
        and threads only contend (10,000 x 4 KiB to /dev/shm: 8 threads
        4.5-5.2 s, 2 threads 3.0-3.6 s, one 0.95-1.6 s); larger ones on up to
        one thread per core, as ``sendfile`` runs without the GIL.
        """
        if self._adapter.cpu_bound:
            if mean_size is not None and mean_size < (1 << 20):
                return 1
            return max(1, min(jobs, os.cpu_count() or 1))
        return jobs

    def path(self, key: str) -> str:
        key = key.lstrip("/")
        return f"{self.root}/{key}" if key else self.root

    def rel(self, path: str) -> str:
        path = path.rstrip("/")
        prefix = self.root + "/"
        return path[len(prefix) :] if path.startswith(prefix) else path

    def _err(self, err: BaseException, what: str) -> Exception:
        return translate(err, what, self.display, self.name, anonymous=str(self.options.get("anon")).lower() == "true")

    # -- operations --------------------------------------------------------
    @_retried
    def info(self, key: str) -> Fingerprint:
        """The object's fingerprint now (never a cached listing entry)."""
        try:
            if self.local_root is not None:
                path = self.path(key)
                return from_info(_stat_info(path, os.stat(path)))
            self.fs.invalidate_cache(self.path(key))
            return from_info(self.fs.info(self.path(key)))
        except Exception as err:
            raise self._err(err, f"look up {key}") from err

    @_retried
    def exists(self, key: str) -> bool:
        if self.local_root is not None:
            return os.path.exists(self.path(key))
        try:
            return bool(self.fs.exists(self.path(key)))
        except Exception as err:
            raise self._err(err, f"check {key}") from err

    def list(self, prefix: str = "") -> Iterator[tuple[str, Fingerprint]]:
        """Every object under ``prefix`` (recursive), as ``(key, fingerprint)``.

        One paginated listing, no per-object requests.
        """
        for path, info in sorted(self._find(prefix).items()):
            if info.get("type") == "directory" or path.rsplit("/", 1)[-1].startswith(TMP_PREFIX):
                continue  # folders, and uploads still under their temporary name
            yield self.rel(path), from_info(info)

    @_retried
    def _find(self, prefix: str) -> dict[str, Any]:
        try:
            if self.local_root is not None:
                top = self.path(prefix)
                if os.path.isfile(top):
                    return {top: _stat_info(top, os.stat(top))}
                return {p: _stat_info(p, st) for p, st in _local_walk(top)}
            return dict(self.fs.find(self.path(prefix), detail=True, withdirs=False))
        except FileNotFoundError:
            return {}
        except Exception as err:
            raise self._err(err, f"list {prefix or '/'}") from err

    @_retried
    def cat(self, key: str) -> bytes:
        try:
            if self.local_root is not None:
                with open(self.path(key), "rb") as f:
                    return f.read()
            return bytes(self.fs.cat_file(self.path(key)))
        except Exception as err:
            raise self._err(err, f"download {key}") from err

    def versioned_path(self, key: str, kwargs: dict[str, Any]) -> str:
        """The path to open for ``key``; a GCS ``generation`` goes into the path.

        gcsfs ignores ``open(..., generation=G)`` for reads (it reads the live
        object: seen with gcsfs 2025 against fake-gcs-server) but honours
        ``path#G`` on a version-aware filesystem, so the generation is moved
        there; S3's ``version_id`` stays a keyword.
        """
        gen = kwargs.pop("generation", None)
        return self.path(key) + (f"#{gen}" if gen is not None else "")

    @contextmanager
    def open_read(self, key: str, **kwargs: Any) -> Iterator[BinaryIO]:
        """The object as a file; opening it is retried, reads are the caller's
        to retry (as a whole: :func:`gitdata.fetch.fetch_object`)."""
        f = self._open(key, kwargs)
        try:
            yield f
        except GitDataError:
            raise
        except Exception as err:
            # errors of the read itself (a transfer that broke off) are ours
            # to translate; anything else raised in the caller's block is not
            mine = self._err(err, f"download {key}")
            if type(err) is OSError or isinstance(err, ConnectionError | TimeoutError) or mine.transient or from_service(err):
                raise mine from err
            raise
        finally:
            try:
                f.close()
            except Exception:  # noqa: BLE001 - closing a failed read must not mask the error
                pass

    @_retried
    def _open(self, key: str, kwargs: dict[str, Any]) -> BinaryIO:
        try:
            if self.local_root is not None and not kwargs:
                return open(self.path(key), "rb")  # noqa: SIM115 - the caller closes it
            kwargs = dict(kwargs)
            return self.fs.open(self.versioned_path(key, kwargs), "rb", **kwargs)
        except Exception as err:
            raise self._err(err, f"download {key}") from err

    @_retried
    def put_file(
        self, local_path: str, key: str, *, create_only: bool = False, if_match: str | None = None
    ) -> None:
        """Upload a local file; the object appears under its key only when complete.

        ``if_match``: replace only the object with this ETag, where the backend
        supports conditional writes (others ignore it: callers re-check first).
        A lost condition raises :class:`PreconditionFailed`.
        """
        try:
            fs = self._fs if self.local_root is not None else self.fs  # LocalAdapter needs none
            self._adapter.put_file(fs, local_path, self.path(key), create_only, if_match)
        except Exception as err:
            raise self._err(err, f"upload {key}") from err

    @_retried
    def put_bytes(self, data: bytes, key: str) -> None:
        try:
            if self.local_root is not None:
                LOCAL_ADAPTER.put_bytes(self.path(key), data)
                return
            self.fs.pipe_file(self.path(key), data)
        except Exception as err:
            raise self._err(err, f"upload {key}") from err

    @_retried
    def incomplete_uploads(self) -> list[tuple[str, IncompleteUpload]]:
        """``(key, upload)`` for every upload under this storage that was
        started and never completed or aborted (a killed transfer)."""
        if self.local_root is not None:
            return []
        try:
            found = self._adapter.incomplete_uploads(self.fs, self.root)
        except Exception as err:
            raise self._err(err, "list incomplete uploads") from err
        return [(self.rel(u.path), u) for u in found]

    @_retried
    def abort_upload(self, upload: IncompleteUpload) -> None:
        try:
            self._adapter.abort_upload(self.fs, upload)
        except Exception as err:
            raise self._err(err, f"abort the incomplete upload of {self.rel(upload.path)}") from err

    @_retried
    def delete(self, key: str) -> None:
        try:
            if self.local_root is not None:
                os.unlink(self.path(key))
                return
            self.fs.rm_file(self.path(key))
        except Exception as err:
            raise self._err(err, f"delete {key}") from err

    def copy_from(
        self,
        source: Storage,
        src_key: str,
        key: str,
        *,
        version_id: str | None = None,
        size: int | None = None,
        check: Callable[[bytes | None], None] | None = None,
    ) -> str:
        """Copy ``source``'s object ``src_key`` (that version, if given) to ``key`` here.

        Inside the service when both storages are on the same endpoint of a
        backend that can (S3 ``CopyObject``) and the object is not larger
        than it allows: returns ``"server"``, no byte passed through this
        process (a refusal of the server-side copy, e.g. credentials that
        may not read the source, falls back to streaming). Otherwise
        streamed: returns ``"stream"``, read and written in chunks (memory
        stays flat), ``check`` called with every chunk and then with
        ``None``; whatever it raises aborts the write, and the object never
        appears under ``key``. Not retried here: callers retry the whole.
        """
        same_service = (
            self._adapter is source._adapter
            and self._adapter.server_copy_max > 0
            and self.local_root is None
            and source.local_root is None
            and self.options.get("endpoint_url") == source.options.get("endpoint_url")
        )
        if same_service and size is not None and size <= self._adapter.server_copy_max:
            try:
                self._adapter.server_copy(self.fs, source.path(src_key), self.path(key), version_id)
                return "server"
            except Exception as err:  # noqa: BLE001 - vendor errors, translated below
                mine = self._err(err, f"copy {source.display}/{src_key} to {key}")
                if not isinstance(mine, AccessDenied):
                    raise mine from err
        kwargs = {source.version_kwarg: version_id} if version_id and source.version_kwarg else {}
        fs = self._fs if self.local_root is not None else self.fs
        try:
            with source.open_read(src_key, **kwargs) as src, self._adapter.open_write(fs, self.path(key)) as dst:
                while chunk := src.read(4 << 20):
                    if check is not None:
                        check(chunk)
                    dst.write(chunk)
                if check is not None:
                    check(None)
        except GitDataError:
            raise
        except Exception as err:
            raise self._err(err, f"upload {key}") from err
        return "stream"

