"""git-remote-s3data: s3data::<git-url> (data with the refs) and bucket-hosted projects.

Real servers only: git daemon, moto, rclone serve s3, fake-gcs-server.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from gitdata.remote.helper import is_bucket_url
from gitdata.remote.manifest import (
    LOCKS,
    CorruptManifest,
    Manifest,
    PackEntry,
    RefUpdate,
    check_update,
    choose_head,
    next_manifest,
)
from gitdata.remote.protocol import parse_porcelain, parse_push_line
from helpers import use_server_env

# --------------------------------------------------------------------------
# helpers


def run(*args, cwd=None, check=True, env=None, timeout=120) -> subprocess.CompletedProcess:
    full = {**os.environ, **(env or {})}
    proc = subprocess.run(list(map(str, args)), cwd=cwd, capture_output=True, text=True, env=full, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def git(cwd, *args, **kw) -> str:
    return run("git", *args, cwd=cwd, **kw).stdout


def project(path: Path, data_remote: str | None = None, options: dict | None = None) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "data", "install")
    git(path, "data", "track", "*.bin")
    if data_remote:
        args = ["data", "remote", "add", "store", data_remote]
        for k, v in (options or {}).items():
            args += ["-o", f"{k}={v}"]
        git(path, *args)
    (path / "readme.txt").write_text("hello\n")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "init")
    return path


def commit_file(repo: Path, name: str, data: bytes, msg: str | None = None) -> str:
    (repo / name).write_bytes(data)
    git(repo, "add", name)
    git(repo, "commit", "-qm", msg or f"add {name}")
    return git(repo, "rev-parse", "HEAD").strip()


def oid_of(repo: Path, name: str) -> str:
    blob = git(repo, "cat-file", "-p", f"HEAD:{name}")
    return next(line.split(" ", 1)[1] for line in blob.splitlines() if line.startswith("oid "))


def obj_key(oid: str) -> str:
    h = oid.split(":", 1)[1]
    return f"objects/{h[:2]}/{h[2:4]}/{h}"


def remote_refs(repo: Path, remote: str = "origin") -> dict[str, str]:
    out = git(repo, "ls-remote", remote)
    return {ref: sha for sha, ref in (line.split("\t") for line in out.splitlines())}


def s3data_opts(backend) -> list[str]:
    return [f"{k}={v}" for k, v in backend.options.items()]


def set_opts(repo: Path, backend, remote: str = "origin") -> None:
    for line in s3data_opts(backend):
        git(repo, "config", "--add", f"remote.{remote}.s3dataOption", line)


def clone_args(backend) -> list[str]:
    out = []
    for line in s3data_opts(backend):
        out += ["-c", f"remote.origin.s3dataOption={line}"]
    return out


# --------------------------------------------------------------------------
# pure logic


@pytest.mark.parametrize(
    "old,new,force,known,ff,commits,expect",
    [
        (None, "b", False, False, False, False, None),  # new ref
        ("a", None, False, False, False, False, None),  # deletion
        ("a", "a", False, True, True, True, None),  # up to date
        ("a", "b", True, False, False, False, None),  # forced
        ("a", "b", False, False, False, True, "fetch first"),
        ("a", "b", False, True, False, True, "non-fast-forward"),
        ("a", "b", False, True, True, True, None),
        ("a", "b", False, True, False, False, "already exists"),  # tags
    ],
)
def test_check_update_table(old, new, force, known, ff, commits, expect):
    got = check_update(old, new, force=force, old_known=known, fast_forward=ff, both_commits=commits)
    assert got == expect


def test_manifest_round_trip_and_next():
    m = Manifest(seq=3, refs={"refs/heads/main": "a" * 40}, head="refs/heads/main",
                 packs=[PackEntry("pack-" + "b" * 40, ["a" * 40], 10, 3)])  # fmt: skip
    assert Manifest.from_bytes(m.to_bytes()) == m
    n = next_manifest(m, [RefUpdate("refs/heads/main", "a" * 40, None)], None, by="me", now=1.0)
    assert n.seq == 4 and n.refs == {} and n.packs == m.packs and n.updates[0].new is None
    with pytest.raises(CorruptManifest, match="not a valid git data manifest"):
        Manifest.from_bytes(b'{"format": "other"}')
    with pytest.raises(CorruptManifest):
        Manifest.from_bytes(b"\x00garbage")


def test_choose_head():
    assert choose_head(None, {"refs/heads/dev": "x", "refs/heads/main": "y"}) == "refs/heads/main"
    assert choose_head("refs/heads/dev", {"refs/heads/dev": "x", "refs/heads/main": "y"}) == "refs/heads/dev"
    assert choose_head("refs/heads/gone", {"refs/heads/b": "x", "refs/heads/a": "y"}) == "refs/heads/a"
    assert choose_head(None, {}) is None


def test_parse_porcelain_and_push_lines():
    out = (
        "To git://127.0.0.1:1/r.git\n"
        "=\trefs/heads/a:refs/heads/a\t[up to date]\n"
        "!\trefs/heads/b:refs/heads/b\t[rejected] (non-fast-forward)\n"
        "!\trefs/heads/c:refs/heads/c\t[remote rejected] (pre-receive hook declined)\n"
        "-\t:refs/heads/d\t[deleted]\n"
        "+\trefs/heads/e:refs/heads/e\tabc...def (forced update)\n"
        "Done\n"
    )
    assert parse_porcelain(out) == {
        "refs/heads/a": None, "refs/heads/b": "non-fast-forward",
        "refs/heads/c": "pre-receive hook declined", "refs/heads/d": None, "refs/heads/e": None,
    }  # fmt: skip
    spec = parse_push_line("push +refs/heads/x:refs/heads/y")
    assert (spec.src, spec.dst, spec.force) == ("refs/heads/x", "refs/heads/y", True)
    spec = parse_push_line("push :refs/tags/v1")
    assert (spec.src, spec.dst, spec.force) == ("", "refs/tags/v1", False)


def test_is_bucket_url(tmp_path):
    bare = tmp_path / "r.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    assert is_bucket_url("s3://b/p") and is_bucket_url("gs://b/p")
    assert is_bucket_url((tmp_path / "empty").as_uri())
    assert not is_bucket_url(bare.as_uri())
    assert not is_bucket_url("git://127.0.0.1/x.git") and not is_bucket_url("https://h/x.git")
    assert not is_bucket_url(str(bare))


# --------------------------------------------------------------------------
# s3data::<git-url>: git host = git daemon


def test_git_url_push_uploads_data_before_refs(tmp_path, daemon_repo):
    store = tmp_path / "store"
    a = project(tmp_path / "a", str(store))
    git(a, "remote", "add", "origin", f"s3data::{daemon_repo.url}")
    c1 = commit_file(a, "x.bin", b"x" * 1000)
    oid = oid_of(a, "x.bin")
    r = run("git", "push", "origin", "main", cwd=a)
    assert "[new branch]      main -> main" in r.stderr
    assert (store / obj_key(oid)).read_bytes() == b"x" * 1000
    assert git(daemon_repo.path, "rev-parse", "main").strip() == c1

    # tags, deletions, dry-run, force: git's own reporting
    git(a, "tag", "-a", "v1", "-m", "v1")
    c2 = commit_file(a, "y.bin", b"y" * 10)
    r = run("git", "push", "--dry-run", "origin", "main", "v1", cwd=a)
    assert "c1"[:0] + c1[:7] in r.stderr and "[new tag]" in r.stderr
    assert not (store / obj_key(oid_of(a, "y.bin"))).exists()  # dry run uploads nothing
    assert git(daemon_repo.path, "rev-parse", "main").strip() == c1
    run("git", "push", "origin", "main", "v1", "main:refs/heads/tmp", cwd=a)
    assert remote_refs(a)["refs/heads/main"] == c2 and "refs/tags/v1" in remote_refs(a)
    r = run("git", "push", "origin", ":refs/heads/tmp", cwd=a)
    assert "[deleted]" in r.stderr and "refs/heads/tmp" not in remote_refs(a)

    # someone else pushes; ours is rejected in git's words; force wins
    b = tmp_path / "b"
    git(tmp_path, "clone", "-q", f"s3data::{daemon_repo.url}", str(b))
    assert (b / "x.bin").read_bytes() == b"x" * 1000  # materialized through the filter
    commit_file(b, "z.txt", b"theirs")
    git(b, "push", "-q")
    commit_file(a, "w.txt", b"ours")
    r = run("git", "push", "origin", "main", cwd=a, check=False)
    assert r.returncode != 0 and "! [rejected]        main -> main (fetch first)" in r.stderr
    git(a, "fetch", "-q", "origin")
    r = run("git", "push", "origin", "main", cwd=a, check=False)
    assert "! [rejected]        main -> main (non-fast-forward)" in r.stderr
    r = run("git", "push", "--force", "origin", "main", cwd=a)
    assert "(forced update)" in r.stderr
    assert git(daemon_repo.path, "rev-parse", "main").strip() == git(a, "rev-parse", "HEAD").strip()


def test_git_url_failed_data_upload_moves_no_ref(tmp_path, daemon_repo, moto_server):
    # The data remote is an S3 endpoint where nothing listens.
    dead = "http://127.0.0.1:9"
    a = project(tmp_path / "a", "s3://nobucket/p", {"endpoint_url": dead})
    git(a, "remote", "add", "origin", f"s3data::{daemon_repo.url}")
    commit_file(a, "big.bin", b"b" * 5000)
    r = run("git", "push", "origin", "main", cwd=a, check=False,
            env={"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_MAX_ATTEMPTS": "1"})
    assert r.returncode != 0
    assert "big.bin" in r.stderr and "data remote 'store'" in r.stderr, r.stderr
    assert "no ref was updated" in r.stderr
    assert "[remote rejected] main -> main (data upload failed" in r.stderr
    assert git(daemon_repo.path, "for-each-ref").strip() == ""  # nothing moved


def test_data_remote_per_git_remote(tmp_path, daemon_repo):
    default, special = tmp_path / "default", tmp_path / "special"
    a = project(tmp_path / "a", str(default))
    git(a, "remote", "add", "origin", f"s3data::{daemon_repo.url}")
    git(a, "data", "remote", "add", "special", str(special), "--git-remote", "origin")
    assert git(a, "config", "remote.origin.gitdataRemote").strip() == "special"
    commit_file(a, "d.bin", b"per-remote")
    git(a, "push", "-q", "origin", "main")
    key = obj_key(oid_of(a, "d.bin"))
    assert (special / key).exists() and not (default / key).exists()
    # the pre-push hook (plain URL) uses the same choice
    git(a, "remote", "add", "plain", daemon_repo.url)
    git(a, "config", "remote.plain.gitdataRemote", "store")
    commit_file(a, "e.bin", b"plain remote")
    git(a, "push", "-q", "plain", "main")
    assert (default / obj_key(oid_of(a, "e.bin"))).exists()


# --------------------------------------------------------------------------
# s3data::s3://bucket/prefix: the project lives in the bucket


def test_bucket_project_push_clone_force_delete(tmp_path, backend):
    url = f"s3data::{backend.url}"
    a = project(tmp_path / "a")
    git(a, "remote", "add", "origin", url)
    set_opts(a, backend)
    commit_file(a, "d.bin", b"data in the bucket")
    git(a, "push", "-q", "origin", "main")
    fs = backend.fs()
    oid = oid_of(a, "d.bin")
    assert fs.cat_file(backend.key_path(obj_key(oid))) == b"data in the bucket"
    assert fs.find(backend.key_path("git/packs"))

    b = tmp_path / "b"
    git(tmp_path, "clone", "-q", *clone_args(backend), url, str(b))
    assert (b / "d.bin").read_bytes() == b"data in the bucket"
    assert git(b, "status", "--porcelain") == ""

    git(a, "push", "-q", "origin", "main:refs/heads/topic")
    git(a, "commit", "-q", "--amend", "-m", "rewritten")
    r = run("git", "push", "origin", "main", cwd=a, check=False)
    assert "! [rejected]        main -> main (non-fast-forward)" in r.stderr
    r = run("git", "push", "-f", "origin", "main", ":refs/heads/topic", cwd=a)
    assert "(forced update)" in r.stderr and "[deleted]         topic" in r.stderr
    git(b, "fetch", "-q", "--prune")
    assert git(b, "rev-parse", "origin/main").strip() == git(a, "rev-parse", "main").strip()
    log = json.loads(git(a, "remote-s3data", "log", "origin", "--json"))
    last = log[-1]["updates"]
    assert {(u["ref"], u["forced"], u["new"] is None) for u in last} == {
        ("refs/heads/main", True, False), ("refs/heads/topic", False, True),
    }  # fmt: skip


def test_clone_of_many_pushes_verifies_every_pack_whatever_the_download_order(tmp_path):
    """Each push is one pack; a later pack's trees name the .gitattributes blob of the first.
    git's fsck of a pack reads that blob, so packs downloaded in parallel are verified and
    installed oldest first (verified in parallel, a clone failed at random: "gitattributesMissing")."""
    bucket = tmp_path / "bucket"
    url = f"s3data::file://{bucket}"
    a = project(tmp_path / "a")
    git(a, "remote", "add", "origin", url)
    for i in range(6):
        commit_file(a, f"d{i}.bin", b"data %d" % i)
        git(a, "push", "-q", "origin", "main")
    assert len(list((bucket / "git" / "packs").glob("*.pack"))) >= 6
    for n in range(3):
        b = tmp_path / f"b{n}"
        git(tmp_path, "clone", "-q", "-c", "gitdata.jobs=8", url, str(b))
        assert (b / "d5.bin").read_bytes() == b"data 5"
        assert git(b, "fsck", "--no-dangling").strip() == ""


def test_push_to_a_bare_bucket_url_sends_data_where_the_project_says(tmp_path):
    """``git push s3data::URL main`` names no git remote: the data must still go to the
    project's default data remote, where a clone's filter looks for it (it went to the
    bucket prefix, and the clone kept pointers)."""
    bucket, store = tmp_path / "bucket", tmp_path / "store"
    url = f"s3data::file://{bucket}"
    a = project(tmp_path / "a", data_remote=f"file://{store}")
    git(a, "config", "gitdata.remote", "store")  # the default, per clone
    commit_file(a, "d.bin", b"data for the project's own remote")
    r = run("git", "push", url, "main", cwd=a)
    assert "to data remote store" in r.stderr
    key = obj_key(oid_of(a, "d.bin"))
    assert (store / key).read_bytes() == b"data for the project's own remote"
    assert not (bucket / "objects").exists()
    b = tmp_path / "b"
    git(tmp_path, "clone", "-q", url, str(b))
    git(b, "config", "gitdata.remote.store.url", f"file://{store}")
    git(b, "data", "pull")
    assert (b / "d.bin").read_bytes() == b"data for the project's own remote"


def test_push_to_a_bare_bucket_url_without_a_data_remote_keeps_data_in_the_bucket(tmp_path):
    bucket = tmp_path / "bucket"
    url = f"s3data::file://{bucket}"
    a = project(tmp_path / "a")
    commit_file(a, "d.bin", b"data in the bucket")
    r = run("git", "push", url, "main", cwd=a)
    assert f"to the bucket (file://{bucket})" in r.stderr
    assert (bucket / obj_key(oid_of(a, "d.bin"))).read_bytes() == b"data in the bucket"
    b = tmp_path / "b"
    git(tmp_path, "clone", "-q", url, str(b))
    assert (b / "d.bin").read_bytes() == b"data in the bucket"


def test_clone_endpoint_from_environment(tmp_path, moto_server, moto_bucket, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint)
    url = f"s3data::s3://{moto_bucket}/proj"
    a = project(tmp_path / "a")
    git(a, "remote", "add", "origin", url)
    commit_file(a, "e.bin", b"env endpoint")
    git(a, "push", "-q", "origin", "main")
    git(tmp_path, "clone", "-q", url, "b")
    assert (tmp_path / "b" / "e.bin").read_bytes() == b"env endpoint"


def test_clone_without_endpoint_says_how(tmp_path):
    r = run("git", "clone", "s3data::s3://no-such-bucket/p", "x", cwd=tmp_path, check=False,
            env={"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s",
                 "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_MAX_ATTEMPTS": "1"})
    assert r.returncode != 0 and "cannot reach" in r.stderr, r.stderr


# --------------------------------------------------------------------------
# concurrency, locks, failures, incremental pushes


def _bucket(url: str, repo_path: Path, options: dict | None = None, **kw):
    from gitdata.git.repo import Repo
    from gitdata.remote.bucket import BucketRepo
    from gitdata.storage import Storage

    repo = Repo(str(repo_path), str(repo_path / ".git"), str(repo_path / ".git"))
    return BucketRepo(Storage(url, options or {}), repo, **kw)


class _Barrier:
    """Makes two pushes commit at the same moment (both read the same state first)."""

    def __init__(self, n: int) -> None:
        import threading

        self.barrier = threading.Barrier(n, timeout=60)

    def wrap(self, br):
        orig = br._commit

        def commit(base, new, holder):
            self.barrier.wait()
            return orig(base, new, holder)

        br._commit = commit
        return br


@pytest.mark.parametrize("kind", ["moto-conditional", "local-lock"])
def test_concurrent_pushes_exactly_one_wins(tmp_path, kind, request, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from gitdata.remote.manifest import PushSpec

    if kind == "moto-conditional":
        srv = request.getfixturevalue("moto_server")
        bucket = request.getfixturevalue("moto_bucket")
        use_server_env(monkeypatch, srv)
        url, opts, conditional = f"s3://{bucket}/race", {"endpoint_url": srv.endpoint}, None
    else:
        url, opts, conditional = (tmp_path / "bucket").as_uri(), {}, False
    seed = project(tmp_path / "seed")
    base = _bucket(url, seed, opts, conditional=conditional)
    assert base.push([PushSpec("refs/heads/main", git(seed, "rev-parse", "HEAD").strip())]) == {
        "refs/heads/main": None
    }
    assert base.conditional_writes() is (kind == "moto-conditional")
    clones, shas = [], []
    for name in ("one", "two"):
        c = tmp_path / name
        git(tmp_path, "clone", "-q", str(seed), str(c))
        shas.append(commit_file(c, f"{name}.txt", name.encode()))
        clones.append(c)
    gate = _Barrier(2)
    repos = [gate.wrap(_bucket(url, c, opts, conditional=conditional)) for c in clones]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda i: repos[i].push([PushSpec("refs/heads/main", shas[i])]), (0, 1)))
    outcomes = sorted(r["refs/heads/main"] or "ok" for r in results)
    assert outcomes == ["fetch first", "ok"]
    winner = 0 if results[0]["refs/heads/main"] is None else 1
    loser = 1 - winner
    state = base.latest()
    assert state.refs["refs/heads/main"] == shas[winner] and state.seq == 2
    # the loser fetches, rebases and pushes: both commits are there
    repos[loser]._commit = type(repos[loser])._commit.__get__(repos[loser])
    repos[loser].fetch([shas[winner]])
    git(clones[loser], "rebase", "-q", shas[winner])
    new = git(clones[loser], "rev-parse", "HEAD").strip()
    assert repos[loser].push([PushSpec("refs/heads/main", new)]) == {"refs/heads/main": None}
    log = git(clones[loser], "log", "--format=%s", new)
    assert "add one.txt" in log and "add two.txt" in log


def test_concurrent_git_pushes_through_helper(tmp_path, moto_server, moto_bucket, monkeypatch):
    use_server_env(monkeypatch, moto_server)
    url = f"s3data::s3://{moto_bucket}/proj"
    seed = project(tmp_path / "seed")
    git(seed, "remote", "add", "origin", url)
    git(seed, "config", "remote.origin.s3dataOption", f"endpoint_url={moto_server.endpoint}")
    git(seed, "push", "-q", "origin", "main")
    clones = []
    for name in ("one", "two"):
        c = tmp_path / name
        git(tmp_path, "clone", "-q", "-c", f"remote.origin.s3dataOption=endpoint_url={moto_server.endpoint}", url, str(c))
        commit_file(c, f"{name}.bin", name.encode() * 100)
        clones.append(c)
    procs = [subprocess.Popen(["git", "push", "origin", "main"], cwd=c, stderr=subprocess.PIPE, text=True)
             for c in clones]  # fmt: skip
    errs = [p.communicate(timeout=120)[1] for p in procs]
    codes = [p.returncode for p in procs]
    assert sorted(codes) == [0, 1], errs
    loser = codes.index(1)
    assert "[rejected]        main -> main (fetch first)" in errs[loser]
    git(clones[loser], "pull", "-q", "--rebase")
    git(clones[loser], "push", "-q")
    check = tmp_path / "check"
    git(tmp_path, "clone", "-q", "-c", f"remote.origin.s3dataOption=endpoint_url={moto_server.endpoint}", url, str(check))
    assert (check / "one.bin").read_bytes() == b"one" * 100
    assert (check / "two.bin").read_bytes() == b"two" * 100


def test_stale_lock_detected_and_cleared(tmp_path):
    import time

    from gitdata.remote.manifest import PushSpec, RemoteLocked

    store = tmp_path / "bucket"
    url = store.as_uri()
    a = project(tmp_path / "a")
    git(a, "remote", "add", "origin", f"s3data::{url}")
    git(a, "config", "s3data.locking", "lock")
    git(a, "push", "-q", "origin", "main")
    # a crashed push left its lock behind, two minutes ago
    stamp = time.time_ns() - 120 * 10**9
    lock = store / LOCKS / f"{stamp:020d}-deadbeef.json"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text('{"holder": "crashed@host (pid 1)"}')
    commit_file(a, "more.txt", b"more")
    r = run("git", "push", "origin", "main", cwd=a, check=False)
    assert r.returncode != 0 and "stale" in r.stderr and "git remote-s3data unlock origin" in r.stderr
    br = _bucket(url, a, conditional=False)
    assert br.latest().refs["refs/heads/main"] != git(a, "rev-parse", "HEAD").strip()
    # a fresh lock is not stale: unlock leaves it unless --force
    listed = json.loads(git(a, "remote-s3data", "unlock", "--dry-run", "--json", "origin"))
    assert [x["holder"] for x in listed["locks"]] == ["crashed@host (pid 1)"]
    cleared = json.loads(git(a, "remote-s3data", "unlock", "--json", "origin"))
    assert len(cleared["cleared"]) == 1 and not lock.exists()
    git(a, "push", "-q", "origin", "main")
    assert br.latest().refs["refs/heads/main"] == git(a, "rev-parse", "HEAD").strip()
    # a lock held by a live push makes others wait, then give up (no ref moves)
    live = store / LOCKS / f"{time.time_ns():020d}-live.json"
    live.write_text('{"holder": "busy"}')
    slow = _bucket(url, a, conditional=False, lock_wait=0.5)
    with pytest.raises(RemoteLocked, match="stayed locked"):
        slow.push([PushSpec("refs/heads/other", git(a, "rev-parse", "HEAD").strip())])
    assert "refs/heads/other" not in br.latest().refs


def test_bucket_push_data_failure_moves_no_ref(tmp_path, moto_server, moto_bucket, monkeypatch):
    """Some data objects upload, one fails mid-way: the manifest stays as it was."""
    use_server_env(monkeypatch, moto_server)
    store = tmp_path / "store"
    a = project(tmp_path / "a", str(store))
    url = f"s3data::s3://{moto_bucket}/proj"
    git(a, "remote", "add", "origin", url)
    git(a, "config", "remote.origin.s3dataOption", f"endpoint_url={moto_server.endpoint}")
    git(a, "push", "-q", "origin", "main")
    for i in range(5):
        (a / f"f{i}.bin").write_bytes(f"file {i}".encode() * 50)
    git(a, "add", "-A")
    git(a, "commit", "-qm", "five files")
    blocked = store / obj_key(oid_of(a, "f3.bin"))
    blocked.parent.parent.mkdir(parents=True, exist_ok=True)
    blocked.parent.write_bytes(b"")  # a file where its folder goes: this one upload fails
    before = json.loads(git(a, "remote-s3data", "log", "--json", "origin"))
    r = run("git", "push", "origin", "main", cwd=a, check=False)
    assert r.returncode != 0
    assert "f3.bin" in r.stderr and "data remote 'store'" in r.stderr, r.stderr
    assert "no ref was updated" in r.stderr
    assert json.loads(git(a, "remote-s3data", "log", "--json", "origin")) == before
    assert (store / obj_key(oid_of(a, "f1.bin"))).is_file()  # the others did upload
    blocked.parent.unlink()
    git(a, "push", "-q", "origin", "main")
    assert len(json.loads(git(a, "remote-s3data", "log", "--json", "origin"))) == len(before) + 1


def test_clone_500_commits_then_push_one_is_o1(tmp_path, moto_server, moto_bucket, monkeypatch):
    use_server_env(monkeypatch, moto_server)
    a = project(tmp_path / "a")
    # 500 commits, quickly, with fast-import
    lines = []
    for i in range(1, 501):
        lines += [
            "commit refs/heads/main", f"mark :{i}", f"committer T <t@e> {1700000000 + i} +0000",
            "data 4", f"c{i:03d}", *(["from main^0"] if i == 1 else []),
            f"M 100644 inline f{i % 50}.txt", f"data {len(str(i))}", str(i), "",
        ]  # fmt: skip
    subprocess.run(["git", "fast-import", "--quiet"], cwd=a, input="\n".join(lines) + "\n", text=True, check=True)
    git(a, "reset", "-q", "--hard", "main")
    assert int(git(a, "rev-list", "--count", "main")) == 501
    url = f"s3data::s3://{moto_bucket}/big"
    git(a, "remote", "add", "origin", url)
    git(a, "config", "remote.origin.s3dataOption", f"endpoint_url={moto_server.endpoint}")
    git(a, "push", "-q", "origin", "main")
    b = tmp_path / "b"
    git(tmp_path, "clone", "-q", "-c", f"remote.origin.s3dataOption=endpoint_url={moto_server.endpoint}", url, str(b))
    assert int(git(b, "rev-list", "--count", "HEAD")) == 501
    commit_file(b, "new.bin", b"one new data file")
    moto_server.reset_counts()
    git(b, "push", "-q", "origin", "main")
    reqs = [q for q in moto_server.requests() if q.bucket == moto_bucket]
    puts = [q for q in reqs if q.op == "PUT" and q.status == 200]
    # pack + idx + manifest + one data object + the conditional-write probe
    assert len(puts) <= 6, [q.key for q in puts]
    assert {q.key.rsplit("/", 1)[-1].rsplit(".", 1)[-1] for q in puts} >= {"pack", "idx", "json"}
    assert len(reqs) <= 20, [(q.api, q.key) for q in reqs]
    fs = moto_server.client()
    packs = fs.list_objects_v2(Bucket=moto_bucket, Prefix="big/git/packs/")["Contents"]
    newest = max(packs, key=lambda o: o["LastModified"])
    assert newest["Size"] < 2000  # the new pack holds one commit, not the history


def test_compact_many_small_packs(tmp_path):
    url = (tmp_path / "bucket").as_uri()
    a = project(tmp_path / "a")
    git(a, "remote", "add", "origin", f"s3data::{url}")
    for i in range(4):
        commit_file(a, f"f{i}.txt", str(i).encode())
        git(a, "push", "-q", "origin", "main")
    git(a, "push", "-q", "origin", "main:refs/heads/gone")
    git(a, "push", "-q", "origin", ":refs/heads/gone")
    packs = tmp_path / "bucket" / "git" / "packs"
    assert len(list(packs.glob("*.pack"))) == 4
    rep = json.loads(git(a, "remote-s3data", "compact", "--json", "origin"))
    assert rep["packs_before"] == 4 and rep["packs_after"] == 1 and len(rep["deleted"]) == 4
    assert len(list(packs.glob("*.pack"))) == 1
    c = tmp_path / "c"
    git(tmp_path, "clone", "-q", f"s3data::{url}", str(c))
    assert git(c, "rev-parse", "HEAD") == git(a, "rev-parse", "HEAD")
    git(c, "fsck", "--no-dangling")
