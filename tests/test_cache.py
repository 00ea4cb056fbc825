"""The local cache: atomic writes, verification, nothing half-written."""

from __future__ import annotations

import io
import os
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitdata.cache import IDX_HEADER, PACK_MAX, Cache, CorruptObject
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


# -- crash-safe pack index -------------------------------------------------------


def _pack_files(root):
    packs = root / "packs"
    return next(packs.glob("*.idx")), next(packs.glob("*.pack"))


def _append_raw(path, data):
    os.chmod(path, 0o644)
    with open(path, "ab") as f:
        f.write(data)


def _record(oid, offset, size):
    import zlib

    fields = f"{oid} {offset} {size}".encode()
    return fields + b" %08x\n" % zlib.crc32(fields)


def test_index_has_a_header_and_checksummed_records(tmp_path):
    cache = Cache(str(tmp_path / "c"))
    oid, _ = cache.put_bytes(b"abc", "xxh128")
    idx, _pack = _pack_files(tmp_path / "c")
    assert idx.read_bytes() == IDX_HEADER + _record(oid, 0, 3)


def test_a_torn_last_record_is_ignored(tmp_path):
    """Disk full (or a kill) while appending the record: its bytes are in the
    pack, the record is cut short; a complete record would have been read."""
    cache = Cache(str(tmp_path / "c"))
    kept, _ = cache.put_bytes(b"kept", "xxh128")
    idx, pack = _pack_files(tmp_path / "c")
    lost = oid_of_bytes(b"lost-bytes")
    _append_raw(pack, b"lost-bytes")
    full = _record(lost, 4, 10)
    for cut in (len(full) - 1, len(full) - 3, len(full) - 10, 40):
        torn = tmp_path / f"torn{cut}"
        torn.mkdir()
        (torn / "packs").mkdir()
        t_idx, t_pack = torn / "packs" / idx.name, torn / "packs" / pack.name
        t_pack.write_bytes(pack.read_bytes())
        t_idx.write_bytes(idx.read_bytes() + full[:cut])
        other = Cache(str(torn))
        assert other.has(kept) and not other.has(lost), cut
    _append_raw(idx, full)  # the same record whole: found (the test can fail)
    assert Cache(str(tmp_path / "c")).read_bytes(lost) == b"lost-bytes"


def test_a_record_with_damaged_fields_is_ignored(tmp_path):
    cache = Cache(str(tmp_path / "c"))
    a, _ = cache.put_bytes(b"a" * 100, "xxh128")
    b, _ = cache.put_bytes(b"b" * 100, "xxh128")
    idx, _pack = _pack_files(tmp_path / "c")
    data = idx.read_bytes()
    rec = _record(b, 100, 100)
    assert rec in data
    os.chmod(idx, 0o644)
    idx.write_bytes(data.replace(rec, rec.replace(b" 100 100 ", b" 100 010 ")))
    other = Cache(str(tmp_path / "c"))
    assert other.has(a) and not other.has(b)


def test_a_record_pointing_past_the_end_of_the_pack_is_ignored(tmp_path):
    cache = Cache(str(tmp_path / "c"))
    a, _ = cache.put_bytes(b"a" * 100, "xxh128")
    idx, _pack = _pack_files(tmp_path / "c")
    ghost = oid_of_bytes(b"g" * 50)
    _append_raw(idx, _record(ghost, 80, 50))  # checksum fine, bytes 100..130 do not exist
    other = Cache(str(tmp_path / "c"))
    assert other.has(a) and not other.has(ghost)


def test_parse_idx_reads_format_1_with_bounds(tmp_path):
    from gitdata.cache import parse_idx

    v1 = b"xxh128:aa 0 10\nxxh128:bb 10 5\nxxh128:cc 12 9\nxxh128:dd 1"  # cc past the end, dd torn
    assert parse_idx(v1, 15) == {"xxh128:aa": (0, 10), "xxh128:bb": (10, 5)}
    v2 = IDX_HEADER + _record("xxh128:aa", 0, 10) + b"xxh128:bb 10 5\n"  # v2: unchecked lines ignored
    assert parse_idx(v2, 15) == {"xxh128:aa": (0, 10)}


def test_a_torn_format_1_record_is_never_served(tmp_path):
    """An old index without checksums: a record cut inside its size field
    still parses, but the bytes it names do not hash to its oid."""
    root = tmp_path / "c"
    (root / "packs").mkdir(parents=True)
    data = b"x" * 1234
    oid = oid_of_bytes(data)
    (root / "packs" / "pack-old.pack").write_bytes(data)
    (root / "packs" / "pack-old.idx").write_bytes(f"{oid} 0 12\n".encode())  # was "... 0 1234"
    cache = Cache(str(root))
    assert cache.has(oid)  # the record is read...
    with pytest.raises(CorruptObject):
        cache.read_bytes(oid)  # ...but its bytes are refused
    assert not cache.has(oid, 1234)
    (root / "packs" / "pack-good.pack").write_bytes(data)
    (root / "packs" / "pack-good.idx").write_bytes(f"{oid} 0 1234\n".encode())
    assert Cache(str(root)).read_bytes(oid) == data  # a whole old record still works


def test_damaged_packed_bytes_are_refused_dropped_and_refetched(tmp_path):
    cache = Cache(str(tmp_path / "c"))
    a, _ = cache.put_bytes(b"a" * 100, "xxh128")
    b, _ = cache.put_bytes(b"b" * 100, "xxh128")
    _idx, pack = _pack_files(tmp_path / "c")
    os.chmod(pack, 0o644)
    with open(pack, "r+b") as f:
        f.seek(150)
        f.write(b"X")
    other = Cache(str(tmp_path / "c"))
    assert other.has(b)  # without a size: present
    assert not other.has(b, 100)  # on its way to a work tree: hash-checked, refused
    assert not other.has(b)  # and dropped from the pack
    assert other.read_bytes(a) == b"a" * 100  # its neighbours survive
    other.put_bytes(b"b" * 100, "xxh128")  # fetched again
    third = Cache(str(tmp_path / "c"))
    assert third.has(b, 100) and third.read_bytes(b) == b"b" * 100 and third.read_bytes(a) == b"a" * 100


def test_a_truncated_loose_object_is_refused_and_rewritten(tmp_path):
    cache = Cache(str(tmp_path / "c"))
    data = b"L" * (PACK_MAX + 10)
    oid, _ = cache.put_bytes(data, "xxh128")
    with open(cache.path(oid), "r+b") as f:
        f.truncate(1000)
    assert cache.has(oid)
    dest = tmp_path / "wt.bin"
    with pytest.raises(CorruptObject):
        cache.copy_to(oid, str(dest), size=len(data))
    assert not dest.exists()
    assert not cache.has(oid, len(data))
    assert not os.path.exists(cache.path(oid))  # removed, so a fetch can put it back
    cache.put_bytes(data, "xxh128")
    assert cache.has(oid, len(data))
    cache.copy_to(oid, str(dest), size=len(data))
    assert dest.read_bytes() == data


# -- stale temporary files ---------------------------------------------------------


def _old(path, age):
    t = time.time() - age
    os.utime(path, (t, t))


def test_stale_temporary_files_are_removed_by_the_next_write(tmp_path):
    cache = Cache(str(tmp_path / "c"), temp_max_age=3600)
    os.makedirs(cache.tmp_dir)
    stale = os.path.join(cache.tmp_dir, "obj-killed")
    fresh = os.path.join(cache.tmp_dir, "obj-running")
    for p in (stale, fresh):
        with open(p, "wb") as f:
            f.write(b"partial")
    _old(stale, 2 * 3600)
    _old(fresh, 60)  # a writer that is still going
    assert [p for p, _ in cache.stale_temp()] == [stale]
    cache.put_bytes(b"x", "xxh128")
    assert not os.path.exists(stale) and os.path.exists(fresh)


def test_a_running_writers_temporary_file_is_not_removed(tmp_path):
    root = str(tmp_path / "c")
    w = Cache(root, temp_max_age=3600).writer("xxh128")
    w.write(b"a" * 1000)
    other = Cache(root, temp_max_age=3600)
    assert other.sweep_temp() == []
    other.put_bytes(b"y" * (PACK_MAX + 1), "xxh128")  # another process writing meanwhile
    assert os.path.exists(w.tmp)
    w.write(b"b" * 1000)
    oid, size = w.commit()
    assert size == 2000 and Cache(root).read_bytes(oid) == b"a" * 1000 + b"b" * 1000


def test_the_sweep_runs_once_per_cache_object(tmp_path):
    cache = Cache(str(tmp_path / "c"), temp_max_age=10)
    cache.put_bytes(b"first", "xxh128")
    os.makedirs(cache.tmp_dir, exist_ok=True)
    later = os.path.join(cache.tmp_dir, "obj-later")
    open(later, "wb").close()
    _old(later, 100)
    cache.put_bytes(b"second", "xxh128")
    assert os.path.exists(later)  # not swept again by this process
    Cache(str(tmp_path / "c"), temp_max_age=10).put_bytes(b"third", "xxh128")
    assert not os.path.exists(later)


@settings(max_examples=300, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=300), min_size=1, max_size=12),
    cut=st.integers(min_value=0, max_value=10_000),
    flip=st.one_of(st.none(), st.integers(min_value=0, max_value=10_000)),
)
def test_parse_idx_never_returns_a_record_that_was_not_written_whole(sizes, cut, flip):
    """Any prefix of an index (a torn append), with or without one damaged
    byte: every record returned is one that was written, whole."""
    from gitdata.cache import _record, parse_idx

    records, offset = [], 0
    for i, n in enumerate(sizes):
        oid = "xxh128:%032x" % (i * 7919 + 1)
        records.append((oid, offset, n))
        offset += n
    data = IDX_HEADER + b"".join(_record(*r) for r in records)
    torn = bytearray(data[: len(IDX_HEADER) + cut])
    if flip is not None and len(torn) > len(IDX_HEADER):
        torn[len(IDX_HEADER) + flip % (len(torn) - len(IDX_HEADER))] ^= 0x01
    got = parse_idx(bytes(torn), pack_size=offset)
    written = {oid: (off, n) for oid, off, n in records}
    assert all(written.get(oid) == entry for oid, entry in got.items()), got
    if flip is None:  # every record wholly inside the prefix is found
        whole = 0
        pos = len(IDX_HEADER)
        for r in records:
            pos += len(_record(*r))
            if pos <= len(torn):
                whole += 1
        assert len(got) == whole
