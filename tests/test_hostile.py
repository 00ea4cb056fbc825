"""A hostile repository and a hostile bucket: every attack of docs/security.md as a test.

The attacker controls what arrives through a clone (``.gitdata``, pointers,
symlinks) or what anyone can write to a shared bucket (object keys, the
manifest and packs of a bucket-hosted repository). The victim runs the
documented commands. After each attack: nothing is written outside its
place (a sentinel folder and ``$HOME`` are scanned), no local file is read
into the work tree or uploaded, and the error names the entry.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gitdata.pointer import Pointer
from helpers import use_server_env


def run(*args, cwd=None, check=True, env=None) -> subprocess.CompletedProcess:
    full = {**os.environ, **(env or {})}
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, env=full, timeout=180)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def git(cwd, *args, **kw) -> str:
    return run("git", *args, cwd=cwd, **kw).stdout


def gd(cwd, *args, **kw) -> subprocess.CompletedProcess:
    return run("git", "data", *args, cwd=cwd, **kw)


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file (and link) under ``root`` with its bytes (or link target)."""
    out: dict[str, bytes] = {}
    if not root.exists():
        return out
    for dirpath, dirs, files in os.walk(root):
        for n in files + [d for d in dirs if os.path.islink(os.path.join(dirpath, d))]:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            out[rel] = os.readlink(p).encode() if os.path.islink(p) else Path(p).read_bytes()
    return out


@pytest.fixture
def victim_dirs(tmp_path, hermetic_git_env):
    """A sentinel folder next to the projects, and $HOME; both must stay as they are."""
    sentinel = tmp_path / "victim"
    sentinel.mkdir()
    (sentinel / "secret.txt").write_text("the victim's secret\n")
    home = Path(hermetic_git_env)
    (home / ".ssh").mkdir()
    (home / ".ssh" / "id_ed25519").write_text("PRIVATE KEY\n")
    before = (snapshot(sentinel), snapshot(home))

    def unchanged() -> None:
        after = (snapshot(sentinel), snapshot(home))
        assert after[0] == before[0], f"sentinel changed: {set(after[0]) ^ set(before[0])}"
        new_home = {k for k in set(after[1]) - set(before[1]) if not k.startswith(".cache/")}
        assert not new_home, f"new files in HOME: {new_home}"
        for k, v in before[1].items():
            if k == ".gitconfig":  # `git data install` registers the filter there
                assert b"fsmonitor" not in after[1][k] and b"owned" not in after[1][k]
                continue
            assert after[1].get(k) == v, f"HOME file changed: {k}"

    return sentinel, home, unchanged


def attacker_repo(tmp_path: Path, gitdata: str, symlinks: dict[str, str] | None = None,
                  files: dict[str, bytes] | None = None) -> Path:
    """The attacker's project: a crafted .gitdata (and links, files), committed."""
    a = tmp_path / "attacker"
    a.mkdir()
    git(a, "init", "-q", "-b", "main")
    (a / ".gitdata").write_text(gitdata)
    for path, target in (symlinks or {}).items():
        (a / path).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, a / path)
    for path, data in (files or {}).items():
        (a / path).parent.mkdir(parents=True, exist_ok=True)
        (a / path).write_bytes(data)
    git(a, "add", "-A")
    git(a, "commit", "-qm", "innocent looking project")
    return a


def clone(tmp_path: Path, src: Path, name: str = "victim-clone") -> Path:
    dest = tmp_path / name
    git(tmp_path, "clone", "-q", str(src), str(dest))
    return dest


def bucket_dir(tmp_path: Path, files: dict[str, bytes]) -> Path:
    root = tmp_path / "bucket"
    for key, data in files.items():
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(data)
    return root


# --------------------------------------------------------------------------
# a cloned .gitdata: storage folders


@pytest.mark.parametrize("to", [
    "../victim", "../victim/sub", "storages/../../victim", "/ABS", ".git/hooks", ".GIT/hooks",
    "sub/.git/x", "x/.Git./y", "git~1/hooks", ".gitdata", "",
])  # fmt: skip
def test_storage_to_outside_the_project_is_refused(tmp_path, victim_dirs, to):
    sentinel, home, unchanged = victim_dirs
    if to == "/ABS":
        to = str(sentinel)
    bucket = bucket_dir(tmp_path, {"hooks/post-checkout": b"#!/bin/sh\necho owned\n", "config": b"[core]\n"})
    a = attacker_repo(tmp_path, f'[storage "lab"]\n\turl = {bucket.as_uri()}\n\tto = {to}\n\tmode = copy\n'
                                f'[storage "ok"]\n\turl = {bucket.as_uri()}\n\tto = storages/ok\n')
    b = clone(tmp_path, a)
    proc = gd(b, "storage", "stage", "--all", check=False)
    assert proc.returncode == 1, proc.stderr
    if to:  # an empty `to` is the default folder: safe
        assert "storage 'lab'" in proc.stderr, proc.stderr
        assert "fix or remove [storage \"lab\"] in .gitdata" in proc.stderr or "symlink" in proc.stderr
        assert not (b / ".git" / "hooks" / "post-checkout").exists()
    # the safe storage was staged all the same
    assert (b / "storages" / "ok" / "config").read_bytes() == b"[core]\n"
    unchanged()


def test_storage_to_empty_is_the_default_folder(tmp_path, victim_dirs):
    _sentinel, _home, unchanged = victim_dirs
    bucket = bucket_dir(tmp_path, {"f.txt": b"fine"})
    a = attacker_repo(tmp_path, f'[storage "lab"]\n\turl = {bucket.as_uri()}\n')
    b = clone(tmp_path, a)
    gd(b, "storage", "stage", "lab")
    assert (b / "storages" / "lab" / "f.txt").read_bytes() == b"fine"
    unchanged()


@pytest.mark.parametrize("link,target,to", [
    ("storages/lab", "../../victim", "storages/lab"),  # the storage folder itself
    ("storages", "../victim", "storages/lab"),  # a folder on the way
])
def test_tracked_symlink_in_a_storage_path_is_refused(tmp_path, victim_dirs, link, target, to):
    sentinel, _home, unchanged = victim_dirs
    bucket = bucket_dir(tmp_path, {"payload.txt": b"attacker's file"})
    a = attacker_repo(tmp_path, f'[storage "lab"]\n\turl = {bucket.as_uri()}\n\tto = {to}\n', symlinks={link: target})
    b = clone(tmp_path, a)
    assert os.path.islink(b / link)
    before_bucket = snapshot(bucket)
    proc = gd(b, "storage", "stage", "lab", check=False)
    assert proc.returncode != 0
    assert "symlink" in proc.stderr and "storage 'lab'" in proc.stderr, proc.stderr
    # nothing written through the link, and nothing behind it uploaded
    assert snapshot(bucket) == before_bucket
    assert not (sentinel / "payload.txt").exists() and not (sentinel / "lab").exists()
    proc = gd(b, "storage", "sync", "lab", check=False)
    assert proc.returncode != 0 and snapshot(bucket) == before_bucket
    unchanged()


# --------------------------------------------------------------------------
# a shared bucket: object keys


def _put_raw(moto_server, bucket: str, key: str, data: bytes) -> None:
    """Write a key exactly as given (no client-side normalisation)."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=moto_server.endpoint, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    s3.put_object(Bucket=bucket, Key=key, Body=data)


def test_bucket_keys_that_climb_out_are_skipped_and_named(tmp_path, victim_dirs, moto_server, moto_bucket, monkeypatch):
    sentinel, _home, unchanged = victim_dirs
    use_server_env(monkeypatch, moto_server)
    evil = [
        "lab/p/../../.git/hooks/post-checkout",
        "lab/" + "../" * 12 + str(sentinel).lstrip("/") + "/owned.txt",
        "lab/sub/.GIT/config",
    ]
    for key in evil:
        _put_raw(moto_server, moto_bucket, key, b"#!/bin/sh\necho owned\n")
    _put_raw(moto_server, moto_bucket, "lab/good/data.csv", b"a,b\n1,2\n")
    a = attacker_repo(tmp_path, f'[storage "lab"]\n\turl = s3://{moto_bucket}/lab\n'
                                f'\toption = endpoint_url={moto_server.endpoint}\n')
    b = clone(tmp_path, a)
    proc = gd(b, "storage", "stage", "lab", check=False)
    assert proc.returncode == 1, proc.stderr
    assert (b / "storages/lab/good/data.csv").read_bytes() == b"a,b\n1,2\n"
    for key in evil:
        assert repr(key[len("lab/"):]) in proc.stderr, (key, proc.stderr)
    assert not list(b.rglob("post-checkout")) and not (b / ".git/hooks/post-checkout").exists()
    assert not (b / "storages/lab/sub").exists()
    out = json.loads(gd(b, "storage", "sync", "lab", "--json", check=False).stdout)
    assert {r["key"] for r in out[0]["refused"]} == {k[len("lab/"):] for k in evil}
    unchanged()


def test_rclone_bucket_with_a_git_folder_is_not_staged_into_git(
    tmp_path, victim_dirs, rclone_server, rclone_bucket, monkeypatch
):
    _sentinel, _home, unchanged = victim_dirs
    use_server_env(monkeypatch, rclone_server)
    served = rclone_server.bucket_path(rclone_bucket)
    (served / "lab" / "nested" / ".git").mkdir(parents=True)
    (served / "lab" / "nested" / ".git" / "config").write_text("[core]\n\tfsmonitor = touch /tmp/owned\n")
    (served / "lab" / "ok.txt").write_text("ok\n")
    rclone_server.flush_dir_cache()
    a = attacker_repo(tmp_path, f'[storage "lab"]\n\turl = s3://{rclone_bucket}/lab\n'
                                f'\toption = endpoint_url={rclone_server.endpoint}\n')
    b = clone(tmp_path, a)
    proc = gd(b, "storage", "stage", "lab", check=False)
    assert proc.returncode == 1 and "'nested/.git/config'" in proc.stderr, proc.stderr
    assert (b / "storages/lab/ok.txt").read_text() == "ok\n"
    assert not (b / "storages/lab/nested").exists()
    unchanged()


# --------------------------------------------------------------------------
# a cloned .gitdata: storage options


def test_tracked_option_off_the_allow_list_is_refused(tmp_path, victim_dirs, moto_server, moto_bucket, monkeypatch):
    _sentinel, _home, unchanged = victim_dirs
    use_server_env(monkeypatch, moto_server)
    _put_raw(moto_server, moto_bucket, "lab/f.txt", b"x")
    a = attacker_repo(tmp_path, f'[storage "lab"]\n\turl = s3://{moto_bucket}/lab\n'
                                f'\toption = endpoint_url={moto_server.endpoint}\n'
                                '\toption = s3_additional_kwargs={"ACL": "public-read"}\n')
    b = clone(tmp_path, a)
    (b / "storages/lab").mkdir(parents=True)
    proc = gd(b, "storage", "stage", "lab", check=False)
    assert proc.returncode == 1
    assert "option 's3_additional_kwargs'" in proc.stderr and "gitdata.remote.lab.option" in proc.stderr, proc.stderr
    moto_server.reset_counts()
    assert not (b / "storages/lab/f.txt").exists()
    # the user may pass any option from their own config
    git(b, "config", "--add", "gitdata.remote.lab.option", 's3_additional_kwargs={"ACL": "private"}')
    gd(b, "storage", "stage", "lab")
    assert (b / "storages/lab/f.txt").read_bytes() == b"x"
    unchanged()


@pytest.mark.parametrize("url,opts,ok", [
    ("s3://b/p", {"endpoint_url": "http://h", "anon": True, "version_aware": True}, True),
    ("s3://b/p", {"client_kwargs": {"region_name": "eu-west-1"}}, True),
    ("s3://b/p", {"client_kwargs": {"aws_secret_access_key": "x"}}, False),
    ("s3://b/p", {"config_kwargs": {"s3": {"addressing_style": "path"}}}, True),
    ("s3://b/p", {"config_kwargs": {"s3": {"use_accelerate_endpoint": True}}}, False),
    ("s3://b/p", {"s3_additional_kwargs": {"ACL": "public-read"}}, False),
    ("s3://b/p", {"key": "AKIA"}, False),
    ("gs://b/p", {"token": "anon", "project": "x"}, True),
    ("gs://b/p", {"token": "/home/u/.config/gcloud/creds.json"}, False),
    ("file:///d", {"auto_mkdir": True}, True),
    ("https://h/p", {"headers": {"Authorization": "x"}}, False),
    ("weird://x", {"anything": 1}, False),
])  # fmt: skip
def test_tracked_option_allow_list_table(url, opts, ok):
    from gitdata.config import UntrustedOption, check_tracked_options

    if ok:
        check_tracked_options(url, opts, "test")
    else:
        with pytest.raises(UntrustedOption, match="not one a tracked .gitdata may set"):
            check_tracked_options(url, opts, "test")


# --------------------------------------------------------------------------
# crafted pointers


def _registered(source: str, size: int | None) -> bytes:
    return Pointer.make(None, size, {"source": source}).encode()


@pytest.mark.parametrize("kind", ["home-file", "dev-zero", "other-bucket", "dotdot"])
def test_registered_pointer_outside_its_sources_is_not_read(tmp_path, victim_dirs, kind):
    _sentinel, home, unchanged = victim_dirs
    src = bucket_dir(tmp_path, {"raw/a.txt": b"registered data\n"})
    secret = home / ".ssh" / "id_ed25519"
    pointer = {
        "home-file": _registered(secret.as_uri(), secret.stat().st_size),
        "dev-zero": _registered("file:///dev/zero", None),
        "other-bucket": _registered("s3://someone-else/x", 5),
        "dotdot": _registered(f"{(src / 'raw').as_uri()}/../../victim/secret.txt", 20),
    }[kind]
    ok_pointer = _registered(f"{(src / 'raw').as_uri()}/a.txt", 16)
    a = attacker_repo(
        tmp_path,
        f'[dataset "d"]\n\tpath = data/d\n\tsource = {(src / "raw").as_uri()}\n',
        files={".gitattributes": b"data/d/** filter=s3data diff=s3data merge=s3data -text\n",
               "data/d/evil.txt": pointer, "data/d/a.txt": ok_pointer},
    )  # fmt: skip
    b = clone(tmp_path, a)
    gd(b, "install")
    proc = gd(b, "dataset", "stage", "d", check=False)
    assert proc.returncode != 0, proc.stdout
    assert "data/d/evil.txt" in proc.stderr + proc.stdout, proc.stderr
    assert (b / "data/d/evil.txt").read_bytes() == pointer  # left as it was
    assert (b / "data/d/a.txt").read_bytes() == b"registered data\n"  # the rest proceeds
    assert b"PRIVATE KEY" not in b"".join(snapshot(b).values())
    proc = gd(b, "cat", "data/d/evil.txt", check=False)
    assert proc.returncode != 0 and "PRIVATE" not in proc.stdout
    import gitdata
    from gitdata.errors import GitDataError

    with pytest.raises(GitDataError, match="data/d/evil.txt"):
        gitdata.open("data/d/evil.txt", repo=str(b)).read()
    unchanged()


@pytest.mark.parametrize("size", [5, 40])
def test_registered_pointer_whose_size_lies_is_an_error_for_that_file(tmp_path, victim_dirs, size):
    """``size`` bounds every read of a registered file: a source with more (or fewer) bytes than the
    pointer says is an error for that file, named; nothing past the size reaches the work tree or a
    reader; the other files proceed."""
    _sentinel, _home, unchanged = victim_dirs
    src = bucket_dir(tmp_path, {"raw/a.txt": b"sixteen bytes!!\n", "raw/b.txt": b"registered data\n"})
    raw = (src / "raw").as_uri()
    lying = _registered(f"{raw}/a.txt", size)
    a = attacker_repo(
        tmp_path,
        f'[dataset "d"]\n\tpath = data/d\n\tsource = {raw}\n',
        files={".gitattributes": b"data/d/** filter=s3data diff=s3data merge=s3data -text\n",
               "data/d/a.txt": lying, "data/d/b.txt": _registered(f"{raw}/b.txt", 16)},
    )  # fmt: skip
    b = clone(tmp_path, a)
    gd(b, "install")
    proc = gd(b, "dataset", "stage", "d", check=False)
    assert proc.returncode != 0 and "data/d/a.txt" in proc.stderr + proc.stdout, proc.stderr
    assert "Traceback" not in proc.stderr
    assert (b / "data/d/a.txt").read_bytes() == lying  # left as the pointer
    assert (b / "data/d/b.txt").read_bytes() == b"registered data\n"  # the rest proceeds
    import gitdata
    from gitdata.errors import GitDataError

    got = b""
    with pytest.raises(GitDataError, match="data/d/a.txt"):
        with gitdata.open("data/d/a.txt", repo=str(b)) as f:
            while chunk := f.read(4):
                got += chunk
    assert len(got) <= min(size, 16)  # never a byte past the recorded size
    unchanged()


def test_pointer_whose_size_lies_is_refused_at_clone(tmp_path, victim_dirs):
    _sentinel, _home, unchanged = victim_dirs
    remote = tmp_path / "data-remote"
    a = tmp_path / "a"
    a.mkdir()
    git(a, "init", "-q", "-b", "main")
    gd(a, "install")
    gd(a, "track", "*.bin")
    gd(a, "remote", "add", "origin", remote.as_uri())
    big = os.urandom(3 << 20)
    (a / "big.bin").write_bytes(big)
    git(a, "add", "-A")
    git(a, "commit", "-qm", "honest")
    real = git(a, "cat-file", "-p", "HEAD:big.bin").encode()
    lying = real.replace(f"size {len(big)}".encode(), b"size 5")
    assert lying != real
    # the attacker commits a pointer with the right oid and a size that lies
    p = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=a, input=lying, capture_output=True, check=True)
    git(a, "update-index", "--cacheinfo", f"100644,{p.stdout.decode().strip()},big.bin")
    git(a, "commit", "-qm", "lying size")
    gd(a, "push")
    b = tmp_path / "b"
    proc = run("git", "clone", str(a), str(b), check=False)
    assert "records 5 bytes" in proc.stderr or "pointer records 5" in proc.stderr, proc.stderr
    assert (b / "big.bin").read_bytes() == lying  # left as the pointer, never 3 MiB of "5 bytes"
    proc = gd(b, "pull", check=False)
    assert proc.returncode != 0 and "big.bin" in proc.stderr
    assert (b / "big.bin").read_bytes() == lying
    unchanged()


def test_pre_push_refuses_malformed_pointers(tmp_path):
    a = tmp_path / "a"
    a.mkdir()
    git(a, "init", "-q", "-b", "main")
    gd(a, "install")
    gd(a, "track", "*.bin")
    gd(a, "remote", "add", "store", (tmp_path / "remote").as_uri())
    bare = tmp_path / "bare.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(a, "remote", "add", "origin", str(bare))
    bad = b"version gitdata/1\noid xxh128:nothex\nsize -5\n"
    p = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=a, input=bad, capture_output=True, check=True)
    git(a, "update-index", "--add", "--cacheinfo", f"100644,{p.stdout.decode().strip()},bad.bin")
    git(a, "commit", "-qm", "bad pointer", "--no-verify")
    proc = run("git", "push", "origin", "main", cwd=a, check=False)
    assert proc.returncode != 0
    assert "bad.bin" in proc.stderr and "malformed gitdata pointer" in proc.stderr, proc.stderr
    assert git(bare, "for-each-ref") == ""  # no ref moved


# --------------------------------------------------------------------------
# a bucket-hosted repository: manifests and packs


def _bucket_project(tmp_path: Path) -> tuple[Path, Path]:
    """A project pushed to a bucket-hosted repository in a local folder."""
    store = tmp_path / "bucket-repo"
    a = tmp_path / "a"
    a.mkdir()
    git(a, "init", "-q", "-b", "main")
    gd(a, "install")
    gd(a, "track", "*.bin")
    (a / "readme.txt").write_text("the real project\n")
    (a / "d.bin").write_bytes(b"real data")
    git(a, "add", "-A")
    git(a, "commit", "-qm", "real")
    git(a, "remote", "add", "origin", f"s3data::{store.as_uri()}")
    git(a, "push", "-q", "origin", "main")
    return a, store


def _latest_manifest(store: Path) -> Path:
    return sorted((store / "git" / "manifests").glob("*.json"))[-1]


def test_manifest_pack_name_that_climbs_out_fails_the_clone(tmp_path, victim_dirs):
    sentinel, _home, unchanged = victim_dirs
    _a, store = _bucket_project(tmp_path)
    mpath = _latest_manifest(store)
    m = json.loads(mpath.read_text())
    evil = "../../../../../../../../../../" + str(sentinel).lstrip("/") + "/x"
    m["packs"][0]["name"] = evil
    mpath.write_text(json.dumps(m))
    proc = run("git", "clone", f"s3data::{store.as_uri()}", str(tmp_path / "b"), check=False)
    assert proc.returncode != 0
    assert "pack name" in proc.stderr and "not a valid git data manifest" in proc.stderr, proc.stderr
    assert not list(sentinel.glob("x*"))
    unchanged()


@pytest.mark.parametrize("field,value", [
    ("refs", {"refs/heads/main\n0000 refs/heads/x": "a" * 40}),
    ("refs", {"refs/heads/../../x": "a" * 40}),
    ("refs", {"refs/heads/main": "not-a-sha"}),
    ("head", "refs/heads/main\nfetch x"),
])  # fmt: skip
def test_manifest_with_bad_refs_fails_the_clone(tmp_path, field, value):
    _a, store = _bucket_project(tmp_path)
    mpath = _latest_manifest(store)
    m = json.loads(mpath.read_text())
    m[field] = value
    mpath.write_text(json.dumps(m))
    proc = run("git", "clone", f"s3data::{store.as_uri()}", str(tmp_path / "b"), check=False)
    assert proc.returncode != 0 and "not a valid git data manifest" in proc.stderr, proc.stderr


def test_forged_pack_with_matching_idx_fails_the_clone(tmp_path, victim_dirs):
    _sentinel, _home, unchanged = victim_dirs
    a, store = _bucket_project(tmp_path)
    m = json.loads(_latest_manifest(store).read_text())
    name = m["packs"][0]["name"]
    # the attacker builds another project's pack and its own valid .idx, under the real name
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q", "-b", "main")
    (other / "readme.txt").write_text("forged content\n")
    git(other, "add", "-A")
    git(other, "commit", "-qm", "forged")
    rev = git(other, "rev-parse", "HEAD").strip()
    stem = tmp_path / "forged"
    p = subprocess.run(["git", "pack-objects", "--revs", str(stem)], cwd=other, input=rev.encode(),
                       capture_output=True, check=True)  # fmt: skip
    made = f"{stem}-{p.stdout.decode().strip()}"
    packs = store / "git" / "packs"
    os.chmod(packs / f"{name}.pack", 0o644)
    os.chmod(packs / f"{name}.idx", 0o644)
    (packs / f"{name}.pack").write_bytes(Path(made + ".pack").read_bytes())
    (packs / f"{name}.idx").write_bytes(Path(made + ".idx").read_bytes())
    b = tmp_path / "b"
    proc = run("git", "clone", f"s3data::{store.as_uri()}", str(b), check=False)
    assert proc.returncode != 0, proc.stderr
    assert "holds a different pack" in proc.stderr or "does not verify" in proc.stderr, proc.stderr
    assert not (b / "readme.txt").exists()
    unchanged()


def test_tampered_pack_bytes_fail_the_clone(tmp_path):
    _a, store = _bucket_project(tmp_path)
    m = json.loads(_latest_manifest(store).read_text())
    pack = store / "git" / "packs" / f"{m['packs'][0]['name']}.pack"
    os.chmod(pack, 0o644)
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pack.write_bytes(bytes(data))
    b = tmp_path / "b"
    proc = run("git", "clone", f"s3data::{store.as_uri()}", str(b), check=False)
    assert proc.returncode != 0 and "does not verify" in proc.stderr, proc.stderr
    assert not list((tmp_path).glob("b/.git/objects/pack/.tmp-s3data-*"))


# --------------------------------------------------------------------------
# where a cloned .gitdata sends data: said once


def test_clone_says_once_where_gitdata_sends_data(tmp_path):
    remote = tmp_path / "their-bucket"
    a = tmp_path / "a"
    a.mkdir()
    git(a, "init", "-q", "-b", "main")
    gd(a, "install")
    gd(a, "track", "*.bin")
    proc = gd(a, "remote", "add", "origin", remote.as_uri())
    assert "says where data goes" not in proc.stderr  # the user chose it here
    (a / "x.bin").write_bytes(b"x")
    git(a, "add", "-A")
    proc = run("git", "commit", "-qm", "x", cwd=a)
    assert "says where data goes" not in proc.stderr
    b = tmp_path / "b"
    proc = run("git", "clone", str(a), str(b))
    assert "says where data goes" in proc.stderr and remote.as_uri() in proc.stderr, proc.stderr
    (b / "y.bin").write_bytes(b"y")
    git(b, "add", "-A")
    proc = run("git", "commit", "-qm", "y", cwd=b)
    assert "says where data goes" not in proc.stderr  # once per clone
    # a pull that changes where data goes is said again
    git(a, "config", "-f", ".gitdata", "remote.origin.url", (tmp_path / "elsewhere").as_uri())
    git(a, "commit", "-qam", "move data")
    git(b, "pull", "-q", "--no-rebase")
    (b / "z.bin").write_bytes(b"z")
    said = run("git", "add", "-A", cwd=b).stderr  # the first command after the change says it
    git(b, "commit", "-qm", "z")
    said += run("git", "push", "origin", "HEAD:refs/heads/topic", cwd=b).stderr
    assert said.count("says where data goes") == 1 and "elsewhere" in said, said
    proc = run("git", "push", "origin", "HEAD:refs/heads/topic2", cwd=b)
    assert "says where data goes" not in proc.stderr


def test_link_in_a_shared_folder_bucket_is_not_followed(tmp_path, victim_dirs):
    _sentinel, home, unchanged = victim_dirs
    bucket = bucket_dir(tmp_path, {"ok.txt": b"ok"})
    os.symlink(home / ".ssh" / "id_ed25519", bucket / "key.txt")  # a co-writer's link
    a = attacker_repo(tmp_path, f'[storage "lab"]\n\turl = {bucket.as_uri()}\n')
    b = clone(tmp_path, a)
    gd(b, "storage", "stage", "lab")
    assert (b / "storages/lab/ok.txt").read_bytes() == b"ok"
    assert not (b / "storages/lab/key.txt").exists()
    unchanged()


def test_a_key_longer_than_a_file_name_can_be_is_refused_before_anything_is_written(
    tmp_path, moto_server, moto_bucket, monkeypatch
):
    use_server_env(monkeypatch, moto_server)
    long_key = "raw/" + "n" * 300 + ".csv"
    _put_raw(moto_server, moto_bucket, long_key, b"x")
    _put_raw(moto_server, moto_bucket, "raw/ok.csv", b"ok")
    p = tmp_path / "p"
    p.mkdir()
    git(p, "init", "-q", "-b", "main")
    gd(p, "install")
    gd(p, "dataset", "create", "d", "-o", f"endpoint_url={moto_server.endpoint}")
    proc = gd(p, "dataset", "add", "d", f"s3://{moto_bucket}/raw", check=False)
    assert proc.returncode == 1 and "longer than 255 bytes" in proc.stderr and "Traceback" not in proc.stderr
    assert "nothing was written" in proc.stderr
    assert not (p / "data" / "d" / "ok.csv").exists()
    proc = gd(p, "dataset", "add", "d", f"s3://{moto_bucket}/raw", "--exclude", "n*")
    assert (p / "data" / "d" / "ok.csv").exists()
    assert "1 file(s)" in proc.stdout, proc.stdout


@pytest.mark.parametrize("url, refused", [
    ("s3://AKID:secret@bucket/p", True),
    ("s3://token@bucket/p", True),
    ("https://u:p@host.example/x", True),
    ("s3://bucket/path@with-at", False),
    ("file:///home/a@b/data", False),
    ("s3://bucket", False),
    ("relative/path@x", False),
])  # fmt: skip
def test_one_userinfo_check_for_every_url_that_reaches_gitdata(url, refused):
    from gitdata.storage.errors import userinfo_problem

    problem = userinfo_problem(url)
    assert (problem is not None) == refused
    if problem:
        assert "secret" not in problem and "carries user info" in problem


def test_storage_and_dataset_urls_with_user_info_are_refused_and_not_echoed(tmp_path):
    p = tmp_path / "p"
    p.mkdir()
    git(p, "init", "-q", "-b", "main")
    before = (p / ".gitdata").read_bytes() if (p / ".gitdata").exists() else None
    for args in (["storage", "add", "lab", "s3://AKID:hunter2@bucket/lab"],
                 ["dataset", "create", "d", "--storage", "s3://AKID:hunter2@bucket/d"]):  # fmt: skip
        proc = subprocess.run(["git", "data", *args], cwd=p, capture_output=True, text=True)
        assert proc.returncode != 0 and "carries user info" in proc.stderr, proc.stderr
        assert "hunter2" not in proc.stdout + proc.stderr and "Traceback" not in proc.stderr
    after = (p / ".gitdata").read_bytes() if (p / ".gitdata").exists() else None
    assert after == before or b"hunter2" not in (after or b"")


# --------------------------------------------------------------------------
# a cloned repository: links inside a dataset folder


@pytest.mark.parametrize("link, target, command", [
    ("data/d/sub", "../../../victim", ("update", "d")),
    ("data/d/sub", "../../../victim", ("dataset", "add", "d")),
    ("data", "../victim", ("dataset", "add", "d")),
    ("data/d", "../../victim", ("dataset", "add", "d")),
    ("data", "../victim", ("manifest", "dataset", "add", "d")),
])  # fmt: skip
def test_tracked_symlink_in_a_dataset_folder_gets_no_pointer_written_through_it(
    tmp_path, victim_dirs, link, target, command
):
    """Pointer files of a dataset (update's new files, a re-registration) are written only after an
    O_NOFOLLOW walk: a link a clone brought into the dataset folder is not written through."""
    sentinel, _home, unchanged = victim_dirs
    src = bucket_dir(tmp_path, {"raw/a.txt": b"registered data\n", "raw/sub/new.txt": b"new object\n"})
    raw = (src / "raw").as_uri()
    files = {".gitattributes": b"data/d/** filter=s3data diff=s3data merge=s3data -text\n"}
    if link == "data/d/sub":  # (beside a link to the victim's folder it would land there)
        files["data/d/a.txt"] = _registered(f"{raw}/a.txt", 16)
    a = attacker_repo(tmp_path, f'[dataset "d"]\n\tpath = data/d\n\tsource = {raw}\n',
                      symlinks={link: target}, files=files)  # fmt: skip
    b = clone(tmp_path, a)
    gd(b, "install")
    assert os.path.islink(b / link)
    if command[0] == "manifest":  # recorded by one manifest: its pointer is walked to as well
        command = command[1:]
        git(b, "config", "gitdata.manifestThreshold", "1")
        (tmp_path / "remote").mkdir()
        gd(b, "remote", "add", "store", (tmp_path / "remote").as_uri())
    args = list(command) + ([raw] if command[0] == "dataset" else [])
    proc = gd(b, *args, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert link in out and "Traceback" not in out, out
    if command[0] == "update":
        assert "symlink" in out and "data/d/sub/new.txt" in out, out
    assert not (sentinel / "new.txt").exists() and not (sentinel / "d").exists()
    assert not (sentinel / "sub").exists() and not (sentinel / "a.txt").exists()
    assert not (sentinel / ".gitdata-manifest").exists()
    unchanged()


# --------------------------------------------------------------------------
# a cloned repository: a dataset manifest whose lines climb out


def test_dataset_manifest_with_a_path_that_climbs_out_is_refused_for_that_dataset_only(tmp_path, victim_dirs):
    """A manifest (content-addressed, so its oid matches whatever the attacker wrote) naming
    ``../../../victim/x`` is refused where it is read, naming the line; the other datasets are shown,
    read and staged as before, and nothing is written outside."""
    sentinel, _home, unchanged = victim_dirs
    src = bucket_dir(tmp_path, {"raw/f1.txt": b"f1\n", "raw/f2.txt": b"f2\n", "other/g1.txt": b"g1\n"})
    a = tmp_path / "attacker"
    a.mkdir()
    git(a, "init", "-q", "-b", "main")
    gd(a, "install")
    gd(a, "remote", "add", "origin", (tmp_path / "remote").as_uri())
    gd(a, "dataset", "create", "good")
    gd(a, "dataset", "add", "good", (src / "other").as_uri())
    gd(a, "dataset", "create", "bad")
    run("git", "-c", "gitdata.manifestThreshold=1", "data", "dataset", "add", "bad", (src / "raw").as_uri(), cwd=a)
    code = (
        "from gitdata.project import Project\n"
        "from gitdata.datasets import objects, model, manifest as mf\n"
        "from gitdata.pointer import parse\n"
        "p = Project.open('.')\n"
        "ds = model.get(p, 'bad')\n"
        "old = parse(open('data/bad/.gitdata-manifest', 'rb').read())\n"
        "entries = list(objects.read_manifest(p, ds, old))\n"
        "evil = mf.Entry('../../../victim/owned.txt', entries[0].pointer)\n"
        "new = objects.write_manifest(p, iter(sorted(entries + [evil], key=lambda e: e.path.encode())))\n"
        "open('data/bad/.gitdata-manifest', 'wb').write(new.encode())\n"
    )  # (encode writes what it is given: the attacker's own git data)
    run(sys.executable, "-c", code, cwd=a)
    git(a, "add", "-A")
    git(a, "commit", "-qm", "two datasets")
    gd(a, "push")
    b = clone(tmp_path, a)
    gd(b, "install")
    proc = gd(b, "status", check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "error: dataset bad: manifest line" in proc.stderr and "../../../victim/owned.txt" in proc.stderr
    assert "dataset good: 1 pointer only" in proc.stdout, proc.stdout
    rows = json.loads(gd(b, "status", "--json", check=False).stdout)
    assert {(r["name"], r["local"]) for r in rows} == {("good", "pointer only"), ("bad", "unreadable")}
    import gitdata
    from gitdata.errors import GitDataError

    assert gitdata.open("data/good/g1.txt", repo=str(b)).read() == b"g1\n"
    with pytest.raises(GitDataError, match="manifest was refused"):
        gitdata.open("data/bad/f1.txt", repo=str(b))
    import fsspec

    assert fsspec.filesystem("gitdata", repo=str(b)).ls("data/good", detail=False) == ["data/good/g1.txt"]
    proc = gd(b, "dataset", "stage", "--all", check=False)
    assert proc.returncode != 0 and "../../../victim/owned.txt" in proc.stderr, proc.stderr
    assert (b / "data/good/g1.txt").read_bytes() == b"g1\n"  # the rest proceeds
    assert not (sentinel / "owned.txt").exists() and not (tmp_path / "owned.txt").exists()
    unchanged()


def test_tracked_symlink_in_a_manifest_datasets_folder_is_not_staged_through(tmp_path, victim_dirs):
    """A dataset recorded by a manifest is staged in its folder (as --location stages): a link a clone
    put beside the manifest's pointer is refused for the files under it, by name; nothing behind it
    is adopted, written or removed, the rest is staged and unstaged as usual."""
    sentinel, _home, unchanged = victim_dirs
    (sentinel / "x.txt").write_bytes(b"x\n")  # the same bytes as the source's: not adopted either
    src = bucket_dir(tmp_path, {"raw/f1.txt": b"f1\n", "raw/sub/x.txt": b"x\n"})
    a = tmp_path / "attacker"
    a.mkdir()
    git(a, "init", "-q", "-b", "main")
    gd(a, "install")
    gd(a, "remote", "add", "origin", (tmp_path / "remote").as_uri())
    gd(a, "dataset", "create", "m")
    run("git", "-c", "gitdata.manifestThreshold=1", "data", "dataset", "add", "m", (src / "raw").as_uri(), cwd=a)
    os.symlink("../../../victim", a / "data/m/sub")
    git(a, "add", "-A")
    git(a, "commit", "-qm", "a manifest and a link beside it", "--no-verify")  # (the attacker skips our hook)
    gd(a, "push")
    b = clone(tmp_path, a)
    gd(b, "install")
    assert os.path.islink(b / "data/m/sub")
    before = snapshot(sentinel)
    proc = gd(b, "dataset", "stage", "m", check=False)
    assert proc.returncode != 0 and "data/m/sub/x.txt" in proc.stderr and "symlink" in proc.stderr, proc.stderr
    assert (b / "data/m/f1.txt").read_bytes() == b"f1\n"  # the rest proceeds
    rows = {r["path"]: r["local"] for r in json.loads(gd(b, "status", "--json", check=False).stdout)}
    assert rows["data/m/f1.txt"] == "staged" and rows["data/m/sub/x.txt"] != "staged", rows
    gd(b, "dataset", "unstage", "m", check=False)
    assert not (b / "data/m/f1.txt").exists()
    assert snapshot(sentinel) == before
    (sentinel / "x.txt").unlink()  # (put there by this test)
    unchanged()


def test_new_bucket_keys_that_climb_out_are_named_by_status_and_update_and_skipped(
    tmp_path, victim_dirs, moto_server, moto_bucket, monkeypatch
):
    """A co-writer adds keys with ``..`` and ``.git`` parts under a registered prefix: `status --remote`
    lists each as refused (by name), `update` records the other new objects and names those."""
    sentinel, _home, unchanged = victim_dirs
    use_server_env(monkeypatch, moto_server)
    _put_raw(moto_server, moto_bucket, "raw/a.csv", b"a\n")
    p = tmp_path / "p"
    p.mkdir()
    git(p, "init", "-q", "-b", "main")
    gd(p, "install")
    gd(p, "dataset", "create", "d", "-o", f"endpoint_url={moto_server.endpoint}")
    gd(p, "dataset", "add", "d", f"s3://{moto_bucket}/raw")
    git(p, "commit", "-qm", "register")
    evil = ["sub/../../../victim/owned.txt", "x/.git/config"]
    for key in evil:
        _put_raw(moto_server, moto_bucket, f"raw/{key}", b"owned\n")
    _put_raw(moto_server, moto_bucket, "raw/new.csv", b"new\n")
    rows = json.loads(gd(p, "status", "--remote", "--json").stdout)
    refused = {r["path"]: r for r in rows if r["remote"] == "refused"}
    assert set(refused) == {f"s3://{moto_bucket}/raw/{k}" for k in evil}, rows
    assert all(r["local"] is None and "object key" in r["detail"] for r in refused.values())
    assert {r["path"] for r in rows if r["remote"] == "new"} == {"data/d/new.csv"}
    assert gd(p, "status", "--remote", "--exit-code", check=False).returncode == 1
    proc = gd(p, "update", "d", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    for key in evil:
        assert key in proc.stderr, proc.stderr
    assert (p / "data/d/new.csv").read_bytes().startswith(b"version gitdata/1")  # the rest proceeds
    assert not (p / "data/d/sub").exists() and not (p / "data/d/x").exists()
    assert not (sentinel / "owned.txt").exists()
    unchanged()


def test_docs_config_table_lists_exactly_the_tracked_option_allow_list():
    """docs/config.md's table of what `.gitdata` may set is `config.TRACKED_OPTIONS`, row by row."""
    import re

    from gitdata.config import TRACKED_OPTIONS

    text = (Path(__file__).resolve().parent.parent / "docs" / "config.md").read_text()
    rows = {}
    for line in text.splitlines():
        m = re.match(r"\| (`[a-z0-9]+://`[^|]*) \| (.*) \|$", line)
        if m:
            family = {"s3": "s3", "gs": "gcs", "file": "file", "http": "http", "memory": "memory"}[
                re.match(r"`([a-z0-9]+)://", m.group(1)).group(1)
            ]
            cell = re.sub(r"\([^)]*\)", "", m.group(2))  # "(only ...)": the nested keys
            rows[family] = {k for k in re.findall(r"`([a-z_]+)`", cell)}
    assert rows == {k: set(v) for k, v in TRACKED_OPTIONS.items()}


def test_a_local_file_name_that_is_not_utf8_is_refused_by_sync_not_a_crash(tmp_path, hermetic_git_env):
    """A storage folder can hold a file whose name is not UTF-8 (unpacked from a foreign
    archive); no object key can name it. Sync names it as refused and syncs the rest; it
    crashed before (and had uploaded the file under a mangled key first)."""
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    (bucket / "a.txt").write_bytes(b"a\n")
    proj = tmp_path / "p"
    proj.mkdir()
    git(proj, "init", "-q")
    gd(proj, "storage", "add", "raw", bucket.as_uri(), "--to", "raw")
    gd(proj, "storage", "stage", "raw")
    raw = os.fsencode(proj / "raw")
    with open(raw + b"/bad\xff.txt", "wb") as f:
        f.write(b"not synced\n")
    os.makedirs(raw + b"/dir\xfe")
    with open(raw + b"/dir\xfe/inner.txt", "wb") as f:
        f.write(b"not synced either\n")
    (proj / "raw" / "good.txt").write_bytes(b"synced\n")
    for args in (("--json",), ()):
        proc = gd(proj, "storage", "sync", "raw", *args, check=False)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    [report] = json.loads(gd(proj, "storage", "sync", "raw", "--json", check=False).stdout)
    refused = {r["key"] for r in report["refused"]}
    assert refused == {os.fsdecode(b"bad\xff.txt"), os.fsdecode(b"dir\xfe")}, report
    assert all("not valid UTF-8" in r["error"] for r in report["refused"])
    assert "not valid UTF-8" in proc.stderr and "rename it" in proc.stderr
    assert sorted(p.name for p in bucket.iterdir()) == ["a.txt", "good.txt"]  # nothing under a mangled key
    assert (bucket / "good.txt").read_bytes() == b"synced\n"
    with open(raw + b"/bad\xff.txt", "rb") as f:
        assert f.read() == b"not synced\n"  # left as it is
    # status shows it as never to be synced, saying why
    rows = {r["path"]: r for r in json.loads(gd(proj, "status", "--json", check=False).stdout)}
    bad = rows[os.fsdecode(b"bad\xff.txt")]
    assert (bad["local"], bad["remote"]) == ("not pushed", "refused") and "not valid UTF-8" in bad["detail"]
