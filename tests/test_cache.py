"""The local cache: atomic writes, verification, nothing half-written."""

from __future__ import annotations

import io
import os

import pytest

from gitdata.cache import PACK_MAX, Cache, CorruptObject
from gitdata.hashing import oid_of_bytes


def test_put_and_verify(tmp_path):
    cache = Cache(str(tmp_path / "c"))
    oid, size = cache.put_bytes(b"hello", "xxh128")
    assert oid == oid_of_bytes(b"hello") and size == 5
    assert cache.has(oid) and cache.verify(oid)
    assert list(cache.iter_oids()) == [oid]
    assert cache.read_bytes(oid) == b"hello" and cache.size_of(oid) == 5


def test_large_objects_are_files_with_one_level_of_fan_out(tmp_path):
    cache = Cache(str(tmp_path / "c"))
    data = b"y" * (PACK_MAX + 1)
    oid, _ = cache.put_bytes(data, "xxh128")
    hexd = oid.split(":")[1]
    assert cache.loose_path(oid) == cache.path(oid)
    assert cache.path(oid).endswith(f"objects/{hexd[:2]}/{hexd}")
    assert cache.read_bytes(oid) == data and list(cache.iter_oids()) == [oid]


def test_small_objects_share_one_pack_and_other_processes_see_them(tmp_path):
    cache = Cache(str(tmp_path / "c"))
    blobs = [f"object {i}".encode() * 50 for i in range(300)]
    oids = [cache.put_bytes(b, "xxh128")[0] for b in blobs]
    assert cache.put_bytes(blobs[0], "xxh128")[0] == oids[0]  # again: not appended twice
    packs = sorted(os.listdir(tmp_path / "c" / "packs"))
    assert len(packs) == 2 and packs[0].endswith(".idx") and packs[1].endswith(".pack")
    assert os.path.getsize(tmp_path / "c" / "packs" / packs[1]) == sum(map(len, blobs))
    assert not os.path.exists(cache.objects_dir)  # no file per object
    other = Cache(str(tmp_path / "c"))  # as another process would read it
    assert all(other.has(o) and other.loose_path(o) is None for o in oids)
    assert [other.read_bytes(o) for o in oids] == blobs
    assert sorted(other.iter_oids()) == sorted(oids)
    with other.open(oids[7]) as f:
        assert f.read() == blobs[7]


def test_index_lines_without_their_bytes_are_ignored(tmp_path):
    """A process killed between the bytes and the index line, or a torn line."""
    cache = Cache(str(tmp_path / "c"))
    oid, _ = cache.put_bytes(b"kept", "xxh128")
    packs = tmp_path / "c" / "packs"
    idx = next(packs.glob("*.idx"))
    with open(idx, "ab") as f:
        f.write(f"{oid_of_bytes(b'lost')} 4 4\n".encode())  # bytes never written
        f.write(b"xxh128:0123 0")  # torn
    other = Cache(str(tmp_path / "c"))
    assert other.has(oid) and not other.has(oid_of_bytes(b"lost"))
    assert list(other.iter_oids()) == [oid]


def test_remove_rewrites_the_pack_without_the_object(tmp_path):
    cache = Cache(str(tmp_path / "c"))
    a, _ = cache.put_bytes(b"a" * 100, "xxh128")
    b, _ = cache.put_bytes(b"b" * 100, "xxh128")
    cache.remove(a)
    assert not cache.has(a) and cache.read_bytes(b) == b"b" * 100
    other = Cache(str(tmp_path / "c"))
    assert not other.has(a) and other.read_bytes(b) == b"b" * 100
    assert sum(p.stat().st_size for p in (tmp_path / "c" / "packs").glob("*.pack")) == 100
    c, _ = cache.put_bytes(b"c" * 10, "xxh128")  # appending still works afterwards
    assert Cache(str(tmp_path / "c")).read_bytes(c) == b"c" * 10


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
    assert not os.path.exists(cache.tmp_dir) or os.listdir(cache.tmp_dir) == []
    assert not os.path.exists(cache.packs.folder)


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
    oid, _ = cache.put_bytes(b"d" * (PACK_MAX + 1), "xxh128")
    with open(cache.path(oid), "wb") as f:
        f.write(b"evil")
    assert not cache.verify(oid)
    small, _ = cache.put_bytes(b"data", "xxh128")
    pack = next((tmp_path / "c" / "packs").glob("*.pack"))
    os.chmod(pack, 0o644)
    pack.write_bytes(b"evil")
    assert not Cache(str(tmp_path / "c")).verify(small)


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
