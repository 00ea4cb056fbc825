"""`gitdata.fetchInclude` / `gitdata.fetchExclude`: partial data at clone, pull and fetch.

The patterns are pure (a table here); the rest runs git and git data as a
user does, with a data remote in a local folder (the transfer code is the
same for every backend and tested against the servers elsewhere).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitdata.fetchfilter import FetchFilter, matches, split_patterns
from helpers import gd, git, new_project, run, write


@pytest.mark.parametrize(
    "pattern, path, expected",
    [
        ("data/raw", "data/raw/x.bin", True),
        ("data/raw/", "data/raw/sub/x.bin", True),
        ("/data/raw", "data/raw/x.bin", True),
        ("data/raw", "data/rawer/x.bin", False),
        ("data/raw", "other/data/raw/x.bin", False),  # a pattern with a / starts at the top
        ("raw", "a/raw/x.bin", True),  # one without a / matches any folder name
        ("raw", "a/rawx/x.bin", False),
        ("*.tif", "a/b/c.tif", True),
        ("*.tif", "a/b/c.tiff", False),
        ("data/*.bin", "data/x.bin", True),
        ("data/*.bin", "data/sub/x.bin", False),  # * does not cross a /
        ("data/**/*.bin", "data/sub/deeper/x.bin", True),
        ("data/**", "data/x", True),
        ("d?ta/x", "data/x", True),
        ("", "data/x", False),
        ("/", "data/x", False),
    ],
)
def test_patterns(pattern, path, expected):
    assert matches(pattern, path) is expected


def test_include_exclude_and_the_comma_list():
    assert split_patterns(" data/a , *.tif,,") == ("data/a", "*.tif")
    assert split_patterns(None) == ()
    f = FetchFilter.from_settings("data", "data/big, *.tmp")
    assert f.active and f.wants("data/x.bin") and not f.wants("data/big/y.bin")
    assert not f.wants("data/z.tmp") and not f.wants("other/x.bin")
    assert FetchFilter().wants("anything") and not FetchFilter().active


FILES = {"data/keep/a.bin": b"A" * 3000, "data/skip/b.bin": b"B" * 3000, "data/skip/c.bin": b"C" * 10}


def _origin(tmp_path: Path) -> Path:
    store = tmp_path / "store"
    src = new_project(tmp_path / "src", remote_url=store.as_uri())
    for rel, data in FILES.items():
        write(src / rel, data)
    git(src, "add", "-A")
    git(src, "commit", "-q", "-m", "data")
    gd(src, "push")
    return src


def _is_pointer(p: Path) -> bool:
    return p.read_bytes().startswith(b"version gitdata/1\n")


def test_a_clone_with_an_exclude_keeps_those_pointers_and_pull_honours_it(tmp_path):
    src = _origin(tmp_path)
    clone = tmp_path / "clone"
    run("git", "clone", "-q", "-c", "gitdata.fetchExclude=data/skip", str(src), str(clone), cwd=tmp_path)
    assert (clone / "data/keep/a.bin").read_bytes() == FILES["data/keep/a.bin"]
    assert _is_pointer(clone / "data/skip/b.bin") and _is_pointer(clone / "data/skip/c.bin")
    assert git(clone, "status", "--porcelain") == ""
    # not "not materialized": those pointers are there on purpose
    proc = run("git", "data", "status", "--exit-code", cwd=clone, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # pull (no paths) and fetch leave them out
    from gitdata.hashing import oid_of_bytes
    from gitdata.project import Project

    def cached(rel: str) -> bool:
        return Project.open(str(clone)).cache.has(oid_of_bytes(FILES[rel]), len(FILES[rel]))

    out = json.loads(gd(clone, "pull", "--json"))
    # a local data remote is read directly at clone; pull caches what it wants (a.bin) only
    assert out == {"downloaded": 1, "checked_out": 0, "failed": {}}
    assert cached("data/keep/a.bin") and not cached("data/skip/b.bin") and not cached("data/skip/c.bin")
    assert _is_pointer(clone / "data/skip/b.bin")
    assert json.loads(gd(clone, "fetch", "--json"))["downloaded"] == 0
    assert not cached("data/skip/b.bin")
    # naming them fetches them anyway
    out = json.loads(gd(clone, "pull", "data/skip/b.bin", "--json"))
    assert out["downloaded"] == 1 and out["checked_out"] == 1
    assert (clone / "data/skip/b.bin").read_bytes() == FILES["data/skip/b.bin"]
    assert _is_pointer(clone / "data/skip/c.bin")
    # --include on the command line replaces the settings for that fetch
    assert json.loads(gd(clone, "fetch", "--include", "data/skip/*", "--json"))["downloaded"] == 1
    assert cached("data/skip/c.bin")
    assert git(clone, "status", "--porcelain") == ""


def test_include_only_and_a_later_checkout(tmp_path):
    src = _origin(tmp_path)
    clone = tmp_path / "clone"
    run("git", "clone", "-q", "-c", "gitdata.fetchInclude=*.nothing", str(src), str(clone), cwd=tmp_path)
    assert all(_is_pointer(clone / rel) for rel in FILES)
    git(clone, "config", "--unset", "gitdata.fetchInclude")
    out = json.loads(gd(clone, "pull", "--json"))
    assert out["checked_out"] == 3 and out["failed"] == {}
    assert all((clone / rel).read_bytes() == data for rel, data in FILES.items())
    assert git(clone, "status", "--porcelain") == ""


def test_a_bad_pattern_list_is_harmless(tmp_path):
    src = _origin(tmp_path)
    clone = tmp_path / "clone"
    run("git", "clone", "-q", "-c", "gitdata.fetchExclude= , ,", str(src), str(clone), cwd=tmp_path)
    assert all((clone / rel).read_bytes() == data for rel, data in FILES.items())
