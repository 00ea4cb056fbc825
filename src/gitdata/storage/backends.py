"""Thin per-backend adapters: how to write an object so that it appears whole.

The core never asks which cloud it talks to; it asks the adapter for the
filesystem it has. Object stores (S3, GCS) publish an object only when its
upload completes; a plain filesystem needs a temporary name and a rename.
"""

from __future__ import annotations

import os
import shutil
import uuid
from typing import Any


class Adapter:
    """Default: the backend publishes objects atomically (object stores)."""

    #: ``put_file(..., mode="create")`` is understood (conditional PUT).
    create_only_kwarg = False

    def put_file(self, fs: Any, lpath: str, rpath: str, create_only: bool) -> None:
        if create_only and self.create_only_kwarg:
            fs.put_file(lpath, rpath, mode="create")
            return
        if create_only and fs.exists(rpath):
            raise FileExistsError(rpath)
        fs.put_file(lpath, rpath)


class S3Adapter(Adapter):
    create_only_kwarg = True


class LocalAdapter(Adapter):
    """Write beside the target under a temporary name, then rename into place."""

    def put_file(self, fs: Any, lpath: str, rpath: str, create_only: bool) -> None:
        rpath = fs._strip_protocol(rpath)
        parent = os.path.dirname(rpath)
        os.makedirs(parent, exist_ok=True)
        tmp = os.path.join(parent, f".gitdata-tmp-{uuid.uuid4().hex}")
        try:
            shutil.copyfile(lpath, tmp)
            if create_only:
                os.link(tmp, rpath)  # FileExistsError if someone was first
            else:
                os.replace(tmp, rpath)
        finally:
            if os.path.lexists(tmp):
                os.unlink(tmp)


_ADAPTERS: dict[str, Adapter] = {
    "file": LocalAdapter(),
    "local": LocalAdapter(),
    "s3": S3Adapter(),
    "s3a": S3Adapter(),
}


def adapter_for(fs: Any) -> Adapter:
    protocols = fs.protocol if isinstance(fs.protocol, tuple | list) else (fs.protocol,)
    for p in protocols:
        if p in _ADAPTERS:
            return _ADAPTERS[p]
    return Adapter()
