"""Faults: disk full while caching, a data remote that stops mid-way. Nothing half-written."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from gitdata.cache import Cache
from helpers import git, new_project, run, tmpfs, write


@pytest.fixture
def tiny_fs(tmp_path):
    """A 1 MiB tmpfs (root can mount one here); skipped where mounting is not allowed."""
    with tmpfs(tmp_path / "tiny", "1m") as mnt:
        yield mnt


def _objects(cache: Path) -> list[str]:
    """The objects the cache holds, files and packed alike."""
    return list(Cache(str(cache)).iter_oids())


def test_disk_full_while_caching_fails_add_cleanly(tmp_path, tiny_fs):
    proj = new_project(tmp_path / "p", str(tmp_path / "store"))
    cache = tiny_fs / "cache"
    git(proj, "config", "gitdata.cacheDir", str(cache))
    write(proj / "data" / "small.bin", b"s" * 1000)
    write(proj / "data" / "big.bin", os.urandom(3_000_000))
    r = run("git", "add", "data/big.bin", cwd=proj, check=False)
    assert r.returncode != 0
    err = r.stderr.decode()
    assert "no space left" in err and "gitdata.cachedir" in err.lower()
    assert _objects(cache) == []
    assert os.listdir(cache / "tmp") == []
    assert git(proj, "ls-files", "data/big.bin") == ""  # nothing staged
    git(proj, "add", "data/small.bin")  # small files still fit
    assert len(_objects(cache)) == 1


def test_disk_full_while_packing_a_small_object_leaves_no_torn_bytes(tmp_path, tiny_fs):
    proj = new_project(tmp_path / "p", str(tmp_path / "store"))
    cache = tiny_fs / "cache"
    git(proj, "config", "gitdata.cacheDir", str(cache))
    write(proj / "data" / "first.bin", b"f" * 1000)
    git(proj, "add", "data/first.bin")
    filler = tiny_fs / "filler"
    filler.write_bytes(b"0" * 900_000)
    small = os.urandom(200_000)  # packed, not a file of its own, and it does not fit
    write(proj / "data" / "small.bin", small)
    r = run("git", "add", "data/small.bin", cwd=proj, check=False)
    assert r.returncode != 0 and "no space left" in r.stderr.decode()
    assert git(proj, "ls-files", "data/small.bin") == ""
    assert len(_objects(cache)) == 1  # the first object only
    assert sum(p.stat().st_size for p in (cache / "packs").glob("*.pack")) == 1000  # no torn tail
    filler.unlink()
    git(proj, "add", "data/small.bin")
    assert len(_objects(cache)) == 2
    git(proj, "commit", "-qm", "both")
    (proj / "data" / "small.bin").unlink()
    git(proj, "checkout", "--", "data/small.bin")
    assert (proj / "data" / "small.bin").read_bytes() == small


def test_disk_full_during_checkout_leaves_pointer(tmp_path, tiny_fs):
    store = tmp_path / "store"
    proj = new_project(tmp_path / "p", str(store))
    write(proj / "data" / "big.bin", os.urandom(3_000_000))
    write(proj / "data" / "small.bin", b"s" * 1000)
    git(proj, "add", "-A")
    git(proj, "commit", "-qm", "data")
    origin = tmp_path / "o.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(proj, "push", "-q", str(origin), "HEAD:refs/heads/main")
    clone = tmp_path / "c"
    git(tmp_path, "clone", "-q", "--no-checkout", str(origin), str(clone))
    git(clone, "config", "gitdata.cacheDir", str(tiny_fs / "cache"))
    git(clone, "config", "gitdata.cacheLocalRemote", "true")  # through the cache, as from any remote
    r = run("git", "reset", "-q", "--hard", cwd=clone, check=False)
    assert "data/big.bin" in r.stderr.decode() and "no space left" in r.stderr.decode()
    assert (clone / "data" / "big.bin").read_bytes().startswith(b"version gitdata/1\n")
    assert (clone / "data" / "small.bin").read_bytes() == b"s" * 1000
    assert len(_objects(tiny_fs / "cache")) == 1 and os.listdir(tiny_fs / "cache" / "tmp") == []


def test_pull_on_a_nearly_full_disk_gets_every_file_that_fits(tmp_path, tiny_fs):
    """One object too big for the cache's disk, downloaded beside small ones that
    fit: the big one fails with the reason, every small one arrives (a small
    download that hit the full disk while the big one's temporary file held the
    space is tried again once it is gone)."""
    store = tmp_path / "store"
    proj = new_project(tmp_path / "p", str(store))
    write(proj / "data" / "big.bin", os.urandom(4_000_000))  # mean size over 1 MiB: two download threads
    for i in range(2):
        write(proj / "data" / f"s{i:02d}.bin", bytes([65 + i]) * 2000)
    git(proj, "add", "-A")
    git(proj, "commit", "-qm", "data")
    origin = tmp_path / "o.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(proj, "push", "-q", str(origin), "HEAD:refs/heads/main")
    clone = tmp_path / "c"
    git(tmp_path, "clone", "-q", str(origin), str(clone), env={"GIT_DATA_SKIP_SMUDGE": "1"})
    git(clone, "config", "gitdata.cacheDir", str(tiny_fs / "cache"))
    git(clone, "config", "gitdata.cacheLocalRemote", "true")
    git(clone, "config", "gitdata.jobs", "4")
    r = run("git", "data", "pull", cwd=clone, check=False)
    assert r.returncode != 0 and "no space left" in r.stderr.decode()
    assert (clone / "data" / "big.bin").read_bytes().startswith(b"version gitdata/1\n")
    for i in range(2):
        assert (clone / "data" / f"s{i:02d}.bin").read_bytes() == bytes([65 + i]) * 2000, i
    assert os.listdir(tiny_fs / "cache" / "tmp") == []


def test_data_remote_stopped_then_back(tmp_path, rclone_server_factory):
    server = rclone_server_factory()
    bucket = "b" + uuid.uuid4().hex[:8]
    server.make_bucket(bucket)
    env = {"AWS_ACCESS_KEY_ID": server.key, "AWS_SECRET_ACCESS_KEY": server.secret}
    proj = new_project(tmp_path / "p", f"s3://{bucket}/proj", {"endpoint_url": server.endpoint})
    data = {f"data/{i}.bin": os.urandom(100_000) for i in range(4)}
    for path, content in data.items():
        write(proj / path, content)
    git(proj, "add", "-A")
    git(proj, "commit", "-qm", "data")
    run("git", "data", "push", cwd=proj, env=env)
    origin = tmp_path / "o.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(proj, "push", "-q", str(origin), "HEAD:refs/heads/main", env=env)
    clone = tmp_path / "c"
    run("git", "clone", "-q", str(origin), str(clone), cwd=tmp_path, env={**env, "GIT_DATA_SKIP_SMUDGE": "1"})
    server.stop()
    r = run("git", "data", "pull", cwd=clone, check=False, env={**env, "AWS_MAX_ATTEMPTS": "1"}, timeout=180)
    assert r.returncode == 1
    assert "cannot reach" in r.stderr.decode() and "data/0.bin" in r.stderr.decode()
    assert (clone / "data" / "0.bin").read_bytes().startswith(b"version gitdata/1\n")
    assert _objects(clone / ".git" / "gitdata") == []
    server.start()
    run("git", "data", "pull", cwd=clone, env=env)
    for path, content in data.items():
        assert (clone / path).read_bytes() == content
    assert git(clone, "status", "--short") == ""
