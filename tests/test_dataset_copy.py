"""`git data dataset copy`: a dataset into one's own bucket (user story 3).

Real servers on 127.0.0.1: two `rclone serve s3` with different keys (a
streamed copy), one moto server with two buckets (a copy inside the
service, counted at the server), local folders for the hostile cases.
git data runs as a subprocess, as a user runs it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from helpers import use_server_env
from servers import unique_name

OBJECTS = {
    "a.txt": b"alpha\n",
    "b.txt": b"bravo bravo\n",
    "sub/c.bin": bytes(range(256)) * 40,
    "sub/deeper/d.csv": b"x,y\n1,2\n",
}


def run(cwd, *args: str, check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(args), cwd=cwd, capture_output=True, timeout=180, input=input)
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


def project(path: Path) -> Path:
    from gitdata.install import install

    path.mkdir(parents=True)
    git(path, "init", "-q")
    install("global", None)
    git(path, "config", "gitdata.retryAttempts", "1")  # a failing target fails at once
    git(path, "commit", "-q", "--allow-empty", "-m", "init")
    return path


def store_credentials(cwd, url: str, server) -> None:
    secret = f"{server.key}\n{server.secret}\n".encode()
    run(cwd, "git", "data", "credentials", "set", url, "-o", f"endpoint_url={server.endpoint}", "--stdin", input=secret)


def fill_rclone(server, bucket: str, prefix: str, objects: dict[str, bytes]) -> Path:
    base = server.bucket_path(bucket) / prefix
    for key, data in objects.items():
        (base / key).parent.mkdir(parents=True, exist_ok=True)
        (base / key).write_bytes(data)
    server.flush_dir_cache()
    return base


def copy_json(root, *args: str, check: bool = True) -> tuple[dict, subprocess.CompletedProcess]:
    proc = gd(root, "dataset", "copy", *args, "--json", check=check)
    return json.loads(proc.stdout), proc


def pointer_text(root: Path, rel: str) -> str:
    return (root / "data/ds" / rel).read_text()


def gitdata_config(root: Path, key: str) -> list[str]:
    proc = run(root, "git", "config", "-f", ".gitdata", "--get-all", f"dataset.ds.{key}", check=False)
    return proc.stdout.decode().split("\n")[:-1]


# --------------------------------------------------------------------------
# pure: the pointer after a copy


def test_copied_pointer_keeps_the_first_origin():
    from gitdata.datasets.copy import copied_pointer
    from gitdata.pointer import Pointer
    from gitdata.storage.fingerprint import Fingerprint

    old = Pointer.make(None, 6, {"source": "s3://open/raw/a.txt", "etag": '"e1"', "version-id": "v1", "mtime": "t1"})
    new = copied_pointer(old, "s3://mine/a.txt", Fingerprint(size=6, etag='"e2"', mtime="t2"))
    assert new.source == "s3://mine/a.txt" and new.get("etag") == '"e2"' and new.get("version-id") is None
    assert new.get("origin-source") == "s3://open/raw/a.txt"
    assert (new.get("origin-etag"), new.get("origin-version-id"), new.get("origin-mtime")) == ('"e1"', "v1", "t1")
    again = copied_pointer(new, "s3://third/a.txt", Fingerprint(size=6, etag='"e3"'))
    assert again.source == "s3://third/a.txt" and again.get("origin-source") == "s3://open/raw/a.txt"
    assert again.get("mtime") is None  # the second copy's fingerprint has none: the old one is not kept
    # the result still parses: the new keys are plain optional pointer keys
    from gitdata.pointer import parse

    assert parse(again.encode()) == again


def test_copied_pointer_drops_origin_mtime_before_giving_up():
    from gitdata.datasets.copy import copied_pointer
    from gitdata.pointer import Pointer
    from gitdata.storage.fingerprint import Fingerprint

    long = "s3://b/" + "x" * 455  # the pointer fits only without origin-mtime
    old = Pointer.make(None, 1, {"source": long, "mtime": "2024-01-01T00:00:00.000000Z"})
    new = copied_pointer(old, long + "y", Fingerprint(size=1, mtime="2024-01-01T00:00:00.000000Z"))
    assert new.get("origin-source") == long and new.get("origin-mtime") is None


# --------------------------------------------------------------------------
# two rclone servers with different keys: streamed


def test_copy_streams_between_two_servers_and_the_clone_reads_the_copy(rclone_server_factory, tmp_path):
    origin, mine = rclone_server_factory(), rclone_server_factory()
    assert origin.key != mine.key
    origin.make_bucket("open")
    mine.make_bucket("mine")
    fill_rclone(origin, "open", "raw", OBJECTS)
    root = project(tmp_path / "p")
    store_credentials(root, "s3://open", origin)
    store_credentials(root, "s3://mine", mine)
    local = tmp_path / "own"
    local.mkdir()
    (local / "notes.md").write_bytes(b"my own notes\n" * 100)
    gd(root, "dataset", "create", "ds", "-o", f"endpoint_url={origin.endpoint}")
    gd(root, "dataset", "add", "ds", "s3://open/raw")
    gd(root, "dataset", "add", "ds", str(local / "notes.md"), "--to", "own")
    git(root, "commit", "-q", "-m", "register")

    report, proc = copy_json(root, "ds", "--to-storage", "s3://mine/copy", "-o", f"endpoint_url={mine.endpoint}")
    assert report["copied"] == 5 and report["streamed"] == 5 and report["server_side"] == 0
    assert report["failed"] == {} and report["recorded"] is True
    target = mine.bucket_path("mine") / "copy"
    for key, data in OBJECTS.items():
        assert (target / key).read_bytes() == data
    from gitdata.hashing import oid_of_bytes
    from gitdata.storage import oid_to_key

    own_oid = oid_of_bytes(b"my own notes\n" * 100)
    assert (target / ".gitdata" / oid_to_key(own_oid)).read_bytes() == b"my own notes\n" * 100
    text = pointer_text(root, "a.txt")
    assert "source s3://mine/copy/a.txt\n" in text and "origin-source s3://open/raw/a.txt\n" in text
    assert "oid " not in text
    assert gitdata_config(root, "source") == ["s3://mine/copy"]
    assert gitdata_config(root, "origin") == ["s3://open/raw"]
    assert gitdata_config(root, "option") == [f"endpoint_url={mine.endpoint}"]
    assert gitdata_config(root, "origin-option") == [f"endpoint_url={origin.endpoint}"]
    assert gitdata_config(root, "storage") == ["s3://mine/copy/.gitdata"]
    assert not (root / "data/ds/sub/c.bin").read_bytes().startswith(bytes(range(10)))  # still a pointer
    git(root, "commit", "-q", "-m", "copy to my bucket")

    # the origin is gone: a fresh clone reads everything from the copy
    origin.stop()
    clone = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(root), str(clone))
    assert (clone / "data/ds/own/notes.md").read_bytes() == b"my own notes\n" * 100  # smudged from the copy
    gd(clone, "dataset", "stage", "ds")
    for key, data in OBJECTS.items():
        assert (clone / "data/ds" / key).read_bytes() == data
    assert git(clone, "status", "--porcelain") == ""
    from gitdata.project import Project
    from gitdata.status import StatusOptions, collect

    rows = [r.as_dict() for r in collect(Project.open(str(clone)), StatusOptions(remote=True))]
    ds_rows = [r for r in rows if r["section"] == "datasets"]
    assert ds_rows and not [r for r in ds_rows if r["remote"] == "new"], ds_rows  # .gitdata/ objects are not "new"
    assert {r["remote"] for r in ds_rows if r["path"] != "data/ds/own/notes.md"} == {"unchanged"}


def test_interrupted_copy_resumes_without_copying_finished_objects(rclone_server_factory, tmp_path):
    from flaky_proxy import FlakyProxy

    origin, mine = rclone_server_factory(), rclone_server_factory()
    origin.make_bucket("open")
    mine.make_bucket("mine")
    fill_rclone(origin, "open", "raw", OBJECTS)
    proxy = FlakyProxy(mine.endpoint).start()  # the target, failing for the objects under sub/
    proxy.fail_paths.add("/copy/sub/")
    try:
        root = project(tmp_path / "p")
        store_credentials(root, "s3://open", origin)
        secret = f"{mine.key}\n{mine.secret}\n".encode()
        run(root, "git", "data", "credentials", "set", "s3://mine", "-o", f"endpoint_url={proxy.url}", "--stdin", input=secret)
        gd(root, "dataset", "create", "ds", "-o", f"endpoint_url={origin.endpoint}")
        gd(root, "dataset", "add", "ds", "s3://open/raw")
        git(root, "commit", "-q", "-m", "register")
        before = {p: pointer_text(root, p) for p in OBJECTS}
        target = mine.bucket_path("mine") / "copy"
        args = ("ds", "--to-storage", "s3://mine/copy", "-o", f"endpoint_url={proxy.url}")

        report, proc = copy_json(root, *args, check=False)
        assert proc.returncode == 1
        assert sorted(report["failed"]) == ["data/ds/sub/c.bin", "data/ds/sub/deeper/d.csv"]
        assert report["copied"] == 2 and report["recorded"] is False
        assert "run the same command again" in proc.stderr.decode()
        assert {p: pointer_text(root, p) for p in OBJECTS} == before  # nothing changed in the project
        assert gitdata_config(root, "source") == ["s3://open/raw"]
        assert git(root, "status", "--porcelain") == ""
        assert not (target / "sub").exists()  # nothing half-written at the target
        finished = {k: (target / k).stat().st_mtime_ns for k in ("a.txt", "b.txt")}

        proxy.fail_paths.clear()
        puts_before = proxy.requests
        report, _ = copy_json(root, *args)
        assert report["copied"] == 2 and report["already"] == 2 and report["recorded"] is True
        assert {k: (target / k).stat().st_mtime_ns for k in ("a.txt", "b.txt")} == finished  # not written again
        assert proxy.requests > puts_before
        for key, data in OBJECTS.items():
            assert (target / key).read_bytes() == data
        assert "source s3://mine/copy/sub/c.bin\n" in pointer_text(root, "sub/c.bin")
    finally:
        proxy.stop()


def test_a_changed_origin_object_is_refused_for_that_file(rclone_server_factory, tmp_path):
    origin, mine = rclone_server_factory(), rclone_server_factory()
    origin.make_bucket("open")
    mine.make_bucket("mine")
    base = fill_rclone(origin, "open", "raw", OBJECTS)
    root = project(tmp_path / "p")
    store_credentials(root, "s3://open", origin)
    store_credentials(root, "s3://mine", mine)
    gd(root, "dataset", "create", "ds", "-o", f"endpoint_url={origin.endpoint}")
    gd(root, "dataset", "add", "ds", "s3://open/raw")
    git(root, "commit", "-q", "-m", "register")
    (base / "b.txt").write_bytes(b"BRAVO BRAVO\n")  # same size, other bytes (rclone keeps no versions)
    origin.flush_dir_cache()

    report, proc = copy_json(root, "ds", "--to-storage", "s3://mine/copy", "-o", f"endpoint_url={mine.endpoint}", check=False)
    assert proc.returncode == 1
    assert list(report["failed"]) == ["data/ds/b.txt"], report["failed"]
    assert "changed since it was recorded" in report["failed"]["data/ds/b.txt"]
    assert "git data update ds" in report["failed"]["data/ds/b.txt"]
    assert not (mine.bucket_path("mine") / "copy" / "b.txt").exists()  # the changed bytes were not copied
    assert "source s3://open/raw/a.txt\n" in pointer_text(root, "a.txt")
    assert git(root, "status", "--porcelain") == ""


# --------------------------------------------------------------------------
# one moto server, two buckets: inside the service


def test_copy_inside_one_service_moves_no_body_through_the_client(moto_server, tmp_path, monkeypatch):
    use_server_env(monkeypatch, moto_server)
    src, dst = unique_name("open"), unique_name("mine")
    moto_server.make_bucket(src, versioned=True)
    moto_server.make_bucket(dst)
    client = moto_server.client()
    for key, data in OBJECTS.items():
        client.put_object(Bucket=src, Key=f"raw/{key}", Body=data)
    try:
        root = project(tmp_path / "p")
        ep = f"endpoint_url={moto_server.endpoint}"
        gd(root, "dataset", "create", "ds", "-o", ep)
        gd(root, "dataset", "add", "ds", f"s3://{src}/raw")
        git(root, "commit", "-q", "-m", "register")
        assert "version-id " in pointer_text(root, "a.txt")
        client.put_object(Bucket=src, Key="raw/a.txt", Body=b"ALPHA CHANGED, LONGER\n")  # the recorded version stays
        moto_server.reset_counts()

        report, _ = copy_json(root, "ds", "--to-storage", f"s3://{dst}/copy", "-o", ep)
        assert report["server_side"] == 4 and report["streamed"] == 0 and report["recorded"] is True
        counts = moto_server.counts(by_api=True)
        assert counts["GetObject"] == 0, moto_server.requests()  # no body read by the client
        assert counts["PutObject"] == 0 and counts["UploadPart"] == 0  # nor written by it
        copies = [r for r in moto_server.requests() if r.api == "CopyObject"]
        assert len(copies) == 4 and {r.bucket for r in copies} == {dst}
        for key, data in OBJECTS.items():
            assert client.get_object(Bucket=dst, Key=f"copy/{key}")["Body"].read() == data  # the recorded version
        text = pointer_text(root, "a.txt")
        assert f"source s3://{dst}/copy/a.txt\n" in text and "origin-version-id " in text

        # run again: everything is there, nothing is copied
        moto_server.reset_counts()
        report, _ = copy_json(root, "ds", "--to-storage", f"s3://{dst}/again", "-o", ep)
        assert report["server_side"] == 4
        assert f"origin-source s3://{src}/raw/a.txt\n" in pointer_text(root, "a.txt")  # the first origin stays
    finally:
        moto_server.delete_bucket(src)
        moto_server.delete_bucket(dst)


# --------------------------------------------------------------------------
# refused before anything is copied


def _local_dataset(tmp_path: Path) -> tuple[Path, Path]:
    origin = tmp_path / "origin"
    for key, data in OBJECTS.items():
        (origin / key).parent.mkdir(parents=True, exist_ok=True)
        (origin / key).write_bytes(data)
    root = project(tmp_path / "p")
    gd(root, "dataset", "create", "ds")
    gd(root, "dataset", "add", "ds", origin.as_uri())
    git(root, "commit", "-q", "-m", "register")
    return root, origin


def test_copy_between_local_folders(tmp_path):
    root, origin = _local_dataset(tmp_path)
    report, _ = copy_json(root, "ds", "--to-storage", str(tmp_path / "mine"))
    assert report["copied"] == 4 and report["streamed"] == 4
    for key, data in OBJECTS.items():
        assert (tmp_path / "mine" / key).read_bytes() == data
    assert not [p for p in (tmp_path / "mine").rglob("*") if p.name.startswith(".gitdata-tmp-")]
    assert gitdata_config(root, "source") == [(tmp_path / "mine").as_uri()]


@pytest.mark.parametrize(
    "target, says",
    [
        ("s3://key:secret@bucket/x", "carries user info"),
        ("ORIGIN/sub", "overlaps"),
        ("ORIGIN_PARENT", "overlaps"),
    ],
)
def test_bad_targets_are_refused(tmp_path, target, says):
    root, origin = _local_dataset(tmp_path)
    target = target.replace("ORIGIN_PARENT", str(origin.parent)).replace("ORIGIN", str(origin))
    proc = gd(root, "dataset", "copy", "ds", "--to-storage", target, check=False)
    assert proc.returncode == 1 and says in proc.stderr.decode()
    assert "Traceback" not in proc.stderr.decode() and len(proc.stderr.decode().strip().splitlines()) == 1
    assert sorted(p.name for p in origin.iterdir()) == ["a.txt", "b.txt", "sub"]
    assert git(root, "status", "--porcelain") == ""


def test_a_staged_dataset_is_refused(tmp_path):
    root, _ = _local_dataset(tmp_path)
    gd(root, "dataset", "stage", "ds")
    proc = gd(root, "dataset", "copy", "ds", "--to-storage", str(tmp_path / "mine"), check=False)
    assert proc.returncode == 1 and "unstage ds" in proc.stderr.decode()
    assert not (tmp_path / "mine").exists()


def _add_pointer(root: Path, rel: str, text: str) -> None:
    path = root / "data/ds" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    git(root, "add", str(path))
    git(root, "commit", "-q", "-m", f"add {rel}")


def test_hostile_pointers_are_refused_and_nothing_is_recorded(tmp_path):
    root, origin = _local_dataset(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"private\n")
    # a pointer naming a file outside the dataset's sources, one whose path would land
    # among the copy's own objects
    _add_pointer(root, "evil.txt", f"version gitdata/1\nsize 8\nsource {secret.as_uri()}\n")
    (origin / ".gitdata" / "objects").mkdir(parents=True)
    (origin / ".gitdata" / "objects" / "x").write_bytes(b"x")
    _add_pointer(root, ".gitdata/objects/x", f"version gitdata/1\nsize 1\nsource {origin.as_uri()}/.gitdata/objects/x\n")
    report, proc = copy_json(root, "ds", "--to-storage", str(tmp_path / "mine"), check=False)
    assert proc.returncode == 1
    assert "is not under a source" in report["failed"]["data/ds/evil.txt"]
    assert "rename it" in report["failed"]["data/ds/.gitdata/objects/x"]
    assert report["recorded"] is False
    assert not (tmp_path / "mine" / "evil.txt").exists()
    assert not list((tmp_path / "mine").rglob("secret*"))
    assert gitdata_config(root, "source") == [origin.as_uri()]
    assert git(root, "status", "--porcelain") == ""


def test_help_and_docs_name_the_command():
    proc = run(".", "git", "data", "dataset", "copy", "--help")
    assert b"--to-storage" in proc.stdout and b"origin" in proc.stdout
    docs = (Path(__file__).parent.parent / "docs/commands.md").read_text() + (
        Path(__file__).parent.parent / "docs/datasets.md"
    ).read_text()
    assert "### git data dataset copy" in docs
    assert os.path.exists(Path(__file__).parent.parent / "src/gitdata/datasets/copy.py")
