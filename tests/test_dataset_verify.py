"""`git data dataset verify`: registered sources hashed and their oids recorded,
here and on a Dask cluster of worker processes (moto, versioned, and rclone
serve s3 on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import pickle

import pytest
import xxhash

from gitdata.datasets.verify import SOURCE_OID, Item, Sealed, Share
from gitdata.datasets.verify_dask import split
from gitdata.pointer import parse
from gitdata.retry import RetryPolicy
from helpers import gd, git, new_project, run, use_server_env, write

OBJECTS = {f"raw/d{i % 3}/f{i:02d}.bin": os.urandom(1000 + i) for i in range(12)}


def _oid(data: bytes) -> str:
    return "xxh128:" + xxhash.xxh3_128(data).hexdigest()


@pytest.fixture
def creds(monkeypatch):
    def use(server):
        use_server_env(monkeypatch, server)
    return use


def _registered(tmp_path, server, bucket, put, name="p"):
    for key, data in OBJECTS.items():
        put(key, data)
    root = new_project(tmp_path / name)
    git(root, "commit", "-q", "--allow-empty", "-m", "init")
    gd(root, "dataset", "add", "raw", f"s3://{bucket}/raw", "--create", "-o", f"endpoint_url={server.endpoint}")
    git(root, "commit", "-qm", "register")
    return root


def _moto(moto_server, bucket, tmp_path, creds, name="p"):
    creds(moto_server)
    client = moto_server.client()
    return _registered(tmp_path, moto_server, bucket, lambda k, d: client.put_object(Bucket=bucket, Key=k, Body=d), name)


def _index_pointer(root, path):
    return parse(run("git", "show", f":{path}", cwd=root).stdout)


def _verify(root, *args, check=True):
    proc = run("git", "data", "dataset", "verify", "raw", "--json", *args, cwd=root, check=check)
    return proc, (json.loads(proc.stdout) if proc.stdout.strip() else None)


def test_verify_records_the_oid_of_each_source_in_the_index(moto_server, versioned_moto_bucket, tmp_path, creds):
    root = _moto(moto_server, versioned_moto_bucket, tmp_path, creds)
    _proc, report = _verify(root, "--jobs", "3")
    assert len(report["recorded"]) == len(OBJECTS) and not report["changed"] and not report["failed"]
    for key, data in OBJECTS.items():
        path = f"data/raw/{key.removeprefix('raw/')}"
        p = _index_pointer(root, path)
        assert p.get(SOURCE_OID) == _oid(data) == report["recorded"][path]
        assert p.oid is None and p.source == f"s3://{versioned_moto_bucket}/{key}"  # still a registered pointer
        assert (root / path).read_bytes() == p.encode()  # work tree and index agree
    assert git(root, "status", "--porcelain") == "".join(
        f"M  data/raw/{k.removeprefix('raw/')}\n" for k in sorted(OBJECTS)
    )
    # a second run reads again, finds the same oids, writes nothing
    git(root, "commit", "-qm", "verified")
    _proc, again = _verify(root)
    assert not again["recorded"] and len(again["unchanged"]) == len(OBJECTS)
    assert git(root, "status", "--porcelain") == ""


def test_a_changed_source_is_reported_not_recorded(moto_server, versioned_moto_bucket, tmp_path, creds):
    root = _moto(moto_server, versioned_moto_bucket, tmp_path, creds)
    key = "raw/d1/f01.bin"
    moto_server.client().put_object(Bucket=versioned_moto_bucket, Key=key, Body=b"x" * len(OBJECTS[key]))
    before = run("git", "show", ":data/raw/d1/f01.bin", cwd=root).stdout
    proc, report = _verify(root, check=False)
    assert proc.returncode == 1
    assert list(report["changed"]) == ["data/raw/d1/f01.bin"]
    assert "changed since registration" in report["changed"]["data/raw/d1/f01.bin"]
    assert "git data update raw" in report["changed"]["data/raw/d1/f01.bin"]
    assert len(report["recorded"]) == len(OBJECTS) - 1
    assert run("git", "show", ":data/raw/d1/f01.bin", cwd=root).stdout == before
    assert "1 file(s) of raw were not verified" in proc.stderr.decode()


def test_include_selects_and_rclone_is_read_without_versions(rclone_server, rclone_bucket, tmp_path, creds):
    creds(rclone_server)
    for key, data in OBJECTS.items():
        write(rclone_server.bucket_path(rclone_bucket) / key, data)
    rclone_server.flush_dir_cache()
    root = _registered(tmp_path, rclone_server, rclone_bucket, lambda k, d: None)
    _proc, report = _verify(root, "--include", "d2/*")
    want = {f"data/raw/{k.removeprefix('raw/')}" for k in OBJECTS if "/d2/" in k}
    assert set(report["recorded"]) == want
    assert _index_pointer(root, "data/raw/d0/f00.bin").get(SOURCE_OID) is None


def test_a_copy_mode_staged_dataset_stays_clean(moto_server, versioned_moto_bucket, tmp_path, creds):
    root = _moto(moto_server, versioned_moto_bucket, tmp_path, creds)
    gd(root, "dataset", "stage", "raw")
    assert (root / "data/raw/d0/f00.bin").read_bytes() == OBJECTS["raw/d0/f00.bin"]
    _proc, report = _verify(root)
    assert len(report["recorded"]) == len(OBJECTS)
    assert (root / "data/raw/d0/f00.bin").read_bytes() == OBJECTS["raw/d0/f00.bin"]  # content kept
    assert _index_pointer(root, "data/raw/d0/f00.bin").get(SOURCE_OID) == _oid(OBJECTS["raw/d0/f00.bin"])
    git(root, "commit", "-qm", "verified")
    assert git(root, "status", "--porcelain") == ""


def test_a_locally_changed_pointer_file_is_kept(moto_server, versioned_moto_bucket, tmp_path, creds):
    root = _moto(moto_server, versioned_moto_bucket, tmp_path, creds)
    (root / "data/raw/d0/f00.bin").write_bytes(b"my own notes")
    _proc, report = _verify(root, check=False)
    assert "data/raw/d0/f00.bin" in report["kept"]
    assert (root / "data/raw/d0/f00.bin").read_bytes() == b"my own notes"


def test_a_hostile_source_outside_the_dataset_is_refused_unread(moto_server, versioned_moto_bucket, tmp_path, creds):
    """A pointer from a clone names another bucket's object: refused before any read."""
    root = _moto(moto_server, versioned_moto_bucket, tmp_path, creds)
    path = root / "data/raw/d0/f00.bin"
    evil = parse(path.read_bytes()).replace(source="s3://someone-elses-bucket/secret.bin").encode()
    path.write_bytes(evil)
    git(root, "add", "data/raw/d0/f00.bin")
    git(root, "commit", "-qm", "evil")
    moto_server.reset_counts()
    proc, report = _verify(root, check=False)
    assert proc.returncode == 1
    assert "not under a source of dataset 'raw'" in report["failed"]["data/raw/d0/f00.bin"]
    assert path.read_bytes() == evil
    assert not [r for r in moto_server.requests() if r.key and "secret" in r.key]
    assert not [r for r in moto_server.requests() if r.bucket == "someone-elses-bucket"]


def test_a_mounted_or_linked_dataset_is_refused_with_the_fix(moto_server, versioned_moto_bucket, tmp_path, creds):
    root = _moto(moto_server, versioned_moto_bucket, tmp_path, creds)
    gd(root, "dataset", "stage", "raw", "--location", str(tmp_path / "elsewhere"))
    proc = run("git", "data", "dataset", "verify", "raw", cwd=root, check=False)
    assert proc.returncode == 1
    assert "git data dataset unstage raw" in proc.stderr.decode()


def test_an_unknown_dataset_is_a_one_line_error(tmp_path):
    root = new_project(tmp_path / "p")
    proc = run("git", "data", "dataset", "verify", "nope", cwd=root, check=False)
    assert proc.returncode != 0 and "nope" in proc.stderr.decode()
    assert "Traceback" not in proc.stderr.decode()


# -- pure parts -------------------------------------------------------------------------


def test_sealed_options_never_show_but_travel():
    secret = "s3cr3t-VALUE-xyz"
    sealed = Sealed({"key": "AKIA1234", "secret": secret, "endpoint_url": "http://127.0.0.1:1"})
    share = Share("s3://b/p", sealed, "raw", RetryPolicy(), "xxh128", (Item("data/a", "a", 1),))
    for text in (repr(sealed), str(sealed), repr(share), str(share)):
        assert secret not in text and "AKIA1234" not in text
    assert pickle.loads(pickle.dumps(share)).options.open()["secret"] == secret


def test_split_balances_bytes_and_keeps_every_item():
    items = tuple(Item(f"p{i}", f"k{i}", s) for i, s in enumerate([100, 1, 1, 1, 50, 50, 3]))
    share = Share("s3://b", Sealed({}), "raw", RetryPolicy(), "xxh128", items)
    pieces = split([share], 2)
    assert sorted(it.path for p in pieces for it in p.items) == sorted(it.path for it in items)
    loads = sorted(sum(it.size for it in p.items) for p in pieces)
    assert loads == [103, 103]  # 100+3 against 50+50+1+1+1
    assert len(split([share], 50)) == len(items)  # never an empty piece


# -- on a Dask cluster ---------------------------------------------------------------------


@pytest.fixture
def dask_cluster():
    distributed = pytest.importorskip("distributed")
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = distributed.LocalCluster(
            processes=True, n_workers=2, threads_per_worker=2, host="127.0.0.1",
            dashboard_address=None, silence_logs=50,
        )
        try:
            yield cluster
        finally:
            cluster.close()


def test_dask_results_equal_the_local_run(moto_server, versioned_moto_bucket, tmp_path, creds, dask_cluster):
    here = _moto(moto_server, versioned_moto_bucket, tmp_path, creds, name="here")
    there = tmp_path / "there"
    git(tmp_path, "clone", "-q", str(here), str(there))
    key = "raw/d2/f05.bin"
    moto_server.client().put_object(Bucket=versioned_moto_bucket, Key=key, Body=b"y" * len(OBJECTS[key]))
    local_proc, local = _verify(here, check=False)
    dask_proc, remote = _verify(there, "--dask", dask_cluster.scheduler_address, check=False)
    assert local_proc.returncode == dask_proc.returncode == 1
    assert remote["where"] == "dask" and local["where"] == "local"
    assert remote["recorded"] == local["recorded"] and len(local["recorded"]) == len(OBJECTS) - 1
    assert list(remote["changed"]) == list(local["changed"]) == ["data/raw/d2/f05.bin"]
    for path in local["recorded"]:
        assert (there / path).read_bytes() == (here / path).read_bytes()


def test_a_dead_worker_fails_the_run_and_writes_nothing(moto_server, versioned_moto_bucket, tmp_path, creds, dask_cluster):
    from distributed import Client
    from distributed.diagnostics.plugin import WorkerPlugin

    class KillOnVerify(WorkerPlugin):
        """Ends its worker's process when a verify task starts (pickled by value)."""

        def transition(self, key, start, finish, **kwargs):
            if finish == "executing" and str(key).startswith("gitdata-verify-"):
                os._exit(3)

    root = _moto(moto_server, versioned_moto_bucket, tmp_path, creds)
    with Client(dask_cluster.scheduler_address) as client:
        client.register_plugin(KillOnVerify(), name="kill-on-verify")
    before = {p: (root / p).read_bytes() for p in git(root, "ls-files", "data/raw").split()}
    proc = run("git", "data", "dataset", "verify", "raw", "--dask", dask_cluster.scheduler_address,
               cwd=root, check=False, timeout=180)
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    assert "a Dask task failed while verifying" in err and "nothing was recorded" in err
    assert len(err.strip().splitlines()) == 1, err
    assert {p: (root / p).read_bytes() for p in before} == before
    assert git(root, "status", "--porcelain") == ""


def test_an_unreachable_scheduler_is_a_clear_error(moto_server, versioned_moto_bucket, tmp_path, creds):
    pytest.importorskip("distributed")
    from servers import free_port

    root = _moto(moto_server, versioned_moto_bucket, tmp_path, creds)
    proc = run("git", "data", "dataset", "verify", "raw", "--dask", f"tcp://127.0.0.1:{free_port()}",
               cwd=root, check=False, timeout=120, env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "3s"})
    err = proc.stderr.decode()
    assert proc.returncode == 1 and "cannot reach the Dask scheduler" in err, err
    assert "(OSError)" in err or "(TimeoutError)" in err, err  # the connection failed, not the call
    assert git(root, "status", "--porcelain") == ""

