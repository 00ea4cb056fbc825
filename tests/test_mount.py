"""Mount mode on real FUSE: dataset mounts (read-only views) and storage mounts (rclone).

Real servers: moto with a versioned bucket (registered files pinned to their
recorded versions), ``rclone serve s3`` (no versions; storage mounts).
Skipped only where /dev/fuse cannot be opened.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from gitdata.pointer import parse
from helpers import registered_project, use_server_env


def _fuse_or_skip() -> None:
    try:
        fd = os.open("/dev/fuse", os.O_RDWR)
    except OSError as err:
        pytest.skip(f"/dev/fuse cannot be opened here: {err}")
    os.close(fd)


@pytest.fixture(autouse=True)
def fuse() -> None:
    _fuse_or_skip()


def git(cwd, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def gd(cwd, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["git", "data", *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)  # fmt: skip
    if ok:
        assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc


def mounted(path: Path) -> bool:
    return subprocess.run(["mountpoint", "-q", str(path)]).returncode == 0


@pytest.fixture
def projects():
    """Projects made by a test; everything they mounted is unmounted afterwards."""
    made: list[Path] = []
    yield made
    for p in made:
        subprocess.run(["git", "data", "unmount", "--all", "--force"], cwd=p, capture_output=True,
                       stdin=subprocess.DEVNULL, timeout=60)  # fmt: skip
        for line in Path("/proc/mounts").read_text().splitlines():
            mp = line.split()[1]
            if mp.startswith(str(p)):
                subprocess.run(["fusermount3", "-u", "-z", mp], capture_output=True)


def _registered(tmp_path: Path, projects: list, url: str, endpoint: str, name: str = "reg") -> Path:
    projects.append(tmp_path / name)  # unmounted at the end, whatever happens
    return registered_project(tmp_path / name, url, endpoint)


def _pointers(p: Path, folder: str) -> dict[str, int]:
    """Mount-relative path -> size, from the pointers in the index (one `git cat-file --batch`)."""
    entries = []
    for line in git(p, "ls-files", "-s", folder).splitlines():
        meta, path = line.split("\t", 1)
        entries.append((path[len(folder) + 1 :], meta.split()[1]))
    data = subprocess.run(["git", "cat-file", "--batch"], cwd=p, check=True, capture_output=True,
                          input="".join(b + "\n" for _r, b in entries).encode()).stdout  # fmt: skip
    out, pos = {}, 0
    for rel, _blob in entries:
        header_end = data.index(b"\n", pos)
        size = int(data[pos:header_end].split()[2])
        out[rel] = parse(data[header_end + 1 : header_end + 1 + size]).size
        pos = header_end + 1 + size + 1
    return out


def _walk(root: Path) -> dict[str, int]:
    out = {}
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            full = os.path.join(dirpath, n)
            out[os.path.relpath(full, root)] = os.stat(full).st_size
    return out


def test_dataset_mount_reads_recorded_versions_after_overwrite(tmp_path, projects, moto_server,
                                                               versioned_moto_bucket, monkeypatch):  # fmt: skip
    use_server_env(monkeypatch, moto_server)
    import s3fs

    s3 = s3fs.S3FileSystem(endpoint_url=moto_server.endpoint, skip_instance_cache=True)
    b = versioned_moto_bucket
    recorded = {"obs.csv": b"site,value\nA,1\n", "deep/er/scan.bin": os.urandom(5 << 20), "empty.txt": b""}
    for key, data in recorded.items():
        s3.pipe_file(f"{b}/raw/{key}", data)
    p = _registered(tmp_path, projects, f"s3://{b}/raw", moto_server.endpoint)
    for key in recorded:
        s3.pipe_file(f"{b}/raw/{key}", b"overwritten " + key.encode())
    res = gd(p, "dataset", "stage", "field", "--mount")
    assert "mode mount" in res.stdout
    mp = p / "data" / "field"
    assert mounted(mp)
    moto_server.reset_counts()
    assert _walk(mp) == _pointers(p, "data/field") == {k: len(v) for k, v in recorded.items()}
    listed = moto_server.counts(versioned_moto_bucket, by_api=True)
    # names and sizes from the pointers: no listing, no HEAD; at most the warm-up's one GET of
    # one file per dataset (view.warm, on its own thread: it may land after the counter's reset)
    assert set(listed) <= {"GetObject"} and listed["GetObject"] <= 1, listed
    for key, data in recorded.items():
        assert (mp / key).read_bytes() == data  # the recorded versions, not the bucket's current objects
    assert moto_server.counts(versioned_moto_bucket)["GET_OBJECT"] >= 2  # the counter sees the mount's requests
    with open(mp / "deep/er/scan.bin", "rb") as f:  # a range read
        f.seek(3 << 20)
        assert f.read(100) == recorded["deep/er/scan.bin"][3 << 20 : (3 << 20) + 100]
    with pytest.raises(OSError) as err:
        (mp / "new.txt").write_bytes(b"x")
    assert err.value.errno in (errno.EROFS, errno.EACCES, errno.EPERM)
    assert git(p, "status", "--porcelain") == ""
    rows = json.loads(gd(p, "mount", "ls", "--json").stdout)
    assert [(r["name"], r["kind"], r["state"], r["mountpoint"]) for r in rows] == [
        ("field", "dataset", "healthy", str(mp))
    ]
    assert gd(p, "dataset", "show", "field").stdout.count("mount") >= 1
    res = gd(p, "status")
    assert "stale" not in res.stderr and "field" in res.stdout
    gd(p, "unmount", "field")
    assert not mounted(mp)
    assert (mp / "obs.csv").read_bytes().startswith(b"version gitdata/1")
    assert git(p, "status", "--porcelain") == ""
    assert json.loads(gd(p, "mount", "ls", "--json").stdout) == []
    assert "skip" not in git(p, "ls-files", "-v", "data/field").split()[0].lower()  # 'H', not 'S'
    assert git(p, "ls-files", "-v", "data/field").split()[0] == "H"


def test_kill_9_gives_a_stale_mount_that_unmount_cleans(tmp_path, projects, moto_server,
                                                       versioned_moto_bucket, monkeypatch):  # fmt: skip
    use_server_env(monkeypatch, moto_server)
    import s3fs

    s3 = s3fs.S3FileSystem(endpoint_url=moto_server.endpoint, skip_instance_cache=True)
    s3.pipe_file(f"{versioned_moto_bucket}/raw/a.txt", b"A\n")
    p = _registered(tmp_path, projects, f"s3://{versioned_moto_bucket}/raw", moto_server.endpoint)
    mp = p / "data" / "field"
    gd(p, "dataset", "stage", "field", "--mount")
    pid = json.loads(gd(p, "mount", "ls", "--json").stdout)[0]["pid"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while True:
        try:
            os.listdir(mp)  # a stat may be answered from the kernel's attribute cache
        except OSError as err:
            if err.errno != errno.ECONNABORTED:  # that one: a request under way when it was killed
                assert err.errno == errno.ENOTCONN
                break
        assert time.monotonic() < deadline, "the killed mount still answers"
        time.sleep(0.05)
    assert json.loads(gd(p, "mount", "ls", "--json").stdout)[0]["state"] == "stale"
    assert "stale" in gd(p, "mount", "ls").stdout
    assert "dataset field is mounted but stale" in gd(p, "status").stderr
    gd(p, "unmount", "field")
    assert not mounted(mp)
    assert (mp / "a.txt").read_bytes().startswith(b"version gitdata/1")
    assert git(p, "status", "--porcelain") == ""
    # again, and a new stage --mount over a stale one cleans it by itself
    gd(p, "dataset", "stage", "field", "--mount")
    assert (mp / "a.txt").read_bytes() == b"A\n"
    os.kill(json.loads(gd(p, "mount", "ls", "--json").stdout)[0]["pid"], signal.SIGKILL)
    time.sleep(0.2)
    gd(p, "dataset", "stage", "field", "--mount")
    assert (mp / "a.txt").read_bytes() == b"A\n"
    assert json.loads(gd(p, "mount", "ls", "--json").stdout)[0]["state"] == "healthy"
    # switching to copy mode unmounts first
    gd(p, "dataset", "stage", "field", "--copy")
    assert not mounted(mp)
    assert (mp / "a.txt").read_bytes() == b"A\n"
    assert git(p, "status", "--porcelain") == ""
    # and from copy back to mount, then to reference
    gd(p, "dataset", "stage", "field", "--mount")
    assert mounted(mp) and (mp / "a.txt").read_bytes() == b"A\n"
    gd(p, "dataset", "stage", "field", "--reference")
    assert not mounted(mp)
    assert (mp / "a.txt").read_bytes().startswith(b"version gitdata/1")
    assert git(p, "status", "--porcelain") == ""


def test_fuse_unavailable_is_one_clear_line_and_leaves_nothing(tmp_path, projects, moto_server,
                                                               versioned_moto_bucket, monkeypatch):  # fmt: skip
    use_server_env(monkeypatch, moto_server)
    import s3fs

    s3 = s3fs.S3FileSystem(endpoint_url=moto_server.endpoint, skip_instance_cache=True)
    s3.pipe_file(f"{versioned_moto_bucket}/raw/a.txt", b"A\n")
    p = _registered(tmp_path, projects, f"s3://{versioned_moto_bucket}/raw", moto_server.endpoint)
    git(p, "config", "gitdata.fusermount", "/nonexistent/fusermount3")
    git(p, "config", "-f", ".gitdata", "dataset.field.mode", "mount")  # the tracked default mode
    git(p, "commit", "-qam", "mount by default")
    res = gd(p, "dataset", "stage", "field", ok=False)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        "error: cannot mount dataset 'field': /nonexistent/fusermount3 is not installed (Debian "
        "package fuse3); stage it with --copy or --reference instead, or mount through a mount service "
        "(GITDATA_MOUNT_SERVICE)"
    ]
    assert "Traceback" not in res.stderr
    mp = p / "data" / "field"
    assert not mounted(mp)
    assert (mp / "a.txt").read_bytes().startswith(b"version gitdata/1")
    assert git(p, "status", "--porcelain") == ""
    assert git(p, "ls-files", "-v", "data/field").split()[0] == "H"
    assert subprocess.run(["git", "config", "gitdata.dataset.field.mode"], cwd=p).returncode == 1
    assert json.loads(gd(p, "mount", "ls", "--json").stdout) == []
    assert not (p / ".git/gitdata/mounts/dataset-field.json").exists()
    # a storage (mode = mount in .gitdata): the same, and its copy has no --copy flag to suggest
    gd(p, "storage", "add", "lab", f"s3://{versioned_moto_bucket}/lab", "-o",
       f"endpoint_url={moto_server.endpoint}", "--mode", "mount", "--no-check")  # fmt: skip
    res = gd(p, "storage", "stage", "lab", ok=False)
    assert res.returncode == 1 and res.stderr.strip().splitlines() == [
        "error: cannot mount storage 'lab': /nonexistent/fusermount3 is not installed (Debian package fuse3); "
        "copy it (`git data storage stage lab` without --mount) instead, or mount through a mount service "
        "(GITDATA_MOUNT_SERVICE)"
    ]
    assert not (p / "storages").exists() and not mounted(p / "storages" / "lab")
    assert json.loads(gd(p, "mount", "ls", "--json").stdout) == []
    assert not (p / ".git/gitdata/mounts/storage-lab.json").exists()


def _our_command_lines(mount_pid: int) -> str:
    """Command lines (as `ps` shows them) of the mount process and of every git, git-data,
    rclone or `python -m` process now running: the ones our code starts. Other processes on
    a shared CI machine (a harness that passes its environment as an argument) are not ours."""
    lines = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in argv if a]
        if not words:
            continue
        ours = os.path.basename(words[0]) in ("git", "git-data", "git-remote-s3data", "rclone") or (
            "python" in os.path.basename(words[0]) and words[1:2] == ["-m"] and words[2:3] != ["pytest"])
        if int(entry.name) == mount_pid or ours:
            lines.append(f"{entry.name}: {' '.join(words)}")
    return "\n".join(lines)


def test_storage_mount_writes_reach_the_bucket_by_unmount(tmp_path, projects, rclone_server, rclone_bucket):
    """Credentials stored with `credentials set` (none in the environment) reach rclone through
    its environment only; what is written under the mount is in the bucket when unmount returns."""
    p = tmp_path / "st"
    p.mkdir()
    projects.append(p)
    git(p, "init", "-q", "-b", "main")
    gd(p, "install")
    gd(p, "storage", "add", "lab", f"s3://{rclone_bucket}/lab", "-o", f"endpoint_url={rclone_server.endpoint}")
    git(p, "add", "-A")
    git(p, "commit", "-qm", "map lab")
    secret = rclone_server.env["AWS_SECRET_ACCESS_KEY"]
    proc = subprocess.run(["git", "data", "credentials", "set", "lab", "--stdin"], cwd=p, capture_output=True,
                          input=f"{rclone_server.env['AWS_ACCESS_KEY_ID']}\n{secret}\n".encode())  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    served = rclone_server.bucket_path(rclone_bucket)
    (served / "lab" / "raw").mkdir(parents=True)
    (served / "lab" / "raw" / "in.csv").write_bytes(b"a,b\n1,2\n")
    rclone_server.flush_dir_cache()
    res = gd(p, "storage", "stage", "lab", "--mount")
    mp = p / "storages" / "lab"
    assert "mounted storage lab" in res.stdout and mounted(mp)
    pid = json.loads(gd(p, "mount", "ls", "--json").stdout)[0]["pid"]
    ours = _our_command_lines(pid)
    assert secret not in ours and "rclone" in ours
    assert secret.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
    assert not list((p / ".git").rglob("rclone.conf"))
    assert (mp / "raw" / "in.csv").read_bytes() == b"a,b\n1,2\n"
    (mp / "figures").mkdir()
    big = os.urandom(3 << 20)
    (mp / "figures" / "fig1.png").write_bytes(big)
    (mp / "interim.txt").write_text("step 1\n")
    assert git(p, "status", "--porcelain") == ""
    gd(p, "unmount", "lab")
    assert not mounted(mp)
    assert (served / "lab" / "figures" / "fig1.png").read_bytes() == big
    assert (served / "lab" / "interim.txt").read_bytes() == b"step 1\n"
    assert json.loads(gd(p, "mount", "ls", "--json").stdout) == []
    # mount -> copy in the same clone: unmounted first, then copied
    gd(p, "storage", "stage", "lab", "--mount")
    assert mounted(mp)
    res = gd(p, "storage", "stage", "lab")
    assert "unmounted storage lab" in res.stderr and not mounted(mp)
    assert (mp / "interim.txt").read_bytes() == b"step 1\n"
    # a second clone copies them down
    c = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(p), str(c))
    projects.append(c)
    gd(c, "storage", "stage", "lab")
    assert (c / "storages" / "lab" / "figures" / "fig1.png").read_bytes() == big
    assert (c / "storages" / "lab" / "raw" / "in.csv").read_bytes() == b"a,b\n1,2\n"


def test_storage_mount_of_an_unsupported_url_is_refused(tmp_path, projects):
    p = tmp_path / "gs"
    p.mkdir()
    projects.append(p)
    git(p, "init", "-q", "-b", "main")
    gd(p, "install")
    gd(p, "storage", "add", "g", "gs://bucket/x", "-o", "token=anon", "--no-check")  # nothing leaves 127.0.0.1
    res = gd(p, "storage", "stage", "g", "--mount", ok=False)
    assert res.returncode == 1 and "storage mounts support s3://" in res.stderr
    gd(p, "storage", "add", "g2", "gs://bucket/y", "-o", "token=anon", "--mode", "mount", "--no-check")
    res = gd(p, "storage", "stage", "g2", ok=False)  # mode = mount in .gitdata: the same path
    assert res.returncode == 1 and "storage mounts support s3://" in res.stderr
    assert not (p / "storages" / "g").exists()


def test_changed_unversioned_source_gives_eio_for_that_file_only(tmp_path, projects, rclone_server,
                                                                 rclone_bucket, monkeypatch):  # fmt: skip
    use_server_env(monkeypatch, rclone_server)
    served = rclone_server.bucket_path(rclone_bucket)
    (served / "raw").mkdir(parents=True)
    (served / "raw" / "a.csv").write_bytes(b"x,1\n")
    (served / "raw" / "b.csv").write_bytes(b"y,2\n")
    rclone_server.flush_dir_cache()
    p = _registered(tmp_path, projects, f"s3://{rclone_bucket}/raw", rclone_server.endpoint)
    (served / "raw" / "a.csv").write_bytes(b"x,1,changed\n")
    rclone_server.flush_dir_cache()
    gd(p, "dataset", "stage", "field", "--mount")
    mp = p / "data" / "field"
    with pytest.raises(OSError) as err:
        (mp / "a.csv").read_bytes()
    assert err.value.errno == errno.EIO
    assert (mp / "b.csv").read_bytes() == b"y,2\n"
    assert os.stat(mp / "a.csv").st_size == 4  # the recorded size
    log = json.loads(gd(p, "mount", "ls", "--json").stdout)[0]["log"]
    assert "data/field/a.csv: its source" in Path(log).read_text()
    assert "changed since it was recorded" in Path(log).read_text()


def test_two_mounts_own_objects_and_many_files(tmp_path, projects, rclone_server, rclone_bucket, monkeypatch):
    """A dataset of the project's own files (read by oid from the data remote) and a registered
    one of 1,000 files, mounted at once; os.walk + stat of the mount matches the pointers."""
    use_server_env(monkeypatch, rclone_server)
    served = rclone_server.bucket_path(rclone_bucket)
    n = 1000
    for i in range(n):
        d = served / "many" / f"d{i % 20:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:05d}.txt").write_bytes(b"%d\n" % i * (i % 7))
    rclone_server.flush_dir_cache()
    p = _registered(tmp_path, projects, f"s3://{rclone_bucket}/many", rclone_server.endpoint)
    gd(p, "remote", "add", "origin", (tmp_path / "remote").as_uri())
    gd(p, "track", "data/own/**")
    own = {"a/x.bin": os.urandom(1 << 20), "y.txt": b"mine\n"}
    gd(p, "dataset", "create", "own")
    for rel, data in own.items():
        (p / "data" / "own" / rel).parent.mkdir(parents=True, exist_ok=True)
        (p / "data" / "own" / rel).write_bytes(data)
    git(p, "add", "-A")
    git(p, "commit", "-qm", "own data")
    gd(p, "push")
    a, p = p, tmp_path / "clone"  # a clone with pointers only and an empty cache: bytes come by oid
    subprocess.run(["git", "clone", "-q", str(a), str(p)], check=True, capture_output=True,
                   env={**os.environ, "GIT_DATA_SKIP_SMUDGE": "1"})  # fmt: skip
    projects.append(p)
    assert (p / "data/own/y.txt").read_bytes().startswith(b"version gitdata/1")
    gd(p, "dataset", "stage", "own", "--mount")
    gd(p, "dataset", "stage", "field", "--mount")
    rows = {r["name"]: r["state"] for r in json.loads(gd(p, "mount", "ls", "--json").stdout)}
    assert rows == {"own": "healthy", "field": "healthy"}
    t = time.monotonic()
    walked = _walk(p / "data" / "field")
    took = time.monotonic() - t
    assert walked == _pointers(p, "data/field") and len(walked) == n
    assert (p / "data/field/d03/f00003.txt").read_bytes() == b"3\n" * 3
    for rel, data in own.items():
        assert (p / "data" / "own" / rel).read_bytes() == data
    assert git(p, "status", "--porcelain") == ""
    gd(p, "unmount", "--all")
    assert not mounted(p / "data" / "own") and not mounted(p / "data" / "field")
    assert git(p, "status", "--porcelain") == ""
    assert took < 10, f"walking {n} files took {took:.1f} s"


def test_missing_credentials_without_a_terminal_is_a_clear_error(tmp_path, projects, rclone_server,
                                                                 rclone_bucket, monkeypatch):  # fmt: skip
    use_server_env(monkeypatch, rclone_server)
    served = rclone_server.bucket_path(rclone_bucket)
    (served / "raw").mkdir(parents=True)
    (served / "raw" / "a.csv").write_bytes(b"x\n")
    rclone_server.flush_dir_cache()
    p = _registered(tmp_path, projects, f"s3://{rclone_bucket}/raw", rclone_server.endpoint)
    for k in rclone_server.env:
        monkeypatch.delenv(k)
    t = time.monotonic()
    res = gd(p, "dataset", "stage", "field", "--mount", ok=False)
    assert time.monotonic() - t < 30
    assert res.returncode != 0 and "no credentials" in res.stderr and "Traceback" not in res.stderr
    assert not mounted(p / "data" / "field")
    assert (p / "data/field/a.csv").read_bytes().startswith(b"version gitdata/1")
    assert json.loads(gd(p, "mount", "ls", "--json").stdout) == []
    # a storage mount: the same (rclone is never started without credentials)
    gd(p, "storage", "add", "lab", f"s3://{rclone_bucket}/lab", "-o", f"endpoint_url={rclone_server.endpoint}",
       "--no-check")  # fmt: skip
    t = time.monotonic()
    res = gd(p, "storage", "stage", "lab", "--mount", ok=False)
    assert time.monotonic() - t < 30
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert res.stderr.startswith("error: no credentials for storage 'lab'") and "credentials set lab" in res.stderr
    assert not (p / "storages").exists() and not mounted(p / "storages" / "lab")
    assert json.loads(gd(p, "mount", "ls", "--json").stdout) == []


def _own_project(tmp_path: Path, projects: list, name: str = "own") -> Path:
    """A project whose dataset `own` holds the project's own files (data remote: a local folder)."""
    p = tmp_path / name
    p.mkdir()
    projects.append(p)
    git(p, "init", "-q", "-b", "main")
    gd(p, "install")
    gd(p, "remote", "add", "origin", (tmp_path / f"{name}-remote").as_uri())
    gd(p, "track", "data/own/**")
    gd(p, "dataset", "create", "own")
    return p


def test_dataset_mount_follows_checkout_and_switch(tmp_path, projects):
    """After `git switch`/`checkout` to another commit the mount shows that commit's files at
    once; git writes nothing into the mount and `git status` stays clean."""
    p = _own_project(tmp_path, projects)
    d = p / "data" / "own"
    v1 = {"a.bin": os.urandom(3000), "b.txt": b"only in old\n", "sub/s.txt": b"same\n"}
    v2 = {"a.bin": os.urandom(70000), "c.txt": b"only in new\n", "sub/s.txt": b"same\n"}
    for rel, data in v1.items():
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_bytes(data)
    git(p, "add", "-A")
    git(p, "commit", "-qm", "old")
    git(p, "branch", "old")
    (d / "b.txt").unlink()
    for rel, data in v2.items():
        (d / rel).write_bytes(data)
    git(p, "add", "-A")
    git(p, "commit", "-qm", "new")
    gd(p, "push")
    gd(p, "dataset", "stage", "own", "--mount")
    assert mounted(d)
    assert _walk(d) == {k: len(v) for k, v in v2.items()}
    assert os.stat(d / "a.bin").st_size == 70000  # attributes now kept by the kernel
    assert (d / "a.bin").read_bytes() == v2["a.bin"]  # and pages
    for switch, want in ((["switch", "-q", "old"], v1), (["checkout", "-q", "main"], v2),
                         (["checkout", "-q", "old"], v1)):  # fmt: skip
        proc = subprocess.run(["git", *switch], cwd=p, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert "overwritten" not in proc.stderr
        assert sorted(os.listdir(d)) == sorted({k.split("/")[0] for k in want})
        for rel, data in want.items():
            assert (d / rel).read_bytes() == data, rel
            assert os.stat(d / rel).st_size == len(data)
        gone = (set(v1) | set(v2)) - set(want)
        for rel in gone:
            with pytest.raises(FileNotFoundError):
                (d / rel).read_bytes()
        assert git(p, "status", "--porcelain") == ""
        assert {line.split()[0] for line in git(p, "ls-files", "-v", "data/own").splitlines()} == {"S"}
        assert mounted(d)
    # a stat of a path the kernel kept, without reading the folder first: fresh within a second
    git(p, "checkout", "-q", "main")
    deadline = time.monotonic() + 1.0
    while os.stat(d / "a.bin").st_size != 70000:
        assert time.monotonic() < deadline, "the kernel kept the old size"
        time.sleep(0.02)
    gd(p, "unmount", "own")
    assert not mounted(d)
    assert sorted(_pointers(p, "data/own")) == sorted(v2)
    for rel in v2:
        assert (d / rel).read_bytes().startswith(b"version gitdata/1")
    assert not (d / "b.txt").exists()
    assert git(p, "status", "--porcelain") == ""
    assert {line.split()[0] for line in git(p, "ls-files", "-v").splitlines()} == {"H"}
    assert subprocess.run(["git", "config", "core.sparseCheckout"], cwd=p, capture_output=True).stdout == b""
    assert not (p / ".git/info/sparse-checkout").exists()
    git(p, "checkout", "-q", "old")  # copy mode again: git checks out (and smudges) as usual
    assert (d / "b.txt").read_bytes() == v1["b.txt"]
    assert git(p, "status", "--porcelain") == ""



def test_dataset_copy_with_local_edits_refuses_the_mount_and_keeps_them(tmp_path, projects):
    """copy -> mount with a changed file and a new one in the copy: refused, naming the file,
    nothing mounted, both kept; committed and pushed, the mount shows the edit; back to copy and
    to reference, nothing is lost."""
    p = _own_project(tmp_path, projects)
    d = p / "data" / "own"
    d.mkdir(parents=True)
    (d / "a.txt").write_bytes(b"v1\n")
    (d / "b.txt").write_bytes(b"untouched\n")
    git(p, "add", "-A")
    git(p, "commit", "-qm", "v1")
    gd(p, "push")
    gd(p, "dataset", "stage", "own", "--copy")
    (d / "a.txt").write_bytes(b"edited in the copy\n")
    (d / "new.txt").write_bytes(b"not committed\n")
    res = gd(p, "dataset", "stage", "own", "--mount", ok=False)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == [
        "error: dataset 'own' was not mounted: data/own/a.txt is changed in the work tree (commit it, or "
        "`git restore` it); `git data push` or commit it (or restore it), then stage with --mount again"
    ]
    assert not mounted(d)
    assert (d / "a.txt").read_bytes() == b"edited in the copy\n"
    assert (d / "new.txt").read_bytes() == b"not committed\n"
    assert json.loads(gd(p, "mount", "ls", "--json").stdout) == []
    git(p, "add", "-A")
    git(p, "commit", "-qm", "v2")
    gd(p, "push")
    gd(p, "dataset", "stage", "own", "--mount")
    assert mounted(d)
    assert _walk(d) == {"a.txt": 19, "b.txt": 10, "new.txt": 14}
    assert (d / "a.txt").read_bytes() == b"edited in the copy\n"
    assert git(p, "status", "--porcelain") == ""
    gd(p, "dataset", "stage", "own", "--reference")
    assert not mounted(d) and (d / "new.txt").read_bytes().startswith(b"version gitdata/1")
    gd(p, "dataset", "stage", "own", "--copy")
    assert (d / "a.txt").read_bytes() == b"edited in the copy\n" and (d / "b.txt").read_bytes() == b"untouched\n"
    assert git(p, "status", "--porcelain") == ""

def test_dataset_mount_keeps_the_users_own_sparse_checkout(tmp_path, projects):
    p = _own_project(tmp_path, projects)
    (p / "data" / "own").mkdir(parents=True)
    (p / "data" / "own" / "x.txt").write_bytes(b"x\n")
    (p / "docs").mkdir()
    (p / "docs" / "big.txt").write_text("left out by the user\n")
    git(p, "add", "-A")
    git(p, "commit", "-qm", "x")
    gd(p, "push")
    git(p, "config", "core.sparseCheckout", "true")
    (p / ".git/info/sparse-checkout").write_text("/*\n!/docs/\n")
    git(p, "read-tree", "-mu", "HEAD")
    assert not (p / "docs").exists()
    gd(p, "dataset", "stage", "own", "--mount")
    assert (p / ".git/info/sparse-checkout").read_text() == "/*\n!/docs/\n!/data/own/\n"
    assert (p / "data/own/x.txt").read_bytes() == b"x\n"
    gd(p, "unmount", "own")
    assert (p / ".git/info/sparse-checkout").read_text() == "/*\n!/docs/\n"
    assert git(p, "config", "core.sparseCheckout").strip() == "true"
    git(p, "sparse-checkout", "init", "--cone")
    res = gd(p, "dataset", "stage", "own", "--mount", ok=False)
    assert res.returncode == 1 and "cone-mode sparse checkout" in res.stderr
    assert not mounted(p / "data" / "own")
    assert (p / "data/own/x.txt").read_bytes().startswith(b"version gitdata/1")


def _storage_project(tmp_path: Path, projects: list, rclone_server, rclone_bucket: str, name: str = "st") -> Path:
    p = tmp_path / name
    p.mkdir()
    projects.append(p)
    git(p, "init", "-q", "-b", "main")
    gd(p, "install")
    gd(p, "storage", "add", "lab", f"s3://{rclone_bucket}/lab", "-o", f"endpoint_url={rclone_server.endpoint}")
    git(p, "add", "-A")
    git(p, "commit", "-qm", "map lab")
    return p


def test_sync_and_status_are_right_after_mount_mode(tmp_path, projects, rclone_server, rclone_bucket,
                                                   monkeypatch):  # fmt: skip
    """copy -> mount (write there) -> unmount -> copy: the base is the new download, so `storage
    sync` finds nothing to do and no conflict, and `status` is clean; local changes not synced
    refuse the mount and are kept."""
    use_server_env(monkeypatch, rclone_server)
    served = rclone_server.bucket_path(rclone_bucket)
    (served / "lab").mkdir(parents=True)
    (served / "lab" / "in.csv").write_bytes(b"a\n")
    rclone_server.flush_dir_cache()
    p = _storage_project(tmp_path, projects, rclone_server, rclone_bucket)
    mp = p / "storages" / "lab"
    gd(p, "storage", "stage", "lab")
    assert (mp / "in.csv").read_bytes() == b"a\n"
    (mp / "local.txt").write_bytes(b"not synced\n")
    res = gd(p, "storage", "stage", "lab", "--mount", ok=False)
    assert res.returncode == 1 and "not synced" in res.stderr and "local.txt" in res.stderr
    assert not mounted(mp) and (mp / "local.txt").read_bytes() == b"not synced\n"
    gd(p, "storage", "sync", "lab")
    gd(p, "storage", "stage", "lab", "--mount")
    assert mounted(mp)
    (mp / "in.csv").write_bytes(b"a\nchanged through the mount\n")  # an object the old base knew
    (mp / "out").mkdir()
    (mp / "out" / "fig.png").write_bytes(os.urandom(200_000))
    (mp / "local.txt").unlink()
    res = gd(p, "storage", "sync", "lab", ok=False)  # while mounted: nothing to sync, one line
    assert res.returncode == 1 and res.stderr.strip().splitlines() == [
        "error: storage 'lab' is mounted: what is written there goes to the bucket directly, there is "
        "nothing to sync; `git data unmount lab`, then `git data storage stage lab` to copy it"
    ]
    assert "lab" not in gd(p, "status").stdout
    gd(p, "unmount", "lab")
    assert not mounted(mp)
    assert (served / "lab" / "in.csv").read_bytes() == b"a\nchanged through the mount\n"
    rclone_server.flush_dir_cache()
    gd(p, "storage", "stage", "lab")
    assert (mp / "in.csv").read_bytes() == b"a\nchanged through the mount\n"
    assert not (mp / "local.txt").exists()
    res = gd(p, "storage", "sync", "lab")
    assert "0 conflicts" in res.stdout and "conflict (" not in res.stdout and "CONFLICT" not in res.stdout
    assert "0 uploaded, 0 downloaded" in res.stdout
    assert "lab" not in gd(p, "status").stdout
    assert git(p, "status", "--porcelain") == ""
    # a change after that is seen as a change, on the right side
    (mp / "out" / "fig.png").write_bytes(b"redrawn\n")
    assert "lab" in gd(p, "status").stdout
    res = gd(p, "storage", "sync", "lab")
    assert "1 uploaded" in res.stdout and "0 conflicts" in res.stdout


def test_unstage_and_rm_while_mounted_unmount_and_delete_nothing(tmp_path, projects, rclone_server,
                                                                rclone_bucket, monkeypatch):  # fmt: skip
    use_server_env(monkeypatch, rclone_server)
    served = rclone_server.bucket_path(rclone_bucket)
    (served / "lab").mkdir(parents=True)
    (served / "lab" / "keep.csv").write_bytes(b"keep\n")
    rclone_server.flush_dir_cache()
    p = _storage_project(tmp_path, projects, rclone_server, rclone_bucket)
    mp = p / "storages" / "lab"
    gd(p, "storage", "stage", "lab", "--mount")
    (mp / "new.txt").write_bytes(b"written while mounted\n")
    res = gd(p, "storage", "unstage", "lab")
    assert res.stdout.startswith("unmounted storage lab") and not mounted(mp)
    assert (served / "lab" / "keep.csv").read_bytes() == b"keep\n"
    assert (served / "lab" / "new.txt").read_bytes() == b"written while mounted\n"
    assert json.loads(gd(p, "mount", "ls", "--json").stdout) == []
    gd(p, "storage", "stage", "lab", "--mount")
    res = gd(p, "storage", "rm", "lab")
    assert "unmounted storage lab" in res.stdout and not mounted(mp)
    assert sorted(os.listdir(served / "lab")) == ["keep.csv", "new.txt"]
    assert json.loads(gd(p, "mount", "ls", "--json").stdout) == []
    # a dataset: unstage unmounts, the pointers come back
    gd(p, "dataset", "create", "field", "-o", f"endpoint_url={rclone_server.endpoint}")
    gd(p, "dataset", "add", "field", f"s3://{rclone_bucket}/lab")
    git(p, "add", "-A")
    git(p, "commit", "-qm", "register")
    gd(p, "dataset", "stage", "field", "--mount")
    assert (p / "data/field/keep.csv").read_bytes() == b"keep\n"
    res = gd(p, "dataset", "unstage", "field")
    assert res.stdout.strip() == "unmounted dataset field; its pointers are back"
    assert not mounted(p / "data" / "field")
    assert (p / "data/field/keep.csv").read_bytes().startswith(b"version gitdata/1")
    assert sorted(os.listdir(served / "lab")) == ["keep.csv", "new.txt"]
    assert git(p, "status", "--porcelain") == ""


def _ls_lr(root: Path) -> dict[str, int]:
    """Mount-relative path -> size of every file, parsed from `ls -lR` itself."""
    out = subprocess.run(["ls", "-lR", "--time-style=+%s", str(root)], capture_output=True, text=True,
                         check=True, timeout=120).stdout  # fmt: skip
    files, here = {}, ""
    for line in out.splitlines():
        if line.endswith(":") and line.startswith(str(root)):
            here = line[len(str(root)) : -1].strip("/")
        elif line.startswith("-"):
            fields = line.split(None, 6)
            files[f"{here}/{fields[6]}" if here else fields[6]] = int(fields[4])
    return files


def test_ls_lR_of_many_files_matches_the_pointers(tmp_path, projects):
    """10,000 registered files, the issue's size (a local source folder: names and sizes come
    from the pointers either way); `ls -lR` of the mount lists exactly them, and fast.
    benchmarks/bench_mount.py times the same against a plain rclone mount."""
    src = tmp_path / "src"
    n = 10_000
    for i in range(n):
        d = src / f"d{i % 50:02d}" / f"e{i % 7}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:05d}.dat").write_bytes(b"x" * (i % 997))
    p = tmp_path / "many"
    p.mkdir()
    projects.append(p)
    git(p, "init", "-q", "-b", "main")
    gd(p, "install")
    gd(p, "dataset", "create", "many")
    gd(p, "dataset", "add", "many", src.as_uri())
    git(p, "commit", "-qm", "register")
    gd(p, "dataset", "stage", "many", "--mount")
    mp = p / "data" / "many"
    t = time.monotonic()
    listed = _ls_lr(mp)
    took = time.monotonic() - t
    assert listed == _pointers(p, "data/many")
    assert len(listed) == n and listed["d03/e3/f00003.dat"] == 3 and listed["d49/e3/f09999.dat"] == 9999 % 997
    assert (mp / "d03/e3/f00003.dat").read_bytes() == b"xxx"
    assert git(p, "status", "--porcelain") == ""
    gd(p, "unmount", "many")
    assert took < 15, f"ls -lR of {n} files took {took:.1f} s"


def test_kill_9_of_a_storage_mount_gives_a_stale_mount_that_unmount_cleans(tmp_path, projects, rclone_server,
                                                                          rclone_bucket, monkeypatch):  # fmt: skip
    use_server_env(monkeypatch, rclone_server)
    served = rclone_server.bucket_path(rclone_bucket)
    (served / "lab").mkdir(parents=True)
    (served / "lab" / "in.csv").write_bytes(b"a\n")
    rclone_server.flush_dir_cache()
    p = _storage_project(tmp_path, projects, rclone_server, rclone_bucket)
    mp = p / "storages" / "lab"
    gd(p, "storage", "stage", "lab", "--mount")
    assert (mp / "in.csv").read_bytes() == b"a\n"
    os.kill(json.loads(gd(p, "mount", "ls", "--json").stdout)[0]["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while json.loads(gd(p, "mount", "ls", "--json").stdout)[0]["state"] != "stale":
        assert time.monotonic() < deadline, "the killed storage mount is not reported stale"
        time.sleep(0.1)
    assert "stale" in gd(p, "mount", "ls").stdout
    assert "storage lab is mounted but stale" in gd(p, "status").stderr
    gd(p, "unmount", "lab")
    assert not mounted(mp) and not runner_disconnected(mp)
    assert json.loads(gd(p, "mount", "ls", "--json").stdout) == []
    gd(p, "storage", "stage", "lab", "--mount")
    assert (mp / "in.csv").read_bytes() == b"a\n"
    # killed again: a new stage --mount cleans the stale one by itself
    os.kill(json.loads(gd(p, "mount", "ls", "--json").stdout)[0]["pid"], signal.SIGKILL)
    time.sleep(0.2)
    gd(p, "storage", "stage", "lab", "--mount")
    assert json.loads(gd(p, "mount", "ls", "--json").stdout)[0]["state"] == "healthy"
    (mp / "after.txt").write_bytes(b"written after the kill\n")
    gd(p, "unmount", "lab")
    assert (served / "lab" / "after.txt").read_bytes() == b"written after the kill\n"
    assert git(p, "status", "--porcelain") == ""


def runner_disconnected(path: Path) -> bool:
    try:
        os.listdir(path)
    except OSError as err:
        return err.errno in (errno.ENOTCONN, errno.ECONNABORTED)
    return False


def test_a_busy_mount_is_refused_and_force_detaches_it_lazily(tmp_path, projects):
    """A file open under the mount: `unmount` refuses with one line naming --force and changes
    nothing; `unmount --force` detaches at once (fusermount3 -u -z): the folder holds the
    pointers again while the open file still reads its bytes, and the command returns once
    that file is closed."""
    p = _own_project(tmp_path, projects)
    d = p / "data" / "own"
    d.mkdir(parents=True)
    (d / "a.txt").write_bytes(b"kept open\n" * 1000)
    git(p, "add", "-A")
    git(p, "commit", "-qm", "a")
    gd(p, "push")
    gd(p, "dataset", "stage", "own", "--mount")
    f = open(d / "a.txt", "rb")
    try:
        assert f.read(10) == b"kept open\n"
        res = gd(p, "unmount", "own", ok=False)
        assert res.returncode == 1 and res.stderr.strip().splitlines() == [
            f"error: {d} is busy (a shell or program uses files there); close them, or "
            "`git data unmount own --force` to detach it lazily"
        ]
        assert mounted(d) and json.loads(gd(p, "mount", "ls", "--json").stdout)[0]["state"] == "healthy"
        assert (d / "a.txt").read_bytes() == b"kept open\n" * 1000
        proc = subprocess.Popen(["git", "data", "unmount", "own", "--force"], cwd=p, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        deadline = time.monotonic() + 20
        while mounted(d):
            assert time.monotonic() < deadline and proc.poll() is None, "not detached"
            time.sleep(0.05)
        assert f.read(10) == b"kept open\n"  # lazily: what is open keeps working
    finally:
        f.close()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.strip() == "unmounted dataset own"
    assert (d / "a.txt").read_bytes().startswith(b"version gitdata/1")
    assert json.loads(gd(p, "mount", "ls", "--json").stdout) == []
    assert git(p, "status", "--porcelain") == ""


def test_a_mount_that_never_becomes_ready_times_out_and_leaves_nothing(tmp_path, projects, rclone_server,
                                                                       rclone_bucket, monkeypatch):  # fmt: skip
    """gitdata.rclone names a program that never mounts: after gitdata.mountTimeout seconds one
    clear error, the program ended, no mount point, state or mode left."""
    use_server_env(monkeypatch, rclone_server)
    p = _storage_project(tmp_path, projects, rclone_server, rclone_bucket)
    hang = tmp_path / "never-mounts"
    hang.write_text("#!/bin/sh\nsleep 317\n")
    hang.chmod(0o755)
    git(p, "config", "gitdata.rclone", str(hang))
    git(p, "config", "gitdata.mountTimeout", "2")
    t = time.monotonic()
    res = gd(p, "storage", "stage", "lab", "--mount", ok=False)
    took = time.monotonic() - t
    assert res.returncode == 1 and 2 <= took < 20, took
    mp = p / "storages" / "lab"
    assert res.stderr.strip().splitlines() == [
        f"error: storage 'lab' was not mounted at {mp} within 2 s (gitdata.mountTimeout); nothing was left "
        f"mounted; see {p / '.git/gitdata/mounts/storage-lab.log'}"
    ]
    assert not mp.exists() and not mounted(mp)
    assert json.loads(gd(p, "mount", "ls", "--json").stdout) == []
    assert not (p / ".git/gitdata/mounts/storage-lab.json").exists()
    assert subprocess.run(["git", "config", "gitdata.storage.lab.mounted"], cwd=p).returncode == 1
    for pattern in (str(hang), "sleep 317"):  # the program and its child: the whole group ended
        assert subprocess.run(["pgrep", "-f", pattern], capture_output=True).returncode == 1, pattern
