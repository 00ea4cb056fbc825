"""The local cache: atomic writes, verification, nothing half-written."""

from __future__ import annotations

import io
import os

import pytest

from gitdata.cache import Cache, CorruptObject
from gitdata.hashing import oid_of_bytes


def test_put_and_verify(tmp_path):
    cache = Cache(str(tmp_path / "c"))
    oid, size = cache.put_bytes(b"hello", "xxh128")
    assert oid == oid_of_bytes(b"hello") and size == 5
    assert cache.has(oid) and cache.verify(oid)
    assert list(cache.iter_oids()) == [oid]
    hexd = oid.split(":")[1]
    assert cache.path(oid).endswith(f"objects/{hexd[:2]}/{hexd[2:4]}/{hexd}")


def test_sha256_selectable(tmp_path):
    cache = Cache(str(tmp_path / "c"))
    oid, _ = cache.put_stream(io.BytesIO(b"x" * 3_000_000), "sha256")
    assert oid.startswith("sha256:") and len(oid) == 7 + 64
    assert cache.verify(oid)


def test_wrong_bytes_are_refused_and_leave_nothing(tmp_path):
    cache = Cache(str(tmp_path / "c"))
    expected = oid_of_bytes(b"right")
    with pytest.raises(CorruptObject):
        cache.put_bytes(b"wrong", "xxh128", expected_oid=expected)
    assert not cache.has(expected)
    assert list(cache.iter_oids()) == []
    assert os.listdir(cache.tmp_dir) == []


def test_interrupted_write_leaves_no_object(tmp_path):
    cache = Cache(str(tmp_path / "c"))

    class Boom(io.RawIOBase):
        def __init__(self):
            self.n = 0

        def readable(self):
            return True

        def read(self, n=-1):
            self.n += 1
            if self.n > 3:
                raise ConnectionError("transfer killed")
            return b"x" * 1000

    with pytest.raises(ConnectionError):
        cache.put_stream(Boom(), "xxh128")
    assert list(cache.iter_oids()) == []
    assert os.listdir(cache.tmp_dir) == []


def test_corruption_is_detected(tmp_path):
    cache = Cache(str(tmp_path / "c"))
    oid, _ = cache.put_bytes(b"data", "xxh128")
    with open(cache.path(oid), "wb") as f:
        f.write(b"evil")
    assert not cache.verify(oid)


def test_copy_to_is_atomic_and_keeps_mode(tmp_path):
    cache = Cache(str(tmp_path / "c"))
    oid, _ = cache.put_bytes(b"content", "xxh128")
    dest = tmp_path / "wt" / "f.bin"
    dest.parent.mkdir()
    dest.write_bytes(b"pointer")
    os.chmod(dest, 0o755)
    cache.copy_to(oid, str(dest))
    assert dest.read_bytes() == b"content"
    assert (os.stat(dest).st_mode & 0o777) == 0o755
    assert [p.name for p in dest.parent.iterdir()] == ["f.bin"]
