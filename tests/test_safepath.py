"""safepath: names from untrusted input, and walks of the real filesystem that never follow foreign links."""

from __future__ import annotations

import os

import pytest

from gitdata import safepath


@pytest.mark.parametrize("rel", ["a", "a/b.txt", "a b/c", "x..y/z", ".hidden/f", "a:b/c", "back\\slash", "é/ü"])
def test_check_relpath_accepts(rel):
    assert safepath.check_relpath(rel) == rel


@pytest.mark.parametrize("rel,why", [
    ("", "empty"), ("/abs", "absolute"), ("../x", "'..'"), ("a/../../x", "'..'"), ("a//b", "empty"),
    ("./a", "'.'"), ("a/.", "'.'"), ("a/.git/config", ".git"), (".GIT/x", ".git"), ("x/.git./y", ".git"),
    ("x/.git /y", ".git"), ("git~1/hooks", ".git"), ("a\0b", "control"), ("a\nb", "control"), ("a/b\r", "control"),
])  # fmt: skip
def test_check_relpath_refuses(rel, why):
    with pytest.raises(safepath.UnsafePath, match=why):
        safepath.check_relpath(rel, "object key")


def test_check_place_refuses_files_git_reads():
    assert safepath.check_place("data/x/", "folder") == "data/x"
    for rel in (".gitdata", ".gitattributes/x", "/abs/x"):
        with pytest.raises(safepath.UnsafePath):
            safepath.check_place(rel, "folder")


def test_checked_dir_creates_and_refuses_links(tmp_path):
    root = tmp_path / "place"
    outside = tmp_path / "outside"
    outside.mkdir()
    assert safepath.checked_dir(str(root), "a/b") == str(root / "a" / "b")
    assert (root / "a" / "b").is_dir()
    os.symlink(outside, root / "a" / "link")
    with pytest.raises(safepath.UnsafePath, match="symlink"):
        safepath.checked_dir(str(root), "a/link/c")
    assert not (outside / "c").exists()
    # a file in the way is refused too, and nothing is created past it
    (root / "file").write_text("x")
    with pytest.raises(safepath.UnsafePath):
        safepath.checked_dir(str(root), "file/c")
    with pytest.raises(FileNotFoundError):
        safepath.checked_dir(str(root), "missing/c", create=False)
    assert not (root / "missing").exists()


def test_checked_dir_follows_only_the_links_it_is_told_about(tmp_path):
    root = tmp_path / "place"
    target = tmp_path / "location"
    other = tmp_path / "other"
    target.mkdir()
    other.mkdir()
    root.mkdir()
    os.symlink(target, root / "ds")
    assert safepath.checked_dir(str(root), "ds/sub", links={"ds": str(target)}) == str(target / "sub")
    assert (target / "sub").is_dir()
    # the link was changed to point elsewhere: refused
    os.unlink(root / "ds")
    os.symlink(other, root / "ds")
    with pytest.raises(safepath.UnsafePath):
        safepath.checked_dir(str(root), "ds/sub", links={"ds": str(target)})
    assert not (other / "sub").exists()


def test_checked_target_refuses_a_link_or_folder_at_the_file(tmp_path):
    root = tmp_path / "place"
    root.mkdir()
    secret = tmp_path / "secret"
    secret.write_text("s")
    assert safepath.checked_target(str(root), "d/new.txt") == str(root / "d" / "new.txt")
    (root / "d" / "f.txt").write_text("mine")
    assert safepath.checked_target(str(root), "d/f.txt") == str(root / "d" / "f.txt")
    os.symlink(secret, root / "d" / "l.txt")
    with pytest.raises(safepath.UnsafePath, match="a symlink"):
        safepath.checked_target(str(root), "d/l.txt")
    (root / "d" / "dir").mkdir()
    with pytest.raises(safepath.UnsafePath, match="not a regular file"):
        safepath.checked_target(str(root), "d/dir")
    with pytest.raises(safepath.UnsafePath, match="'..'"):
        safepath.checked_target(str(root), "d/../../secret")
    assert secret.read_text() == "s"


def test_names_longer_than_a_filesystem_holds_are_refused():
    assert safepath.check_relpath("a/" + "x" * 255) == "a/" + "x" * 255
    with pytest.raises(safepath.UnsafePath, match="longer than 255 bytes"):
        safepath.check_relpath("a/" + "x" * 256)
    with pytest.raises(safepath.UnsafePath, match="longer than 255 bytes"):
        safepath.check_relpath("é" * 128)  # 256 bytes in UTF-8
