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
