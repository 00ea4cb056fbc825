"""Nothing is lost (issue 11): a user's edits survive every git data command,
and a fault leaves a state the next ordinary command repairs.

Each test replays one scenario step by step, as a user would, with real git
and git data subprocesses against a local folder or a loopback server.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from conftest import _make_backend
from helpers import git, run, write
from test_datasets import OBJECTS, clean, gd, opts, project, put_objects, status_json


@pytest.fixture
def local_backend(request, monkeypatch, tmp_path_factory):
    return _make_backend("local", request, monkeypatch, tmp_path_factory)


def _umask_mode() -> int:
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _local(rows: list[dict]) -> dict[str, str]:
    return {r["path"]: r["local"] for r in rows}


# --------------------------------------------------------------------------
# 1. --location: an edit in the location folder is never overwritten


def test_location_edit_survives_unstage_and_stage_again(local_backend, tmp_path):
    backend = local_backend
    put_objects(backend, OBJECTS)
    root = project(tmp_path / "p")
    gd(root, "dataset", "add", "ds", backend.url, "--create", *opts(backend))
    git(root, "commit", "-q", "-m", "register")
    ext = tmp_path / "external"
    gd(root, "dataset", "stage", "ds", "--location", str(ext))
    a = ext / "ds" / "a.txt"
    assert a.read_bytes() == OBJECTS["a.txt"]
    # the mode a copy gets (umask), not a temporary file's 0600
    assert stat.S_IMODE(a.stat().st_mode) == _umask_mode()
    assert set(_local(status_json(root)).values()) == {"staged (linked)"}

    # edits: one changes the size, one keeps it (a size check alone misses it)
    a.write_bytes(b"my edited alpha\n")
    (ext / "ds" / "b.txt").write_bytes(b"BRAVO BRAVO\n")
    local = _local(status_json(root))
    assert local["data/ds/a.txt"] == local["data/ds/b.txt"] == "modified"
    assert local["data/ds/sub/c.bin"] == "staged (linked)"
    text = gd(root, "status").stdout.decode()
    assert "data/ds/a.txt" in text and "modified" in text

    # staging again while linked keeps both edits
    out = gd(root, "dataset", "stage", "ds", "--location", str(ext)).stdout.decode()
    assert "kept data/ds/a.txt" in out and "kept data/ds/b.txt" in out
    assert a.read_bytes() == b"my edited alpha\n"
    assert (ext / "ds" / "b.txt").read_bytes() == b"BRAVO BRAVO\n"

    # unstage keeps the changed files; staging at the location again keeps them too
    out = gd(root, "dataset", "unstage", "ds").stdout.decode()
    assert "a.txt: changed since it was staged" in out and "b.txt: changed" in out
    assert a.read_bytes() == b"my edited alpha\n"
    assert clean(root), git(root, "status", "--porcelain")
    out = gd(root, "dataset", "stage", "ds", "--location", str(ext)).stdout.decode()
    assert "kept data/ds/a.txt" in out and "kept data/ds/b.txt" in out
    assert a.read_bytes() == b"my edited alpha\n"
    assert (ext / "ds" / "b.txt").read_bytes() == b"BRAVO BRAVO\n"
    assert (ext / "ds" / "sub/c.bin").read_bytes() == OBJECTS["sub/c.bin"]
    assert _local(status_json(root))["data/ds/a.txt"] == "modified"
    assert clean(root), git(root, "status", "--porcelain")

    # the user moves the edit away: the next stage converges to the recorded bytes
    a.rename(tmp_path / "mine.txt")
    (ext / "ds" / "b.txt").unlink()
    out = gd(root, "dataset", "stage", "ds", "--location", str(ext)).stdout.decode()
    assert "kept" not in out
    assert a.read_bytes() == OBJECTS["a.txt"] and (ext / "ds" / "b.txt").read_bytes() == OBJECTS["b.txt"]
    assert set(_local(status_json(root)).values()) == {"staged (linked)"}
    assert (tmp_path / "mine.txt").read_bytes() == b"my edited alpha\n"
    assert clean(root)


def test_location_does_not_overwrite_a_file_someone_put_there(local_backend, tmp_path):
    """No record of the path, a file of another size (or md5) there: it is not ours."""
    backend = local_backend
    put_objects(backend, OBJECTS)
    root = project(tmp_path / "p")
    gd(root, "dataset", "add", "ds", backend.url, "--create", *opts(backend))
    git(root, "commit", "-q", "-m", "register")
    ext = tmp_path / "external"
    write(ext / "ds" / "a.txt", b"someone else's file\n")
    out = gd(root, "dataset", "stage", "ds", "--location", str(ext)).stdout.decode()
    assert "kept data/ds/a.txt" in out
    assert (ext / "ds" / "a.txt").read_bytes() == b"someone else's file\n"
    assert (ext / "ds" / "b.txt").read_bytes() == OBJECTS["b.txt"]
    assert _local(status_json(root))["data/ds/a.txt"] == "modified"


# --------------------------------------------------------------------------
# 2. `git data update` keeps files changed locally


def test_update_keeps_local_edits(local_backend, tmp_path):
    import time

    from test_datasets import delete_object

    backend = local_backend
    put_objects(backend, OBJECTS)
    root = project(tmp_path / "p")
    gd(root, "dataset", "add", "ds", backend.url, "--create", *opts(backend))
    git(root, "commit", "-q", "-m", "register")
    gd(root, "dataset", "stage", "ds")
    # the user edits two staged files ...
    write(root / "data/ds/a.txt", b"my alpha\n")
    write(root / "data/ds/sub/deeper/d.csv", b"my,table\n")
    # ... and keeps an untracked file where a new object will appear
    write(root / "data/ds/sub/new.txt", b"my notes\n")
    # meanwhile the remote changes both, changes b.txt, and gains sub/new.txt
    time.sleep(0.05)
    put_objects(backend, {"a.txt": b"ALPHA v2\n", "b.txt": b"BRAVO v2\n", "sub/new.txt": b"new\n"})
    delete_object(backend, "sub/deeper/d.csv")
    local = _local(status_json(root))
    assert local["data/ds/a.txt"] == local["data/ds/sub/deeper/d.csv"] == "modified"

    proc = gd(root, "update", "ds", check=False)
    assert proc.returncode == 1, proc
    err = proc.stderr.decode()
    for path in ("data/ds/a.txt", "data/ds/sub/deeper/d.csv", "data/ds/sub/new.txt"):
        assert f"kept {path}" in err, err
    assert "git restore" in err and "git data update ds" in err
    assert (root / "data/ds/a.txt").read_bytes() == b"my alpha\n"
    assert (root / "data/ds/sub/deeper/d.csv").read_bytes() == b"my,table\n"
    assert (root / "data/ds/sub/new.txt").read_bytes() == b"my notes\n"
    # the others were updated
    assert "M\tdata/ds/b.txt" in git(root, "diff", "--name-status")

    # the user gives up the edits: the next update converges
    git(root, "restore", "data/ds/a.txt", "data/ds/sub/deeper/d.csv")
    (root / "data/ds/sub/new.txt").rename(tmp_path / "notes.txt")
    gd(root, "update", "ds")
    git(root, "commit", "-q", "-am", "update")
    gd(root, "dataset", "stage", "ds")
    assert (root / "data/ds/a.txt").read_bytes() == b"ALPHA v2\n"
    assert (root / "data/ds/b.txt").read_bytes() == b"BRAVO v2\n"
    assert (root / "data/ds/sub/new.txt").read_bytes() == b"new\n"
    assert not (root / "data/ds/sub/deeper/d.csv").exists()
    assert clean(root), git(root, "status", "--porcelain")


# --------------------------------------------------------------------------
# 3. a clone where `git data install` never ran: no raw data reaches git


def _project_installed_locally(path: Path, store: Path) -> Path:
    """A project whose filter is set up in its own .git/config only: a clone of
    it (same HOME) has no filter, as on a machine without `git data install`."""
    path.mkdir(parents=True)
    git(path, "init", "-q")
    gd(path, "install", "--local")
    gd(path, "track", "data/**")
    gd(path, "remote", "add", "origin", str(store))
    return path


def _raw_blob(root: Path, path: str, data: bytes) -> None:
    """Stage ``data`` at ``path`` bypassing every filter (what git does without one)."""
    write(root / path, data)
    sha = git(root, "hash-object", "-w", "--no-filters", path).strip()
    git(root, "update-index", "--add", "--cacheinfo", f"100644,{sha},{path}")


def test_clone_without_install_gets_the_filter_and_never_stages_raw_data(local_backend, tmp_path):
    backend = local_backend
    put_objects(backend, OBJECTS)
    store = tmp_path / "store"
    proj = _project_installed_locally(tmp_path / "p", store)
    big = os.urandom(300_000)
    write(proj / "data/big.bin", big)
    git(proj, "add", "-A")
    gd(proj, "dataset", "add", "ds", backend.url, "--create", *opts(backend))
    git(proj, "commit", "-q", "-m", "data")
    gd(proj, "push")
    origin = tmp_path / "o.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(proj, "push", "-q", str(origin), "HEAD:refs/heads/main")

    clone = tmp_path / "c"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    assert run("git", "config", "filter.s3data.process", cwd=clone, check=False).returncode == 1
    assert (clone / "data/big.bin").read_bytes().startswith(b"version gitdata/1\n")
    proc = gd(clone, "pull")
    assert b"set it up here" in proc.stderr and b"git data install" in proc.stderr
    assert (clone / "data/big.bin").read_bytes() == big
    assert clean(clone), git(clone, "status", "--porcelain")  # not "M  data/big.bin"
    assert git(clone, "config", "--local", "filter.s3data.process").strip() == "git-data filter-process"
    assert (clone / ".git/hooks/pre-commit").exists()
    assert git(clone, "diff", "--cached", "--name-only") == ""

    # the same for `dataset stage`, in a second clone
    clone2 = tmp_path / "c2"
    git(tmp_path, "clone", "-q", str(origin), str(clone2))
    proc = gd(clone2, "dataset", "stage", "ds")
    assert b"set it up here" in proc.stderr
    assert (clone2 / "data/ds/a.txt").read_bytes() == OBJECTS["a.txt"]
    assert clean(clone2), git(clone2, "status", "--porcelain")


def test_pre_commit_refuses_raw_data_and_malformed_pointers(tmp_path):
    proj = _project_installed_locally(tmp_path / "p", tmp_path / "store")
    git(proj, "commit", "-q", "--allow-empty", "-m", "init")
    git(proj, "add", ".gitattributes")
    git(proj, "commit", "-q", "-m", "attributes")
    # raw bytes at a tracked path (staged without the filter)
    _raw_blob(proj, "data/raw.bin", b"raw data, not a pointer\n" * 10)
    proc = run("git", "commit", "-q", "-m", "raw", cwd=proj, check=False)
    assert proc.returncode != 0
    err = proc.stderr.decode()
    assert "data/raw.bin is staged as raw data" in err and "git data install" in err
    assert git(proj, "rev-list", "--count", "HEAD").strip() == "2"
    # the fix the message names: add it again with the filter
    git(proj, "add", "data/raw.bin")
    git(proj, "commit", "-q", "-m", "pointer")
    assert git(proj, "show", "HEAD:data/raw.bin").startswith("version gitdata/1\n")

    # malformed pointers, tracked path or not
    bad = {
        "data/crlf.bin": b"version gitdata/1\r\noid xxh128:" + b"0" * 32 + b"\r\nsize 5\r\n",
        "notes/negative.txt": b"version gitdata/1\noid xxh128:" + b"0" * 32 + b"\nsize -5\n",
        "data/latin1.bin": b"version gitdata/1\noid xxh128:" + b"0" * 32 + b"\nsize 5\nsource \xe9\n",
    }
    for path, data in bad.items():
        _raw_blob(proj, path, data)
    proc = run("git", "commit", "-q", "-m", "bad", cwd=proj, check=False)
    assert proc.returncode != 0
    err = proc.stderr.decode()
    for path in bad:
        assert f"{path} is a malformed gitdata pointer" in err, err
    assert "commit refused" in err
    assert git(proj, "rev-list", "--count", "HEAD").strip() == "3"


def test_commit_problems_table():
    from gitdata.scan import check_commit_problems

    ptr = b"version gitdata/1\noid xxh128:" + b"a" * 32 + b"\nsize 3\n"
    cases = {  # path: (blob, tracked, refused?)
        "data/pointer.bin": (ptr, True, False),
        "data/empty.bin": (b"", True, False),
        "data/raw.bin": (b"raw", True, True),
        "data/big.bin": (None, True, True),  # over the pointer size: never read
        "src/code.py": (b"print()\n", False, False),
        "src/crlf.txt": (ptr.replace(b"\n", b"\r\n"), False, True),
        "data/short-oid.bin": (b"version gitdata/1\noid xxh128:ab\nsize 3\n", True, True),
        "data/neg.bin": (b"version gitdata/1\noid xxh128:" + b"a" * 32 + b"\nsize -5\n", True, True),
    }
    pairs = [(path, f"sha-{path}") for path in cases]
    sizes = {f"sha-{p}": ("blob", 5000 if b is None else len(b)) for p, (b, _t, _r) in cases.items()}
    blobs = {f"sha-{p}": b for p, (b, _t, _r) in cases.items() if b is not None}
    tracked = {p for p, (_b, t, _r) in cases.items() if t}
    refused = {pr.path for pr in check_commit_problems(pairs, tracked, sizes, blobs)}
    assert refused == {p for p, (_b, _t, r) in cases.items() if r}


# --------------------------------------------------------------------------
# 4. one malformed pointer fails that file only


def test_malformed_pointers_fail_only_their_files(tmp_path):
    proj = _project_installed_locally(tmp_path / "p", tmp_path / "store")
    good = {f"data/good{i}.bin": os.urandom(2000 + i) for i in range(3)}
    for path, data in good.items():
        write(proj / path, data)
    git(proj, "add", "-A")
    git(proj, "commit", "-q", "-m", "good data")
    gd(proj, "push")
    oid = "oid xxh128:" + "0" * 32
    bad = {
        "data/crlf.bin": f"version gitdata/1\r\n{oid}\r\nsize 5\r\n".encode(),
        "data/bad-oid.bin": b"version gitdata/1\noid xxh128:zz\nsize 5\n",
        "data/negative.bin": f"version gitdata/1\n{oid}\nsize -5\n".encode(),
        "data/latin1.bin": f"version gitdata/1\n{oid}\nsize 5\nsource ".encode() + b"\xe9\n",
    }
    for path, data in bad.items():
        _raw_blob(proj, path, data)
    git(proj, "commit", "-q", "--no-verify", "-m", "a collaborator without the hook")
    origin = tmp_path / "o.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(proj, "push", "-q", "--no-verify", str(origin), "HEAD:refs/heads/main")

    clone = tmp_path / "c"
    env = {"GIT_CONFIG_COUNT": "2", "GIT_CONFIG_KEY_0": "filter.s3data.process",
           "GIT_CONFIG_VALUE_0": "git-data filter-process", "GIT_CONFIG_KEY_1": "filter.s3data.required",
           "GIT_CONFIG_VALUE_1": "true"}  # the filter, for the clone's checkout only
    proc = run("git", "clone", "-q", str(origin), str(clone), cwd=tmp_path, check=False, env=env)
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    for path in bad:
        assert f"{path}: malformed gitdata pointer" in err, err
    for path, data in good.items():
        assert (clone / path).read_bytes() == data
    for path, data in bad.items():
        assert (clone / path).read_bytes() == data  # left as it is
    assert len(git(clone, "ls-files").split()) == len(good) + len(bad) + 2
    gd(clone, "install", "--local")
    assert clean(clone), git(clone, "status", "--porcelain")

    for cmd in (("pull",), ("checkout",)):
        proc = gd(clone, *cmd, check=False)
        assert proc.returncode == 1, proc
        for path in bad:
            assert path in proc.stderr.decode()
    proc = gd(clone, "fsck", check=False)
    assert proc.returncode == 1
    for path in bad:
        assert f"malformed pointer: {path}" in proc.stdout.decode()

    # fixed upstream (the files removed): the next pull converges
    git(clone, "rm", "-q", *bad)
    git(clone, "commit", "-q", "-m", "drop broken pointers")
    gd(clone, "pull")
    gd(clone, "fsck")
    assert clean(clone)


# --------------------------------------------------------------------------
# 5. kill -9 of the filter while it copies a large object into the work tree


def _kill_filter_mid_copy(proc, folder: Path, deadline: float) -> tuple[int, str]:
    """Wait for the filter's temporary file beside the target, kill -9 its
    writer (the filter process, whose pid the name carries), return both."""
    import signal
    import time

    from gitdata.fileio import tmp_owner

    while time.monotonic() < deadline:
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            names = []
        for name in names:
            pid = tmp_owner(name)
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
                return pid, name
        if proc.poll() is not None:
            break
    raise AssertionError("the copy finished before it could be killed (make the object larger)")


def test_killed_large_copy_is_reported_and_completed_by_pull(tmp_path):
    import subprocess
    import time

    from helpers import new_project

    store = tmp_path / "store"
    proj = new_project(tmp_path / "p", str(store))
    big = os.urandom(1 << 20) * 160  # 160 MiB: the copy takes long enough to be caught
    write(proj / "data/big.bin", big)
    write(proj / "data/small.bin", b"small\n")
    git(proj, "add", "-A")
    git(proj, "commit", "-q", "-m", "data")
    gd(proj, "push")
    origin = tmp_path / "o.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(proj, "push", "-q", str(origin), "HEAD:refs/heads/main")
    del big

    clone = tmp_path / "c"
    proc = subprocess.Popen(
        ["git", "-c", "gitdata.smudgeMax=1000", "clone", "-q", str(origin), str(clone)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    pid, tmp_name = _kill_filter_mid_copy(proc, clone / "data", time.monotonic() + 120)
    proc.communicate(timeout=120)
    assert (clone / "data" / tmp_name).exists()  # the killed writer's temporary file
    assert (clone / "data/big.bin").read_bytes().startswith(b"version gitdata/1\n")
    assert (clone / "data/small.bin").read_bytes() == b"small\n"

    # it does not look clean: status and fsck say so (and drop the temporary file)
    rows = status_json(clone)
    assert {"path": "data/big.bin", "local": "not materialized"}.items() <= next(
        r for r in rows if r["path"] == "data/big.bin").items()
    assert not (clone / "data" / tmp_name).exists()
    assert "data/big.bin" in gd(clone, "status").stdout.decode()
    proc2 = gd(clone, "fsck", check=False)
    assert proc2.returncode == 1 and b"not materialized: data/big.bin" in proc2.stdout

    # the next pull completes it
    gd(clone, "pull")
    assert (clone / "data/big.bin").read_bytes() == (proj / "data/big.bin").read_bytes()
    assert clean(clone), git(clone, "status", "--porcelain")
    gd(clone, "fsck")
    assert [r for r in status_json(clone) if r["local"] == "not materialized"] == []


def test_stale_temporary_names_are_told_apart_by_pid(tmp_path):
    import subprocess

    from gitdata.fileio import remove_stale_tmp, tmp_owner, tmp_prefix

    assert tmp_owner(f"{tmp_prefix()}abc") == os.getpid()
    assert tmp_owner("a.bin.gitdata-tmp-42") == 42
    assert tmp_owner(".gitdata-tmp-" + "ab" * 16) is None  # a storage upload's name: not ours
    assert tmp_owner("notes.txt") is None
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid no process has any more
    write(tmp_path / f".gitdata-tmp-{dead.pid}-x", b"partial")
    write(tmp_path / f"{tmp_prefix()}live", b"being written")
    write(tmp_path / "user.txt", b"mine")
    removed = remove_stale_tmp([str(tmp_path)])
    assert removed == [str(tmp_path / f".gitdata-tmp-{dead.pid}-x")]
    assert sorted(os.listdir(tmp_path)) == sorted([f"{tmp_prefix()}live", "user.txt"])


# --------------------------------------------------------------------------
# 6. per-clone locks: one stage of a dataset, one sync of a storage at a time


_HOLD = """
import sys, time
from gitdata.lock import clone_lock
with clone_lock(sys.argv[1], sys.argv[2], sys.argv[3]):
    print("held", flush=True)
    time.sleep(300)
"""


def _hold_lock(root: Path, name: str, what: str):
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(root / ".git/gitdata"), name, what],
                            stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"held\n"
    return proc


def test_second_stage_of_a_dataset_is_refused_until_the_first_is_gone(local_backend, tmp_path):
    import signal

    backend = local_backend
    put_objects(backend, OBJECTS)
    root = project(tmp_path / "p")
    gd(root, "dataset", "add", "ds", backend.url, "--create", *opts(backend))
    git(root, "commit", "-q", "-m", "register")
    holder = _hold_lock(root, "dataset-ds", "dataset stage ds")
    try:
        for cmd in (("dataset", "stage", "ds"), ("dataset", "unstage", "ds")):
            proc = gd(root, *cmd, check=False)
            assert proc.returncode == 1
            assert f"another git data dataset stage ds is running (pid {holder.pid})" in proc.stderr.decode()
        assert (root / "data/ds/a.txt").read_bytes().startswith(b"version gitdata/1\n")
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # a holder that dies leaves no lock in the way
        holder.wait()
    assert (root / ".git/gitdata/locks/dataset-ds.lock").exists()  # the file stays: stale
    gd(root, "dataset", "stage", "ds")
    assert (root / "data/ds/a.txt").read_bytes() == OBJECTS["a.txt"]
    assert clean(root)


def test_second_sync_of_a_storage_is_refused(local_backend, tmp_path):
    from gitdata import storages as storages_mod
    from gitdata.project import Project

    root = tmp_path / "a"
    root.mkdir()
    git(root, "init", "-q")
    storages_mod.add(Project.open(str(root)), "lab", local_backend.join("lab"))
    gd(root, "storage", "stage", "lab")
    holder = _hold_lock(root, "storage-lab", "storage sync lab")
    try:
        proc = gd(root, "storage", "sync", "lab", check=False)
        assert proc.returncode == 1
        assert f"another git data storage sync lab is running (pid {holder.pid})" in proc.stderr.decode()
    finally:
        holder.kill()
        holder.wait()
    gd(root, "storage", "sync", "lab")


def test_nested_lock_in_one_process_and_pid_fallback(tmp_path):
    from gitdata import lock

    with lock.clone_lock(str(tmp_path), "x", "dataset stage x"):
        with lock.clone_lock(str(tmp_path), "x", "dataset unstage x"):
            pass
    # without flock: a lock file whose pid is gone is taken over, a live one refuses
    path = lock._lock_path(str(tmp_path), "y")
    write(Path(path), b"999999999\nstorage sync y\n")
    with lock._pid_lock(path, "storage sync y"):
        assert lock._holder(path)[0] == os.getpid()
    assert not os.path.exists(path)
    write(Path(path), f"{os.getppid()}\nstorage sync y\n".encode())
    with pytest.raises(lock.Busy, match=f"pid {os.getppid()}"):
        with lock._pid_lock(path, "storage sync y"):
            pass


# --------------------------------------------------------------------------
# the guarded writer: a target that changes during the copy is kept


def test_copy_keeps_a_target_that_changed_during_the_write(tmp_path):
    import pytest as _pytest

    from gitdata.cache import Cache
    from gitdata.fetch import WorktreeChanged, still_holds

    cache = Cache(str(tmp_path / "cache"))
    oid, _ = cache.put_bytes(b"content " * 200_000, "xxh128")
    dest = tmp_path / "wt" / "f.bin"
    write(dest, b"version gitdata/1\n...")
    check = still_holds(str(dest), dest.read_bytes())

    def user_edits_then_check() -> None:
        dest.write_bytes(b"the user's edit")  # while the copy was being written
        check()

    with _pytest.raises(WorktreeChanged):
        cache.copy_to(oid, str(dest), user_edits_then_check)
    assert dest.read_bytes() == b"the user's edit"
    assert os.listdir(dest.parent) == ["f.bin"]  # no temporary file left
    cache.copy_to(oid, str(dest), still_holds(str(dest), b"the user's edit"))
    assert dest.read_bytes() == b"content " * 200_000


def test_copy_to_location_moves_the_bytes_and_keeps_a_file_already_there(local_backend, tmp_path):
    backend = local_backend
    put_objects(backend, OBJECTS)
    root = project(tmp_path / "p")
    gd(root, "remote", "add", "origin", str(tmp_path / "store"))
    gd(root, "dataset", "add", "ds", backend.url, "--create", *opts(backend))
    write(root / "data/ds/own.bin", b"the project's own file\n")  # an oid, not registered
    git(root, "add", "data/ds/own.bin")
    git(root, "commit", "-q", "-m", "register")
    gd(root, "push")
    gd(root, "dataset", "stage", "ds")
    ext = tmp_path / "external"
    write(ext / "ds" / "b.txt", b"already here, not ours\n")
    out = gd(root, "dataset", "stage", "ds", "--location", str(ext)).stdout.decode()
    assert "kept data/ds/b.txt" in out
    assert (ext / "ds" / "b.txt").read_bytes() == b"already here, not ours\n"
    assert (ext / "ds" / "a.txt").read_bytes() == OBJECTS["a.txt"]
    assert (ext / "ds" / "own.bin").read_bytes() == b"the project's own file\n"
    assert stat.S_IMODE((ext / "ds" / "a.txt").stat().st_mode) == _umask_mode()
    local = _local(status_json(root))
    assert local.pop("data/ds/b.txt") == "modified"
    assert set(local.values()) == {"staged (linked)"}
    assert clean(root), git(root, "status", "--porcelain")
