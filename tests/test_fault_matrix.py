"""More cells of the fault matrix: kill -9 of stage, sync and push mid-transfer; a full disk
during a stage. After each, no partial file is visible, and the next ordinary command
converges to the right bytes and a clean `git status`."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers import gd, git, status_short, tmpfs


def _start(cwd: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(["git", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)  # fmt: skip


def _kill_when(proc: subprocess.Popen, ready, deadline: float = 60) -> bool:
    """kill -9 the whole process group once ``ready()`` holds; False if it finished first."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        if ready():
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    raise AssertionError("the command never reached the point to kill it")


def _temps(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if ".gitdata-tmp" in p.name or p.name.startswith(".gitdata-")
            and p.is_file()]  # fmt: skip


def _source(tmp_path: Path, n: int, size: int) -> tuple[Path, dict[str, bytes]]:
    src = tmp_path / "source"
    files = {}
    for i in range(n):
        data = os.urandom(size)
        (src / "raw").mkdir(parents=True, exist_ok=True)
        (src / "raw" / f"f{i:03d}.bin").write_bytes(data)
        files[f"f{i:03d}.bin"] = data
    return src, files


def test_killed_dataset_stage_converges(tmp_path):
    src, files = _source(tmp_path, 40, 3 << 20)
    p = tmp_path / "p"
    p.mkdir()
    git(p, "init", "-q", "-b", "main")
    gd(p, "install")
    gd(p, "dataset", "create", "d")
    gd(p, "dataset", "add", "d", (src / "raw").as_uri())
    git(p, "commit", "-qm", "register")
    folder = p / "data" / "d"

    def some_staged() -> bool:
        n = 0
        for f in folder.iterdir():
            try:
                n += f.stat().st_size == 3 << 20
            except FileNotFoundError:  # a temporary file renamed into place between the two
                pass
        return n >= 3

    proc = _start(p, "data", "dataset", "stage", "d", "-j", "2")
    if not _kill_when(proc, some_staged):
        pytest.skip("staging finished before it could be killed")
    # no half-written file where the user looks
    for name, data in files.items():
        got = (folder / name).read_bytes()
        assert got == data or got.startswith(b"version gitdata/1"), name
    gd(p, "dataset", "stage", "d")
    for name, data in files.items():
        assert (folder / name).read_bytes() == data, name
    assert status_short(p) == ""
    assert not _temps(folder)
    # staging again never stages a user's edit into the index
    (folder / "f000.bin").write_bytes(b"my edit")
    gd(p, "dataset", "stage", "d")
    assert git(p, "diff", "--cached", "--name-only") == ""
    assert (folder / "f000.bin").read_bytes() == b"my edit"


def test_killed_storage_sync_converges(tmp_path):
    bucket = tmp_path / "bucket"
    (bucket / "lab").mkdir(parents=True)
    p = tmp_path / "p"
    p.mkdir()
    git(p, "init", "-q", "-b", "main")
    gd(p, "storage", "add", "lab", (bucket / "lab").as_uri())
    gd(p, "storage", "stage", "lab")
    local = p / "storages" / "lab"
    files = {f"out/r{i:03d}.bin": os.urandom(2 << 20) for i in range(40)}
    for rel, data in files.items():
        (local / rel).parent.mkdir(parents=True, exist_ok=True)
        (local / rel).write_bytes(data)

    def some_uploaded() -> bool:
        out = bucket / "lab" / "out"
        return out.is_dir() and sum(1 for f in out.iterdir() if not f.name.startswith(".")) >= 3

    proc = _start(p, "data", "storage", "sync", "lab", "-j", "2")
    if not _kill_when(proc, some_uploaded):
        pytest.skip("the sync finished before it could be killed")
    for f in (bucket / "lab" / "out").iterdir():  # every object visible in the bucket is whole
        if not f.name.startswith("."):
            assert f.read_bytes() == files[f"out/{f.name}"], f.name
    proc = subprocess.run(["git", "data", "storage", "sync", "lab"], cwd=p, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for rel, data in files.items():
        assert (bucket / "lab" / rel).read_bytes() == data, rel
    rerun = subprocess.run(["git", "data", "storage", "sync", "lab", "--dry-run", "--json"], cwd=p,
                           capture_output=True, text=True)  # fmt: skip
    assert '"upload": 0' in rerun.stdout and '"conflicts": 0' in rerun.stdout, rerun.stdout


def test_killed_push_moves_no_ref_and_the_next_push_completes(tmp_path):
    remote = tmp_path / "remote"
    bare = tmp_path / "bare.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    a = tmp_path / "a"
    a.mkdir()
    git(a, "init", "-q", "-b", "main")
    gd(a, "install")
    gd(a, "track", "*.bin")
    gd(a, "remote", "add", "store", remote.as_uri())
    git(a, "remote", "add", "origin", str(bare))
    for i in range(40):
        (a / f"f{i:03d}.bin").write_bytes(os.urandom(3 << 20))
    git(a, "add", "-A")
    git(a, "commit", "-qm", "data")

    def some_uploaded() -> bool:
        objs = remote / "objects"
        return objs.is_dir() and sum(1 for _ in objs.rglob("*") if _.is_file()) >= 3

    proc = _start(a, "push", "origin", "main")
    if not _kill_when(proc, some_uploaded):
        pytest.skip("the push finished before it could be killed")
    assert git(bare, "for-each-ref") == ""  # no ref moved: the data was not all there
    git(a, "push", "-q", "origin", "main")
    assert git(bare, "rev-parse", "main").strip() == git(a, "rev-parse", "HEAD").strip()
    out = subprocess.run(["git", "data", "fsck", "--remote"], cwd=a, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    b = tmp_path / "b"
    git(tmp_path, "clone", "-q", str(bare), str(b))
    for i in range(40):
        assert (b / f"f{i:03d}.bin").read_bytes() == (a / f"f{i:03d}.bin").read_bytes()


@pytest.fixture
def small_disk(tmp_path):
    with tmpfs(tmp_path / "small", "4m") as mnt:
        yield mnt


def test_full_disk_during_a_location_stage_leaves_no_partial_file(tmp_path, small_disk):
    src, files = _source(tmp_path, 6, 1 << 20)
    p = tmp_path / "p"
    p.mkdir()
    git(p, "init", "-q", "-b", "main")
    gd(p, "install")
    gd(p, "dataset", "create", "d")
    gd(p, "dataset", "add", "d", (src / "raw").as_uri())
    git(p, "commit", "-qm", "register")
    proc = subprocess.run(["git", "data", "dataset", "stage", "d", "--location", str(small_disk), "--force"],
                          cwd=p, capture_output=True, text=True)  # fmt: skip
    assert proc.returncode != 0
    # the free space is asked for before anything is written: one clear line, nothing half-done
    assert "Traceback" not in proc.stderr and "is free at" in proc.stderr, proc.stderr
    for f in small_disk.rglob("*"):
        if f.is_file():
            assert f.read_bytes() == files[f.name], f"partial file {f}"
    # with room elsewhere the same command converges
    big = tmp_path / "big"
    gd(p, "dataset", "stage", "d", "--location", str(big))
    for name, data in files.items():
        assert (p / "data" / "d" / name).read_bytes() == data
    assert status_short(p) == ""


@pytest.fixture
def disk8(tmp_path):
    with tmpfs(tmp_path / "disk8", "8m") as mnt:
        yield mnt


def _not_materialized(root: Path) -> list[str]:
    import json

    proc = subprocess.run(["git", "data", "status", "--json"], cwd=root, capture_output=True, text=True)
    rows = json.loads(proc.stdout)
    rows = rows["rows"] if isinstance(rows, dict) else rows
    return sorted(r["path"] for r in rows if r.get("local") == "not materialized")


def _pushed_project(tmp_path: Path, files: dict[str, bytes]) -> Path:
    """A project whose data is on a file:// data remote, and a bare origin holding its commit."""
    from helpers import new_project, write

    p = new_project(tmp_path / "p", (tmp_path / "store").as_uri())
    for rel, data in files.items():
        write(p / rel, data)
    git(p, "add", "-A")
    git(p, "commit", "-qm", "data")
    gd(p, "push")
    git(tmp_path, "init", "-q", "--bare", str(tmp_path / "o.git"))
    git(p, "push", "-q", str(tmp_path / "o.git"), "HEAD:refs/heads/main")
    return tmp_path / "o.git"


def test_full_disk_during_clone_leaves_pointers_that_pull_completes(tmp_path, disk8):
    """git would write part of an object it cannot fit and then fail every file after it
    (an empty index); the filter leaves such an object as its pointer instead, and names it."""
    files = {"data/big.bin": os.urandom(3 << 20), "data/small.bin": b"small\n"}
    origin = _pushed_project(tmp_path, files)
    filler = disk8 / "filler"
    filler.write_bytes(b"\0" * (6 << 20))
    clone = disk8 / "c"
    proc = subprocess.run(["git", "clone", "-q", str(origin), str(clone)], capture_output=True, text=True)
    assert "Traceback" not in proc.stderr
    assert "data/big.bin" in proc.stderr and "no space left" in proc.stderr, proc.stderr
    # nothing half-written: the big file is its pointer, the small one whole, git's index intact
    assert (clone / "data/big.bin").read_bytes().startswith(b"version gitdata/1\n")
    assert (clone / "data/small.bin").read_bytes() == b"small\n"
    assert status_short(clone) == "" and not _temps(clone / "data")
    assert _not_materialized(clone) == ["data/big.bin"]
    filler.unlink()
    gd(clone, "pull")
    assert (clone / "data/big.bin").read_bytes() == files["data/big.bin"]
    assert status_short(clone) == "" and _not_materialized(clone) == []
    assert not _temps(clone / "data")


def test_full_disk_during_storage_stage_keeps_whole_files_and_converges(tmp_path, disk8):
    bucket = tmp_path / "bucket"
    files = {f"raw/r{i}.bin": os.urandom(1 << 20) for i in range(3)}
    for rel, data in files.items():
        (bucket / "lab" / rel).parent.mkdir(parents=True, exist_ok=True)
        (bucket / "lab" / rel).write_bytes(data)
    p = tmp_path / "p"
    p.mkdir()
    git(p, "init", "-q", "-b", "main")
    gd(p, "storage", "add", "lab", (bucket / "lab").as_uri(), "--to", "disk/lab")
    (p / "disk").mkdir()
    r = subprocess.run(["mount", "--bind", str(disk8), str(p / "disk")], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {r.stderr.decode().strip()}")
    try:
        filler = p / "disk" / "filler"
        filler.write_bytes(b"\0" * (6 << 20))
        proc = subprocess.run(["git", "data", "storage", "stage", "lab"], cwd=p, capture_output=True, text=True)
        assert proc.returncode != 0
        assert "Traceback" not in proc.stderr and "no space left" in proc.stderr, proc.stderr
        local = p / "disk" / "lab"
        for f in local.rglob("*") if local.exists() else []:
            if f.is_file():
                assert f.read_bytes() == files[f.relative_to(local).as_posix()], f"partial file {f}"
        assert not _temps(p / "disk")
        filler.unlink()
        proc = subprocess.run(["git", "data", "storage", "stage", "lab"], cwd=p, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        for rel, data in files.items():
            assert (local / rel).read_bytes() == data, rel
        # nothing was deleted or re-uploaded in the bucket, and nothing is left to do
        for rel, data in files.items():
            assert (bucket / "lab" / rel).read_bytes() == data, rel
        dry = subprocess.run(["git", "data", "storage", "sync", "lab", "--dry-run", "--json"], cwd=p,
                             capture_output=True, text=True)  # fmt: skip
        import json

        counts = json.loads(dry.stdout)[0]["counts"]
        assert {k: counts[k] for k in ("upload", "download", "delete-remote", "delete-local", "conflicts")} == {
            "upload": 0, "download": 0, "delete-remote": 0, "delete-local": 0, "conflicts": 0}, dry.stdout  # fmt: skip
        assert counts["unchanged"] == 3
    finally:
        subprocess.run(["umount", "-l", str(p / "disk")], capture_output=True)


def test_killed_filter_during_a_download_leaves_nothing_partial_and_converges(tmp_path, rclone_server_factory):
    """kill -9 of the filter process (not git's wrapper) while it downloads into the cache."""
    import uuid

    from gitdata.fileio import tmp_owner
    from helpers import new_project, write

    server = rclone_server_factory()
    bucket = server.make_bucket("b" + uuid.uuid4().hex[:8])
    env = {**os.environ, "AWS_ACCESS_KEY_ID": server.key, "AWS_SECRET_ACCESS_KEY": server.secret}
    proj = new_project(tmp_path / "p", f"s3://{bucket}/proj", {"endpoint_url": server.endpoint})
    big = os.urandom(1 << 20) * 128
    write(proj / "data/big.bin", big)
    write(proj / "data/small.bin", b"small\n")
    git(proj, "add", "-A")
    git(proj, "commit", "-qm", "data")
    subprocess.run(["git", "data", "push"], cwd=proj, env=env, check=True, capture_output=True)
    origin = tmp_path / "o.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(proj, "push", "-q", str(origin), "HEAD:refs/heads/main", env=env)

    clone = tmp_path / "c"
    proc = subprocess.Popen(["git", "clone", "-q", str(origin), str(clone)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    tmp_dir = clone / ".git" / "gitdata" / "tmp"
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and time.monotonic() < deadline and proc.poll() is None:
        for f in tmp_dir.iterdir() if tmp_dir.is_dir() else []:
            pid = tmp_owner(f.name)
            if pid is not None and f.stat().st_size > (8 << 20):
                os.kill(pid, signal.SIGKILL)  # the filter process: its pid is in the name
                killed = f.name
                break
        time.sleep(0.01)
    _out, err = proc.communicate(timeout=120)
    if killed is None:
        pytest.skip("the download finished before it could be killed")
    assert b"Traceback" not in err
    # no partial file under a name anyone reads: the work tree holds whole files or pointers
    for rel, data in {"data/big.bin": big, "data/small.bin": b"small\n"}.items():
        if (clone / rel).exists():
            got = (clone / rel).read_bytes()
            assert got == data or got.startswith(b"version gitdata/1\n"), rel
    assert not _temps(clone / "data")
    assert not any(Path(p).name == killed for p in [str(x) for x in (clone / ".git/gitdata").rglob("objects/*/*")])
    # git aborted the checkout (its filter died): git data says so, and what to run
    st = subprocess.run(["git", "data", "status"], cwd=clone, env=env, capture_output=True, text=True)
    assert "the last checkout did not finish" in st.stderr, st.stderr
    r = subprocess.run(["git", "data", "pull"], cwd=clone, env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "git restore --source=HEAD --staged --worktree :/" in r.stderr, r.stderr
    r = subprocess.run(["git", "restore", "--source=HEAD", "--staged", "--worktree", ":/"], cwd=clone, env=env,
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = subprocess.run(["git", "data", "pull"], cwd=clone, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (clone / "data/big.bin").read_bytes() == big
    assert (clone / "data/small.bin").read_bytes() == b"small\n"
    assert status_short(clone) == "" and _not_materialized(clone) == []
    # the killed writer's partial object is not an object; prune removes it once it is stale
    assert (tmp_dir / killed).exists()
    fsck = subprocess.run(["git", "data", "fsck"], cwd=clone, env=env, capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    time.sleep(1.1)
    subprocess.run(["git", "-c", "gitdata.tempMaxAge=1", "data", "prune"], cwd=clone, env=env, check=True,
                   capture_output=True)  # fmt: skip
    assert not (tmp_dir / killed).exists()
