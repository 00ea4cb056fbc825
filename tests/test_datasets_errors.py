"""Datasets: bad input gets a clear error and writes nothing; local data; metadata commands."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from gitdata import datasets as ds_mod
from gitdata import datasets as stage_mod
from gitdata.project import Project
from gitdata.storage import BackendMissing, UnsupportedURL
from helpers import use_server_env


def run(cwd, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(args), cwd=cwd, capture_output=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} exited {proc.returncode}: {proc.stderr.decode(errors='replace')}")
    return proc


def git(cwd, *args: str) -> str:
    return run(cwd, "git", *args).stdout.decode()


def gd(cwd, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(cwd, "git", "data", *args, check=check)


@pytest.fixture
def root(tmp_path) -> Path:
    path = tmp_path / "p"
    path.mkdir()
    git(path, "init", "-q")
    from gitdata.install import install

    install("global", None)  # what `git data install` does, without starting Python again
    git(path, "commit", "-q", "--allow-empty", "-m", "init")
    return path


@pytest.fixture
def src(tmp_path) -> Path:
    """A local folder registered through file:// (metadata only, like a bucket)."""
    d = tmp_path / "src"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_bytes(b"alpha\n")
    (d / "sub" / "b.bin").write_bytes(os.urandom(3000))
    return d


def index_paths(root: Path) -> list[str]:
    return git(root, "ls-files").split()


def test_unknown_dataset_is_a_clear_error(root):
    for args in (["dataset", "stage", "nope"], ["dataset", "show", "nope"], ["status", "nope"],
                 ["dataset", "add", "nope", "file:///tmp"], ["update", "nope"]):
        proc = gd(root, *args, check=False)
        assert proc.returncode == 1, args
        err = proc.stderr.decode()
        assert err.startswith("error: no dataset named 'nope'"), err
        assert "Traceback" not in err


def test_unsupported_scheme_names_scheme_or_package(root):
    project = Project.open(str(root))
    ds = ds_mod.create(project, "ds")
    with pytest.raises(UnsupportedURL, match="unknown scheme 'foo'"):
        ds_mod.register(project, ds, "foo://bucket/prefix")
    with pytest.raises(BackendMissing, match="paramiko"):
        ds_mod.register(project, ds, "sftp://host/path")
    err = gd(root, "dataset", "add", "ds", "foo://bucket/x", check=False).stderr.decode()
    assert "unknown scheme 'foo'" in err
    assert not (root / "data/ds").exists()
    assert "source" not in (root / ".gitdata").read_text()


def test_path_traversal_key_is_refused_and_nothing_written(moto_server, moto_bucket, monkeypatch, root, tmp_path):
    use_server_env(monkeypatch, moto_server)
    client = moto_server.client()
    client.put_object(Bucket=moto_bucket, Key="pre/ok.txt", Body=b"fine")
    client.put_object(Bucket=moto_bucket, Key="pre/sub/../../../evil.txt", Body=b"evil")
    proc = gd(root, "dataset", "add", "ds", "--create", f"s3://{moto_bucket}/pre",
              "-o", f"endpoint_url={moto_server.endpoint}", check=False)
    assert proc.returncode == 1
    err = proc.stderr.decode()
    assert "sub/../../../evil.txt" in err and "'..'" in err and "nothing was written" in err
    assert not (root / "data/ds/ok.txt").exists()
    assert not [p for p in index_paths(root) if p.startswith("data/")]
    assert not list(tmp_path.rglob("evil.txt"))
    # --exclude lets the rest in; the unsafe key still never lands anywhere
    gd(root, "dataset", "add", "ds", f"s3://{moto_bucket}/pre", "--exclude", "*evil*")
    assert index_paths(root).count("data/ds/ok.txt") == 1
    assert not list(tmp_path.rglob("evil.txt"))
    # a --to that climbs out is refused too
    with pytest.raises(ds_mod.UnsafePath):
        project = Project.open(str(root))
        ds_mod.register(project, ds_mod.get(project, "ds"), f"s3://{moto_bucket}/pre", to="../../x")
    assert moto_server.counts(moto_bucket)["GET_OBJECT"] == 0


def test_safe_relpath_table():
    for key in ("a", "a/b.txt", "a b/c", "x..y/z", ".hidden/f"):
        assert ds_mod.safe_relpath(key) == key
    for key in ("", "/abs", "../x", "a/../../x", "a//b", "./a", "a/.", "a/.git/config", ".GIT/x"):
        with pytest.raises(ds_mod.UnsafePath):
            ds_mod.safe_relpath(key)


def test_name_clashes(root, src):
    gd(root, "dataset", "create", "ds")
    err = gd(root, "dataset", "create", "ds", check=False).stderr.decode()
    assert "dataset 'ds' exists already" in err
    err = gd(root, "dataset", "create", "inner", "--path", "data/ds/inner", check=False).stderr.decode()
    assert "overlaps dataset 'ds'" in err
    err = gd(root, "dataset", "create", "bad/name", check=False).stderr.decode()
    assert "invalid dataset name" in err
    # a file that is content, where a registered object would go
    (root / "data/ds").mkdir(parents=True)
    (root / "data/ds/a.txt").write_bytes(b"my own file")
    proc = gd(root, "dataset", "add", "ds", src.as_uri(), check=False)
    assert proc.returncode == 1
    assert "name clash" in proc.stderr.decode() and "data/ds/a.txt" in proc.stderr.decode()
    assert (root / "data/ds/a.txt").read_bytes() == b"my own file"
    assert not (root / "data/ds/sub").exists()
    # a folder in the project that is not a dataset's
    (root / "other").mkdir()
    (root / "other/x").write_text("x")
    err = gd(root, "dataset", "create", "o", "--path", "other", check=False).stderr.decode()
    assert "other already exists" in err


def test_add_inside_git_dir_is_refused(root):
    gd(root, "dataset", "create", "ds")
    for path in (".git", ".git/config", str(root / ".git/objects")):
        proc = gd(root, "dataset", "add", "ds", path, check=False)
        assert proc.returncode == 1
        assert "inside the git directory" in proc.stderr.decode()
    assert not (root / "data/ds").exists()


def test_mount_and_threshold(root, src):
    gd(root, "dataset", "add", "ds", "--create", src.as_uri())
    git(root, "commit", "-q", "-m", "reg")
    # (mount mode works now: tests/test_mount.py)
    git(root, "config", "gitdata.stageMaxBytes", "1000")
    proc = gd(root, "dataset", "stage", "ds", check=False)
    assert proc.returncode == 1
    err = proc.stderr.decode()
    assert "over the limit" in err and "--location" in err
    assert (root / "data/ds/a.txt").read_text().startswith("version gitdata/1")  # nothing written
    gd(root, "dataset", "stage", "ds", "--include", "a.txt")  # 6 bytes: fine
    assert (root / "data/ds/a.txt").read_bytes() == b"alpha\n"
    assert git(root, "status", "--porcelain") == ""


def test_local_files_reference_mode_and_metadata(root, src, tmp_path):
    remote = tmp_path / "remote"
    gd(root, "remote", "add", "origin", str(remote))
    local = tmp_path / "local"
    local.mkdir()
    (local / "l1.bin").write_bytes(b"L" * 5000)
    gd(root, "dataset", "create", "ds", "--title", "T", "--creator", "Ada <ada@example.org>", "--keyword", "x")
    gd(root, "dataset", "add", "ds", str(local))
    gd(root, "dataset", "add", "ds", src.as_uri(), "--to", "ext")
    git(root, "commit", "-q", "-m", "add")
    assert (root / "data/ds/l1.bin").read_bytes() == b"L" * 5000  # copied, content in the work tree
    blob = git(root, "cat-file", "-p", "HEAD:data/ds/l1.bin")
    assert "oid xxh128:" in blob and "source" not in blob
    assert "source " in git(root, "cat-file", "-p", "HEAD:data/ds/ext/a.txt")
    assert git(root, "status", "--porcelain") == ""
    info = json.loads(gd(root, "dataset", "show", "ds", "--json").stdout)
    assert info["files"] == 3 and info["creators"] == ["Ada <ada@example.org>"]
    assert [s["to"] for s in info["sources"]] == ["ext"]

    # not pushed: unstage keeps it; pushed: unstage frees it
    rows = {r["path"]: r for r in json.loads(gd(root, "status", "--json", "--remote").stdout)}
    assert rows["data/ds/l1.bin"]["local"] == "not pushed"
    out = gd(root, "dataset", "unstage", "ds").stdout.decode()
    assert "kept data/ds/l1.bin: not pushed" in out
    gd(root, "push")
    gd(root, "dataset", "unstage", "ds")
    assert (root / "data/ds/l1.bin").read_text().startswith("version gitdata/1")
    assert git(root, "status", "--porcelain") == ""

    # reference: nothing on disk, bytes through `git data cat`
    gd(root, "dataset", "stage", "ds", "--reference")
    assert (root / "data/ds/ext/sub/b.bin").read_text().startswith("version gitdata/1")
    assert run(root, "git", "data", "cat", "data/ds/ext/sub/b.bin").stdout == (src / "sub/b.bin").read_bytes()
    assert run(root, "git", "data", "cat", "data/ds/l1.bin").stdout == b"L" * 5000
    assert {r["local"] for r in json.loads(gd(root, "status", "--json").stdout)} == {"reference"}
    gd(root, "dataset", "stage", "ds")
    assert (root / "data/ds/l1.bin").read_bytes() == b"L" * 5000
    assert (root / "data/ds/ext/sub/b.bin").read_bytes() == (src / "sub/b.bin").read_bytes()
    assert git(root, "status", "--porcelain") == ""

    # edit, ls, rm (never touches the source)
    gd(root, "dataset", "edit", "ds", "--title", "New title")
    assert json.loads(gd(root, "dataset", "ls", "--json").stdout)[0]["title"] == "New title"
    gd(root, "dataset", "rm", "ds")
    assert not [p for p in index_paths(root) if p.startswith("data/ds")]
    assert '[dataset "ds"]' not in (root / ".gitdata").read_text()
    assert "data/ds/**" not in (root / ".gitattributes").read_text()
    assert (src / "a.txt").read_bytes() == b"alpha\n" and (src / "sub/b.bin").exists()
    assert stage_mod.current_mode(Project.open(str(root)), "ds") == (None, None)


def test_dataset_storage_receives_its_own_files(root, tmp_path):
    import shutil

    remote, store = tmp_path / "remote", tmp_path / "ds-store"
    gd(root, "remote", "add", "origin", str(remote))
    gd(root, "dataset", "create", "ds", "--storage", str(store))
    (tmp_path / "mine.bin").write_bytes(b"M" * 3000)
    gd(root, "dataset", "add", "ds", str(tmp_path / "mine.bin"))
    git(root, "commit", "-q", "-m", "add")
    assert "1 object(s) uploaded" in gd(root, "push").stdout.decode()
    assert len([p for p in (store / "objects").rglob("*") if p.is_file()]) == 1
    assert not (remote / "objects").exists()
    gd(root, "dataset", "unstage", "ds")
    assert (root / "data/ds/mine.bin").read_text().startswith("version gitdata/1")
    for folder in ("objects", "packs"):  # staging must fetch from the dataset's storage
        shutil.rmtree(root / ".git/gitdata" / folder, ignore_errors=True)
    assert not (root / ".git/gitdata/packs").exists()
    gd(root, "dataset", "stage", "ds")
    assert (root / "data/ds/mine.bin").read_bytes() == b"M" * 3000
    assert git(root, "status", "--porcelain") == ""


def test_https_style_source_over_a_loopback_http_server(root, src):
    """An HTTP index lists no sizes: they are asked for, and staging checks them."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(src)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        gd(root, "dataset", "add", "web", "--create", url + "/")
        assert "size 6\n" in (root / "data/web/a.txt").read_text()
        git(root, "commit", "-q", "-m", "reg")
        gd(root, "dataset", "stage", "web")
        assert (root / "data/web/a.txt").read_bytes() == b"alpha\n"
        assert (root / "data/web/sub/b.bin").read_bytes() == (src / "sub/b.bin").read_bytes()
        assert git(root, "status", "--porcelain") == ""
    finally:
        server.shutdown()
        server.server_close()
