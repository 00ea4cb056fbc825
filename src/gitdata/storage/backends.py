"""Thin per-backend adapters: how to write an object so that it appears whole.

The core never asks which cloud it talks to; it asks the adapter for the
filesystem it has. Object stores (S3, GCS) publish an object only when its
upload completes; a plain filesystem needs a temporary name and a rename.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ..retry import RetryPolicy
from .base import Capabilities
from .folder import LOCAL, publish_file


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
        if if_match and os.path.getsize(lpath) < self.capabilities.if_match_below:
            fs.put_file(lpath, rpath, IfMatch=if_match)
            return
        fs.put_file(lpath, rpath)


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
    )

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
    capabilities = Capabilities(
        atomic_create=True,
        version_kwarg="generation",  # read as path#G (Storage.versioned_path)
        versions_option="version_aware",  # listings and info report generations
    )


class LocalAdapter(Adapter):
    """fsspec's local filesystem (a ``file://`` storage opened with options):
    published as :mod:`.folder` publishes, under a temporary name, then renamed."""

    capabilities = LOCAL

    def put_file(
        self, fs: Any, lpath: str, rpath: str, create_only: bool, if_match: str | None = None
    ) -> None:
        publish_file(lpath, rpath, create_only)


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
