"""A storage over an fsspec filesystem: S3, GCS, memory, and any other protocol.

Per-vendor differences are the adapters of :mod:`.backends`; vendor errors
are translated here, once, also mid-stream (:meth:`Storage.open_read`).
Every request is retried under the storage's policy unless a caller already
retries the whole (:func:`gitdata.retry.active`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from typing import Any, BinaryIO, TypeVar

from ..retry import RetryPolicy
from ..retry import active as retry_active
from .backends import Adapter, IncompleteUpload, Page, adapter_for, adapter_for_protocol
from .base import TMP_PREFIX, Capabilities, Storage, normalize_url
from .errors import AccessDenied, BackendMissing, UnsupportedURL, redact_url, translate
from .fingerprint import Fingerprint, from_info


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


F = TypeVar("F", bound=Callable[..., Any])


def _retried(method: F) -> F:
    """One request, retried under the storage's policy unless a caller
    already retries the whole (:func:`gitdata.retry.active`)."""

    @functools.wraps(method)
    def wrapper(self: FsspecStorage, *args: Any, **kwargs: Any) -> Any:
        if retry_active():
            return method(self, *args, **kwargs)
        return self.retrier.call(lambda: method(self, *args, **kwargs))

    return wrapper  # type: ignore[return-value]


#: listing pages fetched ahead of the caller (a page of 1,000 keys is about 250 KB)
_LIST_AHEAD = 4


class FsspecStorage(Storage):
    priority = 0  # serves whatever no more specific implementation takes

    @classmethod
    def serves(cls, url: str, options: Mapping[str, Any] | None, fs: Any) -> bool:
        return True

    def __init__(self, url: str, options: Mapping[str, Any] | None = None, *, fs: Any = None, **kwargs: Any) -> None:
        super().__init__(url, options, **kwargs)  # name, retry, part_size: see Storage
        if fs is None:
            fs, root = open_filesystem(self.url, self.options, self.retry)
        else:
            root = type(fs)._strip_protocol(self.url).rstrip("/")
        self._fs = fs
        self.root = root
        self._adapter: Adapter = adapter_for(fs)

    @property
    def fs(self) -> Any:
        return self._fs

    @property
    def capabilities(self) -> Capabilities:
        return self._adapter.capabilities

    def forget_listing(self, key: str) -> None:
        """Drop what the filesystem remembers of ``key``'s folder listing.

        Opening an older version after a listing of its folder needs it:
        gcsfs answers ``info(path#generation)`` from the cached listing, which
        holds only the live generation, and so fails as not found."""
        invalidate = getattr(self.fs, "invalidate_cache", None)
        if invalidate is not None:
            invalidate(self.path(key))

    @_retried
    def info(self, key: str) -> Fingerprint:
        try:
            self.fs.invalidate_cache(self.path(key))
            return from_info(self.fs.info(self.path(key)))
        except Exception as err:
            raise self._err(err, f"look up {key}") from err

    @_retried
    def exists(self, key: str) -> bool:
        try:
            return bool(self.fs.exists(self.path(key)))
        except Exception as err:
            raise self._err(err, f"check {key}") from err

    def list(self, prefix: str = "") -> Iterator[tuple[str, Fingerprint]]:
        pages = self._adapter.list_pages(self.fs, self.path(prefix))
        if pages is None:
            yield from super().list(prefix)
            return
        listed = False
        for items in self._prefetched(pages, prefix):
            for info in items:
                path = info["name"]
                listed = True
                if path.rsplit("/", 1)[-1].startswith(TMP_PREFIX) or path.endswith("/"):
                    continue
                yield self.rel(path), from_info(info)
        if not listed:  # nothing under it as a folder: the URL may name one object
            yield from super().list(prefix)

    def _prefetched(self, pages: Iterator[Callable[[], Page]], prefix: str) -> Iterator[list[dict[str, Any]]]:
        """Each page of a listing, the following ones asked for while the caller works on this one.

        Pages come one after another (each names where the next starts), so one
        thread fetches them in order, up to ``_LIST_AHEAD`` pages ahead of the
        caller, while the caller parses a page the backend handed back unparsed
        (:meth:`.backends.Adapter.list_pages`) and turns it into fingerprints and
        pointers. The server is then never idle while the caller works (one page
        ahead left it idle for a third of a ``status --remote`` of 100,000 keys).
        Each page is retried on its own; an error reaches the caller at its place
        in the listing, and a caller that stops early stops the fetching.
        """
        import queue
        import threading

        retried = retry_active()

        def fetch(page: Callable[[], Page]) -> Page:
            try:
                return page() if retried else self.retrier.call(page)
            except Exception as err:
                raise self._err(err, f"list {prefix or '/'}") from err

        def parsed(got: Page) -> list[dict[str, Any]]:
            if not callable(got):
                return got
            try:  # here, while the following pages are on their way
                return got()
            except Exception as err:
                raise self._err(err, f"list {prefix or '/'}") from err

        first = next(pages, None)
        if first is None:
            return
        current = fetch(first)  # the first page's errors are raised here, before any thread
        ahead: queue.Queue[tuple[Page | None, BaseException | None]] = queue.Queue(maxsize=_LIST_AHEAD)
        stop = threading.Event()

        def hand(item: tuple[Page | None, BaseException | None]) -> bool:
            while not stop.is_set():
                try:
                    ahead.put(item, timeout=0.2)
                    return True
                except queue.Full:
                    continue
            return False

        def produce() -> None:
            try:
                for page in pages:
                    if stop.is_set() or not hand((fetch(page), None)):
                        return
            except BaseException as err:  # the caller raises it where the listing broke off
                hand((None, err))
                return
            hand((None, None))  # the end

        worker = threading.Thread(target=produce, name="gitdata-list", daemon=True)
        worker.start()
        try:
            yield parsed(current)
            while True:
                got, err = ahead.get()
                if err is not None:
                    raise err
                if got is None:
                    return
                yield parsed(got)
        finally:
            stop.set()

    @_retried
    def _find(self, prefix: str) -> dict[str, Any]:
        try:
            return dict(self.fs.find(self.path(prefix), detail=True, withdirs=False))
        except FileNotFoundError:
            return {}
        except Exception as err:
            raise self._err(err, f"list {prefix or '/'}") from err

    @_retried
    def cat(self, key: str) -> bytes:
        try:
            return bytes(self.fs.cat_file(self.path(key)))
        except Exception as err:
            raise self._err(err, f"download {key}") from err

    @_retried
    def _open(self, key: str, kwargs: dict[str, Any], whole: bool = False) -> BinaryIO:
        try:
            kwargs = dict(kwargs)
            path = self.versioned_path(key, kwargs)
            if path != self.path(key) or self.version_kwarg in kwargs:
                self.forget_listing(key)
            if whole:
                return self._adapter.open_whole(self.fs, path, kwargs)
            return self.fs.open(path, "rb", **kwargs)
        except Exception as err:
            raise self._err(err, f"download {key}") from err

    @_retried
    def put_file(
        self, local_path: str, key: str, *, create_only: bool = False, if_match: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        try:
            self._adapter.put_file(self.fs, local_path, self.path(key), create_only, if_match,
                                   part_size=self.part_size, progress=progress)  # fmt: skip
        except Exception as err:
            raise self._err(err, f"upload {key}") from err

    @_retried
    def put_bytes(self, data: bytes, key: str) -> None:
        try:
            self._adapter.put_bytes(self.fs, data, self.path(key))
        except Exception as err:
            raise self._err(err, f"upload {key}") from err

    @_retried
    def incomplete_uploads(self) -> list[tuple[str, IncompleteUpload]]:
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
            self.fs.rm_file(self.path(key))
        except Exception as err:
            raise self._err(err, f"delete {key}") from err

    def open_write(self, key: str) -> Any:
        return self._adapter.open_write(self.fs, self.path(key))

    def _server_copy(self, source: Storage, src_key: str, key: str, version_id: str | None, size: int | None) -> bool:
        limit = self.capabilities.server_copy_max
        same_service = (
            isinstance(source, FsspecStorage)
            and type(source._adapter) is type(self._adapter)
            and limit > 0
            and self.options.get("endpoint_url") == source.options.get("endpoint_url")
        )
        if not same_service or size is None or size > limit:
            return False
        try:
            self._adapter.server_copy(self.fs, source.path(src_key), self.path(key), version_id)
            return True
        except Exception as err:  # noqa: BLE001 - vendor errors, translated below
            mine = self._err(err, f"copy {source.display}/{src_key} to {key}")
            if not isinstance(mine, AccessDenied):
                raise mine from err
            return False  # these credentials may not read the source there: stream it
