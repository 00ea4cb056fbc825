"""Nothing is lost (issue 11): a user's edits survive every git data command,
and a fault leaves a state the next ordinary command repairs.

Each test replays one scenario step by step, as a user would, with real git
and git data subprocesses against a local folder or a loopback server.
"""

from __future__ import annotations

import os
import stat

import pytest

from conftest import _make_backend
from helpers import git, write
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
