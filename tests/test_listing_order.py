"""Listings come in the order object stores list keys (their bytes), streamed: a local
folder walked one folder at a time, names where '.', '-' and '/' sort around each other."""

from __future__ import annotations

import os
from pathlib import Path

from gitdata.storage import Storage
from gitdata.storage.base import TMP_PREFIX


def test_a_local_folder_lists_in_key_order_without_links_or_temporaries(tmp_path: Path) -> None:
    root = tmp_path / "bucket"
    names = ["a.txt", "a/b", "a/b.c/d", "a-b", "a0", "b/c/d/e", "b/c.d", "ü", "z"]
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(name.encode())
    (root / f"a/{TMP_PREFIX}upload").write_bytes(b"half written")
    os.symlink("/etc/passwd", root / "a/link")
    os.symlink(root / "b", root / "linked-folder")
    listed = list(Storage(root.as_uri()).list())
    assert [k for k, _fp in listed] == sorted(names, key=lambda n: n.encode())
    assert [k for k, _fp in listed] == ["a-b", "a.txt", "a/b", "a/b.c/d", "a0", "b/c.d", "b/c/d/e", "z", "ü"]
    assert all(fp.size == len(k.encode()) for k, fp in listed)


def test_a_local_listing_of_one_file_or_nothing(tmp_path: Path) -> None:
    (tmp_path / "one.csv").write_bytes(b"1,2\n")
    assert [k for k, _fp in Storage(tmp_path.as_uri()).list("one.csv")] == ["one.csv"]
    assert list(Storage(tmp_path.as_uri()).list("missing")) == []


def test_a_gcs_listing_streams_page_by_page_with_live_generations(gcs_server) -> None:
    """1,200 objects on fake-gcs-server: two pages of objects.list, in key order, each
    with its live generation, the same fingerprints as gcsfs's own info; nothing in
    gcsfs's listing cache."""
    bucket = gcs_server.make_bucket("listing-" + os.urandom(4).hex(), versioned=True)
    opts = {"endpoint_url": gcs_server.endpoint, "token": "anon", "version_aware": True}
    storage = Storage(f"gs://{bucket}", opts)
    storage.fs.pipe({f"{bucket}/p/{i:04d}": b"x" * (i % 7) for i in range(1200)})
    storage.fs.pipe_file(f"{bucket}/p/0007", b"second generation")
    listed = list(storage.list("p"))
    assert [k for k, _fp in listed] == [f"p/{i:04d}" for i in range(1200)]
    assert not storage.fs.dircache
    got = dict(listed)
    assert got["p/0007"].size == len(b"second generation")
    for key in ("p/0000", "p/0007", "p/1199"):
        assert got[key] == storage.info(key), key
        assert got[key].version_id


def test_a_sync_joins_its_three_sides_in_path_order_whatever_order_they_came_in(tmp_path: Path) -> None:
    """The spool sorts: a listing or a scan in any order (a server that lists out of key
    order, a folder walk) gives the same rows, in path order, each side joined to its path."""
    import random

    from gitdata import syncplan as sp
    from gitdata.storage import Fingerprint
    from gitdata.storages.manifest import Manifest
    from gitdata.storages.spool import Spool

    names = ["a.txt", "a/b", "a/b.c/d", "a-b", "a0", "b/c/d/e", "b/c.d", "ü", "z", "é/x"]
    data_dir = tmp_path / "a clone?with#odd=chars%20"  # attached by a file URI: quoted
    base = Manifest(str(data_dir), "s")
    base.write({n: sp.BaseEntry(1, Fingerprint(1, etag=f'"{n}"'), "h:" + n, 5) for n in names[::2]})
    base.close()
    listing = [(n, Fingerprint(2, etag=f'"{n}"', mtime="2026-01-01T00:00:00Z")) for n in names[1:]]
    scan = [(n, 3, 7) for n in names if n != "z"]
    seen = []
    for seed in range(3):
        random.Random(seed).shuffle(listing)
        random.Random(seed + 10).shuffle(scan)
        spool = Spool(base.path, str(data_dir / "tmp"))
        assert os.listdir(data_dir / "tmp") == []  # unlinked once open: nothing left if killed
        spool.add_listing(listing)
        spool.add_scan(scan)
        rows = list(spool.rows())
        spool.close()
        assert [r[0] for r in rows] == sorted(names)
        assert sum(b is not None for _p, b, _l, _r in rows) == 5  # the base was read, not a new empty file
        for path, b, local, remote in rows:
            assert (b is not None) == (path in names[::2]) and (b is None or b.local_hash == "h:" + path)
            assert local == (None if path == "z" else (3, 7))
            assert (remote is not None) == (path in names[1:]) and (remote is None or remote.etag == f'"{path}"')
        seen.append(rows)
    assert seen[0] == seen[1] == seen[2]
    assert sorted(os.listdir(data_dir / "storages")) == ["s.sqlite"]
    # a first sync has no base yet: the spool joins against an empty one
    fresh = Spool(None, str(data_dir / "tmp"))
    fresh.add_listing(listing)
    assert [r[0] for r in fresh.rows()] == sorted(names[1:])
    fresh.close()
