"""Datasets end to end: register without downloading, stage, status --remote, clones.

Every storage is a real server on 127.0.0.1 (moto, rclone serve s3,
fake-gcs-server) or a local directory; git data runs as a subprocess, as a
user would run it.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from helpers import use_server_env

OBJECTS = {
    "a.txt": b"alpha\n",
    "b.txt": b"bravo bravo\n",
    "sub/c.bin": bytes(range(256)) * 40,
    "sub/deeper/d.csv": b"x,y\n1,2\n",
}


def run(cwd, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(args), cwd=cwd, capture_output=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {proc.returncode}\nstdout: {proc.stdout.decode(errors='replace')}"
            f"\nstderr: {proc.stderr.decode(errors='replace')}"
        )
    return proc


def gd(cwd, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(cwd, "git", "data", *args, check=check)


def git(cwd, *args: str) -> str:
    return run(cwd, "git", *args).stdout.decode()


def fail(cwd, *args: str) -> str:
    """Run `git data ARGS`, expect exit status 1, return stderr."""
    proc = gd(cwd, *args, check=False)
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    return proc.stderr.decode()


def project(path: Path) -> Path:
    from gitdata.install import install

    path.mkdir(parents=True)
    git(path, "init", "-q")
    install("global", None)  # what `git data install` does, without starting Python again
    git(path, "commit", "-q", "--allow-empty", "-m", "init")
    return path


def opts(backend) -> list[str]:
    out = []
    for k, v in backend.options.items():
        out += ["-o", f"{k}={v}"]
    return out


def put_objects(backend, objects: dict[str, bytes]) -> None:
    if backend.name == "rclone":  # rclone serves a folder: write it there (PUTs can stall under load)
        base = backend.server.bucket_path(backend.bucket) / backend.prefix
        for key, data in objects.items():
            (base / key).parent.mkdir(parents=True, exist_ok=True)
            (base / key).write_bytes(data)
        backend.server.flush_dir_cache()
        return
    fs = backend.fs()
    for key, data in objects.items():
        fs.pipe_file(backend.key_path(key), data)


def delete_object(backend, key: str) -> None:
    if backend.name == "rclone":
        (backend.server.bucket_path(backend.bucket) / backend.prefix / key).unlink()
        backend.server.flush_dir_cache()
    else:
        backend.fs().rm_file(backend.key_path(key))


def worktree_bytes(root: Path, folder: str) -> dict[str, bytes]:
    base = root / folder
    out = {}
    for dirpath, _dirs, files in os.walk(base, followlinks=True):
        for fn in files:
            full = Path(dirpath) / fn
            out[str(full.relative_to(base))] = full.read_bytes()
    return out


def clean(root: Path) -> bool:
    return git(root, "status", "--porcelain") == ""


def status_json(root: Path, *names: str, remote: bool = False) -> list[dict]:
    """What `git data status --json [--remote] NAMES` prints (through the library)."""
    from gitdata.project import Project
    from gitdata.status import StatusOptions, collect

    rows = collect(Project.open(str(root)), StatusOptions(names=names, remote=remote))
    return [r.as_dict() for r in rows]


# --------------------------------------------------------------------------
# every backend: register, stage by copy / --location / --existing, unstage


def test_register_and_stage_modes(backend, tmp_path):
    put_objects(backend, OBJECTS)
    root = project(tmp_path / "p")
    gd(root, "dataset", "create", "ds", "--title", "Test data", "--keyword", "k1", *opts(backend))
    gd(root, "dataset", "add", "ds", backend.url)
    # pointers only, in git's index, carrying source and fingerprint
    staged_in_index = git(root, "diff", "--cached", "--name-only").split()
    assert {f"data/ds/{k}" for k in OBJECTS} <= set(staged_in_index)
    text = (root / "data/ds/a.txt").read_text()
    assert text.startswith("version gitdata/1\n")
    assert f"source {backend.url}/a.txt\n" in text and "size 6\n" in text and "oid" not in text
    assert "filter=s3data" in (root / ".gitattributes").read_text()
    git(root, "commit", "-q", "-m", "register ds")
    from gitdata.cli.dataset_cmds import _describe
    from gitdata.datasets import get
    from gitdata.project import Project

    proj = Project.open(str(root))
    show = _describe(proj, get(proj, "ds"))
    assert show["files"] == 4 and show["size"] == sum(map(len, OBJECTS.values()))
    assert show["title"] == "Test data" and show["keywords"] == ["k1"]
    assert show["creators"] == ["Test User <test@example.com>"]
    assert show["sources"] == [{"type": "registered", "url": backend.url, "to": None, "location": None}]

    # copy
    gd(root, "dataset", "stage", "ds")
    assert worktree_bytes(root, "data/ds") == OBJECTS
    assert clean(root), git(root, "status", "--porcelain")
    assert {r["local"] for r in status_json(root)} == {"staged"}
    gd(root, "dataset", "unstage", "ds")
    assert (root / "data/ds/a.txt").read_text() == text
    assert clean(root)

    # --location: bytes elsewhere, a link in the project, git status clean
    ext = tmp_path / "external"
    gd(root, "dataset", "stage", "ds", "--location", str(ext))
    assert (root / "data/ds").is_symlink()
    assert os.path.realpath(root / "data/ds") == str((ext / "ds").resolve())
    assert worktree_bytes(ext, "ds") == OBJECTS
    assert clean(root), git(root, "status", "--porcelain")
    assert "/data/ds" in (root / ".git/info/exclude").read_text()
    assert _describe(Project.open(str(root)), get(proj, "ds"))["location"] == str(ext / "ds")
    assert "location" not in (root / ".gitdata").read_text()  # per clone, never tracked
    assert {r["local"] for r in status_json(root)} == {"staged (linked)"}
    gd(root, "dataset", "unstage", "ds")
    assert not (root / "data/ds").is_symlink() and (root / "data/ds/a.txt").read_text() == text
    assert worktree_bytes(ext, "ds") == {}
    assert clean(root)
    assert "/data/ds" not in (root / ".git/info/exclude").read_text()

    if backend.name != "local":
        return  # --existing never talks to the storage: once is enough
    # --existing: checked (sizes) and linked; never deleted on unstage
    there = tmp_path / "mounted"
    for key, data in OBJECTS.items():
        (there / key).parent.mkdir(parents=True, exist_ok=True)
        (there / key).write_bytes(data)
    gd(root, "dataset", "stage", "ds", "--existing", str(there), "--verify")
    assert (root / "data/ds").is_symlink() and clean(root)
    assert (root / "data/ds/b.txt").read_bytes() == OBJECTS["b.txt"]
    gd(root, "dataset", "unstage", "ds")
    assert worktree_bytes(there, ".") == OBJECTS
    assert clean(root)
    # a wrong size is refused, nothing linked
    (there / "a.txt").write_bytes(b"short")
    err = fail(root, "dataset", "stage", "ds", "--existing", str(there))
    assert "a.txt" in err and "5 bytes" in err and "nothing was linked" in err
    assert not (root / "data/ds").is_symlink()


# --------------------------------------------------------------------------
# 2,000 objects on moto: metadata only, one listing


def _seed_moto(moto_server, bucket: str, objects: dict[str, bytes]) -> None:
    """Put objects into the (in-process) moto server's store directly: 2,000
    PUTs over HTTP cost a minute on a loaded machine; what the server then
    serves is the same."""
    try:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends

        backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
        for key, data in objects.items():
            backend.put_object(bucket, key, data)
    except (ImportError, KeyError, AttributeError):  # another moto layout: over HTTP
        client = moto_server.client()
        for key, data in objects.items():
            client.put_object(Bucket=bucket, Key=key, Body=data)


def test_register_2000_objects_without_download(moto_server, moto_bucket, monkeypatch, tmp_path):
    use_server_env(monkeypatch, moto_server)
    keys = [f"big/part{i % 40}/obj-{i:05d}.dat" for i in range(2000)]
    _seed_moto(moto_server, moto_bucket, {k: k.encode() for k in keys})
    moto_server.reset_counts()
    root = project(tmp_path / "p")
    t0 = time.monotonic()
    # (an unversioned bucket: a plain listing; version-aware listing is tested below)
    gd(root, "dataset", "add", "big", f"s3://{moto_bucket}/big", "--create",
       "-o", f"endpoint_url={moto_server.endpoint}", "-o", "version_aware=false")
    elapsed = time.monotonic() - t0
    counts = moto_server.counts(moto_bucket)
    assert counts["GET_OBJECT"] == 0 and counts["HEAD"] == 0, counts
    assert 1 <= counts["LIST"] <= 4, counts  # paginated listing, 1000 keys a page
    assert sum(counts.values()) == counts["LIST"], moto_server.counts(moto_bucket, by_api=True)
    assert elapsed < 60, elapsed  # seconds, even on a loaded 2-core machine
    tracked = git(root, "ls-files", "data/big").split()
    assert len(tracked) == 2000 and f"data/big/{keys[7].removeprefix('big/')}" in tracked
    git(root, "commit", "-q", "-m", "register")

    # stage a part: exactly those objects are downloaded, one listing to check them
    moto_server.reset_counts()
    gd(root, "dataset", "stage", "big", "--include", "part3/*")
    counts = moto_server.counts(moto_bucket)
    assert counts["GET_OBJECT"] == 50 and counts["LIST"] <= 4, counts
    assert (root / "data/big/part3/obj-00003.dat").read_bytes() == b"big/part3/obj-00003.dat"
    assert (root / "data/big/part4/obj-00004.dat").read_text().startswith("version gitdata/1")
    assert clean(root)
    rows = status_json(root, "big")
    assert sum(r["local"] == "staged" for r in rows) == 50
    assert sum(r["local"] == "pointer only" for r in rows) == 1950


def test_stage_of_a_part_asks_only_about_the_objects_it_stages(moto_server, moto_bucket, monkeypatch, tmp_path):
    """The check before a stage streams one listing and looks only at the keys it stages: the
    dataset's other empty objects (a listing's size 0 is asked about with a HEAD) cost nothing."""
    use_server_env(monkeypatch, moto_server)
    objects = {f"mix/full/obj-{i:02d}.dat": f"object {i}".encode() for i in range(20)}
    objects.update({f"mix/empty/e-{i:02d}.dat": b"" for i in range(30)})
    _seed_moto(moto_server, moto_bucket, objects)
    root = project(tmp_path / "p")
    gd(root, "dataset", "add", "mix", f"s3://{moto_bucket}/mix", "--create",
       "-o", f"endpoint_url={moto_server.endpoint}", "-o", "version_aware=false")
    git(root, "commit", "-q", "-m", "register")
    moto_server.reset_counts()
    gd(root, "dataset", "stage", "mix", "--include", "full/*")
    counts = moto_server.counts(moto_bucket)
    assert counts["GET_OBJECT"] == 20 and counts["HEAD"] == 0, moto_server.counts(moto_bucket, by_api=True)
    assert (root / "data/mix/full/obj-07.dat").read_bytes() == b"object 7"
    assert (root / "data/mix/empty/e-03.dat").read_text().startswith("version gitdata/1")
    # an object deleted and one changed since they were registered: both named, the rest staged
    client = moto_server.client()
    client.delete_object(Bucket=moto_bucket, Key="mix/empty/e-01.dat")
    client.put_object(Bucket=moto_bucket, Key="mix/empty/e-02.dat", Body=b"not empty now")
    proc = gd(root, "dataset", "stage", "mix", check=False)
    assert proc.returncode == 1, proc
    err = proc.stderr.decode()
    assert "e-01.dat was deleted on the remote" in err and "e-02.dat changed on the remote" in err, err
    assert (root / "data/mix/empty/e-04.dat").read_bytes() == b""
    assert (root / "data/mix/empty/e-01.dat").read_text().startswith("version gitdata/1")


def test_a_manifest_dataset_is_staged_in_batches_on_one_walk_of_the_listing(moto_server, moto_bucket, monkeypatch,
                                                                               tmp_path):
    """A dataset its manifest records is staged BATCH files at a time, read from the manifest as
    a stream (never more than a batch at once); every batch is
    checked on one walk of the listing (its pages, no HEAD but for the deleted object), and a
    deleted and a changed object are named while the rest is staged."""
    from gitdata.datasets import model as ds_mod
    from gitdata.datasets import staging
    from gitdata.project import Project

    use_server_env(monkeypatch, moto_server)
    keys = [f"many/d{i // 300:02d}/f{i:05d}.dat" for i in range(3000)]
    _seed_moto(moto_server, moto_bucket, {k: k.encode() for k in keys})
    root = project(tmp_path / "p")
    gd(root, "remote", "add", "store", (tmp_path / "store").as_uri())
    git(root, "config", "gitdata.manifestThreshold", "100")
    gd(root, "dataset", "add", "many", f"s3://{moto_bucket}/many", "--create",
       "-o", f"endpoint_url={moto_server.endpoint}", "-o", "version_aware=false")
    git(root, "commit", "-q", "-m", "register")
    assert sorted(os.listdir(root / "data/many")) == [".gitdata-manifest"]
    client = moto_server.client()
    client.delete_object(Bucket=moto_bucket, Key=keys[1234])
    client.put_object(Bucket=moto_bucket, Key=keys[2345], Body=b"changed")

    monkeypatch.setattr(staging, "BATCH", 500)
    streamed = {"read": 0}
    batches: list[tuple[int, int]] = []  # (files in the batch, manifest lines read when it began)
    iter_files, stage_files = ds_mod.iter_files, staging._stage_files

    def counting(*args, **kwargs):
        for f in iter_files(*args, **kwargs):
            streamed["read"] += 1
            yield f

    def recording(project, ds, target, found, *args, **kwargs):
        batches.append((len(found), streamed["read"]))
        return stage_files(project, ds, target, found, *args, **kwargs)

    monkeypatch.setattr(ds_mod, "iter_files", counting)
    monkeypatch.setattr(staging, "_stage_files", recording)
    moto_server.reset_counts()
    report = staging.stage(Project.open(str(root)), "many", progress=False)
    counts = moto_server.counts(moto_bucket)
    # one walk: 3 pages of 1,000 (and at most one empty page after); a listing a batch would be 18+
    assert counts["LIST"] <= 4 and counts["HEAD"] == 1, moto_server.counts(moto_bucket, by_api=True)
    assert counts["GET_OBJECT"] == 2998, counts
    assert [n for n, _ in batches] == [500] * 6, batches
    # the first pass (checks and space) read all 3,000; then each batch began with only its
    # own lines of the second pass read
    assert [read - 3000 for _, read in batches] == [500, 1000, 1500, 2000, 2500, 3000], batches
    assert report.staged == 2998 and set(report.failed) == {f"data/{keys[1234]}", f"data/{keys[2345]}"}
    assert "was deleted on the remote" in report.failed[f"data/{keys[1234]}"]
    assert "changed on the remote" in report.failed[f"data/{keys[2345]}"]
    for i in (0, 499, 500, 1233, 1235, 2999):
        assert (root / "data" / keys[i]).read_bytes() == keys[i].encode()
    assert not (root / "data" / keys[1234]).exists() and not (root / "data" / keys[2345]).exists()
    assert clean(root)
    states = {r["path"]: r["local"] for r in status_json(root, "many")}
    assert sum(s == "staged" for s in states.values()) == 2998, states


def test_the_listing_walk_gives_what_a_head_gives_in_any_order(tmp_path):
    """_Cursor (the walk a batched stage makes of one listing) answers each key as the storage's
    own info() does, whatever order the keys are asked in: keys passed already, keys past the
    end and keys that are not there are asked about on their own."""
    from gitdata.datasets.staging import _Cursor
    from gitdata.storage import ObjectNotFound, Storage

    for i in range(40):
        (tmp_path / "src" / f"k{i:02d}").parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / f"k{i:02d}").write_bytes(b"x" * (i + 1))
    st = Storage((tmp_path / "src").as_uri(), {})
    asked = ["k05", "k06", "k03", "k39", "k40", "a", "k10", "k10", "k07", "zz", "k00"]

    def head(key):
        try:
            return st.info(key)
        except ObjectNotFound:
            return None

    for single in (False, True):
        cur = _Cursor(st, single, False)
        got = [cur.find(k) for k in asked]
        want = [head(k) for k in asked]
        assert [g.size if g else None for g in got] == [w.size if w else None for w in want], single
        assert [g.size if g else None for g in got] == [6, 7, 4, 40, None, None, 11, 11, 8, None, 1]


# --------------------------------------------------------------------------
# remote changes: exactly the changed and the deleted object are reported


def _change_remote(backend, root: Path) -> None:
    time.sleep(0.05)  # a new mtime, where that is all a server states
    put_objects(backend, {"b.txt": b"BRAVO BRAVO\n"})  # same size, new content
    delete_object(backend, "sub/deeper/d.csv")


@pytest.mark.parametrize("kind", ["versioned_moto", "rclone"])
def test_status_remote_reports_exactly_changed_and_deleted(kind, request, tmp_path):
    if kind == "versioned_moto":
        backend = request.getfixturevalue("versioned_moto_backend")
        # a multipart upload: its ETag is not an md5; it must still read as unchanged
        big = os.urandom(5 * 1024 * 1024 + 100)
        with backend.fs(default_block_size=5 * 1024 * 1024).open(backend.key_path("multi.bin"), "wb") as f:
            f.write(big)
    else:
        backend = _rclone_backend(request)
    put_objects(backend, OBJECTS)
    root = project(tmp_path / "p")
    gd(root, "dataset", "add", "ds", backend.url, "--create", *opts(backend))
    git(root, "commit", "-q", "-m", "register")
    pointer = (root / "data/ds/b.txt").read_text()
    if kind == "versioned_moto":
        assert "version-id " in pointer
        assert '-' in [ln for ln in (root / "data/ds/multi.bin").read_text().splitlines() if ln.startswith("etag")][0]
    assert {r["remote"] for r in status_json(root, remote=True)} == {"unchanged"}

    _change_remote(backend, root)
    put_objects(backend, {"sub/new.txt": b"new object\n"})
    rows = status_json(root, remote=True)
    changed = {r["path"]: r["remote"] for r in rows if r["remote"] != "unchanged"}
    assert changed == {
        "data/ds/b.txt": "changed",
        "data/ds/sub/deeper/d.csv": "deleted",
        "data/ds/sub/new.txt": "new",
    }
    text = gd(root, "status", "--remote").stdout.decode()
    assert "data/ds/b.txt" in text and "changed" in text and "data/ds/a.txt" not in text

    proc = gd(root, "dataset", "stage", "ds", check=False)
    if kind == "versioned_moto":
        # the recorded versions are still readable: staged exactly as recorded, with a note
        assert proc.returncode == 0, proc.stderr
        assert (root / "data/ds/b.txt").read_bytes() == OBJECTS["b.txt"]
        assert (root / "data/ds/sub/deeper/d.csv").read_bytes() == OBJECTS["sub/deeper/d.csv"]
        assert b"note: data/ds/b.txt" in proc.stdout
    else:
        # no versions: the changed and deleted files are reported, not taken
        assert proc.returncode == 1
        err = proc.stderr.decode()
        assert "data/ds/b.txt" in err and "changed on the remote" in err
        assert "data/ds/sub/deeper/d.csv" in err and "deleted" in err
        assert (root / "data/ds/b.txt").read_text() == pointer
        assert (root / "data/ds/a.txt").read_bytes() == OBJECTS["a.txt"]
    assert clean(root), git(root, "status", "--porcelain")

    if kind == "versioned_moto":
        return  # `update` does not depend on the backend: once (below) is enough
    # update re-records: the change shows in `git diff`, ready to commit
    gd(root, "update", "ds")
    diff = git(root, "diff", "--name-status")
    assert "M\tdata/ds/b.txt" in diff and "D\tdata/ds/sub/deeper/d.csv" in diff
    assert "A\tdata/ds/sub/new.txt" in diff
    git(root, "commit", "-q", "-am", "update")
    assert {r["remote"] for r in status_json(root, remote=True)} == {"unchanged"}
    gd(root, "dataset", "stage", "ds")
    assert (root / "data/ds/b.txt").read_bytes() == b"BRAVO BRAVO\n"
    assert clean(root)


def _rclone_backend(request):
    from conftest import _make_backend

    return _make_backend("rclone", request, request.getfixturevalue("monkeypatch"),
                         request.getfixturevalue("tmp_path_factory"))


# --------------------------------------------------------------------------
# a collaborator clones the project and stages the same bytes


def test_second_clone_stages_same_bytes(versioned_moto_backend, tmp_path):
    backend = versioned_moto_backend
    put_objects(backend, OBJECTS)
    root = project(tmp_path / "p")
    gd(root, "dataset", "add", "ds", backend.url, "--create", *opts(backend))
    git(root, "commit", "-q", "-m", "register")
    gd(root, "dataset", "stage", "ds")
    bare = tmp_path / "shared.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(root, "push", "-q", str(bare), "HEAD:main")

    other = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(bare), str(other))
    assert (other / "data/ds/a.txt").read_text().startswith("version gitdata/1")
    assert clean(other)
    backend.server.reset_counts()
    gd(other, "dataset", "stage", "ds")
    assert worktree_bytes(other, "data/ds") == worktree_bytes(root, "data/ds") == OBJECTS
    assert backend.server.counts(backend.bucket)["GET_OBJECT"] == len(OBJECTS)
    assert clean(other), git(other, "status", "--porcelain")
