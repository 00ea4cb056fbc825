"""The cache through real git: damaged copies are refetched, stale temporaries swept."""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

from gitdata.cache import Cache
from gitdata.pointer import parse
from helpers import gd, git, new_project, run, status_short, write


def _clone_with_cache(tmp_path: Path, files: dict[str, bytes]) -> Path:
    proj = new_project(tmp_path / "p", str(tmp_path / "store"))
    for path, data in files.items():
        write(proj / path, data)
    git(proj, "add", "-A")
    git(proj, "commit", "-qm", "data")
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(proj, "remote", "add", "origin", str(origin))
    git(proj, "push", "-q", "origin", "HEAD:refs/heads/main")
    # objects go through the cache, as from any network remote
    git(tmp_path, "config", "--global", "gitdata.cacheLocalRemote", "true")
    clone = tmp_path / "clone"
    run("git", "clone", "-q", str(origin), str(clone), cwd=tmp_path)
    return clone


def test_damaged_cached_objects_are_refused_and_refetched_on_checkout(tmp_path):
    rng = random.Random(3)
    files = {"data/small.bin": rng.randbytes(3000), "data/big.bin": rng.randbytes(600_000)}
    clone = _clone_with_cache(tmp_path, files)
    for path, data in files.items():
        assert (clone / path).read_bytes() == data
    cache = Cache(str(clone / ".git" / "gitdata"))
    oids = {p: parse(git(clone, "show", f"HEAD:{p}").encode()).oid for p in files}
    # truncate the big (loose) one, flip a byte of the small (packed) one
    loose = cache.path(oids["data/big.bin"])
    with open(loose, "r+b") as f:
        f.truncate(1000)
    pack = next((clone / ".git" / "gitdata" / "packs").glob("*.pack"))
    os.chmod(pack, 0o644)
    raw = bytearray(pack.read_bytes())
    raw[10] ^= 0xFF
    pack.write_bytes(bytes(raw))
    for path in files:
        (clone / path).unlink()
    git(clone, "checkout", "--", ".")
    for path, data in files.items():
        assert (clone / path).read_bytes() == data, path
    assert status_short(clone) == ""
    again = Cache(str(clone / ".git" / "gitdata"))
    assert all(again.verify(oid) for oid in oids.values())


def test_git_data_pull_refetches_a_truncated_object(tmp_path):
    data = random.Random(4).randbytes(700_000)
    clone = _clone_with_cache(tmp_path, {"data/big.bin": data})
    oid = parse(git(clone, "show", "HEAD:data/big.bin").encode()).oid
    cache = Cache(str(clone / ".git" / "gitdata"))
    with open(cache.path(oid), "r+b") as f:
        f.truncate(10)
    (clone / "data" / "big.bin").write_bytes(git(clone, "show", "HEAD:data/big.bin").encode())
    gd(clone, "pull")
    assert (clone / "data" / "big.bin").read_bytes() == data
    assert Cache(str(clone / ".git" / "gitdata")).verify(oid)


def _old(path: Path, age: float) -> None:
    t = time.time() - age
    os.utime(path, (t, t))


def test_stale_temporary_files_fsck_reports_and_the_next_add_and_prune_remove(tmp_path):
    proj = new_project(tmp_path / "p", str(tmp_path / "store"))
    tmp = proj / ".git" / "gitdata" / "tmp"
    tmp.mkdir(parents=True)
    stale, fresh = tmp / "obj-killed", tmp / "obj-running"
    for p in (stale, fresh):
        p.write_bytes(b"partial download" * 100)
    _old(stale, 25 * 3600)  # older than the default gitdata.tempMaxAge (24 h)
    _old(fresh, 3600)
    out = gd(proj, "fsck")
    assert "stale temporary file" in out and "obj-killed" in out and "obj-running" not in out
    report = json.loads(gd(proj, "fsck", "--json"))
    assert report["ok"] and report["stale_temp"] == [str(stale)]
    # the clean filter writes into the cache: it sweeps
    write(proj / "data" / "a.bin", b"a" * 300_000)
    git(proj, "add", "-A")
    assert not stale.exists() and fresh.exists()
    # prune, with a shorter age
    _old(fresh, 3 * 3600)
    git(proj, "config", "gitdata.tempMaxAge", "7200")
    dry = json.loads(gd(proj, "prune", "--dry-run", "--json"))
    assert dry["removed_temp"] == [str(fresh)] and fresh.exists()
    assert "1 stale temporary file(s)" in gd(proj, "prune")
    assert not fresh.exists()
    assert "stale temporary" not in gd(proj, "fsck")
