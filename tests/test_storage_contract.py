"""One storage contract, run against every backend: local, moto, rclone, fake-gcs."""

from __future__ import annotations

import pytest

from gitdata.hashing import oid_of_bytes
from gitdata.storage import (
    AccessDenied,
    BackendMissing,
    ObjectNotFound,
    ObjectStore,
    PreconditionFailed,
    Storage,
    StorageUnreachable,
    UnsupportedURL,
    key_to_oid,
    oid_to_key,
)


@pytest.fixture
def storage(backend):
    return Storage(backend.url, {**backend.options, **backend.credentials}, name=backend.name)


def test_put_info_cat_list_delete(storage, tmp_path):
    src = tmp_path / "f"
    src.write_bytes(b"hello world")
    storage.put_file(str(src), "a/b/c.txt")
    storage.put_bytes(b"second", "a/z.txt")
    fp = storage.info("a/b/c.txt")
    assert fp.size == 11
    assert storage.cat("a/b/c.txt") == b"hello world"
    with storage.open_read("a/z.txt") as f:
        assert f.read() == b"second"
    listed = dict(storage.list("a"))
    assert sorted(listed) == ["a/b/c.txt", "a/z.txt"]
    assert listed["a/b/c.txt"].size == 11
    assert storage.exists("a/z.txt")
    storage.delete("a/z.txt")
    assert not storage.exists("a/z.txt")
    assert sorted(k for k, _ in storage.list("")) == ["a/b/c.txt"]


def test_missing_object_is_object_not_found(storage):
    with pytest.raises(ObjectNotFound) as info:
        storage.cat("nope/never")
    assert "nope/never" in str(info.value)
    with pytest.raises(ObjectNotFound):
        storage.info("nope/never")
    assert list(storage.list("nope")) == []


def test_create_only_refuses_to_overwrite(storage, tmp_path, backend):
    src = tmp_path / "f"
    src.write_bytes(b"one")
    storage.put_file(str(src), "once", create_only=True)
    src.write_bytes(b"two")
    try:
        storage.put_file(str(src), "once", create_only=True)
    except PreconditionFailed:
        pass
    except Exception as err:  # pragma: no cover - show what the backend did
        pytest.fail(f"{backend.name}: create-only overwrite raised {type(err).__name__}: {err}")
    else:
        pytest.fail(f"{backend.name}: create-only write overwrote an existing object")
    assert storage.cat("once") == b"one"


def test_object_store_layout_and_missing(storage, tmp_path):
    store = ObjectStore(storage, jobs=4)
    oids = []
    for i in range(70):  # over the listing threshold
        data = b"object %d" % i
        p = tmp_path / f"o{i}"
        p.write_bytes(data)
        oid = oid_of_bytes(data)
        oids.append(oid)
        if i in (0, 2, 4):
            store.upload(oid, str(p))
    assert store.missing(oids) == set(oids) - {oids[0], oids[2], oids[4]}  # many: one listing
    assert store.missing(oids[:5]) == {oids[1], oids[3]}  # few: per-object checks
    assert store.has(oids[0])
    key = oid_to_key(oids[0])
    assert key.startswith("objects/") and key_to_oid(key) == oids[0]
    assert storage.exists(key)


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
