"""The git-lfs-equivalent core, end to end through real git: add, push, clone, checkout."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from gitdata.cache import Cache
from gitdata.pointer import parse
from helpers import gd, git, new_project, run, status_short, write


def rand(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def bare(tmp_path: Path, name: str = "origin.git") -> Path:
    path = tmp_path / name
    git(tmp_path, "init", "-q", "--bare", str(path))
    return path


def test_install_registers_long_running_filter_and_hooks(tmp_path):
    proj = tmp_path / "p"
    proj.mkdir()
    git(proj, "init", "-q")
    gd(proj, "install", "--local")
    assert git(proj, "config", "--local", "filter.s3data.process").strip() == "git-data filter-process"
    assert git(proj, "config", "--local", "filter.s3data.required").strip() == "true"
    assert run("git", "config", "filter.s3data.clean", cwd=proj, check=False).returncode == 1
    for hook in ("pre-push", "pre-commit"):
        assert os.access(proj / ".git" / "hooks" / hook, os.X_OK)
    gd(proj, "uninstall", "--local")
    assert run("git", "config", "--local", "filter.s3data.process", cwd=proj, check=False).returncode == 1
    assert not (proj / ".git" / "hooks" / "pre-push").exists()


def test_install_leaves_foreign_hooks_alone(tmp_path):
    proj = tmp_path / "p"
    proj.mkdir()
    git(proj, "init", "-q")
    hook = proj / ".git" / "hooks" / "pre-push"
    hook.write_text("#!/bin/sh\necho mine\n")
    out = gd(proj, "install", "--local")
    assert "not ours" in out
    assert hook.read_text() == "#!/bin/sh\necho mine\n"


def test_track_untrack_and_list(tmp_path):
    proj = new_project(tmp_path / "p", patterns=("data/**",))
    gd(proj, "track", "*.h5", "my file.bin")
    assert gd(proj, "track").split() == ["data/**", "*.h5", "my[[:space:]]file.bin"]
    attrs = (proj / ".gitattributes").read_text()
    assert "*.h5 filter=s3data diff=s3data merge=s3data -text" in attrs
    gd(proj, "untrack", "*.h5")
    assert gd(proj, "track").split() == ["data/**", "my[[:space:]]file.bin"]
    r = run("git", "data", "untrack", "nope", cwd=proj, check=False)
    assert r.returncode == 1 and b"none of these patterns" in r.stderr


def test_clean_stores_pointer_and_is_deterministic(tmp_path):
    proj = new_project(tmp_path / "p", str(tmp_path / "store"))
    content = rand(300_000, 1)
    write(proj / "data" / "a.bin", content)
    write(proj / "data" / "empty.bin", b"")
    git(proj, "add", "-A")
    blob = run("git", "show", ":data/a.bin", cwd=proj).stdout
    p = parse(blob)
    assert p.size == len(content) and p.oid.startswith("xxh128:")
    assert run("git", "show", ":data/empty.bin", cwd=proj).stdout == b""  # empty stays empty
    # re-adding unchanged content: byte-identical pointer
    os.utime(proj / "data" / "a.bin", (1, 1))
    git(proj, "add", "data/a.bin")
    assert run("git", "show", ":data/a.bin", cwd=proj).stdout == blob
    # changed content: new oid
    write(proj / "data" / "a.bin", content + b"!")
    git(proj, "add", "data/a.bin")
    assert parse(run("git", "show", ":data/a.bin", cwd=proj).stdout).oid != p.oid
    # the object is in the cache under its oid
    hexd = p.oid.split(":")[1]
    cached = proj / ".git" / "gitdata" / "objects" / hexd[:2] / hexd
    assert cached.read_bytes() == content


def test_a_pointer_file_passes_through_clean_unchanged(tmp_path):
    proj = new_project(tmp_path / "p")
    ptr = b"version gitdata/1\noid xxh128:" + b"a" * 32 + b"\nsize 5\n"
    write(proj / "data" / "p.bin", ptr)
    git(proj, "add", "-A")
    assert run("git", "show", ":data/p.bin", cwd=proj).stdout == ptr


def test_sha256_selectable_per_repository(tmp_path):
    proj = new_project(tmp_path / "p")
    git(proj, "config", "-f", ".gitdata", "data.hash", "sha256")
    write(proj / "data" / "a.bin", b"abc")
    git(proj, "add", "-A")
    p = parse(run("git", "show", ":data/a.bin", cwd=proj).stdout)
    assert p.oid == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def _push_and_clone(tmp_path, proj, **clone_env):
    origin = bare(tmp_path)
    git(proj, "remote", "add", "origin", str(origin))
    r = run("git", "push", "-q", "origin", "HEAD:refs/heads/main", cwd=proj)
    clone = tmp_path / "clone"
    r = run("git", "clone", "-q", str(origin), str(clone), cwd=tmp_path, env=clone_env or None)
    return origin, clone, r


def test_push_clone_round_trip_with_large_file_streamed_outside_smudge(tmp_path):
    proj = new_project(tmp_path / "p", str(tmp_path / "store"))
    files = {f"data/f{i}.bin": rand(50_000 + i, i) for i in range(20)}
    files["big.bin"] = rand(3_000_000, 99)
    for path, data in files.items():
        write(proj / path, data)
    write(proj / "README", b"plain file\n")
    git(proj, "add", "-A")
    git(proj, "commit", "-qm", "data")
    # objects larger than gitdata.smudgeMax are written by git data itself
    git(tmp_path, "config", "--global", "gitdata.smudgeMax", "1000000")
    # download into the cache, as from any remote (a local one is read directly by default)
    git(tmp_path, "config", "--global", "gitdata.cacheLocalRemote", "true")
    _origin, clone, _ = _push_and_clone(tmp_path, proj)
    for path, data in files.items():
        assert (clone / path).read_bytes() == data, path
    assert status_short(clone) == ""
    rows = {r["path"]: r for r in __import__("json").loads(gd(clone, "ls-files", "--json"))}
    assert rows["big.bin"]["cached"] and rows["big.bin"]["on_remote"]
    assert rows["big.bin"]["size"] == 3_000_000
    assert not [p for p in clone.rglob(".gitdata-*")]


def test_local_data_remote_is_read_directly_and_verified(tmp_path):
    store = tmp_path / "store"
    proj = new_project(tmp_path / "p", str(store))
    files = {f"data/f{i}.bin": rand(3000 + i, i) for i in range(5)}
    files["data/big.bin"] = rand(2_000_000, 98)
    files["data/bad.bin"] = rand(1_500_000, 97)
    for path, data in files.items():
        write(proj / path, data)
    git(proj, "add", "-A")
    git(proj, "commit", "-qm", "data")
    bad = parse(run("git", "show", "HEAD:data/bad.bin", cwd=proj).stdout)
    git(tmp_path, "config", "--global", "gitdata.smudgeMax", "1000000")  # big files: written after git
    origin = bare(tmp_path)
    git(proj, "remote", "add", "origin", str(origin))
    git(proj, "push", "-q", "origin", "HEAD:refs/heads/main")
    hexd = bad.oid.split(":")[1]
    obj = store / "objects" / hexd[:2] / hexd[2:4] / hexd
    obj.write_bytes(b"Z" * obj.stat().st_size)  # corrupted on the remote
    clone = tmp_path / "clone"
    r = run("git", "clone", "-q", str(origin), str(clone), cwd=tmp_path, check=False)
    err = r.stderr.decode()
    assert "data/bad.bin" in err and "refused" in err
    assert (clone / "data" / "bad.bin").read_bytes() == bad.encode()  # left as a pointer
    for path, data in files.items():
        if path != "data/bad.bin":
            assert (clone / path).read_bytes() == data, path
    assert not list(clone.rglob(".gitdata-*"))
    # nothing was copied into the cache: the remote is the local copy
    assert list(Cache(str(clone / ".git" / "gitdata")).iter_oids()) == []
    rows = {r["path"]: r for r in __import__("json").loads(gd(clone, "ls-files", "--json"))}
    assert not rows["data/big.bin"]["cached"] and rows["data/big.bin"]["on_remote"]
    assert status_short(clone) == ""  # a pointer cleans to the committed blob
    r = run("git", "data", "pull", cwd=clone, check=False)
    assert r.returncode == 1 and b"data/bad.bin" in r.stderr  # still refused, still a pointer
    assert (clone / "data" / "bad.bin").read_bytes() == bad.encode()
    # opt in to a cache copy
    clone2 = tmp_path / "clone2"
    git(tmp_path, "-c", "gitdata.cacheLocalRemote=true", "clone", "-q", str(origin), str(clone2))
    git(clone2, "config", "gitdata.cacheLocalRemote", "true")
    cached = set(Cache(str(clone2 / ".git" / "gitdata")).iter_oids())
    assert len(cached) == len(files) - 1 and bad.oid not in cached
    assert (clone2 / "data" / "big.bin").read_bytes() == files["data/big.bin"]


def test_checkout_uses_delay_one_parallel_batch(tmp_path):
    proj = new_project(tmp_path / "p", str(tmp_path / "store"))
    for i in range(30):
        write(proj / "data" / f"f{i}.bin", rand(1000, i))
    git(proj, "add", "-A")
    git(proj, "commit", "-qm", "data")
    git(tmp_path, "config", "--global", "gitdata.cacheLocalRemote", "true")  # download, do not read directly
    trace = tmp_path / "trace"
    _o, clone, _ = _push_and_clone(tmp_path, proj, GIT_TRACE_PACKET=str(trace))
    log = trace.read_text(errors="replace")
    assert log.count("status=delayed") == 30
    assert log.count("command=list_available_blobs") <= 30
    assert status_short(clone) == ""
    assert (clone / "data" / "f7.bin").read_bytes() == rand(1000, 7)


def test_skip_smudge_then_pull(tmp_path):
    proj = new_project(tmp_path / "p", str(tmp_path / "store"))
    write(proj / "data" / "a.bin", b"A" * 5000)
    write(proj / "data" / "sub" / "b.bin", b"B" * 5000)
    git(proj, "add", "-A")
    git(proj, "commit", "-qm", "data")
    _o, clone, _ = _push_and_clone(tmp_path, proj, GIT_DATA_SKIP_SMUDGE="1")
    assert (clone / "data" / "a.bin").read_bytes().startswith(b"version gitdata/1\n")
    assert status_short(clone) == ""
    assert "1 object(s) downloaded" in gd(clone, "fetch", "--include", "data/sub/*")
    assert "1 file(s) checked out" in gd(clone, "checkout", "data/sub")
    assert (clone / "data" / "sub" / "b.bin").read_bytes() == b"B" * 5000
    assert (clone / "data" / "a.bin").read_bytes().startswith(b"version gitdata/1\n")
    out = gd(clone, "pull")
    assert "1 file(s) checked out" in out
    assert (clone / "data" / "a.bin").read_bytes() == b"A" * 5000
    assert status_short(clone) == ""


def test_missing_object_fails_that_file_only(tmp_path):
    store = tmp_path / "store"
    proj = new_project(tmp_path / "p", str(store))
    write(proj / "data" / "keep.bin", b"K" * 3000)
    write(proj / "data" / "lost.bin", b"L" * 3000)
    git(proj, "add", "-A")
    git(proj, "commit", "-qm", "data")
    lost = parse(run("git", "show", "HEAD:data/lost.bin", cwd=proj).stdout)
    origin = bare(tmp_path)
    git(proj, "remote", "add", "origin", str(origin))
    git(proj, "push", "-q", "origin", "HEAD:refs/heads/main")
    hexd = lost.oid.split(":")[1]
    (store / "objects" / hexd[:2] / hexd[2:4] / hexd).unlink()
    clone = tmp_path / "clone"
    r = run("git", "clone", "-q", str(origin), str(clone), cwd=tmp_path, check=False)
    err = r.stderr.decode()
    assert "data/lost.bin" in err and lost.oid in err and "'origin'" in err and "missing" in err
    assert (clone / "data" / "keep.bin").read_bytes() == b"K" * 3000
    assert (clone / "data" / "lost.bin").read_bytes() == lost.encode()  # left as a pointer
    assert not list((clone / ".git" / "gitdata" / "tmp").glob("*"))
    assert not (clone / ".git" / "gitdata" / "objects" / hexd[:2] / hexd).exists()
    r = run("git", "data", "pull", cwd=clone, check=False)
    assert r.returncode == 1 and b"data/lost.bin" in r.stderr


def test_corrupted_object_on_remote_is_refused(tmp_path):
    store = tmp_path / "store"
    proj = new_project(tmp_path / "p", str(store))
    write(proj / "data" / "x.bin", b"X" * 4000)
    git(proj, "add", "-A")
    git(proj, "commit", "-qm", "data")
    p = parse(run("git", "show", "HEAD:data/x.bin", cwd=proj).stdout)
    origin = bare(tmp_path)
    git(proj, "remote", "add", "origin", str(origin))
    git(proj, "push", "-q", "origin", "HEAD:refs/heads/main")
    hexd = p.oid.split(":")[1]
    obj = store / "objects" / hexd[:2] / hexd[2:4] / hexd
    obj.write_bytes(b"Y" * 4000)
    clone = tmp_path / "clone"
    r = run("git", "clone", "-q", str(origin), str(clone), cwd=tmp_path, check=False)
    assert "refused" in r.stderr.decode() and "data/x.bin" in r.stderr.decode()
    assert (clone / "data" / "x.bin").read_bytes() == p.encode()
    assert not (clone / ".git" / "gitdata" / "objects" / hexd[:2] / hexd).exists()


def test_malformed_pointer_is_an_error_naming_the_path(tmp_path):
    proj = new_project(tmp_path / "p", str(tmp_path / "store"))
    write(proj / "data" / "ok.bin", b"fine")
    git(proj, "add", "-A")
    # commit a malformed pointer blob directly, bypassing the filter
    bad = b"version gitdata/1\nsize 1\noid xxh128:zz\n"
    sha = run("git", "hash-object", "-w", "--stdin", cwd=proj, input=bad).stdout.decode().strip()
    git(proj, "update-index", "--add", "--cacheinfo", f"100644,{sha},data/bad.bin")
    # (the pre-commit hook refuses it: a collaborator without the hook commits it)
    git(proj, "commit", "-qm", "bad pointer", "--no-verify")
    origin = bare(tmp_path)
    git(proj, "remote", "add", "origin", str(origin))
    r = run("git", "push", "-q", "origin", "HEAD:refs/heads/main", cwd=proj, check=False)
    assert r.returncode != 0 and b"data/bad.bin" in r.stderr and b"malformed" in r.stderr
    assert git(origin, "for-each-ref").strip() == ""  # no ref moved
    r = run("git", "data", "fsck", cwd=proj, check=False)
    assert r.returncode == 1 and b"data/bad.bin" in r.stdout


def test_push_with_unreachable_data_remote_moves_no_ref(tmp_path):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    proj = new_project(tmp_path / "p", "s3://bucket/proj", {"endpoint_url": f"http://127.0.0.1:{port}"})
    write(proj / "data" / "a.bin", b"a" * 100)
    git(proj, "add", "-A")
    git(proj, "commit", "-qm", "data")
    origin = bare(tmp_path)
    git(proj, "remote", "add", "origin", str(origin))
    r = run("git", "push", "origin", "HEAD:refs/heads/main", cwd=proj, check=False,
            env={"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_MAX_ATTEMPTS": "1"}, timeout=180)
    err = r.stderr.decode()
    assert r.returncode != 0
    assert "data/a.bin" in err and "cannot reach" in err
    assert git(origin, "for-each-ref").strip() == ""


def test_pre_commit_guard_refuses_large_untracked_files(tmp_path):
    proj = new_project(tmp_path / "p")
    git(proj, "config", "gitdata.maxBlobSize", "1000")
    write(proj / "huge.dat", b"z" * 5000)  # not tracked by a pattern
    git(proj, "add", "huge.dat")
    r = run("git", "commit", "-qm", "oops", cwd=proj, check=False)
    assert r.returncode != 0 and b"huge.dat" in r.stderr and b"git data track" in r.stderr
    write(proj / "data" / "fine.bin", b"z" * 5000)  # tracked: a pointer goes into git
    git(proj, "rm", "-q", "--cached", "huge.dat")
    git(proj, "add", "data/fine.bin")
    git(proj, "commit", "-qm", "ok")


def test_fsck_detects_corrupt_cache_and_prune_keeps_unpushed(tmp_path):
    store = tmp_path / "store"
    proj = new_project(tmp_path / "p", str(store))
    write(proj / "data" / "a.bin", b"first version")
    git(proj, "add", "-A")
    git(proj, "commit", "-qm", "v1")
    gd(proj, "push")
    write(proj / "data" / "a.bin", b"second version")
    git(proj, "add", "-A")
    git(proj, "commit", "-qm", "v2")
    write(proj / "data" / "a.bin", b"third, never committed nor pushed")
    git(proj, "add", "-A")
    git(proj, "reset", "-q", "--hard", "HEAD")  # the third version is now unreferenced, unpushed
    git(proj, "commit", "--allow-empty", "-qm", "noop")
    import json

    report = json.loads(gd(proj, "prune", "--dry-run", "--json"))
    assert report["removed"] == [] and len(report["kept_unpushed"]) == 1
    # rewrite history so v1 is unreferenced; it was pushed, so prune may drop it
    git(proj, "checkout", "-q", "--orphan", "fresh")
    git(proj, "commit", "-qm", "fresh")
    git(proj, "branch", "-D", "main") if "main" in git(proj, "branch") else None
    git(proj, "reflog", "expire", "--expire=now", "--all")
    report = json.loads(gd(proj, "prune", "--json"))
    assert len(report["removed"]) == 1 and len(report["kept_unpushed"]) == 1
    # fsck: corrupt the cached object of the current file
    p = parse(run("git", "show", "HEAD:data/a.bin", cwd=proj).stdout)
    packs = proj / ".git" / "gitdata" / "packs"  # small objects are packed
    idx = next(i for i in packs.glob("*.idx") if p.oid in i.read_text())
    pack = idx.with_suffix(".pack")
    os.chmod(pack, 0o644)
    pack.write_bytes(b"g" * pack.stat().st_size)
    r = run("git", "data", "fsck", cwd=proj, check=False)
    assert r.returncode == 1 and b"corrupt cached object" in r.stdout
    r = run("git", "data", "fsck", "--remote", "--json", cwd=proj, check=False)
    rep = json.loads(r.stdout)
    assert p.oid in rep["missing_on_remote"]


def test_merge_driver_takes_the_changed_side_and_flags_real_conflicts(tmp_path):
    proj = new_project(tmp_path / "p")
    write(proj / "data" / "a.bin", b"base")
    write(proj / "data" / "b.bin", b"base")
    git(proj, "add", "-A")
    git(proj, "commit", "-qm", "base")
    git(proj, "checkout", "-qb", "other")
    write(proj / "data" / "a.bin", b"theirs")
    write(proj / "data" / "b.bin", b"theirs-b")
    git(proj, "commit", "-qam", "theirs")
    git(proj, "checkout", "-q", "main")
    write(proj / "data" / "b.bin", b"ours-b")
    git(proj, "commit", "-qam", "ours")
    r = run("git", "merge", "-q", "other", cwd=proj, check=False)
    assert r.returncode != 0
    assert (proj / "data" / "a.bin").read_bytes() == b"theirs"
    assert b"both sides changed data/b.bin" in r.stderr + r.stdout


@pytest.mark.parametrize("backend", ["moto", "rclone", "gcs"], indirect=True)
def test_round_trip_on_every_cloud_backend(tmp_path, backend):
    proj = new_project(tmp_path / "p", backend.url, backend.options)
    files = {f"data/{i}.bin": rand(20_000, i) for i in range(5)}
    for path, data in files.items():
        write(proj / path, data)
    git(proj, "add", "-A")
    git(proj, "commit", "-qm", "data")
    origin = bare(tmp_path)
    git(proj, "remote", "add", "origin", str(origin))
    git(proj, "push", "-q", "origin", "HEAD:refs/heads/main")
    keys = [p for p in backend.fs().find(backend.key_path("objects"))]
    assert len(keys) == 5
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    for path, data in files.items():
        assert (clone / path).read_bytes() == data
    assert status_short(clone) == ""
    import json

    assert json.loads(gd(clone, "fsck", "--remote", "--json"))["ok"] is True


def test_remote_add_refuses_secrets_and_unknown_schemes(tmp_path):
    proj = new_project(tmp_path / "p")
    r = run("git", "data", "remote", "add", "x", "s3://b/p", "-o", "secret=abc", cwd=proj, check=False)
    assert r.returncode == 1 and b"never stored in .gitdata" in r.stderr and b"abc" not in r.stderr
    r = run("git", "data", "remote", "add", "x", "nosuch://b/p", cwd=proj, check=False)
    assert r.returncode == 1 and b"nosuch" in r.stderr
    r = run("git", "data", "remote", "add", "x", "s3://user:pw@host/b", cwd=proj, check=False)
    assert r.returncode == 1 and b"pw" not in r.stderr
    assert not (proj / ".gitdata").exists()
    gd(proj, "remote", "add", "lab", str(tmp_path / "s"), "-o", "auto_mkdir=true")
    import json

    rows = json.loads(gd(proj, "remote", "ls", "--json"))
    assert rows == [{"name": "lab", "url": str(tmp_path / "s"), "default": True, "options": ["auto_mkdir=true"]}]
    gd(proj, "remote", "rm", "lab")
    assert json.loads(gd(proj, "remote", "ls", "--json")) == []


def test_push_and_clone_through_git_daemon(tmp_path, daemon_repo):
    """A real git host over git:// (git daemon): the pre-push hook uploads, the clone gets bytes."""
    store = tmp_path / "store"
    proj = new_project(tmp_path / "p", str(store))
    write(proj / "data" / "a.bin", rand(200_000, 5))
    git(proj, "add", "-A")
    git(proj, "commit", "-qm", "data")
    git(proj, "remote", "add", "origin", daemon_repo.url)
    r = run("git", "push", "origin", "HEAD:refs/heads/main", cwd=proj)
    assert b"uploaded 1 object(s)" in r.stderr
    assert len([p for p in (store / "objects").rglob("*") if p.is_file()]) == 1
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", daemon_repo.url, str(clone))
    assert (clone / "data" / "a.bin").read_bytes() == rand(200_000, 5)
    assert status_short(clone) == ""
    # a second push with nothing new uploads nothing
    git(proj, "commit", "--allow-empty", "-qm", "empty")
    r = run("git", "push", "origin", "HEAD:refs/heads/main", cwd=proj)
    assert b"uploaded" not in r.stderr


def test_clone_fetches_a_datasets_files_from_its_own_storage(tmp_path):
    """Files of a dataset with its own storage are fetched from there at checkout."""
    store, ds_store = tmp_path / "store", tmp_path / "ds-store"
    proj = new_project(tmp_path / "p", str(store))
    gd(proj, "dataset", "create", "ds", "--storage", str(ds_store))
    mine = tmp_path / "mine.bin"
    mine.write_bytes(rand(5000, 3))
    gd(proj, "dataset", "add", "ds", str(mine))
    write(proj / "data" / "plain.bin", rand(4000, 4))
    git(proj, "add", "-A")
    git(proj, "commit", "-qm", "data")
    origin = bare(tmp_path)
    git(proj, "remote", "add", "origin", str(origin))
    git(proj, "push", "-q", "origin", "HEAD:refs/heads/main")
    assert [p for p in ds_store.rglob("*") if p.is_file()]  # the dataset's object went there
    clone = tmp_path / "clone"
    r = run("git", "clone", "-q", str(origin), str(clone), cwd=tmp_path)
    assert (clone / "data" / "ds" / "mine.bin").read_bytes() == rand(5000, 3), r.stderr.decode()
    assert (clone / "data" / "plain.bin").read_bytes() == rand(4000, 4)
    assert status_short(clone) == ""
    # `git data pull` in a clone that skipped the checkout fetches it from there too
    lazy = tmp_path / "lazy"
    run("git", "clone", "-q", str(origin), str(lazy), cwd=tmp_path, env={"GIT_DATA_SKIP_SMUDGE": "1"})
    assert (lazy / "data" / "ds" / "mine.bin").read_bytes().startswith(b"version gitdata/1\n")
    gd(lazy, "pull")
    assert (lazy / "data" / "ds" / "mine.bin").read_bytes() == rand(5000, 3)
    # the dataset's storage gone: its file stays a pointer, naming the storage; the rest checks out
    import shutil

    shutil.rmtree(ds_store)
    clone2 = tmp_path / "clone2"
    r = run("git", "clone", "-q", str(origin), str(clone2), cwd=tmp_path, check=False)
    err = r.stderr.decode()
    assert "data/ds/mine.bin" in err and "'ds'" in err
    assert (clone2 / "data" / "ds" / "mine.bin").read_bytes().startswith(b"version gitdata/1\n")
    assert (clone2 / "data" / "plain.bin").read_bytes() == rand(4000, 4)
