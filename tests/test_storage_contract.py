"""One storage contract, written once, run against every implementation.

In the style of fsspec's ``tests/abstract`` and s3fs's derived tests: the
contract is :class:`StorageContract`; each ``Test*`` class below gives it a
``storage`` on one backend (a local folder through ``os`` and through
fsspec, fsspec's memory filesystem, moto, ``rclone serve s3``,
fake-gcs-server) and says which optional behaviour that backend has.
"""

from __future__ import annotations

import os
import uuid

import pytest

from conftest import _make_backend
from gitdata.hashing import oid_of_bytes
from gitdata.storage import (
    TMP_PREFIX,
    AccessDenied,
    BackendMissing,
    FsspecStorage,
    LocalStorage,
    ObjectNotFound,
    ObjectStore,
    PreconditionFailed,
    Storage,
    StorageUnreachable,
    UnsupportedURL,
    key_to_oid,
    oid_to_key,
)


class StorageContract:
    """What every ``Storage`` must do. Subclasses provide the ``storage`` fixture."""

    #: the implementation ``Storage(...)`` must return for this backend
    implementation: type = FsspecStorage
    #: the server honours If-Match on a PUT (rclone's ignores it: callers re-check)
    honours_if_match = False
    #: ``info`` and listings report a version id, and ``open_read`` reads an old one
    versioned = False
    #: multipart uploads are resumable server-side (listed until aborted)
    multipart = False

    def _file(self, tmp_path, data: bytes, name: str = "f") -> str:
        p = tmp_path / f"{name}-{uuid.uuid4().hex[:8]}"
        p.write_bytes(data)
        return str(p)

    def test_is_the_expected_implementation(self, storage):
        assert type(storage) is self.implementation
        assert isinstance(storage, Storage)

    def test_put_info_cat_open_list_delete(self, storage, tmp_path):
        storage.put_file(self._file(tmp_path, b"hello world"), "a/b/c.txt")
        storage.put_bytes(b"second", "a/z.txt")
        fp = storage.info("a/b/c.txt")
        assert fp.size == 11
        assert storage.cat("a/b/c.txt") == b"hello world"
        with storage.open_read("a/z.txt") as f:
            assert f.read() == b"second"
        listed = dict(storage.list("a"))
        assert sorted(listed) == ["a/b/c.txt", "a/z.txt"]
        assert listed["a/b/c.txt"].size == 11
        assert storage.exists("a/z.txt") and not storage.exists("a/nope")
        storage.delete("a/z.txt")
        assert not storage.exists("a/z.txt")
        assert [k for k, _ in storage.list("")] == ["a/b/c.txt"]

    def test_missing_objects_are_object_not_found_naming_the_key(self, storage):
        for call in (lambda: storage.cat("nope/never"), lambda: storage.info("nope/never")):
            with pytest.raises(ObjectNotFound) as info:
                call()
            assert "nope/never" in str(info.value)
        with pytest.raises(ObjectNotFound):
            with storage.open_read("nope/never") as f:
                f.read()
        assert list(storage.list("nope")) == []
        assert not storage.exists("nope/never")

    def test_list_is_recursive_sorted_and_scoped_to_the_prefix(self, storage):
        for key in ("p/z", "p/a/b/c", "p/m", "pq/other", "top"):
            storage.put_bytes(key.encode(), key)
        assert [k for k, _ in storage.list("p")] == ["p/a/b/c", "p/m", "p/z"]
        assert [k for k, _ in storage.list("p/a")] == ["p/a/b/c"]
        assert [k for k, _ in storage.list("")] == ["p/a/b/c", "p/m", "p/z", "pq/other", "top"]

    def test_listings_skip_uploads_under_their_temporary_name(self, storage):
        storage.put_bytes(b"whole", "d/real")
        storage.put_bytes(b"half", f"d/{TMP_PREFIX}0123abcd")
        assert [k for k, _ in storage.list("d")] == ["d/real"]

    def test_an_overwrite_is_visible_at_once(self, storage, tmp_path):
        storage.put_bytes(b"one", "o/k")
        assert storage.info("o/k").size == 3 and storage.cat("o/k") == b"one"
        storage.put_file(self._file(tmp_path, b"second version"), "o/k")
        assert storage.info("o/k").size == 14
        assert storage.cat("o/k") == b"second version"
        with storage.open_read("o/k") as f:
            assert f.read() == b"second version"
        assert dict(storage.list("o"))["o/k"].size == 14

    def test_open_read_streams_and_seeks(self, storage, tmp_path):
        data = os.urandom(3 << 20)
        storage.put_file(self._file(tmp_path, data), "big/blob")
        with storage.open_read("big/blob") as f:
            assert f.read(10) == data[:10]
            f.seek(2 << 20)
            assert f.read(1000) == data[2 << 20 : (2 << 20) + 1000]
        assert storage.info("big/blob").size == len(data)

    def test_create_only_refuses_to_overwrite(self, storage, tmp_path):
        storage.put_file(self._file(tmp_path, b"one"), "once", create_only=True)
        with pytest.raises(PreconditionFailed):
            storage.put_file(self._file(tmp_path, b"two"), "once", create_only=True)
        assert storage.cat("once") == b"one"

    def test_conditional_write_on_etag(self, storage, tmp_path):
        storage.put_bytes(b"base", "c/k")
        etag = storage.info("c/k").etag
        if not self.honours_if_match:
            pytest.skip("this server ignores If-Match; callers re-check before writing (docs/storages.md)")
        assert etag and storage.capabilities.if_match_below > 0
        with pytest.raises(PreconditionFailed):
            storage.put_file(self._file(tmp_path, b"lost"), "c/k", if_match='"not-the-etag"')
        assert storage.cat("c/k") == b"base"
        storage.put_file(self._file(tmp_path, b"won"), "c/k", if_match=etag)
        assert storage.cat("c/k") == b"won"

    def test_versions_are_read_by_the_declared_keyword(self, storage, tmp_path):
        if not self.versioned:
            pytest.skip("no versions on this backend")
        kw = storage.version_kwarg
        assert kw
        storage.put_bytes(b"first", "v/k")
        first = storage.info("v/k").version_id
        storage.put_bytes(b"second!", "v/k")
        second = storage.info("v/k").version_id
        assert first and second and first != second
        # a listing of the folder first: gcsfs then answered the old generation
        # from its cached listing (not found) until the storage forgot it
        assert dict(storage.list("v"))["v/k"].version_id == second
        with storage.open_read("v/k", **{kw: first}) as f:
            assert f.read() == b"first"
        assert storage.cat("v/k") == b"second!"

    def test_incomplete_uploads_are_listed_and_aborted(self, storage):
        if not self.multipart:
            assert storage.incomplete_uploads() == []
            return
        bucket, _, prefix = storage.root.partition("/")
        started = storage.fs.call_s3("create_multipart_upload", Bucket=bucket, Key=f"{prefix}/mp/killed")
        found = storage.incomplete_uploads()
        assert [k for k, _ in found] == ["mp/killed"]
        assert found[0][1].upload_id == started["UploadId"]
        assert list(storage.list("mp")) == []  # invisible to listings
        storage.abort_upload(found[0][1])
        assert storage.incomplete_uploads() == []

    def test_open_write_publishes_only_when_the_block_succeeds(self, storage):
        with storage.open_write("w/ok") as f:
            f.write(b"whole")
        assert storage.cat("w/ok") == b"whole"
        with pytest.raises(RuntimeError):
            with storage.open_write("w/broken") as f:
                f.write(b"half")
                raise RuntimeError("stop")
        assert not storage.exists("w/broken")
        assert [k for k, _ in storage.list("w")] == ["w/ok"]

    def test_copy_from_a_storage_of_this_backend(self, storage):
        storage.put_bytes(b"to copy", "src/k")
        how = storage.copy_from(storage, "src/k", "dst/k", size=7)
        assert how == ("server" if storage.capabilities.server_copy_max else "stream")
        assert storage.cat("dst/k") == b"to copy"
        seen = []

        def refuse(chunk):
            seen.append(chunk)
            if chunk is None:
                raise PreconditionFailed("the copy does not hash to the recorded oid")

        with pytest.raises(PreconditionFailed):
            storage.copy_from(storage, "src/k", "dst/refused", check=refuse)  # no size: streamed
        assert seen == [b"to copy", None]
        assert not storage.exists("dst/refused")

    def test_object_store_layout_and_missing(self, storage, tmp_path):
        store = ObjectStore(storage, jobs=4)
        oids = []
        for i in range(70):  # over the listing threshold
            data = b"object %d" % i
            oid = oid_of_bytes(data)
            oids.append(oid)
            if i in (0, 2, 4):
                store.upload(oid, self._file(tmp_path, data))
        assert store.missing(oids) == set(oids) - {oids[0], oids[2], oids[4]}  # many: one listing
        assert store.missing(oids[:5]) == {oids[1], oids[3]}  # few: per-object checks
        assert store.has(oids[0])
        key = oid_to_key(oids[0])
        assert key.startswith("objects/") and key_to_oid(key) == oids[0]
        assert storage.exists(key)

    def test_workers_follow_the_declared_capabilities(self, storage):
        if storage.capabilities.cpu_bound:
            assert storage.workers(8, mean_size=4096) == 1
            assert 1 <= storage.workers(8, mean_size=64 << 20) <= (os.cpu_count() or 1)
        else:
            assert storage.workers(8, mean_size=4096) == 8


class TestLocalFolder(StorageContract):
    implementation = LocalStorage

    @pytest.fixture
    def storage(self, tmp_path):
        root = tmp_path / "store"
        root.mkdir()
        return Storage(root.as_uri())

    def test_nothing_is_left_under_a_temporary_name(self, storage, tmp_path):
        storage.put_file(self._file(tmp_path, b"x"), "t/k")
        with pytest.raises(PreconditionFailed):
            storage.put_file(self._file(tmp_path, b"y"), "t/k", create_only=True)
        assert sorted(os.listdir(os.path.join(storage.root, "t"))) == ["k"]


class TestLocalFolderThroughFsspec(StorageContract):
    @pytest.fixture
    def storage(self, tmp_path):
        import fsspec

        root = tmp_path / "store"
        root.mkdir()
        return Storage(root.as_uri(), fs=fsspec.filesystem("file", auto_mkdir=True, skip_instance_cache=True))


class TestMemory(StorageContract):
    @pytest.fixture
    def storage(self):
        s = Storage(f"memory://contract-{uuid.uuid4().hex}/p")
        yield s
        s.fs.rm(s.root, recursive=True) if s.fs.exists(s.root) else None


def _backend_storage(kind, request, monkeypatch, tmp_path_factory, versioned=False):
    """A storage on the shared test servers' buckets (credentials as fsspec options)."""
    be = _make_backend(kind, request, monkeypatch, tmp_path_factory, versioned=versioned)
    opts = {**be.options, **be.credentials}
    if versioned:
        opts["version_aware"] = True
    return Storage(be.url, opts, name=be.name)


class TestMoto(StorageContract):
    honours_if_match = True
    versioned = True
    multipart = True

    @pytest.fixture
    def storage(self, request, monkeypatch, tmp_path_factory):
        return _backend_storage("moto", request, monkeypatch, tmp_path_factory, versioned=True)


class TestRclone(StorageContract):
    multipart = True

    @pytest.fixture
    def storage(self, request, monkeypatch, tmp_path_factory):
        return _backend_storage("rclone", request, monkeypatch, tmp_path_factory)


class TestFakeGcs(StorageContract):
    versioned = True

    @pytest.fixture
    def storage(self, gcs_server):
        bucket = gcs_server.make_bucket("contract-" + uuid.uuid4().hex[:12], versioned=True)
        opts = {"endpoint_url": gcs_server.endpoint, "token": "anon", "version_aware": True}
        return Storage(f"gs://{bucket}/prefix", opts, name="gcs")


# --------------------------------------------------------------------------
# Errors that do not depend on a backend's contents


def test_unsupported_scheme_names_the_fix():
    with pytest.raises(UnsupportedURL) as info:
        Storage("nosuchscheme://bucket/x")
    assert "nosuchscheme" in str(info.value)


def test_missing_backend_names_the_package():
    with pytest.raises(BackendMissing) as info:
        Storage("abfs://container/x")
    assert "adlfs" in str(info.value) or "pip install" in str(info.value)


def test_wrong_credentials_are_access_denied(rclone_server, tmp_path):
    bucket = "denied-bucket"
    rclone_server.make_bucket(bucket)
    s = Storage(f"s3://{bucket}/p", {"endpoint_url": rclone_server.endpoint, "key": rclone_server.key,
                                     "secret": "wrong-secret"}, name="lab")
    src = tmp_path / "f"
    src.write_bytes(b"x")
    with pytest.raises(AccessDenied) as info:
        s.put_file(str(src), "k")
    msg = str(info.value)
    assert "lab" in msg and "git data credentials set lab" in msg
    assert "wrong-secret" not in msg
    good = Storage(f"s3://{bucket}/p", {"endpoint_url": rclone_server.endpoint, "key": rclone_server.key,
                                        "secret": rclone_server.secret})
    assert list(good.list("")) == []


def test_unreachable_endpoint_is_a_clear_transient_error(tmp_path):
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    s = Storage("s3://bucket/p", {"endpoint_url": f"http://127.0.0.1:{port}", "key": "a", "secret": "b",
                                  "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2}})
    with pytest.raises(StorageUnreachable) as info:
        s.cat("k")
    assert info.value.transient
    assert f"127.0.0.1:{port}" in str(info.value) or "reach" in str(info.value)
