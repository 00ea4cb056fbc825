"""The pure parts of mount mode: the tree a dataset mount shows, block reads with read-ahead,
the rclone remote of a storage (secrets only in the environment)."""

from __future__ import annotations

import io
import os
import random
import threading

import pytest

from gitdata.mount import MountError
from gitdata.mount.tree import build


def test_tree_of_a_dataset_folder():
    t = build("data/ds", [("data/ds/a.txt", 3), ("data/ds/x/y/b.bin", None), ("data/other/c", 1),
                          ("data/dsx/d", 2), ("README.md", 9)])  # fmt: skip
    assert t.files == {"a.txt": ("data/ds/a.txt", 3), "x/y/b.bin": ("data/ds/x/y/b.bin", 0)}
    assert t.dirs == {"": ["a.txt", "x"], "x": ["y"], "x/y": ["b.bin"]}
    assert t.kind("x") == "dir" and t.kind("a.txt") == "file" and t.kind("nope") is None
    assert build("data/ds", []).dirs == {"": []}


def test_handle_reads_any_order_and_the_stream_stays_sequential():
    pytest.importorskip("mfusepy")
    from gitdata.mount.view import _Handle

    data = os.urandom((5 << 20) + 123)
    seeks = []

    class Spy(io.BytesIO):
        def seek(self, *a):
            seeks.append(a[0])
            return super().seek(*a)

    h = _Handle(Spy(data), block=1 << 20, ahead=2)
    out = bytearray(len(data))
    offsets = list(range(0, len(data), 128 << 10))
    # the kernel's requests, a little shuffled, from several threads
    chunks = [offsets[i : i + 4] for i in range(0, len(offsets), 4)]
    rnd = random.Random(1)
    for group in chunks:
        rnd.shuffle(group)
        threads = [threading.Thread(target=lambda o=o: out.__setitem__(slice(o, o + (128 << 10)),
                                    h.read(o, 128 << 10))) for o in group]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert bytes(out) == data
    assert seeks == []  # never sought: one sequential stream underneath
    assert h.read(len(data), 10) == b""
    assert h.read(3 << 20, 5) == data[3 << 20 : (3 << 20) + 5]  # a jump back
    h.close()


def test_rclone_remote_keeps_secrets_in_the_environment():
    from gitdata.mount.rclone import remote_for

    path, env = remote_for("s3://bucket/pre/fix", {"endpoint_url": "http://127.0.0.1:9", "key": "AK", "secret": "SK"})
    assert path == "GITDATA:bucket/pre/fix"
    assert env == {"RCLONE_CONFIG_GITDATA_TYPE": "s3", "RCLONE_CONFIG_GITDATA_PROVIDER": "Other",
                   "RCLONE_CONFIG_GITDATA_ENDPOINT": "http://127.0.0.1:9",
                   "RCLONE_CONFIG_GITDATA_ACCESS_KEY_ID": "AK", "RCLONE_CONFIG_GITDATA_SECRET_ACCESS_KEY": "SK"}  # fmt: skip
    assert "SK" not in path
    _, env = remote_for("s3://bucket", {})
    assert env["RCLONE_CONFIG_GITDATA_ENV_AUTH"] == "true"
    assert remote_for("file:///srv/data", {}) == ("/srv/data", {})
    with pytest.raises(MountError, match="storage mounts support s3://"):
        remote_for("gs://b/x", {})


@pytest.mark.parametrize("lines, folder, on, ours, want", [
    ([], "data/a", True, True, ["/*", "!/data/a/"]),
    (["/*", "!/data/a/"], "data/b", True, True, ["/*", "!/data/a/", "!/data/b/"]),
    (["/*", "!/data/a/", "!/data/b/"], "data/a", False, True, ["/*", "!/data/b/"]),
    (["/*", "!/data/a/"], "data/a/", True, True, ["/*", "!/data/a/"]),  # once, whatever the slashes
    (["/src/", "!/docs/"], "data/a", True, False, ["/src/", "!/docs/", "!/data/a/"]),  # the user's
    (["/src/", "!/docs/", "!/data/a/"], "data/a", False, False, ["/src/", "!/docs/"]),
    (["/src/"], "data/a", False, False, ["/src/"]),
])  # fmt: skip
def test_sparse_patterns_leave_out_mounted_folders(lines, folder, on, ours, want):
    from gitdata.mount.sparse import edit

    assert edit(lines, folder, on, ours=ours) == want
