"""The storage interface: a place that holds bytes under keys.

Keys are ``/``-separated paths relative to the storage URL. ``Storage(url,
options)`` returns the implementation that serves the URL: a local folder
through ``os`` (:mod:`.local`), anything else through fsspec (:mod:`.fsspec`).
Implementations register themselves by subclassing :class:`Storage`; what a
backend can do (versions, atomic create, conditional writes) is declared, never
probed (:mod:`.backends`). Every vendor error is translated, once, into
:mod:`gitdata.storage.errors` by the implementation that met it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO, ClassVar

from ..errors import GitDataError
from ..retry import Retrier, RetryPolicy
from .errors import from_service, redact_url, translate
from .fingerprint import Fingerprint, from_info

#: Name prefix of an upload in progress on a filesystem backend; listings skip it.
TMP_PREFIX = ".gitdata-tmp-"


def normalize_url(url: str) -> str:
    """A plain path becomes an absolute ``file://`` URL; other URLs stay."""
    if "://" not in url:
        return "file://" + os.path.abspath(os.path.expanduser(url))
    return url.rstrip("/") if not url.endswith("://") else url


def local_root_of(url: str) -> str | None:
    """The absolute folder a ``file://`` URL names, or None for anything else."""
    if not url.startswith("file:///"):
        return None
    return url[len("file://") :].rstrip("/") or "/"


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, declared by it (never probed from signatures)."""

    #: ``put_file(create_only=True)`` is atomic here (if the server honours
    #: it): of two concurrent creates exactly one succeeds. Otherwise it is
    #: check-then-put.
    atomic_create: bool = False
    #: ``put_file(if_match=ETAG)`` is a conditional write for files below this
    #: size (0: never; larger files go as multipart uploads, whose first call
    #: takes no condition): callers re-check before writing where it is not.
    if_match_below: int = 0
    #: the ``open_read`` keyword that names one version of an object (None: no versions)
    version_kwarg: str | None = None
    #: the constructor option that makes listings and ``info`` report version ids
    versions_option: str | None = None
    #: ``open_read(size=N)`` is understood: a size just listed spares a HEAD
    open_takes_size: bool = False
    #: transfers are CPU- and syscall-bound (a local or mounted folder), not
    #: latency-bound: more threads than cores only add contention
    cpu_bound: bool = False
    #: objects up to this size can be copied inside the service, their bytes
    #: never passing through this process (0: no server-side copy)
    server_copy_max: int = 0


#: below this mean object size, transfers are bound by per-object work (CPU, system calls),
#: not by bytes: one thread for a local folder (:meth:`Storage.workers`), worker processes
#: for a push (``push.py``)
SMALL_OBJECT = 1 << 20


class Storage:
    """A place that holds bytes under keys: a bucket prefix, a folder, ...

    Construct it as ``Storage(url, options, name=..., fs=..., retry=...)``;
    the first registered implementation whose :meth:`serves` accepts the
    arguments is returned (the most specific first: see ``priority``).
    """

    #: implementations, most specific first (filled by ``__init_subclass__``)
    _implementations: ClassVar[list[type[Storage]]] = []
    #: higher runs first when choosing an implementation
    priority: ClassVar[int] = 0
    #: the folder of a ``file://`` storage served through ``os``; None otherwise
    local_root: str | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        impls = Storage._implementations
        impls.append(cls)
        impls.sort(key=lambda c: -c.priority)

    def __new__(cls, *args: Any, **kwargs: Any) -> Storage:
        if cls is not Storage:
            return super().__new__(cls)
        url = normalize_url(args[0] if args else kwargs["url"])
        options = args[1] if len(args) > 1 else kwargs.get("options")
        for impl in Storage._implementations:
            if impl.serves(url, options, kwargs.get("fs")):
                return super().__new__(impl)
        raise TypeError(f"no storage implementation serves {redact_url(url)}")  # fsspec serves all

    @classmethod
    def serves(cls, url: str, options: Mapping[str, Any] | None, fs: Any) -> bool:
        """Whether this implementation is the one for these arguments."""
        raise NotImplementedError

    def __init__(
        self,
        url: str,
        options: Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
        fs: Any = None,
        retry: RetryPolicy | None = None,
        part_size: int | None = None,
    ) -> None:
        self.url = normalize_url(url)
        #: multipart part size for large uploads (``gitdata.partSize``; None: the SDK's default)
        self.part_size = part_size
        self.name = name
        self.options = dict(options or {})
        #: how transfers against this storage are retried (:mod:`gitdata.retry`)
        self.retry = retry or RetryPolicy()
        #: the retry state shared by every operation on this storage in this process
        self.retrier = Retrier(self.retry)
        #: the path of the storage's root in its filesystem (no protocol)
        self.root = ""

    # -- what the backend can do (declared by its adapter) -------------------
    @property
    def capabilities(self) -> Capabilities:
        """What the backend can do, as it declares it."""
        raise NotImplementedError

    @property
    def version_kwarg(self) -> str | None:
        """The ``open_read`` keyword naming one version of an object here (None: no versions)."""
        return self.capabilities.version_kwarg

    @property
    def open_takes_size(self) -> bool:
        """Whether ``open_read(size=N)`` is understood (a size just listed spares a HEAD)."""
        return self.capabilities.open_takes_size

    @property
    def atomic_create(self) -> bool:
        """Whether ``put_file(create_only=True)`` can be atomic on this backend.

        The server must still honour it (some S3 servers ignore
        If-None-Match): probe before relying on it.
        """
        return self.capabilities.atomic_create

    def workers(self, jobs: int, *, mean_size: float | None = None) -> int:
        """How many parallel transfers to run against this storage.

        ``jobs`` for network storage (latency-bound). For a local folder the
        work is CPU and syscalls: small objects (``mean_size`` under 1 MiB)
        are copied in one thread, since per-object Python work holds the GIL
        and threads only contend (10,000 x 4 KiB to /dev/shm: 8 threads
        4.5-5.2 s, 2 threads 3.0-3.6 s, one 0.95-1.6 s); larger ones on up to
        one thread per core, as ``sendfile`` runs without the GIL.
        """
        if self.capabilities.cpu_bound:
            if mean_size is not None and mean_size < SMALL_OBJECT:
                return 1
            return max(1, min(jobs, os.cpu_count() or 1))
        return jobs

    # -- names ---------------------------------------------------------------
    @property
    def fs(self) -> Any:
        """The fsspec filesystem (for what the interface does not cover)."""
        raise NotImplementedError

    @property
    def display(self) -> str:
        return redact_url(self.url)

    def path(self, key: str) -> str:
        key = key.lstrip("/")
        return f"{self.root}/{key}" if key else self.root

    def rel(self, path: str) -> str:
        path = path.rstrip("/")
        prefix = self.root + "/"
        return path[len(prefix) :] if path.startswith(prefix) else path

    def forget_listing(self, key: str) -> None:
        """Drop any listing of ``key``'s folder the backend remembers (none here)."""

    def _err(self, err: BaseException, what: str) -> Exception:
        anonymous = str(self.options.get("anon")).lower() == "true"
        return translate(err, what, self.display, self.name, anonymous=anonymous)

    # -- operations ------------------------------------------------------------
    def info(self, key: str) -> Fingerprint:
        """The object's fingerprint now (never a cached listing entry)."""
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        raise NotImplementedError

    def list(self, prefix: str = "") -> Iterator[tuple[str, Fingerprint]]:
        """Every object under ``prefix`` (recursive), as ``(key, fingerprint)``,
        sorted by key. One paginated listing, no per-object requests; folders
        and uploads still under their temporary name are left out."""
        for path, info in sorted(self._find(prefix).items()):
            if info.get("type") == "directory" or path.rsplit("/", 1)[-1].startswith(TMP_PREFIX):
                continue
            yield self.rel(path), from_info(info)

    def _find(self, prefix: str) -> dict[str, Any]:
        """``path -> info`` of every object under ``prefix`` ({} if none)."""
        raise NotImplementedError

    def cat(self, key: str) -> bytes:
        raise NotImplementedError

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
    def open_read(self, key: str, *, whole: bool = False, **kwargs: Any) -> Iterator[BinaryIO]:
        """The object as a file; opening it is retried, reads are the caller's
        to retry (as a whole: :func:`gitdata.fetch.fetch_object`). Errors of
        the read itself (a transfer that broke off mid-stream) are translated
        like any other. ``whole``: the caller reads it from start to end, in
        one request where the backend allows it (``Adapter.open_whole``)."""
        f = self._open(key, kwargs, whole)
        try:
            yield f
        except GitDataError:
            raise
        except Exception as err:
            # errors of the read itself are ours to translate; anything else
            # raised in the caller's block is not
            mine = self._err(err, f"download {key}")
            if (
                type(err) is OSError
                or isinstance(err, ConnectionError | TimeoutError)
                or mine.transient
                or from_service(err)
            ):
                raise mine from err
            raise
        finally:
            try:
                f.close()
            except Exception:  # noqa: BLE001 - closing a failed read must not mask the error
                pass

    def _open(self, key: str, kwargs: dict[str, Any], whole: bool = False) -> BinaryIO:
        raise NotImplementedError

    def put_file(
        self, local_path: str, key: str, *, create_only: bool = False, if_match: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Upload a local file; the object appears under its key only when complete.

        ``progress`` is called with each number of bytes sent, where the
        backend tells (S3 and GCS, part by part; any thread may call it).

        ``create_only``: fail with :class:`PreconditionFailed` if the key
        exists. ``if_match``: replace only the object with this ETag, where the
        backend supports conditional writes (others ignore it: callers
        re-check first). A lost condition raises :class:`PreconditionFailed`.
        """
        raise NotImplementedError

    def put_bytes(self, data: bytes, key: str) -> None:
        raise NotImplementedError

    def incomplete_uploads(self) -> list[tuple[str, Any]]:
        """``(key, upload)`` for every upload under this storage that was
        started and never completed or aborted (a killed transfer)."""
        return []

    def abort_upload(self, upload: Any) -> None:
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError

    def open_write(self, key: str) -> Any:
        """A context manager giving a file to stream an object into; the object
        appears under ``key`` only when the block ends without an error."""
        raise NotImplementedError

    def _server_copy(self, source: Storage, src_key: str, key: str, version_id: str | None, size: int | None) -> bool:
        """Copy inside the service if this backend can for these two storages;
        False to stream instead."""
        return False

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
        if self._server_copy(source, src_key, key, version_id, size):
            return "server"
        kwargs = {source.version_kwarg: version_id} if version_id and source.version_kwarg else {}
        try:
            with source.open_read(src_key, **kwargs) as src, self.open_write(key) as dst:
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

