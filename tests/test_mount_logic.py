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


_OK = {"kind": "storage", "name": "lab", "project": "/srv/u/p", "mountpoint": "/srv/u/p/storages/lab",
       "url": "s3://b/lab", "credentials": {"key": "k", "secret": "s"}}  # fmt: skip


@pytest.mark.parametrize("change, status, reason", [
    ({"kind": "nfs"}, 400, "kind must be"),
    ({"name": "../x"}, 400, "name must be"),
    ({"name": ".hidden"}, 400, "name must be"),
    ({"project": "relative/p", "mountpoint": "relative/p/x"}, 400, "absolute path"),
    ({"mountpoint": "/srv/u/p/../../etc"}, 400, "'..'"),
    ({"mountpoint": "/srv/u/other/x"}, 400, "inside the project"),
    ({"mountpoint": "/srv/u/p"}, 400, "inside the project"),
    ({"mountpoint": "/srv/u/pp/x"}, 400, "inside the project"),
    ({"mountpoint": "/srv/u/p/.git/hooks"}, 400, ".git"),
    ({"mountpoint": "/srv/u/p/.GIT/x"}, 400, ".git"),
    ({"mountpoint": "/srv/u/p/a\nb"}, 400, "NUL or line break"),
    ({"mountpoint": "/srv/u/p/a\0b"}, 400, "NUL or line break"),
    ({"url": "file:///etc"}, 400, "s3:// url"),
    ({"url": "s3://"}, 400, "s3:// url"),
    ({"url": None}, 400, "s3:// url"),
    ({"credentials": {}}, 400, "needs credentials"),
    ({"credentials": {"key": "k"}}, 400, "both key and secret"),
    ({"credentials": {"key": "k", "secret": "s", "profile": "x"}}, 400, "credentials may only"),
    ({"credentials": {"key": 1, "secret": "s"}}, 400, "credentials may only"),
    ({"options": {"endpoint_url": "file:///x"}}, 400, "http(s) URL"),
    ({"options": {"client_kwargs": {}}}, 400, "options may only"),
    ({"options": {"anon": "yes"}, "credentials": {"key": "k", "secret": "s"}}, 400, "anon must be"),
    ({"options": {"region_name": "us-east-1; rm -rf /"}}, 400, "region name"),
    ({"argv": ["--config", "/root/x"]}, 400, "unknown field"),
    ({"for_uid": "0"}, 400, "for_uid"),
    ({"for_uid": True}, 400, "for_uid"),
    ({"kind": "dataset"}, 400, "url is only for storage"),
])  # fmt: skip
def test_mount_requests_refused(change, status, reason):
    import json

    from gitdata.mount.protocol import ApiError, parse_mount

    body = {**_OK, **change}
    with pytest.raises(ApiError) as err:
        parse_mount(json.dumps(body).encode())
    assert err.value.status == status and reason in err.value.reason


@pytest.mark.parametrize("raw, status", [
    (b"", 400), (b"\xff\xfe", 400), (b"[1]", 400), (b"null", 400), (b"{" * 10, 400), (b" " * (65 << 10), 413),
])  # fmt: skip
def test_mount_request_bodies_refused(raw, status):
    from gitdata.mount.protocol import ApiError, parse_mount

    with pytest.raises(ApiError) as err:
        parse_mount(raw)
    assert err.value.status == status


def test_mount_request_accepted_and_public_hides_credentials():
    import json

    from gitdata.mount.protocol import parse_mount

    body = {**_OK, "mountpoint": "/srv/u/p//storages/./lab/", "credentials": {"key": "AKX", "secret": "S3CR3T"}}
    req = parse_mount(json.dumps(body).encode())
    assert req.mountpoint == "/srv/u/p/storages/lab" and req.credentials == {"key": "AKX", "secret": "S3CR3T"}
    assert "S3CR3T" not in json.dumps(req.public()) and "AKX" not in json.dumps(req.public())
    ds = parse_mount(json.dumps({"kind": "dataset", "name": "field", "project": "/p", "mountpoint": "/p/data/field"}).encode())
    assert ds.kind == "dataset" and ds.url is None


def test_service_request_carries_only_what_rclone_needs():
    from gitdata.mount.rclone import service_request

    req = service_request("lab", "/p", "/p/storages/lab", "s3://b/lab",
                          {"client_kwargs": {"endpoint_url": "http://127.0.0.1:9", "region_name": "eu-west-1"},
                           "key": "AK", "secret": "SK", "s3_additional_kwargs": {"ACL": "public-read"}}, {})  # fmt: skip
    assert req == {"kind": "storage", "name": "lab", "project": "/p", "mountpoint": "/p/storages/lab",
                   "url": "s3://b/lab", "options": {"endpoint_url": "http://127.0.0.1:9", "region_name": "eu-west-1"},
                   "credentials": {"key": "AK", "secret": "SK"}}  # fmt: skip
    env_only = service_request("lab", "/p", "/p/s", "s3://b", {}, {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"})
    assert env_only["credentials"] == {"key": "a", "secret": "b"}


def test_mount_device_is_read_from_mountinfo_with_escapes_and_the_last_mount_winning():
    from gitdata.mount.runner import mount_device

    info = (
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
        "40 22 0:39 / /tmp/p/data/raw rw,nosuid,nodev shared:2 - fuse.gitdata gitdata:raw rw\n"
        "41 22 0:40 / /tmp/with\\040space\\134x rw - fuse.gitdata gitdata:s rw\n"
        "42 40 0:44 / /tmp/p/data/raw rw - fuse.gitdata gitdata:raw rw\n"
        "short line\n"
    )
    assert mount_device(info, "/tmp/p/data/raw") == "0:44"
    assert mount_device(info, "/tmp/with space\\x") == "0:40"
    assert mount_device(info, "/tmp/p/data") is None


def test_a_mount_process_still_working_after_its_unmount_is_waited_for_and_an_idle_one_ended(tmp_path):
    """rclone uploads after `fusermount3 -u`: it must not be ended while it does I/O (1 GiB took
    longer than the old fixed 30 s and the file was lost), but one that stalls is ended."""
    import subprocess
    import sys

    from gitdata.mount import runner

    done = tmp_path / "done"
    busy = subprocess.Popen([sys.executable, "-c", (
        "import time,os,sys\nend=time.time()+2.0\nf=open(os.devnull,'wb')\n"
        "while time.time()<end:\n f.write(b'x'*65536); f.flush(); time.sleep(0.01)\n"
        "open(sys.argv[1],'w').close()\n"), str(done)])  # fmt: skip
    runner._end_when_idle(busy.pid, idle=0.8)  # longer than the idle limit, but never idle
    assert done.exists()  # it finished its work: not ended while busy
    stalled = subprocess.Popen([sys.executable, "-c", "import time,sys; time.sleep(60); open(sys.argv[1],'w')",
                                str(tmp_path / "never")])  # fmt: skip
    runner._end_when_idle(stalled.pid, idle=0.8)
    assert not runner.alive(stalled.pid) and not (tmp_path / "never").exists()  # ended, idle
    busy.wait(timeout=10)
    stalled.wait(timeout=10)
