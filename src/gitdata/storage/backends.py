"""Thin per-backend adapters: how to write an object so that it appears whole.

The core never asks which cloud it talks to; it asks the adapter for the
filesystem it has. Object stores (S3, GCS) publish an object only when its
upload completes; a plain filesystem needs a temporary name and a rename.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
    #: objects up to this size can be copied inside the service, their bytes
    #: never passing through this process (0: no server-side copy)
    server_copy_max = 0

    def server_copy(self, fs: Any, src_path: str, dst_path: str, version_id: str | None) -> None:
        """Copy ``src_path`` (that version, if given) to ``dst_path`` inside the service."""
        raise NotImplementedError

    @contextmanager
    def open_write(self, fs: Any, rpath: str) -> Iterator[BinaryIO]:
        """A file to stream an object into: it appears at ``rpath`` only when
        the block ends without an error (an object store publishes on close;
        on an error the upload is discarded, never completed)."""
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

    def put_file(
        self, fs: Any, lpath: str, rpath: str, create_only: bool, if_match: str | None = None
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
    server_copy_max = 5 << 30  # one CopyObject takes up to 5 GiB

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

    def put_file(
        self, fs: Any, lpath: str, rpath: str, create_only: bool, if_match: str | None = None
    ) -> None:
        if create_only:
            if fs.exists(rpath):
                raise FileExistsError(rpath)
            fs.put_file(lpath, rpath, mode="create")
            return
        super().put_file(fs, lpath, rpath, False, if_match)


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
        self, fs: Any, lpath: str, rpath: str, create_only: bool, if_match: str | None = None
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

    @contextmanager
    def open_write(self, fs: Any, rpath: str) -> Iterator[BinaryIO]:
        os.makedirs(os.path.dirname(rpath), exist_ok=True)
        tmp = os.path.join(os.path.dirname(rpath), f"{TMP_PREFIX}{os.urandom(16).hex()}")
        try:
            with open(tmp, "xb") as f:
                yield f
            os.replace(tmp, rpath)
        finally:
            if os.path.lexists(tmp):
                os.unlink(tmp)

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
