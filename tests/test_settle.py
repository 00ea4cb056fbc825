"""The first ``git status`` after a clone (``gitdata.settle``): files git wrote in the
index's own second are checked by content in the background and the index marked newer,
so git trusts them by stat and does not start the filter; a file changed in that second,
a blob that does not match, or an index git rewrote meanwhile leave everything to git."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from gitdata import settle
from helpers import gd, git, new_project, write


def _filter_started(cwd: Path) -> bool:
    """Whether ``git status`` starts our filter (git's own trace of the commands it runs)."""
    proc = subprocess.run(["git", "status", "--porcelain"], cwd=cwd, capture_output=True, check=True,
                          env={**os.environ, "GIT_TRACE": "1"})  # fmt: skip
    return b"filter-process" in proc.stderr


def _wait_settled(index: Path, before: int, timeout: float = 5.0) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if index.stat().st_mtime_ns != before:
            return True
        time.sleep(0.05)
    return False


def _cloned(tmp_path: Path, n: int = 200) -> tuple[Path, Path]:
    proj = new_project(tmp_path / "p", str(tmp_path / "store"))
    for i in range(n):
        write(proj / "data" / f"f{i:04d}.bin", os.urandom(64) + b"%d" % i)
    write(proj / "README.md", b"readme\n")
    git(proj, "add", ".")
    git(proj, "commit", "-qm", "data")
    gd(proj, "push")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(proj), str(clone))
    return proj, clone


def test_after_a_clone_the_first_status_does_not_start_the_filter(tmp_path):
    _proj, clone = _cloned(tmp_path)
    index = clone / ".git" / "index"
    assert (clone / "data" / "f0007.bin").stat().st_size == 65  # content, not a pointer
    before = index.stat().st_mtime_ns
    _wait_settled(index, before)
    assert not _filter_started(clone)
    assert git(clone, "status", "--porcelain") == ""


def test_without_it_the_first_status_starts_the_filter(tmp_path):
    """The control: gitdata.settleIndex false, and the clone's index in its files' second."""
    proj, _clone = _cloned(tmp_path)
    clone = tmp_path / "clone2"
    git(tmp_path, "-c", "gitdata.settleIndex=false", "clone", "-q", str(proj), str(clone))
    index = clone / ".git" / "index"
    newest = max(p.stat().st_mtime_ns for p in (clone / "data").iterdir())
    os.utime(index, ns=(newest, newest))
    time.sleep(1.2)  # nothing touches the index this time
    assert index.stat().st_mtime_ns == newest
    assert _filter_started(clone)


def _racy_repo(tmp_path: Path) -> tuple[Path, Path]:
    """A committed repository whose index is in the same second as its files (as a checkout
    leaves it): git cannot trust their stat data."""
    repo = tmp_path / "r"
    repo.mkdir()
    git(repo, "init", "-q")
    for i in range(5):
        write(repo / f"f{i}.txt", b"line %d\n" % i)
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "x")
    index = repo / ".git" / "index"
    newest = max((repo / f"f{i}.txt").stat().st_mtime_ns for i in range(5))
    os.utime(index, ns=(newest, newest))  # the files' own second
    return repo, index


def test_parse_and_racy_entries_of_a_real_index(tmp_path):
    repo, index = _racy_repo(tmp_path)
    out = subprocess.run(["git", "ls-files", "-s", "--debug", "-z"], cwd=repo, capture_output=True, check=True).stdout
    entries = settle.parse_entries(out)
    assert [e.path for e in entries] == [f"f{i}.txt" for i in range(5)]
    assert all(e.size == 7 and e.mode == "100644" and e.stage == 0 and len(e.oid) == 40 for e in entries)
    assert [e.path for e in settle.racy(entries, int(index.stat().st_mtime))] == [e.path for e in entries]
    assert settle.racy(entries, int(index.stat().st_mtime) + 10**6) == []


def test_a_path_with_a_newline_and_a_tab_is_parsed_whole(tmp_path):
    repo = tmp_path / "r"
    repo.mkdir()
    git(repo, "init", "-q")
    name = "we\tird\nname  flags: 9.txt"
    write(repo / name, b"x\n")
    write(repo / "b.txt", b"y\n")
    git(repo, "add", ".")
    out = subprocess.run(["git", "ls-files", "-s", "--debug", "-z"], cwd=repo, capture_output=True, check=True).stdout
    assert sorted(e.path for e in settle.parse_entries(out)) == sorted(["b.txt", name])


def test_settle_checks_bytes_after_the_second_then_touches_the_index(tmp_path):
    repo, index = _racy_repo(tmp_path)
    before = index.stat().st_mtime_ns
    assert settle.settle(str(repo), str(index), {})  # git's own blobs, hashed by git
    assert index.stat().st_mtime_ns > before
    assert int(index.stat().st_mtime) > max(int((repo / f"f{i}.txt").stat().st_mtime) for i in range(5))
    assert git(repo, "status", "--porcelain") == ""


def test_a_touch_the_file_system_stamps_too_early_is_not_claimed(tmp_path):
    """The file system's clock (the kernel's coarse one) may be behind ``time.time()``: a touch
    that leaves the index in its entries' second must not count as settled."""
    repo = tmp_path / "r"
    repo.mkdir()
    git(repo, "init", "-q")
    ahead = time.time_ns() + 100 * 10**9  # files stamped 100 s ahead of every clock here
    for i in range(3):
        write(repo / f"f{i}.txt", b"line %d\n" % i)
        os.utime(repo / f"f{i}.txt", ns=(ahead, ahead))
    git(repo, "add", ".")
    index = repo / ".git" / "index"
    os.utime(index, ns=(ahead, ahead))
    waits = []
    assert not settle.settle(str(repo), str(index), {}, sleep=waits.append, clock=lambda: 1e12)
    assert waits and all(w < 0.1 for w in waits)  # ticks only: the clock said the second had passed
    assert int(index.stat().st_mtime) < ahead // 10**9 + 1  # still racy, so git checks the bytes


def test_a_file_changed_in_the_same_second_is_not_hidden(tmp_path):
    repo, index = _racy_repo(tmp_path)
    st = (repo / "f2.txt").stat()
    (repo / "f2.txt").write_bytes(b"LINE 2\n")  # same size, same second: only the bytes tell
    os.utime(repo / "f2.txt", ns=(st.st_atime_ns, st.st_mtime_ns))
    before = index.stat().st_mtime_ns
    assert not settle.settle(str(repo), str(index), {})
    assert index.stat().st_mtime_ns == before
    assert git(repo, "status", "--porcelain").strip() == "M f2.txt"


def test_what_the_filter_wrote_must_hash_to_what_it_recorded(tmp_path):
    repo, index = _racy_repo(tmp_path)
    written = {"f1.txt": "sha256:" + "0" * 64}  # the filter says it wrote other bytes
    assert not settle.settle(str(repo), str(index), written)
    import hashlib

    good = {f"f{i}.txt": "sha256:" + hashlib.sha256(b"line %d\n" % i).hexdigest() for i in range(5)}
    assert settle.settle(str(repo), str(index), good)


def test_an_index_git_rewrote_meanwhile_keeps_its_own_time(tmp_path):
    repo, index = _racy_repo(tmp_path)

    def git_writes_the_index(seconds: float) -> None:
        time.sleep(seconds)
        write(repo / "new.txt", b"n\n")
        git(repo, "add", "new.txt")  # a new index file, renamed over the old one

    assert not settle.settle(str(repo), str(index), {}, sleep=git_writes_the_index)
    assert "new.txt" in git(repo, "ls-files")


def test_a_conflict_or_symlink_entry_is_left_to_git(tmp_path):
    repo, index = _racy_repo(tmp_path)
    os.symlink("f0.txt", repo / "link")
    git(repo, "add", "link")
    st = index.stat()
    os.utime(repo / "link", ns=(st.st_mtime_ns, st.st_mtime_ns), follow_symlinks=False)
    before = index.stat().st_mtime_ns
    assert not settle.settle(str(repo), str(index), {})
    assert index.stat().st_mtime_ns == before


def test_a_file_changed_within_its_second_is_left_to_git(tmp_path):
    """Same size, same mtime second, other nanoseconds: git built without USE_NSEC would
    take it as unchanged once the index is newer, so the index is not touched."""
    repo, index = _racy_repo(tmp_path)
    st = (repo / "f3.txt").stat()
    (repo / "f3.txt").write_bytes(b"LINE 3\n")
    sec = st.st_mtime_ns // 1_000_000_000 * 1_000_000_000
    other = sec + (st.st_mtime_ns - sec + 1234) % 1_000_000_000
    os.utime(repo / "f3.txt", ns=(other, other))
    before = index.stat().st_mtime_ns
    assert not settle.settle(str(repo), str(index), {})
    assert index.stat().st_mtime_ns == before


def test_a_hostile_path_in_the_index_is_never_an_option_or_a_second_line(tmp_path):
    """Index paths go to `git hash-object --stdin-paths` one per line: a path with a line
    break, or one that looks like an option, cannot split or steer that command."""
    repo, index = _racy_repo(tmp_path)
    for name in ("--no-filters\nf0.txt", "-x.txt"):
        write(repo / name, b"hostile\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "names")
    newest = max(p.stat().st_mtime_ns for p in repo.iterdir() if p.is_file())
    os.utime(index, ns=(newest, newest))
    assert not settle.settle(str(repo), str(index), {})  # the line break: left to git
    git(repo, "rm", "-q", "--cached", "--", "--no-filters\nf0.txt")
    git(repo, "commit", "-qm", "drop")
    os.unlink(repo / "--no-filters\nf0.txt")
    newest = max(p.stat().st_mtime_ns for p in repo.iterdir() if p.is_file())
    os.utime(index, ns=(newest, newest))
    assert settle.settle(str(repo), str(index), {})  # "-x.txt" is a path on stdin, hashed as one
    assert git(repo, "status", "--porcelain") == ""
