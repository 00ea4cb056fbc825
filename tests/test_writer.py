"""The one guarded writer (gitdata.writer): temp beside the target, hash while
writing, verify, keep what changed meanwhile, umask mode, nothing left on failure."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest

from gitdata import writer
from gitdata.fileio import tmp_owner
from gitdata.hashing import oid_of_bytes
from helpers import tmpfs


def _leftovers(folder) -> list[str]:
    return [n for n in os.listdir(folder) if tmp_owner(n) is not None]


def test_commit_places_the_bytes_with_the_umask_mode_and_returns_oid_and_size(tmp_path):
    dest = tmp_path / "sub" / "f.bin"
    old = os.umask(0o027)
    try:
        with writer.GuardedFile(str(dest), "sha256") as w:
            w.write(b"hello ")
            w.write(memoryview(b"world"))
            assert not dest.exists() and len(_leftovers(tmp_path / "sub")) == 1
            oid, size = w.commit()
    finally:
        os.umask(old)
    writer_mode = stat.S_IMODE(dest.stat().st_mode)
    assert dest.read_bytes() == b"hello world" and size == 11
    assert oid == oid_of_bytes(b"hello world", "sha256")
    # the umask read by git data is the process's at first use; 0600 (mkstemp's) never stays
    assert writer_mode != 0o600 and writer_mode & 0o044 in (0o044, 0o040)
    assert _leftovers(tmp_path / "sub") == []


def test_an_existing_files_mode_is_kept(tmp_path):
    dest = tmp_path / "x.sh"
    dest.write_bytes(b"old")
    dest.chmod(0o755)
    writer.write_small(str(dest), b"new")
    assert dest.read_bytes() == b"new" and stat.S_IMODE(dest.stat().st_mode) == 0o755


def test_a_target_changed_meanwhile_is_kept_and_nothing_is_left(tmp_path):
    dest = tmp_path / "f"
    dest.write_bytes(b"pointer text")
    seen = writer.signature(str(dest))
    with pytest.raises(writer.TargetChanged, match="kept it as it is"):
        with writer.GuardedFile(str(dest), "sha256", expect=seen) as w:
            w.write(b"content")
            dest.write_bytes(b"the user's edit, written while git data copied")
            w.commit()
    assert dest.read_bytes() == b"the user's edit, written while git data copied"
    assert _leftovers(tmp_path) == []


def test_expected_oid_and_size_mismatch_refuse_and_leave_nothing(tmp_path):
    dest = tmp_path / "f"
    with pytest.raises(writer.ContentMismatch, match="hashes to"):
        with writer.GuardedFile(str(dest), "sha256") as w:
            w.write(b"abc")
            w.commit(expected_oid=oid_of_bytes(b"abd", "sha256"))
    with pytest.raises(writer.ContentMismatch, match="3 bytes arrived, 4 were expected"):
        with writer.GuardedFile(str(dest), "sha256") as w:
            w.write(b"abc")
            w.commit(expected_size=4)
    assert not dest.exists() and _leftovers(tmp_path) == []


def test_a_failing_check_keeps_the_target(tmp_path):
    dest = tmp_path / "f"
    dest.write_bytes(b"before")

    def refuse() -> None:
        raise RuntimeError("not now")

    with pytest.raises(RuntimeError):
        writer.copy_file(__file__, str(dest), algorithm="sha256", check=refuse)
    assert dest.read_bytes() == b"before" and _leftovers(tmp_path) == []


def test_create_only_never_replaces(tmp_path):
    dest = tmp_path / "f"
    dest.write_bytes(b"someone was first")
    with pytest.raises(FileExistsError):
        with writer.GuardedFile(str(dest), "sha256") as w:
            w.write(b"mine")
            w.commit(create_only=True)
    assert dest.read_bytes() == b"someone was first" and _leftovers(tmp_path) == []


def test_a_block_left_without_commit_leaves_nothing(tmp_path):
    with writer.GuardedFile(str(tmp_path / "f"), "sha256") as w:
        w.write(b"x")
    assert os.listdir(tmp_path) == []


def test_clone_from_copies_and_hashes_on_demand(tmp_path):
    src = tmp_path / "src"
    src.write_bytes(os.urandom(3 << 20))
    with writer.GuardedFile(str(tmp_path / "dst"), "sha256") as w:
        w.clone_from(str(src))
        oid, size = w.commit()
    assert (tmp_path / "dst").read_bytes() == src.read_bytes()
    assert size == 3 << 20 and oid == oid_of_bytes(src.read_bytes(), "sha256")


@pytest.fixture
def tiny_fs(tmp_path):
    with tmpfs(tmp_path / "tiny", "256k") as mnt:
        yield mnt


def test_a_full_disk_is_one_clear_error_and_leaves_nothing(tiny_fs):
    dest = tiny_fs / "big.bin"
    with pytest.raises(writer.WriteFailed, match="no space left writing .*big.bin; free some space"):
        with writer.GuardedFile(str(dest), "sha256") as w:
            for _ in range(64):
                w.write(b"\0" * (16 << 10))
            w.commit()
    assert os.listdir(tiny_fs) == []


def test_a_killed_writer_not_yet_reaped_counts_as_gone(tmp_path):
    """kill -9 leaves a zombie until its parent reaps it; it still answers kill(pid, 0),
    and its temporary file must be swept all the same (a killed stage, then stage again)."""
    import time

    from gitdata.fileio import remove_stale_tmp

    child = subprocess.Popen(["sleep", "0.05"])
    running = subprocess.Popen(["sleep", "30"])
    try:
        time.sleep(0.5)  # exited, not reaped: a zombie
        dead = tmp_path / f".gitdata-tmp-{child.pid}-abc"
        live = tmp_path / f".gitdata-tmp-{running.pid}-def"
        dead.write_bytes(b"partial")
        live.write_bytes(b"being written")
        assert remove_stale_tmp([str(tmp_path)]) == [str(dead)]
        assert live.exists() and not dead.exists()
    finally:
        running.kill()
        running.wait()
        child.wait()
