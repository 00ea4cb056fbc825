"""Thin per-backend adapters: how to write an object so that it appears whole.

The core never asks which cloud it talks to; it asks the adapter for the
filesystem it has. Object stores (S3, GCS) publish an object only when its
upload completes; a plain filesystem needs a temporary name and a rename.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from ..fileio import write_new
from ..retry import RetryPolicy

#: Name prefix of an upload in progress on a filesystem backend; listings skip it.
TMP_PREFIX = ".gitdata-tmp-"


@dataclass(frozen=True)
class IncompleteUpload:
    """A multipart upload that was started and neither completed nor aborted
    (a killed push): invisible in listings, its parts still stored and billed."""

    path: str  #: the object's full path (``bucket/key``)
    upload_id: str
    initiated: float  #: seconds since the epoch


class Adapter:
    """Default: the backend publishes objects atomically (object stores)."""

    #: ``put_file(..., mode="create")`` is understood (conditional PUT).
    create_only_kwarg = False
    #: Transfers are CPU- and syscall-bound (a local or mounted folder), not
    #: latency-bound: more threads than cores only add contention.
    cpu_bound = False
    #: ``create_only`` is atomic here (if the server honours it): of two
    #: concurrent creates exactly one succeeds. Otherwise it is check-then-put.
    atomic_create = False
    #: ``put_file(..., IfMatch=etag)`` is understood, for files below this size
    #: (larger ones go as multipart uploads, whose first call takes no IfMatch).
    if_match_below = 0
    #: the ``open`` keyword that names one version of an object (None: no versions)
    version_kwarg: str | None = None
    #: the constructor option that makes listings and ``info`` report version ids
    versions_option: str | None = None
    #: ``open(size=N)`` is understood: a size just listed spares a HEAD
    open_takes_size = False

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

    def put_file(
        self, fs: Any, lpath: str, rpath: str, create_only: bool, if_match: str | None = None,
        part_size: int | None = None,
    ) -> None:
        if create_only and self.create_only_kwarg:
            fs.put_file(lpath, rpath, mode="create")
            return
        if create_only and fs.exists(rpath):
            raise FileExistsError(rpath)
        if if_match and os.path.getsize(lpath) < self.if_match_below:
            fs.put_file(lpath, rpath, IfMatch=if_match)
            return
        fs.put_file(lpath, rpath)


class S3Adapter(Adapter):
    """S3: ``If-None-Match: *`` on the PUT, after a HEAD; versions by ``version_id``.

    Some S3 servers (rclone's, older MinIO) ignore the conditional header; the
    HEAD first makes create-only hold there too, except for a writer racing in
    the gap between the two requests.
    """

    version_kwarg = "version_id"
    versions_option = "version_aware"
    open_takes_size = True

    atomic_create = True  # If-None-Match: *
    if_match_below = 64 << 20  # s3fs uploads in one PUT below 100 MiB by default

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
        bucket, key, path_version = fs.split_path(rpath)
        params: dict[str, Any] = {"Bucket": bucket, "Key": key, **fs.req_kw}
        if version or path_version:
            params["VersionId"] = version or path_version
        if kw:  # something this path does not know: the general one
            return super().open_whole(fs, rpath, kwargs)
        from fsspec.asyn import sync

        resp = sync(fs.loop, fs._call_s3, "get_object", **params)
        return _S3Body(fs, resp["Body"])  # type: ignore[return-value]  # a read-only binary file

    def put_file(
        self, fs: Any, lpath: str, rpath: str, create_only: bool, if_match: str | None = None,
        part_size: int | None = None,
    ) -> None:
        if create_only:
            if fs.exists(rpath):
                raise FileExistsError(rpath)
            fs.put_file(lpath, rpath, mode="create", **_parts(part_size))
            return
        if if_match and os.path.getsize(lpath) < self.if_match_below:
            fs.put_file(lpath, rpath, IfMatch=if_match)
            return
        fs.put_file(lpath, rpath, **_parts(part_size))


#: Parts of one multipart upload in flight at once (memory: this x the part size).
PART_JOBS = 4


def _parts(part_size: int | None) -> dict[str, int]:
    """s3fs's multipart settings: parts of ``part_size``, :data:`PART_JOBS` at a
    time (s3fs's own default, 10 x 50 MiB, held 1 GiB of a 1 GiB upload in memory)."""
    if not part_size:
        return {}
    return {"chunksize": max(5 << 20, part_size), "max_concurrency": PART_JOBS}


async def _read_upto(body: Any, size: int) -> bytes:
    out = bytearray()
    while size < 0 or len(out) < size:  # a network read may return less than asked
        chunk = await body.read((1 << 20) if size < 0 else size - len(out))
        if not chunk:
            break
        out += chunk
    return bytes(out)


class _S3Body(io.RawIOBase):
    """A GET's body as a blocking file: each ``read`` waits for the next bytes."""

    def __init__(self, fs: Any, body: Any) -> None:
        self._fs = fs
        self._body = body

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
    atomic_create = True
    version_kwarg = "generation"  # read as path#G (Storage.versioned_path)
    versions_option = "version_aware"  # listings and info report generations


class LocalAdapter(Adapter):
    """Write beside the target under a temporary name, then rename into place."""

    atomic_create = True  # link(2) fails if the target exists
    cpu_bound = True

    def put_file(
        self, fs: Any, lpath: str, rpath: str, create_only: bool, if_match: str | None = None,
        part_size: int | None = None,
    ) -> None:
        def fill(tmp: str) -> None:
            try:
                _copy(lpath, tmp)
            except FileNotFoundError:
                if not os.path.exists(lpath):
                    raise  # the source is missing, not the target folder
                os.makedirs(os.path.dirname(rpath), exist_ok=True)  # first object in this folder
                _copy(lpath, tmp)

        _publish(rpath, fill, create_only)

    def put_bytes(self, rpath: str, data: bytes) -> None:
        def fill(tmp: str) -> None:
            try:
                write_new(tmp, data)
            except FileNotFoundError:
                os.makedirs(os.path.dirname(rpath), exist_ok=True)  # first object in this folder
                write_new(tmp, data)

        _publish(rpath, fill, False)


def _publish(rpath: str, fill: Callable[[str], None], create_only: bool) -> None:
    """``fill`` a temporary name beside ``rpath``, then move it there (``create_only``:
    only if nothing is there yet); nothing is left under the temporary name."""
    tmp = os.path.join(os.path.dirname(rpath), f"{TMP_PREFIX}{os.urandom(16).hex()}")
    try:
        fill(tmp)
        if create_only:
            os.link(tmp, rpath)  # FileExistsError if someone was first
            os.unlink(tmp)
        else:
            os.replace(tmp, rpath)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


#: Files up to this size are copied with one read and one write.
_SMALL_COPY = 1 << 20


def _copy(src: str, dst: str) -> None:
    """Copy ``src`` to ``dst``, which must not exist yet: one read and one write
    for a small file (10,000 objects are 10,000 of these), ``sendfile`` for the
    rest, so memory stays flat."""
    with open(src, "rb") as fi:
        size = os.fstat(fi.fileno()).st_size
        if size > _SMALL_COPY:
            with open(dst, "xb") as fo:
                _sendfile_all(fi, fo, size)
            return
        data = fi.read()
    write_new(dst, data)


def _sendfile_all(fi: BinaryIO, fo: BinaryIO, size: int) -> None:
    offset = 0
    try:
        while offset < size:
            sent = os.sendfile(fo.fileno(), fi.fileno(), offset, min(size - offset, 1 << 30))
            if sent == 0:
                break
            offset += sent
    except OSError as err:
        if offset or err.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise
        shutil.copyfileobj(fi, fo, 4 << 20)  # no sendfile between these filesystems
        offset = fo.tell()
    if offset != size:
        raise OSError(errno.EIO, f"copy came out short: {offset} of {size} bytes")


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
