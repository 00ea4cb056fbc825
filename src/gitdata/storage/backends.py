"""Thin per-backend adapters: how to write an object so that it appears whole.

The core never asks which cloud it talks to; it asks the adapter for the
filesystem it has. Object stores (S3, GCS) publish an object only when its
upload completes; a plain filesystem needs a temporary name and a rename.
"""

from __future__ import annotations

import datetime as _dt
import io
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

from ..retry import RetryPolicy
from .base import TMP_PREFIX, Capabilities
from .errors import PreconditionFailed
from .folder import LOCAL, publish_file, write_object

#: a listing page: its info dicts, or a callable that parses them (see Adapter.list_pages)
Page = list[dict[str, Any]] | Callable[[], list[dict[str, Any]]]


@dataclass(frozen=True)
class IncompleteUpload:
    """A multipart upload that was started and neither completed nor aborted
    (a killed push): invisible in listings, its parts still stored and billed."""

    path: str  #: the object's full path (``bucket/key``)
    upload_id: str
    initiated: float  #: seconds since the epoch


class Adapter:
    """Default: the backend publishes objects atomically (object stores)."""

    #: what this backend can do (:class:`gitdata.storage.base.Capabilities`)
    capabilities = Capabilities()
    #: ``put_file(..., mode="create")`` is understood (conditional PUT).
    create_only_kwarg = False

    def server_copy(self, fs: Any, src_path: str, dst_path: str, version_id: str | None) -> None:
        """Copy ``src_path`` (that version, if given) to ``dst_path`` inside the
        service (where ``capabilities.server_copy_max`` says it can)."""
        raise NotImplementedError

    def list_pages(self, fs: Any, path: str) -> Iterator[Callable[[], Page]] | None:
        """A streamed listing of every object under ``path``, sorted by path: a
        callable per page (the caller retries each) giving info dicts with
        ``name`` and the fields :func:`gitdata.storage.fingerprint.from_info`
        reads, or a callable that parses them (the page is in, the next one can
        be asked for: the caller parses this one meanwhile, and is not to retry
        a refusal of it). None: this backend has none (``fs.find`` lists it whole)."""
        return None

    @contextmanager
    def open_write(self, fs: Any, rpath: str) -> Iterator[BinaryIO]:
        """A file to stream an object into: it appears at ``rpath`` only when
        the block ends without an error (an object store publishes on close;
        on an error the upload is discarded, never completed)."""
        if not getattr(fs, "async_impl", False):
            # not an object store's buffered upload (s3fs, gcsfs, ... are async
            # and can discard one): a writer that publishes whatever it holds on
            # close (memory://, most others), so write under a temporary name
            # and move it into place
            tmp = f"{rpath.rsplit('/', 1)[0]}/{TMP_PREFIX}{os.urandom(16).hex()}"
            try:
                with fs.open(tmp, "wb") as g:
                    yield g
                fs.mv(tmp, rpath)
            finally:
                if fs.exists(tmp):
                    fs.rm_file(tmp)
            return
        f = fs.open(rpath, "wb")
        try:
            yield f
        except BaseException:
            try:
                f.discard()  # s3fs aborts the multipart upload; gcsfs cancels the resumable one
            except Exception:  # noqa: BLE001 - the server may be gone: the upload then never completes
                pass
            f.closed = True  # close() would otherwise publish what was written so far
            raise
        f.close()

    def transport_options(self, options: dict[str, Any], policy: RetryPolicy) -> dict[str, Any]:
        """``options`` for the filesystem's constructor, with the SDK's own
        retries capped so that :mod:`gitdata.retry` is the only policy (a
        key the user set wins)."""
        return options

    def configure(self, fs: Any, options: dict[str, Any]) -> None:
        """Settings the constructor does not take, applied to the new ``fs``."""

    def incomplete_uploads(self, fs: Any, root: str) -> list[IncompleteUpload]:
        """Uploads under ``root`` that were started and never finished (none
        where uploads are not resumable server-side)."""
        return []

    def abort_upload(self, fs: Any, upload: IncompleteUpload) -> None:
        raise NotImplementedError

    def open_whole(self, fs: Any, rpath: str, kwargs: dict[str, Any]) -> BinaryIO:
        """The object read from start to end (a download into the cache or a
        hash): as ``fs.open`` here; one request where the backend allows it."""
        return fs.open(rpath, "rb", **kwargs)  # type: ignore[no-any-return]

    def open_stream(self, fs: Any, path: str, start: int, kwargs: dict[str, Any]) -> Any | None:
        """One streaming GET of ``path`` from ``start`` to its end (an object with ``read(n)``
        and ``close()``), or None where the backend has no streaming read (callers then read
        ranges). ``kwargs``: the version keyword (``version_id``) and ``if_match`` (an ETag
        the object must still have: the server refuses the GET otherwise)."""
        return None

    def put_bytes(self, fs: Any, data: bytes, rpath: str) -> None:
        """``data`` as the object at ``rpath``."""
        fs.pipe_file(rpath, data)

    def put_file(
        self, fs: Any, lpath: str, rpath: str, create_only: bool, if_match: str | None = None,
        part_size: int | None = None, progress: Callable[[int], None] | None = None,
    ) -> None:
        cb = _callback(progress)
        if create_only and self.create_only_kwarg:
            fs.put_file(lpath, rpath, mode="create", **cb)
            return
        if create_only and fs.exists(rpath):
            raise FileExistsError(rpath)
        if if_match and os.path.getsize(lpath) < self.capabilities.if_match_below:
            fs.put_file(lpath, rpath, IfMatch=if_match, **cb)
            return
        fs.put_file(lpath, rpath, **cb)


class S3Adapter(Adapter):
    """S3: ``If-None-Match: *`` on the PUT, after a HEAD; versions by ``version_id``.

    Some S3 servers (rclone's, older MinIO) ignore the conditional header; the
    HEAD first makes create-only hold there too, except for a writer racing in
    the gap between the two requests.
    """

    capabilities = Capabilities(
        atomic_create=True,  # If-None-Match: *
        if_match_below=64 << 20,  # s3fs uploads in one PUT below 100 MiB by default
        version_kwarg="version_id",
        versions_option="version_aware",
        open_takes_size=True,
        server_copy_max=5 << 30,  # one CopyObject takes up to 5 GiB
    )

    def list_pages(self, fs: Any, path: str) -> Iterator[Callable[[], Page]] | None:
        # ListObjectsV2 (ListObjectVersions, the latest of each, on a version-aware
        # filesystem) page by page: a million keys never sit in memory at once, nor in
        # s3fs's listing cache, as fs.find(detail=True) keeps them. S3 sorts keys by
        # their UTF-8 bytes.
        bucket, _, key = path.strip("/").partition("/")
        versions = bool(getattr(fs, "version_aware", False))
        fast_timestamps(fs)
        method = "list_object_versions" if versions else "list_objects_v2"
        kw: dict[str, Any] = {"Bucket": bucket, "Prefix": key + "/" if key else ""}
        state: dict[str, Any] = {"done": False}

        direct = None if versions else _direct(fs)

        def page() -> Page:
            if direct is not None and direct.enabled:  # expat instead of botocore's parser: 5x less CPU a key
                from .s3direct import Unsupported

                try:  # the next token first, the entries parsed by the caller (Adapter.list_pages)
                    parse, token = direct.list_page_deferred(bucket, kw["Prefix"], kw.get("ContinuationToken"))
                except Unsupported:
                    pass
                else:
                    if token is None:
                        state["done"] = True
                    else:
                        kw["ContinuationToken"] = token
                    return parse
            out = fs.call_s3(method, **kw)
            items = []
            for c in out.get("Versions" if versions else "Contents", []):
                if versions and not c.get("IsLatest"):
                    continue
                items.append({"name": f"{bucket}/{c['Key']}", "size": c.get("Size", 0), "ETag": c.get("ETag"),
                              "LastModified": c.get("LastModified"), "VersionId": c.get("VersionId")})  # fmt: skip
            if not out.get("IsTruncated"):
                state["done"] = True
            elif versions:
                kw["KeyMarker"] = out.get("NextKeyMarker", "")
                kw["VersionIdMarker"] = out.get("NextVersionIdMarker", "")
            else:
                kw["ContinuationToken"] = out["NextContinuationToken"]
            return items

        return _pages(page, state)

    def server_copy(self, fs: Any, src_path: str, dst_path: str, version_id: str | None) -> None:
        src_bucket, _, src_key = src_path.partition("/")
        dst_bucket, _, dst_key = dst_path.partition("/")
        source: dict[str, str] = {"Bucket": src_bucket, "Key": src_key}
        if version_id:
            source["VersionId"] = version_id
        fs.call_s3("copy_object", Bucket=dst_bucket, Key=dst_key, CopySource=source)
        fs.invalidate_cache(dst_path)

    def transport_options(self, options: dict[str, Any], policy: RetryPolicy) -> dict[str, Any]:
        # s3fs retries a call `retries` times (1.7**i * 0.1 s apart), and
        # botocore retries each HTTP request under that (legacy mode: 5
        # attempts, 60 s connect timeout): stacked on ours, a dead server took
        # minutes per object. One attempt each; connect timeout bounded.
        out = dict(options)
        out.pop("retries", None)  # not a constructor argument: see configure
        config = dict(out.get("config_kwargs") or {})
        config.setdefault("retries", {"total_max_attempts": 1, "mode": "standard"})
        config.setdefault("connect_timeout", policy.connect_timeout)
        config.setdefault("read_timeout", policy.read_timeout)
        out["config_kwargs"] = config
        return out

    def configure(self, fs: Any, options: dict[str, Any]) -> None:
        fs.retries = int(options.get("retries", 1))  # a class attribute of s3fs
        from . import s3direct

        if s3direct.usable(options):  # whole reads and single-part uploads skip botocore's pipeline
            timeout = (getattr(fs, "config_kwargs", None) or {}).get("read_timeout")
            fs._gitdata_direct = s3direct.DirectS3(options, timeout)

    def incomplete_uploads(self, fs: Any, root: str) -> list[IncompleteUpload]:
        bucket, _, prefix = root.strip("/").partition("/")
        kw: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix + "/" if prefix else ""}
        out = []
        while True:
            page = fs.call_s3("list_multipart_uploads", **kw)
            for u in page.get("Uploads", []):
                started = u.get("Initiated")
                out.append(IncompleteUpload(
                    f"{bucket}/{u['Key']}", u["UploadId"], started.timestamp() if started else 0.0
                ))  # fmt: skip
            if not page.get("IsTruncated"):
                return out
            kw["KeyMarker"] = page.get("NextKeyMarker", "")
            kw["UploadIdMarker"] = page.get("NextUploadIdMarker", "")

    def abort_upload(self, fs: Any, upload: IncompleteUpload) -> None:
        bucket, _, key = upload.path.partition("/")
        fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload.upload_id)

    def open_whole(self, fs: Any, rpath: str, kwargs: dict[str, Any]) -> BinaryIO:
        # s3fs reads a file in ranged GETs of its block size, after a HEAD:
        # 22 requests for 1 GiB. Some servers pay per request for the whole
        # object (rclone serve s3 reads the file to hash it for the ETag of
        # every HEAD and GET: 2.3 s for a 256 MiB object here), so a whole
        # read is one GET whose body is read as it arrives (memory: one chunk).
        kw = dict(kwargs)
        kw.pop("size", None)
        version = kw.pop("version_id", None)
        if kw:  # something this path does not know: the general one
            return super().open_whole(fs, rpath, kwargs)
        got = _via_direct(fs, rpath, lambda d, bucket, key, path_version: d.get(bucket, key, version or path_version))
        if got is not None:
            return got  # type: ignore[no-any-return]
        body = self.open_stream(fs, rpath, 0, {"version_id": version} if version else {})
        return body  # type: ignore[return-value]  # a read-only binary file

    def open_stream(self, fs: Any, path: str, start: int, kwargs: dict[str, Any]) -> _S3Body:
        """``GetObject`` with ``Range: bytes=START-``, its body read as it arrives.

        Measured against ``rclone serve s3`` (docs/benchmarks.md): a 256 MiB object read this way
        ran at 50-100 MB/s, in 16 MiB range requests (s3fs's readahead) at 10-12 MB/s: each
        request costs the server about a second there, and a round trip anywhere.
        """
        from fsspec.asyn import sync

        bucket, key, path_version = fs.split_path(path)
        req: dict[str, Any] = {"Bucket": bucket, "Key": key, **fs.req_kw}
        if start:  # from 0 no Range: an empty object has no byte 0 to start at (416)
            req["Range"] = f"bytes={start}-"
        version = kwargs.get("version_id") or path_version
        if version:
            req["VersionId"] = version
        if kwargs.get("if_match"):
            req["IfMatch"] = kwargs["if_match"]
        resp = sync(fs.loop, fs._call_s3, "get_object", **req)
        got = resp.get("ETag")
        if kwargs.get("if_match") and got and got != kwargs["if_match"]:  # a server that ignores If-Match
            resp["Body"].close()
            raise PreconditionFailed(
                f"{path} changed: its ETag is {got} now, {kwargs['if_match']} was recorded"
            )
        details = {"size": resp.get("ContentLength"), "ETag": got, "LastModified": resp.get("LastModified"),
                   "VersionId": resp.get("VersionId")} if not start else None  # fmt: skip
        return _S3Body(fs, resp["Body"], details)

    def put_file(
        self, fs: Any, lpath: str, rpath: str, create_only: bool, if_match: str | None = None,
        part_size: int | None = None, progress: Callable[[int], None] | None = None,
    ) -> None:
        cb = _callback(progress)
        if create_only:
            if fs.exists(rpath):
                raise FileExistsError(rpath)
            fs.put_file(lpath, rpath, mode="create", **_parts(part_size), **cb)
            return
        if if_match and os.path.getsize(lpath) < self.capabilities.if_match_below:
            fs.put_file(lpath, rpath, IfMatch=if_match, **cb)
            return
        if os.path.getsize(lpath) <= _part_bytes(part_size) and _via_direct(  # one PUT s3fs would send too
            fs, rpath, lambda d, bucket, key, _v: d.put_file(bucket, key, lpath, progress), written=True
        ):
            return
        fs.put_file(lpath, rpath, **_parts(part_size), **cb)

    def put_bytes(self, fs: Any, data: bytes, rpath: str) -> None:
        if not _via_direct(fs, rpath, lambda d, bucket, key, _v: d.put_bytes(bucket, key, data), written=True):
            fs.pipe_file(rpath, data)


def _via_direct(fs: Any, rpath: str, send: Callable[[Any, str, str, str | None], Any], written: bool = False) -> Any:
    """``send(direct, bucket, key, version)`` on the filesystem's :class:`.s3direct.DirectS3`:
    its result (True for a write, which also drops s3fs's cached listing of ``rpath``), or None
    where the direct path is off or hands the request back (s3fs sends it then)."""
    direct = _direct(fs)
    if direct is None:
        return None
    from .s3direct import Unsupported

    bucket, key, version = split_s3_path(fs, rpath)
    try:
        got = send(direct, bucket, key, version)
    except Unsupported:  # botocore's path decides (a bucket in another region, say)
        return None
    if written:
        fs.invalidate_cache(rpath)
        return True
    return got


def split_s3_path(fs: Any, rpath: str) -> tuple[str, str, str | None]:
    """``fs.split_path(rpath)`` (bucket, key, version), its common case taken here: a plain
    ``bucket/key`` needs none of the access-point patterns s3fs compiles and tries on every
    call (a test compares both on generated paths)."""
    if rpath.startswith(("arn:", "s3:", "s3a:", "/")) or "/" not in rpath or rpath.endswith("/"):
        return fs.split_path(rpath)  # type: ignore[no-any-return]
    bucket, _, keypart = rpath.partition("/")
    key, _, version = keypart.partition("?versionId=")
    return bucket, key, version if fs.version_aware and version else None


def _direct(fs: Any) -> Any:
    """The filesystem's :class:`.s3direct.DirectS3`, while it is on (None: s3fs sends)."""
    direct = getattr(fs, "_gitdata_direct", None)
    return direct if direct is not None and direct.enabled else None


def _pages(page: Callable[[], Page], state: dict[str, Any]) -> Iterator[Callable[[], Page]]:
    """``page`` again and again, until a call has set ``state["done"]`` (each call fetches
    the page after the one before: the callers of :meth:`Adapter.list_pages` call it in turn)."""
    while not state["done"]:
        yield page


def _callback(progress: Callable[[int], None] | None) -> dict[str, Any]:
    """fsspec's ``callback=`` for ``put_file`` that hands each part's bytes to ``progress``
    (called on the filesystem's event loop thread); nothing without one."""
    if progress is None:
        return {}
    from fsspec.callbacks import Callback

    class _Bytes(Callback):
        def relative_update(self, inc: int = 1) -> None:
            progress(inc)

    return {"callback": _Bytes()}


#: Parts of one multipart upload in flight at once (memory: this x the part size).
PART_JOBS = 4


def _iso_timestamp(value: Any) -> Any:
    """botocore's timestamp parser, with ISO 8601 (what S3's XML states) read by
    ``datetime.fromisoformat`` and HTTP dates (response headers) by the standard
    library's parser; anything else (epochs, other forms) goes to botocore's own."""
    if isinstance(value, str) and len(value) >= 20 and value[10:11] == "T":
        text = value[:-1] + "+00:00" if value.endswith("Z") else value
        try:
            parsed = _dt.datetime.fromisoformat(text)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed
    elif isinstance(value, str) and value.endswith(" GMT") and value[3:5] == ", ":  # an HTTP date (RFC 7231)
        from email.utils import parsedate_to_datetime

        try:
            return parsedate_to_datetime(value)
        except (TypeError, ValueError):
            pass
    from botocore.utils import parse_timestamp  # not on the fast paths above: called per listed key

    return parse_timestamp(value)


def fast_timestamps(fs: Any) -> None:
    """Have ``fs``'s botocore session parse timestamps with :func:`_iso_timestamp`.

    botocore reads every listed ``LastModified`` with dateutil's general parser,
    about 100 us each: measured here, 60 % of the client's CPU for a listing of
    100,000 keys (docs/benchmarks.md, Scale). Parsers are made per response from
    the session's factory, so this holds for the client already made. Without a
    botocore session (another S3 implementation) nothing changes.
    """
    try:
        if getattr(fs, "session", None) is None:
            fs.connect()
        factory = fs.session.get_component("response_parser_factory")
        factory.set_parser_defaults(timestamp_parser=_iso_timestamp)
    except (AttributeError, TypeError, ValueError):
        return


def _part_bytes(part_size: int | None) -> int:
    """The part size s3fs is given (S3's minimum is 5 MiB): files up to it go in one PUT."""
    return max(5 << 20, part_size or 0)


def _parts(part_size: int | None) -> dict[str, int]:
    """s3fs's multipart settings: parts of ``part_size``, :data:`PART_JOBS` at a
    time (s3fs's own default, 10 x 50 MiB, held 1 GiB of a 1 GiB upload in memory)."""
    if not part_size:
        return {}
    return {"chunksize": _part_bytes(part_size), "max_concurrency": PART_JOBS}


async def _read_upto(body: Any, size: int) -> bytes:
    out = bytearray()
    while size < 0 or len(out) < size:  # a network read may return less than asked
        chunk = await body.read((1 << 20) if size < 0 else size - len(out))
        if not chunk:
            break
        out += chunk
    return bytes(out)


class _S3Body(io.RawIOBase):
    """A GET's body as a blocking file: each ``read`` waits for the next bytes. ``details``:
    what the answer states of the object it carries (size, ETag, LastModified, VersionId; as
    an fsspec file's ``details``), None for a range."""

    def __init__(self, fs: Any, body: Any, details: dict[str, Any] | None = None) -> None:
        self._fs = fs
        self._body = body
        self.details = details

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        n = len(data)
        b[:n] = data
        return n

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes (all that is left for -1): one hand-over to
        the event loop per call, however many network reads it takes."""
        from fsspec.asyn import sync

        return sync(self._fs.loop, _read_upto, self._body, -1 if size is None else size)  # type: ignore[no-any-return]

    def close(self) -> None:
        if not self.closed:
            try:
                self._body.close()
            finally:
                super().close()


class GcsAdapter(Adapter):
    create_only_kwarg = True  # gcsfs sends ifGenerationMatch=0
    capabilities = Capabilities(
        atomic_create=True,
        version_kwarg="generation",  # read as path#G (Storage.versioned_path)
        versions_option="version_aware",  # listings and info report generations
    )

    def list_pages(self, fs: Any, path: str) -> Iterator[Callable[[], Page]] | None:
        # objects.list page by page (1,000 a page, pageToken): the live objects, each with
        # its generation, in key order; nothing kept in gcsfs's listing cache, which
        # fs.find fills with every key. Each item is what gcsfs's info states for the
        # facts a fingerprint reads.
        bucket, _, key = path.strip("/").partition("/")
        params: dict[str, Any] = {"prefix": key + "/" if key else "", "maxResults": 1000}
        state: dict[str, Any] = {"done": False}

        def page() -> list[dict[str, Any]]:
            out = fs.call("GET", "b/{}/o", bucket, json_out=True, **params)
            items = [
                {"name": f"{bucket}/{i['name']}", "size": int(i.get("size", 0)), "etag": i.get("etag"),
                 "md5Hash": i.get("md5Hash"), "generation": i.get("generation"), "updated": i.get("updated")}
                for i in out.get("items", [])
            ]  # fmt: skip
            token = out.get("nextPageToken")
            if token:
                params["pageToken"] = token
            else:
                state["done"] = True
            return items

        return _pages(page, state)


class LocalAdapter(Adapter):
    """fsspec's local filesystem (a ``file://`` storage opened with options):
    published as :mod:`.folder` publishes, under a temporary name, then renamed."""

    capabilities = LOCAL

    def put_file(
        self, fs: Any, lpath: str, rpath: str, create_only: bool, if_match: str | None = None,
        part_size: int | None = None, progress: Callable[[int], None] | None = None,
    ) -> None:
        publish_file(lpath, rpath, create_only)

    @contextmanager
    def open_write(self, fs: Any, rpath: str) -> Iterator[BinaryIO]:
        with write_object(rpath) as f:
            yield f


LOCAL_ADAPTER = LocalAdapter()

_ADAPTERS: dict[str, Adapter] = {
    "file": LOCAL_ADAPTER,
    "local": LOCAL_ADAPTER,
    "s3": S3Adapter(),
    "s3a": S3Adapter(),
    "gs": GcsAdapter(),
    "gcs": GcsAdapter(),
}


def adapter_for_protocol(protocol: str) -> Adapter:
    return _ADAPTERS.get(protocol) or Adapter()


def adapter_for(fs: Any) -> Adapter:
    protocols = fs.protocol if isinstance(fs.protocol, tuple | list) else (fs.protocol,)
    for p in protocols:
        if p in _ADAPTERS:
            return _ADAPTERS[p]
    return Adapter()
