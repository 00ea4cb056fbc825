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


# -- folders held open (safepath.Folders) ------------------------------------------------


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_folders_refuse_a_link_on_the_way_or_at_the_file(tmp_path):
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "link").symlink_to(outside)
    (root / "real" / "f").symlink_to(outside / "g")
    with safepath.Folders(str(root), what="dataset 'x'") as folders:
        with pytest.raises(safepath.UnsafePath, match="symlink .*git data did not create"):
            folders.target("link/file")
        with pytest.raises(safepath.UnsafePath, match="is a symlink; git data only replaces regular files"):
            folders.target("real/f")
        with pytest.raises(safepath.UnsafePath, match=r"'\.\.' part"):
            folders.target("real/../link/file")
        with pytest.raises(FileNotFoundError):
            folders.target("missing/file", create=False)
        assert not (root / "missing").exists()
        with folders.target("new/deeper/file") as t:
            assert t.full == str(root / "new" / "deeper" / "file")
            assert t.name == "file"
    assert os.listdir(outside) == []


def test_a_folder_swapped_for_a_link_after_its_check_does_not_redirect_a_write(tmp_path):
    """The write goes relative to the folder checked and held open: replacing that folder by
    a link to elsewhere (by path, meanwhile) leaves elsewhere untouched."""
    from gitdata import writer

    root = tmp_path / "root"
    (root / "d").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with safepath.Folders(str(root)) as folders, folders.target("d/file") as t:
        w = writer.GuardedFile(t.full, "sha256", dir_fd=t.dir_fd, name=t.name, expect=None)
        w.write(b"staged bytes")
        os.rename(root / "d", root / "moved")
        (root / "d").symlink_to(elsewhere)
        w.commit()
    assert os.listdir(elsewhere) == []
    assert (root / "moved" / "file").read_bytes() == b"staged bytes"
    assert sorted(os.listdir(root / "moved")) == ["file"]  # no temporary file left


def test_a_dir_fd_write_keeps_a_file_that_appeared_meanwhile(tmp_path):
    from gitdata import writer

    root = tmp_path / "root"
    with safepath.Folders(str(root)) as folders, folders.target("d/file") as t:
        w = writer.GuardedFile(t.full, "sha256", dir_fd=t.dir_fd, name=t.name, expect=None)
        w.write(b"ours")
        (root / "d" / "file").write_bytes(b"the user's")
        with pytest.raises(writer.TargetChanged):
            w.commit()
    assert (root / "d" / "file").read_bytes() == b"the user's"
    assert os.listdir(root / "d") == ["file"]


def test_folders_keep_a_bounded_number_of_descriptors_open(tmp_path):
    before = _open_fds()
    folders = safepath.Folders(str(tmp_path), keep=3)
    held = folders.target("busy/file")  # in use: never closed while held
    for i in range(20):
        with folders.target(f"f{i}/file"):
            pass
    assert _open_fds() - before <= 3 + 1
    assert os.stat(".", dir_fd=held.dir_fd) is not None  # the one in use is still open
    held.__exit__(None, None, None)
    folders.close()
    assert _open_fds() == before


def test_a_forked_child_walks_its_own_folders(tmp_path):
    folders = safepath.Folders(str(tmp_path))
    with folders.target("a/file"):
        pass
    pid = os.fork()
    if pid == 0:  # the child: what it inherited is its parent's; it starts afresh
        try:
            with folders.target("a/file") as t, folders.target("b/file"):
                ok = t.full == str(tmp_path / "a" / "file") and not folders._open.keys() - {"a", "b"}
            folders.close()
            os._exit(0 if ok else 1)
        except BaseException:
            os._exit(2)
    _pid, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert set(folders._open) == {"a"}  # the parent's own, untouched by the child
    folders.close()
