"""The Python API: gitdata.open and gitdata:// read any tracked file without staging it.

Real servers: moto with a versioned bucket (registered files pinned to their
recorded version), ``rclone serve s3`` (no versions: a changed source raises
SourceChanged), a local folder as the data remote.
"""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

import fsspec
import pytest

import gitdata
import gitdata.api
from gitdata.fs import CorruptData, GitDataFileSystem, ReadOnlyFileSystem, SourceChanged
from helpers import registered_project, use_server_env


def git(cwd, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def gd(cwd, *args: str) -> str:
    proc = subprocess.run(["git", "data", *args], cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc.stdout


def own_project(tmp_path: Path) -> tuple[Path, Path, dict[str, bytes]]:
    """A project with its own data pushed to a local data remote, and a clone that only has pointers."""
    a = tmp_path / "a"
    a.mkdir()
    git(a, "init", "-q", "-b", "main")
    gd(a, "install")
    gd(a, "track", "data/**")
    gd(a, "remote", "add", "origin", (tmp_path / "remote").as_uri())
    files = {
        "data/field/obs.csv": b"site,value\nA,1\nB,2\n",
        "data/field/big.bin": os.urandom(3 << 20),
        "data/notes/n.txt": b"v1\n",
    }
    for path, data in files.items():
        (a / path).parent.mkdir(parents=True, exist_ok=True)
        (a / path).write_bytes(data)
    (a / "README.md").write_text("plain git file\n")
    git(a, "add", "-A")
    git(a, "commit", "-qm", "v1")
    gd(a, "push")
    b = tmp_path / "b"
    subprocess.run(["git", "clone", "-q", str(a), str(b)], check=True, capture_output=True,
                   env={**os.environ, "GIT_DATA_SKIP_SMUDGE": "1"})  # fmt: skip
    assert (b / "data/field/obs.csv").read_bytes().startswith(b"version gitdata/1")
    return a, b, files


def test_open_reads_staged_pointer_only_and_plain_files(tmp_path, monkeypatch):
    a, b, files = own_project(tmp_path)
    monkeypatch.chdir(b / "data")
    # pointer-only in b: from the data remote; from a subfolder, paths are relative to it
    with gitdata.open("field/obs.csv") as f:
        assert f.read() == files["data/field/obs.csv"]
    with gitdata.open("field/obs.csv", "r") as f:
        assert f.readline() == "site,value\n"
    # staged in a: read locally
    with gitdata.open("data/field/big.bin", repo=str(a)) as f:
        assert f.read() == files["data/field/big.bin"]
    with gitdata.open("README.md", repo=str(b)) as f:
        assert f.read() == b"plain git file\n"
    with pytest.raises(FileNotFoundError, match="data/nope.csv is not a file tracked"):
        gitdata.open("nope.csv")
    with pytest.raises(ReadOnlyFileSystem, match="storage"):
        gitdata.open("field/obs.csv", "wb")


def test_open_at_a_revision(tmp_path):
    a, _b, _files = own_project(tmp_path)
    (a / "data/notes/n.txt").write_bytes(b"version two\n")
    git(a, "commit", "-qam", "v2")
    with gitdata.open("data/notes/n.txt", repo=str(a), rev="HEAD~1") as f:
        assert f.read() == b"v1\n"
    with gitdata.open("data/notes/n.txt", repo=str(a), rev="HEAD") as f:
        assert f.read() == b"version two\n"


def test_range_reads_and_seek(tmp_path):
    _a, b, files = own_project(tmp_path)
    big = files["data/field/big.bin"]
    with gitdata.open("data/field/big.bin", repo=str(b)) as f:
        f.seek(2_000_000)
        assert f.read(4096) == big[2_000_000:2_004_096]
        f.seek(-10, io.SEEK_END)
        assert f.read() == big[-10:]


def test_corrupted_project_object_raises_and_returns_no_bytes(tmp_path):
    _a, b, files = own_project(tmp_path)
    remote = tmp_path / "remote"
    obj = next(p for p in remote.rglob("*") if p.is_file() and p.stat().st_size == len(files["data/notes/n.txt"]))
    os.chmod(obj, 0o644)
    obj.write_bytes(b"v9\n")  # same size, other bytes
    with gitdata.open("data/notes/n.txt", repo=str(b)) as f, pytest.raises(CorruptData, match="hashes to"):
        f.read()


def test_cache_local_keeps_a_whole_read(tmp_path):
    _a, b, files = own_project(tmp_path)
    from gitdata.project import Project

    project = Project.open(str(b))
    oid = git(b, "cat-file", "-p", "HEAD:data/field/big.bin").split("oid ")[1].split()[0]
    assert not project.cache.has(oid)
    with gitdata.open("data/field/big.bin", repo=str(b), cache="local") as f:
        assert f.read() == files["data/field/big.bin"]
    assert Project.open(str(b)).cache.has(oid)


def test_fsspec_filesystem(tmp_path, monkeypatch):
    _a, b, files = own_project(tmp_path)
    monkeypatch.chdir(b)
    fs = fsspec.filesystem("gitdata")  # the entry point, from the current folder
    assert isinstance(fs, GitDataFileSystem)
    assert fs.ls("data", detail=False) == ["data/field", "data/notes"]
    info = fs.info("data/field/obs.csv")
    assert info["size"] == len(files["data/field/obs.csv"]) and info["oid"].startswith("xxh128:")
    assert info["staged"] is False and fs.info("data")["type"] == "directory"
    assert sorted(fs.find("data")) == sorted(files)
    assert fs.glob("data/field/*.csv") == ["data/field/obs.csv"]
    assert fs.exists("data/field/obs.csv") and not fs.exists("data/missing")
    assert fs.cat_file("data/field/big.bin", start=10, end=20) == files["data/field/big.bin"][10:20]
    with fsspec.open("gitdata://data/field/obs.csv", "rt") as f:
        assert f.read() == files["data/field/obs.csv"].decode()
    with pytest.raises(ReadOnlyFileSystem, match="git data storage"):
        fs.open("data/x.csv", "wb")
    with pytest.raises(ReadOnlyFileSystem):
        fs.rm_file("data/field/obs.csv")
    # never an instance of another repository or revision from fsspec's cache
    other = GitDataFileSystem(repo=str(tmp_path / "a"), rev="HEAD")
    assert other is not fs and other.reader.project.root != fs.reader.project.root


def test_pandas_and_pyarrow_read_through_gitdata(tmp_path, monkeypatch):
    pd = pytest.importorskip("pandas")
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    a, _b, _files = own_project(tmp_path)
    for i in range(3):
        (a / "data" / "table").mkdir(exist_ok=True)
        pq.write_table(pa.table({"x": [i, i + 1]}), a / "data" / "table" / f"part-{i}.parquet")
    git(a, "add", "-A")
    git(a, "commit", "-qm", "parquet")
    monkeypatch.chdir(a)
    df = pd.read_csv("gitdata://data/field/obs.csv")
    assert list(df["value"]) == [1, 2]
    import pyarrow.dataset as pads

    ds = pads.dataset("data/table", filesystem=GitDataFileSystem(), format="parquet")
    assert sorted(ds.to_table()["x"].to_pylist()) == [0, 1, 1, 2, 2, 3]


# --------------------------------------------------------------------------
# registered files: pinned versions, or SourceChanged


def test_registered_file_pinned_to_its_version_on_moto(tmp_path, moto_server, versioned_moto_bucket, monkeypatch):
    use_server_env(monkeypatch, moto_server)
    import s3fs

    s3 = s3fs.S3FileSystem(endpoint_url=moto_server.endpoint, skip_instance_cache=True)
    s3.pipe_file(f"{versioned_moto_bucket}/raw/obs.csv", b"site,value\nA,1\n")
    p = registered_project(tmp_path / "reg", f"s3://{versioned_moto_bucket}/raw", moto_server.endpoint)
    s3.pipe_file(f"{versioned_moto_bucket}/raw/obs.csv", b"site,value\nA,999\nB,5\n")  # overwritten
    with gitdata.open("data/field/obs.csv", repo=str(p)) as f:
        assert f.read() == b"site,value\nA,1\n"  # the recorded version
    # cache="local": a whole read is kept; the next read makes no request at all
    with gitdata.open("data/field/obs.csv", repo=str(p), cache="local") as f:
        assert f.read() == b"site,value\nA,1\n"
    moto_server.reset_counts()
    with gitdata.open("data/field/obs.csv", repo=str(p)) as f:
        assert f.read() == b"site,value\nA,1\n"
    assert moto_server.counts(versioned_moto_bucket)["GET_OBJECT"] == 0


def test_registered_file_changed_without_versions_raises(tmp_path, rclone_server, rclone_bucket, monkeypatch):
    use_server_env(monkeypatch, rclone_server)
    served = rclone_server.bucket_path(rclone_bucket)
    (served / "raw").mkdir(parents=True)
    (served / "raw" / "obs.csv").write_bytes(b"site,value\nA,1\n")
    rclone_server.flush_dir_cache()
    p = registered_project(tmp_path / "reg", f"s3://{rclone_bucket}/raw", rclone_server.endpoint)
    with gitdata.open("data/field/obs.csv", repo=str(p)) as f:
        assert f.read() == b"site,value\nA,1\n"
    (served / "raw" / "obs.csv").write_bytes(b"site,value\nA,2,changed\n")
    rclone_server.flush_dir_cache()
    with pytest.raises(SourceChanged, match=r"data/field/obs.csv: its source .* changed since it was recorded \(size"):
        gitdata.open("data/field/obs.csv", repo=str(p))
    with gitdata.open("data/field/obs.csv", repo=str(p), allow_changed=True) as f:
        assert f.read() == b"site,value\nA,2,changed\n"


def test_range_read_transfers_only_what_it_needs(tmp_path, moto_server, moto_bucket, monkeypatch):
    use_server_env(monkeypatch, moto_server)
    import s3fs

    s3 = s3fs.S3FileSystem(endpoint_url=moto_server.endpoint, skip_instance_cache=True)
    big = os.urandom(64 << 20)
    s3.pipe_file(f"{moto_bucket}/raw/big.bin", big)
    p = registered_project(tmp_path / "reg", f"s3://{moto_bucket}/raw", moto_server.endpoint)
    moto_server.reset_counts()
    with gitdata.open("data/field/big.bin", repo=str(p)) as f:
        f.seek(40 << 20)
        assert f.read(4096) == big[40 << 20 : (40 << 20) + 4096]
    sent = sum(r.bytes_out for r in moto_server.requests(moto_bucket) if r.api == "GetObject")
    assert 4096 <= sent <= 8 << 20, sent


def test_dataset_api_and_status(tmp_path, rclone_server, rclone_bucket, monkeypatch):
    use_server_env(monkeypatch, rclone_server)
    served = rclone_server.bucket_path(rclone_bucket)
    (served / "raw").mkdir(parents=True)
    (served / "raw" / "a.csv").write_bytes(b"a\n")
    rclone_server.flush_dir_cache()
    p = registered_project(tmp_path / "reg", f"s3://{rclone_bucket}/raw", rclone_server.endpoint)
    ds = gitdata.Dataset("field", repo=str(p))
    assert ds.path == "data/field" and ds.sources == [f"s3://{rclone_bucket}/raw"]
    files = ds.files()
    assert [f["path"] for f in files] == ["data/field/a.csv"] and files[0]["oid"] is None
    assert files[0]["state"] == "pointer only"
    with ds.open("a.csv") as f:
        assert f.read() == b"a\n"
    report = ds.stage()
    assert report["staged"] == 1 and report["failed"] == {}
    assert ds.status()[0]["local"] == "staged"
    rows = gitdata.api.status(remote=True, repo=str(p))
    assert [(r["path"], r["local"], r["remote"]) for r in rows] == [("data/field/a.csv", "staged", "unchanged")]


def test_docs_example_runs(tmp_path, monkeypatch):
    """The example block of docs/api.md runs as written."""
    pytest.importorskip("pandas")
    text = (Path(__file__).resolve().parent.parent / "docs" / "api.md").read_text()
    block = text.split("```python\n", 1)[1].split("```", 1)[0]
    p = tmp_path / "p"
    p.mkdir()
    git(p, "init", "-q", "-b", "main")
    gd(p, "install")
    gd(p, "remote", "add", "origin", (tmp_path / "remote").as_uri())
    gd(p, "dataset", "create", "field")
    (p / "data" / "field").mkdir(parents=True, exist_ok=True)
    (p / "data" / "field" / "obs.csv").write_bytes(b"site,value\nA,1\nB,2\n")
    git(p, "add", "-A")
    git(p, "commit", "-qm", "obs")
    gd(p, "push")
    monkeypatch.chdir(p)
    exec(compile(block, "docs/api.md", "exec"), {})


def test_registered_file_pinned_to_its_generation_on_gcs(tmp_path, gcs_server):
    import gcsfs

    bucket = gcs_server.make_bucket("gen-" + os.urandom(4).hex(), versioned=True)
    gcs = gcsfs.GCSFileSystem(endpoint_url=gcs_server.endpoint, token="anon", skip_instance_cache=True)
    gcs.pipe_file(f"{bucket}/raw/obs.csv", b"site,value\nA,1\n")
    p = tmp_path / "reg"
    p.mkdir()
    git(p, "init", "-q", "-b", "main")
    gd(p, "install")
    gd(p, "dataset", "create", "field", "-o", f"endpoint_url={gcs_server.endpoint}", "-o", "token=anon")
    gd(p, "dataset", "add", "field", f"gs://{bucket}/raw")
    git(p, "commit", "-qm", "register")
    pointer = git(p, "cat-file", "-p", "HEAD:data/field/obs.csv")
    if "version-id" not in pointer:
        pytest.skip("this fake-gcs-server lists no generations")
    gcs.pipe_file(f"{bucket}/raw/obs.csv", b"site,value\nA,999,overwritten\n")
    with gitdata.open("data/field/obs.csv", repo=str(p)) as f:
        assert f.read() == b"site,value\nA,1\n"


def test_dask_reads_gitdata_paths_in_worker_processes(tmp_path, monkeypatch):
    dd = pytest.importorskip("dask.dataframe")
    import dask

    a, _b, _files = own_project(tmp_path)
    for i in range(3):
        (a / "data" / "csv").mkdir(exist_ok=True)
        (a / "data" / "csv" / f"part-{i}.csv").write_text(f"x\n{i}\n{i + 10}\n")
    git(a, "add", "-A")
    git(a, "commit", "-qm", "csv")
    gd(a, "push")
    b = tmp_path / "b2"
    subprocess.run(["git", "clone", "-q", str(a), str(b)], check=True, capture_output=True,
                   env={**os.environ, "GIT_DATA_SKIP_SMUDGE": "1"})  # fmt: skip
    monkeypatch.chdir(b)
    df = dd.read_csv("gitdata://data/csv/*.csv")
    with dask.config.set(scheduler="processes", num_workers=2):
        assert sorted(df["x"].compute().tolist()) == [0, 1, 2, 10, 11, 12]


def test_xarray_opens_netcdf_through_gitdata(tmp_path, monkeypatch):
    xr = pytest.importorskip("xarray")
    pytest.importorskip("h5netcdf")
    a, _b, _files = own_project(tmp_path)
    xr.Dataset({"t": ("x", [1.5, 2.5, 3.5])}).to_netcdf(a / "data" / "field" / "t.nc", engine="h5netcdf")
    git(a, "add", "-A")
    git(a, "commit", "-qm", "nc")
    monkeypatch.chdir(a)
    with fsspec.open("gitdata://data/field/t.nc", "rb") as f, xr.open_dataset(f, engine="h5netcdf") as ds:
        assert ds["t"].values.tolist() == [1.5, 2.5, 3.5]


def test_missing_credentials_raise_at_once_with_the_hint(tmp_path, moto_server, moto_bucket, monkeypatch):
    import time

    import s3fs

    use_server_env(monkeypatch, moto_server)
    s3fs.S3FileSystem(endpoint_url=moto_server.endpoint, skip_instance_cache=True).pipe_file(
        f"{moto_bucket}/raw/a.csv", b"a\n"
    )
    p = registered_project(tmp_path / "reg", f"s3://{moto_bucket}/raw", moto_server.endpoint)
    for k in moto_server.env:
        monkeypatch.delenv(k)
    t = time.monotonic()
    from gitdata.errors import GitDataError

    with pytest.raises(GitDataError, match="git data credentials set field"):
        gitdata.open("data/field/a.csv", repo=str(p)).read()
    assert time.monotonic() - t < 20


def test_one_filesystem_from_many_threads(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    _a, b, files = own_project(tmp_path)
    fs = GitDataFileSystem(repo=str(b))
    paths = sorted(files) * 4
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(fs.cat_file, paths))
    assert got == [files[p] for p in paths]


def test_fsspec_instances_are_per_repository_and_revision(tmp_path, monkeypatch):
    """fsspec's instance cache never hands out a filesystem of another project or revision: the same
    call from another folder, or with another ``rev``, reads that project at that revision."""
    a, b, files = own_project(tmp_path)
    (a / "data/notes/n.txt").write_bytes(b"v2, longer\n")
    git(a, "commit", "-qam", "v2")
    monkeypatch.chdir(a)
    fa = fsspec.filesystem("gitdata")
    assert fa.cat_file("data/notes/n.txt") == b"v2, longer\n"
    monkeypatch.chdir(b)  # b is a clone of v1
    fb = fsspec.filesystem("gitdata")
    assert fb is not fa and fb.reader.project.root == str(b)
    assert fb.cat_file("data/notes/n.txt") == b"v1\n"
    old = fsspec.filesystem("gitdata", repo=str(a), rev="HEAD~1")
    now = fsspec.filesystem("gitdata", repo=str(a))
    assert old is not now
    assert old.cat_file("data/notes/n.txt") == b"v1\n" and now.cat_file("data/notes/n.txt") == b"v2, longer\n"
    assert old.info("data/notes/n.txt")["size"] == 3 and now.info("data/notes/n.txt")["size"] == 11
    fs, _path = fsspec.core.url_to_fs("gitdata://data/notes/n.txt", repo=str(a), rev="HEAD~1")
    assert fs.cat_file("data/notes/n.txt") == b"v1\n"


def test_walk_and_the_info_fields(tmp_path, monkeypatch):
    _a, b, files = own_project(tmp_path)
    fs = GitDataFileSystem(repo=str(b))
    walked = {root: (sorted(dirs), sorted(names)) for root, dirs, names in fs.walk("data")}
    assert walked == {"data": (["field", "notes"], []), "data/field": ([], ["big.bin", "obs.csv"]),
                      "data/notes": ([], ["n.txt"])}  # fmt: skip
    info = fs.info("data/field/big.bin")
    assert info["type"] == "file" and info["size"] == len(files["data/field/big.bin"])
    assert info["oid"].startswith("xxh128:") and info["source"] is None and info["staged"] is False
    assert isinstance(info["fingerprint"], dict)
    plain = fs.info("README.md")
    assert plain["oid"] is None and plain["staged"] is True and plain["size"] == len("plain git file\n")
    assert fs.cat_file("data/field/big.bin", start=-5) == files["data/field/big.bin"][-5:]
    with pytest.raises(FileNotFoundError, match="data/field/nope.csv"):
        fs.info("data/field/nope.csv")
    with pytest.raises(FileNotFoundError, match="data/field/nope.csv"):
        gitdata.open("data/field/nope.csv", repo=str(b))


def test_a_filesystem_read_before_fork_reads_in_the_child_with_its_own_storages(tmp_path):
    """After ``fork`` (dask's process workers), storages opened by the parent are not reused."""
    import pickle

    _a, b, files = own_project(tmp_path)
    fs = GitDataFileSystem(repo=str(b))
    assert fs.cat_file("data/field/obs.csv") == files["data/field/obs.csv"]
    inherited = list(fs.reader._storages.values())  # noqa: SLF001 - what must not be reused
    assert inherited
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, never return into pytest
        try:
            data = fs.cat_file("data/notes/n.txt")
            fresh = list(fs.reader._storages.values())  # noqa: SLF001
            ok = (data, bool(fresh) and all(s is not k for s in fresh for k in inherited))
            os.write(w, pickle.dumps(ok))
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        got = pickle.loads(f.read())
    os.waitpid(pid, 0)
    assert got == (files["data/notes/n.txt"], True)
    assert fs.cat_file("data/notes/n.txt") == files["data/notes/n.txt"]  # the parent goes on as before


def test_cache_local_from_git_config_and_the_second_read_is_local(tmp_path):
    """``gitdata.api.cache=local`` in git config does what ``cache="local"`` does; the second read
    needs nothing from the data remote (it is emptied in between)."""
    import shutil

    _a, b, files = own_project(tmp_path)
    git(b, "config", "gitdata.api.cache", "local")
    with gitdata.open("data/notes/n.txt", repo=str(b)) as f:
        assert f.read() == files["data/notes/n.txt"]
    shutil.rmtree(tmp_path / "remote")
    with gitdata.open("data/notes/n.txt", repo=str(b)) as f:
        assert f.read() == files["data/notes/n.txt"]
    from gitdata.storage import ObjectNotFound

    with pytest.raises(ObjectNotFound, match="not found"):  # a file not read before needs the remote
        gitdata.open("data/field/obs.csv", repo=str(b)).read()
