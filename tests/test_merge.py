"""The merge driver's decision table (pure), and the driver under a real git merge."""

from __future__ import annotations

import pytest

from gitdata.merge import merge_pointers, same_version

P1 = b"version gitdata/1\noid xxh128:" + b"1" * 32 + b"\nsize 10\n"
P2 = b"version gitdata/1\noid xxh128:" + b"2" * 32 + b"\nsize 10\n"
P3 = b"version gitdata/1\noid xxh128:" + b"3" * 32 + b"\nsize 12\n"
P1_EXTRA = b"version gitdata/1\nnewer-key kept\noid xxh128:" + b"1" * 32 + b"\nsize 10\n"
R1 = b"version gitdata/1\netag \"e1\"\nsize 5\nsource s3://b/raw/a.csv\nversion-id v1\n"
R1_MTIME = b"version gitdata/1\netag \"e1\"\nmtime 2026-01-01T00:00:00.000000Z\nsize 5\nsource s3://b/raw/a.csv\nversion-id v1\n"
R2 = b"version gitdata/1\netag \"e2\"\nsize 5\nsource s3://b/raw/a.csv\nversion-id v2\n"
JUNK = b"not a pointer at all\n"


@pytest.mark.parametrize(
    "base,ours,theirs,outcome",
    [
        (P1, P2, P2, "ours"),  # both made the same change
        (P1, P2, P1, "ours"),  # only ours changed
        (P1, P1, P2, "theirs"),  # only theirs changed
        (P1, P2, P3, "conflict"),  # both changed differently
        (P2, P1, P1_EXTRA, "ours"),  # one version, recorded with different optional keys
        (P2, P1_EXTRA, P1, "ours"),
        (R2, R1, R1_MTIME, "ours"),  # a registered file: same source, same version
        (R1, R2, R1_MTIME, "conflict"),  # different versions of one source
        (P1, R1, P2, "conflict"),  # a registered pointer against a project object
        (P1, JUNK, P2, "conflict"),  # junk is never "the same version"
        (P1, JUNK, JUNK, "ours"),  # ...unless both sides wrote the same bytes
        (b"", P1, P2, "conflict"),  # both added the path
        (b"", P1, P1, "ours"),
    ],
)
def test_merge_table(base, ours, theirs, outcome):
    assert merge_pointers(base, ours, theirs).outcome == outcome


def test_conflicts_say_why():
    assert "not a valid pointer" in merge_pointers(P1, JUNK, P2).reason
    assert "different version" in merge_pointers(P1, P2, P3).reason


def test_same_version_needs_a_named_version_for_registered_files():
    bare = b"version gitdata/1\nsize 5\nsource s3://b/raw/a.csv\n"
    assert same_version(bare, bare)  # identical bytes
    other = b"version gitdata/1\nsize 5\nsource s3://b/raw/b.csv\n"
    assert not same_version(bare, other)
    assert not same_version(P1, P3) and not same_version(P1, JUNK)


def test_the_driver_in_a_real_merge(tmp_path):
    from helpers import git, new_project, run

    p = new_project(tmp_path / "p")
    (p / "d.bin").write_bytes(b"base\n")
    git(p, "add", "d.bin")
    git(p, "commit", "-qm", "base")
    git(p, "checkout", "-q", "-B", "side")
    (p / "d.bin").write_bytes(b"theirs\n")
    git(p, "commit", "-qam", "theirs")
    git(p, "checkout", "-q", "-")
    (p / "n.txt").write_text("unrelated\n")
    git(p, "add", "n.txt")
    git(p, "commit", "-qm", "ours touches another file")
    git(p, "merge", "-q", "--no-edit", "side")
    assert (p / "d.bin").read_bytes() == b"theirs\n"  # only theirs changed the data file
    git(p, "checkout", "-q", "-B", "side2", "HEAD~1")
    (p / "d.bin").write_bytes(b"side two\n")
    git(p, "commit", "-qam", "side two")
    git(p, "checkout", "-q", "-")
    r = run("git", "merge", "--no-edit", "side2", cwd=p, check=False)
    said = (r.stdout + r.stderr).decode()
    assert r.returncode != 0
    assert "both sides changed d.bin (both sides recorded a different version)" in said
    assert "git checkout --ours d.bin" in said
