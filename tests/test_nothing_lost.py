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
