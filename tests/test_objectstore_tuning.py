"""Transfers to real S3 servers: one request per whole-object read, multipart
uploads in parts of ``gitdata.partSize`` (moto and rclone serve s3 on 127.0.0.1)."""

from __future__ import annotations

import os

import pytest

from gitdata.project import Project
from gitdata.settings import BadSetting
from gitdata.storage import Storage
from helpers import gd, git, new_project, use_server_env, write


def _storage(server, bucket: str, **kw) -> Storage:
    opts = {"endpoint_url": server.endpoint, "key": server.key, "secret": server.secret}
    return Storage(f"s3://{bucket}/p", opts, **kw)


def test_whole_read_is_one_get_and_no_head(moto_server, moto_bucket):
    st = _storage(moto_server, moto_bucket)
    data = os.urandom(3 << 20)
    st.put_bytes(data, "k")
    moto_server.reset_counts()
    with st.open_read("k", whole=True) as f:
        got = b""
        while chunk := f.read(1 << 20):
            got += chunk
    assert got == data
    api = moto_server.counts(moto_bucket, by_api=True)
    assert api.get("GetObject") == 1, api
    assert not api.get("HeadObject"), api


def test_whole_read_of_a_version_reads_that_version(moto_server, versioned_moto_bucket):
    st = _storage(moto_server, versioned_moto_bucket, )
    st.put_bytes(b"first", "k")
    first = moto_server.client().head_object(Bucket=versioned_moto_bucket, Key="p/k")["VersionId"]
    st.put_bytes(b"second", "k")
    with st.open_read("k", whole=True, version_id=first) as f:
        assert f.read() == b"first"
    with st.open_read("k", whole=True) as f:
        assert f.read(100) == b"second"


def test_whole_read_of_a_missing_object_is_object_not_found(rclone_server, rclone_bucket):
    from gitdata.storage import ObjectNotFound

    st = _storage(rclone_server, rclone_bucket)
    with pytest.raises(ObjectNotFound):
        with st.open_read("nope", whole=True) as f:
            f.read()


def test_upload_uses_the_part_size(moto_server, moto_bucket, tmp_path):
    """12 MiB with 5 MiB parts is a three-part upload (its ETag says so)."""
    st = _storage(moto_server, moto_bucket, part_size=5 << 20)
    src = write(tmp_path / "f", os.urandom(12 << 20))
    moto_server.reset_counts()
    st.put_file(str(src), "big")
    api = moto_server.counts(moto_bucket, by_api=True)
    assert api.get("UploadPart") == 3, api
    assert st.info("big").etag.endswith('-3"')
    with st.open_read("big", whole=True) as f:
        assert f.read() == src.read_bytes()


def test_push_and_clone_through_s3_with_a_small_part_size(rclone_server, rclone_bucket, tmp_path, monkeypatch):
    use_server_env(monkeypatch, rclone_server)
    bare = tmp_path / "bare.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    src = new_project(tmp_path / "src")
    gd(src, "remote", "add", "store", f"s3://{rclone_bucket}/gd", "-o", f"endpoint_url={rclone_server.endpoint}", "--default")
    git(src, "config", "gitdata.partSize", "5m")
    big = os.urandom(11 << 20)
    write(src / "big.bin", big)
    write(src / "data" / "small.bin", b"small")
    git(src, "add", "-A")
    git(src, "commit", "-qm", "data")
    git(src, "remote", "add", "origin", f"file://{bare}")
    git(src, "push", "-q", "origin", "HEAD:main")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "-b", "main", f"file://{bare}", str(clone))
    assert (clone / "big.bin").read_bytes() == big
    assert (clone / "data" / "small.bin").read_bytes() == b"small"


@pytest.mark.parametrize("value", ["1m", "4095k", "0"])
def test_a_part_size_under_5m_is_refused_with_the_fix(tmp_path, value):
    root = new_project(tmp_path / "p")
    git(root, "config", "gitdata.partSize", value)
    with pytest.raises(BadSetting, match=r"at least 5m.*git config gitdata.partSize"):
        _ = Project.open(str(root)).part_size


def test_a_part_size_that_does_not_parse_is_refused(tmp_path):
    root = new_project(tmp_path / "p")
    git(root, "config", "gitdata.partSize", "big")
    with pytest.raises(BadSetting, match="gitdata.partSize"):
        _ = Project.open(str(root)).part_size


def test_staging_registered_objects_is_one_get_each_and_no_head(moto_server, moto_bucket, tmp_path, monkeypatch):
    """dataset stage (copy mode) of registered objects: one streamed GET per object, bounded
    and checked as it arrives; no HEAD before it (that doubled the requests for small files)."""
    use_server_env(monkeypatch, moto_server)
    client = moto_server.client()
    blobs = {f"raw/f{i}.txt": f"object {i}\n".encode() * (i + 1) for i in range(6)}
    for key, body in blobs.items():
        client.put_object(Bucket=moto_bucket, Key=key, Body=body)
    proj = tmp_path / "p"
    proj.mkdir()
    git(proj, "init", "-q")
    gd(proj, "install")
    gd(proj, "dataset", "create", "ds", "-o", f"endpoint_url={moto_server.endpoint}")
    gd(proj, "dataset", "add", "ds", f"s3://{moto_bucket}/raw")
    git(proj, "commit", "-qm", "register")
    moto_server.reset_counts()
    gd(proj, "dataset", "stage", "ds")
    for key, body in blobs.items():
        assert (proj / "data" / "ds" / key.removeprefix("raw/")).read_bytes() == body
    api = moto_server.counts(moto_bucket, by_api=True)
    assert api.get("GetObject") == len(blobs), api
    assert not api.get("HeadObject"), api


@pytest.mark.parametrize("value", [
    "2026-12-01T21:05:13.369Z", "2026-12-01T21:05:13Z", "2026-12-01T21:05:13.369+01:00",
    "Tue, 01 Dec 2026 21:05:12 GMT", "1700000000", "2026-12-01", "Tue, 31 Feb 2026 21:05:12 GMT",
])
def test_fast_timestamps_read_what_botocore_reads(value):
    """The listing's timestamp parser gives botocore's instant for every form S3 states
    (and hands anything else to botocore, errors included)."""
    from botocore.utils import parse_timestamp

    from gitdata.storage.backends import _iso_timestamp

    try:
        want = parse_timestamp(value)
    except ValueError as err:
        with pytest.raises(type(err)):
            _iso_timestamp(value)
        return
    assert _iso_timestamp(value) == want


def test_a_listing_states_the_same_fingerprints_as_s3fs_info(moto_server, moto_bucket):
    st = _storage(moto_server, moto_bucket)
    for i in range(3):
        st.put_bytes(b"x" * i, f"k{i}")
    listed = dict(st.list())
    for key, fp in listed.items():
        assert fp == st.info(key), key  # mtime, etag, size: as a HEAD states them
