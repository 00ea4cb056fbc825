"""Mapped storages end to end: two clones and a third writer on real servers.

Backends: a local directory, moto (unversioned and versioned buckets) and
``rclone serve s3``. The third writer uses fsspec (s3fs) directly on the bucket.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from gitdata import storages as storages_mod
from gitdata import syncplan as sp
from gitdata.project import Project
from gitdata.storage import PreconditionFailed, Storage
from helpers import use_server_env

NAME = "lab"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def gd(cwd: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["git", "data", *args], cwd=cwd, capture_output=True, text=True)
    if ok:
        assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc


def make_clones(tmp_path: Path, backend, *extra_opts: str) -> tuple[Path, Path]:
    a = tmp_path / "a"
    a.mkdir()
    git(a, "init", "-q")
    storages_mod.add(
        Project.open(str(a)), NAME, backend.join("lab"),
        option_pairs=[f"{k}={v}" for k, v in backend.options.items()] + list(extra_opts),
    )  # fmt: skip
    git(a, "add", ".gitdata", ".gitignore")
    git(a, "commit", "-qm", "map lab")
    b = tmp_path / "b"
    git(tmp_path, "clone", "-q", str(a), str(b))
    return a, b


class Writer:
    """The third writer: fsspec straight on the bucket, no git data involved."""

    def __init__(self, backend) -> None:
        self.fs = backend.fs()
        self.backend = backend

    def path(self, key: str) -> str:
        return self.backend.key_path("lab", key)

    def put(self, key: str, data: bytes) -> None:
        self.fs.pipe_file(self.path(key), data)

    def get(self, key: str) -> bytes:
        return bytes(self.fs.cat_file(self.path(key)))

    def rm(self, key: str) -> None:
        self.fs.rm_file(self.path(key))

    def exists(self, key: str) -> bool:
        self.fs.invalidate_cache()
        return bool(self.fs.exists(self.path(key)))

    def tree(self) -> dict[str, bytes]:
        self.fs.invalidate_cache()
        root = self.backend.key_path("lab")
        return {p[len(root) + 1 :]: bytes(self.fs.cat_file(p)) for p in self.fs.find(root)}


def local_tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(storages_mod.TMP_PREFIX)
    }


def write(root: Path, rel: str, data: bytes) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)


BASE_FILES = {
    "u.txt": b"unchanged",
    "lo.txt": b"local-only base",
    "ro.txt": b"remote-only base",
    "bc.txt": b"both changed base",
    "bs.txt": b"both same base",
    "dl.txt": b"deleted local",
    "dr.txt": b"deleted remote",
    "dd.txt": b"deleted both",
    "dlcr.txt": b"deleted local changed remote",
    "clrd.txt": b"changed local deleted remote",
    "deep/x/y.csv": b"a,b\n1,2\n",
}


def every_cell(tmp_path: Path, backend, cli: bool = False) -> None:
    a, b = make_clones(tmp_path, backend)
    w = Writer(backend)
    for k, v in BASE_FILES.items():
        w.put(k, v)
    storages_mod.stage(Project.open(str(a)), NAME)
    la = a / "storages" / NAME
    assert local_tree(la) == BASE_FILES

    # local side (clone a)
    write(la, "lo.txt", b"LOCAL edit")
    write(la, "bc.txt", b"LOCAL version of bc")
    write(la, "bs.txt", b"identical edit")
    (la / "dl.txt").unlink()
    (la / "dd.txt").unlink()
    (la / "dlcr.txt").unlink()
    write(la, "clrd.txt", b"LOCAL change of clrd")
    write(la, "nl.txt", b"new local")
    write(la, "nbs.txt", b"new both same")
    write(la, "nbd.txt", b"new both LOCAL")
    # remote side (third writer)
    w.put("ro.txt", b"REMOTE edit")
    w.put("bc.txt", b"REMOTE version of bc!")
    w.put("bs.txt", b"identical edit")
    w.rm("dr.txt")
    w.rm("dd.txt")
    w.put("dlcr.txt", b"REMOTE change of dlcr")
    w.rm("clrd.txt")
    w.put("nr.txt", b"new remote")
    w.put("nbs.txt", b"new both same")
    w.put("nbd.txt", b"new both REMOTE")
    before_local, before_remote = local_tree(la), w.tree()

    # 1. conflicts block everything; pending deletions are only reported
    if cli:
        proc = gd(a, "storage", "sync", "--delete", ok=False)
        assert proc.returncode == 1
        for path in ("bc.txt", "nbd.txt", "dlcr.txt", "clrd.txt"):
            assert "conflict" in proc.stdout and f"lab:{path}" in proc.stdout
        assert "nothing was changed" in proc.stderr
    else:
        blocked = storages_mod.sync(Project.open(str(a)), NAME, delete=True)
        assert blocked.prepared.plan.blocked and not blocked.ok and not blocked.done
    assert local_tree(la) == before_local and w.tree() == before_remote
    plan = storages_mod.prepare(Project.open(str(a)), NAME).plan
    assert {p for p, _ in plan.pending} == {"dl.txt", "dr.txt"}
    assert {c.path: c.kind for c in plan.conflicts} == {
        "bc.txt": sp.BOTH_CHANGED,
        "nbd.txt": sp.NEW_BOTH,
        "dlcr.txt": sp.DELETED_LOCAL_CHANGED_REMOTE,
        "clrd.txt": sp.CHANGED_LOCAL_DELETED_REMOTE,
    }

    # 2. --dry-run prints exactly what the real run then does
    if cli:
        dry = gd(a, "storage", "sync", "--prefer", "local", "--delete", "--dry-run").stdout
        planned = {
            (kind, line.split(f"{NAME}:", 1)[1].split()[0])
            for line in dry.splitlines()
            for kind, word in ((sp.UPLOAD, "would upload"), (sp.DOWNLOAD, "would download"),
                               (sp.DELETE_REMOTE, "would delete remote"), (sp.DELETE_LOCAL, "would delete local"))
            if line.startswith(word + " ")
        }  # fmt: skip
    else:
        dry_res = storages_mod.sync(Project.open(str(a)), NAME, prefer="local", delete=True, dry_run=True)
        planned = {(x.kind, x.path) for x in dry_res.prepared.plan.transfers}
    assert local_tree(la) == before_local and w.tree() == before_remote
    res = storages_mod.sync(Project.open(str(a)), NAME, prefer="local", delete=True)
    assert res.ok, (res.failed, res.races)
    done = {(x.kind, x.path) for x in res.done if x.kind in sp.TRANSFERS}
    assert done == planned == {
        (sp.UPLOAD, "lo.txt"), (sp.UPLOAD, "bc.txt"), (sp.UPLOAD, "clrd.txt"), (sp.UPLOAD, "nl.txt"),
        (sp.UPLOAD, "nbd.txt"), (sp.DOWNLOAD, "ro.txt"), (sp.DOWNLOAD, "dlcr.txt"),
        (sp.DOWNLOAD, "nr.txt"), (sp.DELETE_REMOTE, "dl.txt"), (sp.DELETE_LOCAL, "dr.txt"),
    }  # fmt: skip

    remote = w.tree()
    local = local_tree(la)
    expect = {
        "u.txt": b"unchanged",
        "lo.txt": b"LOCAL edit",
        "ro.txt": b"REMOTE edit",
        "bc.txt": b"LOCAL version of bc",
        "bs.txt": b"identical edit",
        "dlcr.txt": b"REMOTE change of dlcr",  # a deletion never wins against a change
        "clrd.txt": b"LOCAL change of clrd",
        "deep/x/y.csv": b"a,b\n1,2\n",
        "nl.txt": b"new local",
        "nr.txt": b"new remote",
        "nbs.txt": b"new both same",
        "nbd.txt": b"new both LOCAL",
    }
    assert {k: remote[k] for k in expect} == expect
    assert not {"dl.txt", "dr.txt", "dd.txt"} & set(remote) and not {"dl.txt", "dr.txt", "dd.txt"} & set(local)
    # no byte of the losing remote versions is lost
    kept = {k["path"]: k for k in res.kept}
    assert set(kept) >= {"bc.txt", "nbd.txt"}
    for path, data in (("bc.txt", b"REMOTE version of bc!"), ("nbd.txt", b"new both REMOTE")):
        if backend.versioned:
            vid = kept[path]["version_id"]
            with backend.fs(version_aware=True).open(w.path(path), "rb", version_id=vid) as f:
                assert f.read() == data
        else:
            assert local[kept[path]["conflict_copy"]] == data
    if backend.versioned:
        assert kept["dl.txt"]["version_id"]  # a deletion in a versioned bucket is recoverable
        assert local == expect
    else:
        copies = {k: v for k, v in local.items() if ".conflict-" in k}
        assert len(copies) == 2 and {k: v for k, v in local.items() if k not in copies} == expect

    # 3. the next sync uploads the conflict copies (so the other writer sees them); then all is quiet
    storages_mod.sync(Project.open(str(a)), NAME)
    quiet = storages_mod.sync(Project.open(str(a)), NAME, delete=True)
    assert quiet.ok and not quiet.prepared.plan.transfers and not quiet.prepared.plan.pending
    assert w.tree() == local_tree(la)

    # 4. the second clone stages the same tree; then --prefer remote keeps its local version
    storages_mod.stage(Project.open(str(b)), NAME)
    lb = b / "storages" / NAME
    assert local_tree(lb) == w.tree()
    write(lb, "u.txt", b"clone b edit")
    w.put("u.txt", b"writer edit")
    res = storages_mod.sync(Project.open(str(b)), NAME, prefer="remote")
    assert res.ok
    assert (lb / "u.txt").read_bytes() == b"writer edit" and w.get("u.txt") == b"writer edit"
    (copy,) = [k for k in res.kept if k["path"] == "u.txt"]
    assert (lb / copy["conflict_copy"]).read_bytes() == b"clone b edit"


@pytest.mark.parametrize(
    "backend", ["local", "moto", pytest.param("rclone", marks=pytest.mark.slow)], indirect=True
)
def test_every_cell_two_clones_and_a_third_writer(tmp_path, backend):
    every_cell(tmp_path, backend, cli=backend.name == "local")


def test_every_cell_versioned_bucket(tmp_path, versioned_moto_backend):
    every_cell(tmp_path, versioned_moto_backend)


@pytest.mark.parametrize("backend", ["local", "moto", "rclone"], indirect=True)
def test_a_racing_writer_becomes_a_conflict_never_an_overwrite(tmp_path, backend):
    a, _ = make_clones(tmp_path, backend)
    w = Writer(backend)
    w.put("r.txt", b"base")
    w.put("d.txt", b"base d")
    storages_mod.stage(Project.open(str(a)), NAME)
    la = a / "storages" / NAME
    write(la, "r.txt", b"ours")
    w.put("d.txt", b"theirs d, listed")
    prep = storages_mod.prepare(Project.open(str(a)), NAME)
    assert {(x.kind, x.path) for x in prep.plan.transfers} == {(sp.UPLOAD, "r.txt"), (sp.DOWNLOAD, "d.txt")}
    # between the listing and the writes, both sides change again
    w.put("r.txt", b"theirs, racing")
    write(la, "d.txt", b"ours d, racing")
    res = storages_mod.execute(prep)
    assert set(res.races) == {"r.txt", "d.txt"} and not res.ok
    assert w.get("r.txt") == b"theirs, racing" and (la / "r.txt").read_bytes() == b"ours"
    assert (la / "d.txt").read_bytes() == b"ours d, racing" and w.get("d.txt") == b"theirs d, listed"
    # the base did not move: the next sync sees both changes as conflicts
    again = storages_mod.prepare(Project.open(str(a)), NAME)
    assert {c.path for c in again.plan.conflicts} == {"r.txt", "d.txt"}


@pytest.mark.parametrize("backend", ["local", "moto", "rclone"], indirect=True)
def test_an_object_replaced_after_the_listing_is_recorded_as_it_was_read(tmp_path, backend):
    """A download's one GET states the object it delivered (S3: its own header fields): when
    the object was replaced between the listing and the GET, the base records what was read,
    not what was listed, so the next sync neither downloads it again nor calls it changed."""
    a, _ = make_clones(tmp_path, backend)
    w = Writer(backend)
    w.put("first.txt", b"staged first")
    storages_mod.stage(Project.open(str(a)), NAME)
    w.put("d/x.txt", b"listed")
    prep = storages_mod.prepare(Project.open(str(a)), NAME)
    assert [(x.kind, x.path) for x in prep.plan.transfers] == [(sp.DOWNLOAD, "d/x.txt")]
    w.put("d/x.txt", b"replaced after the listing")
    res = storages_mod.execute(prep)
    assert res.ok, (res.failed, res.races)
    la = a / "storages" / NAME
    assert (la / "d" / "x.txt").read_bytes() == b"replaced after the listing"
    base = storages_mod.manifest_for(Project.open(str(a)), NAME).load()["d/x.txt"]
    assert base.size == len(b"replaced after the listing")
    now = Storage(backend.join("lab"), backend.options).info("d/x.txt")
    if backend.name != "local":  # the local backend's reads state nothing: the listing's stays
        assert base.remote.etag == now.etag and base.remote.size == now.size
        again = storages_mod.prepare(Project.open(str(a)), NAME)
        assert not again.plan.transfers and not again.plan.conflicts, again.plan
    final = storages_mod.sync(Project.open(str(a)), NAME)
    assert final.ok and local_tree(la) == w.tree()


def test_a_download_records_the_version_it_read(tmp_path, versioned_moto_backend):
    """On a versioned bucket the GET's x-amz-version-id is recorded in the base, though the
    listing (not version-aware) stated none: a later conflict keeps that version by id."""
    backend = versioned_moto_backend
    a, _ = make_clones(tmp_path, backend)
    w = Writer(backend)
    w.put("v.txt", b"one")
    storages_mod.stage(Project.open(str(a)), NAME)
    base = storages_mod.manifest_for(Project.open(str(a)), NAME).load()["v.txt"]
    now = Storage(backend.join("lab"), backend.options).info("v.txt")
    assert now.version_id and base.remote.version_id == now.version_id


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
def test_conditional_writes_on_s3(tmp_path, backend):
    """moto honours If-None-Match / If-Match: the write itself is refused, not just pre-checked."""
    st = Storage(backend.url, backend.options)
    f = tmp_path / "f"
    f.write_bytes(b"one")
    st.put_file(str(f), "k", create_only=True)
    with pytest.raises(PreconditionFailed):
        st.put_file(str(f), "k", create_only=True)
    with pytest.raises(PreconditionFailed):
        st.put_file(str(f), "k", if_match='"0123456789abcdef0123456789abcdef"')
    etag = st.info("k").etag
    f.write_bytes(b"two")
    st.put_file(str(f), "k", if_match=etag)
    assert st.cat("k") == b"two"


@pytest.mark.slow  # s3fs retries against the stopped server take most of the time
def test_interrupted_sync_converges(tmp_path, rclone_server_factory, monkeypatch):
    srv = rclone_server_factory()
    srv.make_bucket("bkt")
    use_server_env(monkeypatch, srv)
    a = tmp_path / "a"
    a.mkdir()
    git(a, "init", "-q")
    git(a, "config", "gitdata.retryMaxTime", "2")  # fail fast against the stopped server
    url = "s3://bkt/lab"
    # fail fast against a stopped server (a user can set the same options)
    storages_mod.add(Project.open(str(a)), NAME, url, option_pairs=[
        f"endpoint_url={srv.endpoint}",
        'config_kwargs={"retries": {"max_attempts": 1}, "connect_timeout": 2}'])  # fmt: skip
    bucket_dir = srv.bucket_path("bkt") / "lab"
    for i in range(40):
        write(bucket_dir, f"remote/{i:03d}.bin", os.urandom(2048))
    srv.flush_dir_cache()
    storages_mod.stage(Project.open(str(a)), NAME)
    la = a / "storages" / NAME
    for i in range(40):
        write(la, f"local/{i:03d}.bin", os.urandom(2048))
        write(bucket_dir, f"remote/{i:03d}.bin", os.urandom(1024))
    seen = []

    def stop_after_some(action):
        seen.append(action)
        if len(seen) == 10:
            srv.stop()

    project = Project.open(str(a))
    prep = storages_mod.prepare(project, NAME, jobs=4)
    assert len(prep.plan.transfers) == 80
    res = storages_mod.execute(prep, jobs=4, on_item=stop_after_some)
    assert res.failed and not res.ok and 10 <= len(res.done) < 80
    # nothing half-written on either side
    assert not [p for p in la.rglob(storages_mod.TMP_PREFIX + "*")]
    srv.start()
    res2 = storages_mod.sync(Project.open(str(a)), NAME, jobs=4)
    assert res2.ok, (res2.failed, res2.races)
    assert local_tree(la) == local_tree(bucket_dir)
    final = storages_mod.prepare(Project.open(str(a)), NAME)
    assert not final.plan.transfers and not final.plan.conflicts and final.plan.unchanged == 80


def test_add_ls_unstage_rm(tmp_path, backend_local):
    backend = backend_local
    a, b = make_clones(tmp_path, backend)
    assert "/storages/lab" in (a / ".gitignore").read_text().splitlines()
    assert git(a, "config", "-f", ".gitdata", "storage.lab.url") == backend.join("lab") + "\n"
    w = Writer(backend)
    w.put("x/1.txt", b"1")
    w.put("y/2.txt", b"2")
    ls = gd(b, "storage", "ls").stdout.splitlines()
    assert ls[0].split() == ["TYPE", "NAME", "URL", "MODE", "LOCATION", "PROJECT", "PATH"]
    assert ls[1].split() == ["storage", "lab", backend.join("lab"), "copy", "none", "storages/lab"]
    # --location: bytes elsewhere, a link at the project path
    elsewhere = tmp_path / "drive"
    gd(b, "storage", "stage", NAME, "x", "--location", str(elsewhere))
    assert (b / "storages" / NAME).is_symlink()
    assert local_tree(elsewhere) == {"x/1.txt": b"1"}
    import json

    row = json.loads(gd(b, "storage", "ls", "--json").stdout)[0]
    assert row["location"] == str(elsewhere) and row["staged"]
    gd(b, "storage", "stage", NAME, "y")
    assert local_tree(elsewhere) == {"x/1.txt": b"1", "y/2.txt": b"2"}
    # unstage refuses while a local change is unsynced, naming it
    write(elsewhere, "x/new.txt", b"mine")
    proc = gd(b, "storage", "unstage", NAME, ok=False)
    assert proc.returncode == 1 and "x/new.txt" in proc.stderr and "sync" in proc.stderr
    assert (elsewhere / "x" / "new.txt").exists()
    gd(b, "storage", "sync")
    assert w.get("x/new.txt") == b"mine"
    gd(b, "storage", "unstage", NAME)
    assert not (b / "storages" / NAME).exists() and not elsewhere.exists() or not any(elsewhere.iterdir())
    assert w.tree() == {"x/1.txt": b"1", "y/2.txt": b"2", "x/new.txt": b"mine"}
    gd(b, "storage", "rm", NAME)
    assert "/storages/lab" not in (b / ".gitignore").read_text().splitlines()
    assert "lab" not in gd(b, "storage", "ls").stdout
    assert w.tree()  # remote data untouched


def test_bad_input_says_how_to_fix(tmp_path, backend_local):
    a, _ = make_clones(tmp_path, backend_local)
    proc = gd(a, "storage", "add", NAME, "/elsewhere", ok=False)
    assert proc.returncode == 1 and "already exists" in proc.stderr and "storage rm" in proc.stderr
    proc = gd(a, "storage", "add", "x", "s3://b/p", "--to", "../out", ok=False)
    assert "inside the project" in proc.stderr
    proc = gd(a, "storage", "add", "y", "s3://b/p", "-osecret=abc", ok=False)
    assert "secret" in proc.stderr and "abc" not in proc.stderr
    proc = gd(a, "storage", "add", "z", "nosuch://b/p", ok=False)
    assert "unknown scheme" in proc.stderr
    proc = gd(a, "storage", "sync", NAME, ok=False)
    assert "not staged" in proc.stderr and "storage stage lab" in proc.stderr
    proc = gd(a, "storage", "stage", "nope", ok=False)
    assert "no storage named 'nope'" in proc.stderr
    assert git(a, "status", "--porcelain") == ""


@pytest.fixture
def backend_local(tmp_path_factory):
    from conftest import Backend

    root = tmp_path_factory.mktemp("backend") / "store"
    root.mkdir()
    return Backend("local", "file", root.as_uri(), {}, {}, local_root=root)


@pytest.mark.parametrize("backend", ["local", "moto"], indirect=True)
@pytest.mark.parametrize("many", [False, True])
def test_a_folder_made_a_link_gets_nothing_written_through_it(tmp_path, backend, many):
    """A folder of a staged storage replaced by a link (to a folder of the user's, say):
    the downloads into it are refused with the folder named, nothing reaches the link's
    target, and the other files are still staged. ``many``: 1,000+ downloads, which go to
    worker processes."""
    a, _ = make_clones(tmp_path, backend)
    w = Writer(backend)
    w.put("d/old.txt", b"old")
    w.put("e/keep.txt", b"keep")
    storages_mod.stage(Project.open(str(a)), NAME)
    la = a / "storages" / NAME
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_bytes(b"mine")
    (la / "d" / "old.txt").unlink()
    (la / "d").rmdir()
    os.symlink(victim, la / "d")
    count = 1000 if many else 1
    writes = [(f"d/new{i:04d}.txt", b"new %d" % i) for i in range(count)] + [("e/fresh.txt", b"fresh")]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda kd: w.put(*kd), writes))
    res = storages_mod.sync(Project.open(str(a)), NAME)
    assert not res.ok
    refused = {p for p in res.failed if p.startswith("d/")}
    assert refused == {k for k, _ in writes if k.startswith("d/")}, res.failed
    assert "symlink" in str(res.failed["d/new0000.txt"]) or "link" in str(res.failed["d/new0000.txt"])
    assert sorted(os.listdir(victim)) == ["precious"] and (victim / "precious").read_bytes() == b"mine"
    assert (la / "e" / "fresh.txt").read_bytes() == b"fresh"
    assert w.exists("d/old.txt")  # the link hid the file: not taken for a local deletion
