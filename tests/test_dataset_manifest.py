"""Datasets recorded by one manifest (issue 18): the format, hostile manifests, and the whole
round trip — register, commit, push, clone, status, read, stage, update, diff, merge — at
5,000 objects with the threshold lowered by config.

The sources are a local folder and a versioned moto S3 bucket; git runs as a user runs it.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

from gitdata.datasets import manifest as mf
from gitdata.merge import merge_records
from gitdata.pointer import Pointer
from helpers import gd, git, run

# -- the format (pure) ---------------------------------------------------------------


def _p(size: int, source: str, **extra: str) -> Pointer:
    return Pointer.make(None, size, {"source": source, **extra})


def _lines(*records: dict) -> list[bytes]:
    return [json.dumps({"format": mf.FORMAT}).encode() + b"\n"] + [json.dumps(r).encode() + b"\n" for r in records]


def test_encode_then_parse_gives_the_entries_back() -> None:
    entries = [mf.Entry("a.csv", _p(3, "s3://b/a.csv", etag='"x"')), mf.Entry("sub/b", _p(0, "s3://b/sub/b"))]
    lines = list(mf.encode(entries))
    assert lines[0] == b'{"format": "gitdata-manifest/1"}\n'
    assert json.loads(lines[1]) == {"path": "a.csv", "size": 3, "source": "s3://b/a.csv", "etag": '"x"'}
    assert list(mf.parse(lines)) == entries


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([{"path": "../x", "size": 1, "source": "s3://b/x"}], "'..' part"),
        ([{"path": "a/.git/hooks/post-checkout", "size": 1, "source": "s3://b/x"}], "'.git' part"),
        ([{"path": "a/.GIT/config", "size": 1, "source": "s3://b/x"}], "'.git' part"),
        ([{"path": "/etc/passwd", "size": 1, "source": "s3://b/x"}], "absolute"),
        ([{"path": "/passwd", "size": 1, "source": "s3://b/x"}], "absolute"),  # no folder: the fuzzer's find
        ([{"path": "a\nb", "size": 1, "source": "s3://b/x"}], "control characters"),
        ([{"path": "a", "size": -1, "source": "s3://b/x"}], "no valid size"),
        ([{"path": "a", "size": True, "source": "s3://b/x"}], "no valid size"),
        ([{"path": "a", "size": 1}], "needs an oid, or a source"),
        ([{"path": "a", "size": 1, "source": "s3://b/x", "etag": 5}], "takes a string"),
        ([{"path": "a", "size": 1, "source": "s3://b/x", "Bad Key": "v"}], "key"),
        ([{"path": "b", "size": 1, "source": "s3://b/b"}, {"path": "a", "size": 1, "source": "s3://b/a"}],
         "out of order"),
        ([{"path": "a", "size": 1, "source": "s3://b/a"}, {"path": "a", "size": 1, "source": "s3://b/a"}],
         "out of order or repeated"),
        ([["not", "an", "object"]], "not an object"),
    ],
)
def test_a_bad_line_stops_the_read_naming_its_number(records, message) -> None:
    with pytest.raises(mf.ManifestError, match="line [23]") as err:
        list(mf.parse(_lines(*records)))
    assert message in str(err.value)


def test_a_manifest_without_the_header_is_refused() -> None:
    with pytest.raises(mf.ManifestError, match="not a gitdata-manifest/1 manifest"):
        list(mf.parse([b'{"path": "a", "size": 1, "source": "s3://b/a"}\n']))
    with pytest.raises(mf.ManifestError, match="newer git data"):
        list(mf.parse([b'{"format": "gitdata-manifest/2"}\n']))
    with pytest.raises(mf.ManifestError, match="not JSON"):
        list(mf.parse([*_lines(), b"{oops\n"]))


def test_encode_refuses_unsorted_or_owned_entries() -> None:
    with pytest.raises(mf.ManifestError, match="out of order"):
        list(mf.encode([mf.Entry("b", _p(1, "s3://b/b")), mf.Entry("a", _p(1, "s3://b/a"))]))
    with pytest.raises(mf.ManifestError, match="registered files only"):
        list(mf.encode([mf.Entry("a", Pointer.make("xxh128:" + "0" * 32, 1))]))


def test_merge_and_diff_are_sorted_merges() -> None:
    a1, a2 = mf.Entry("a", _p(1, "s3://b/a")), mf.Entry("a", _p(2, "s3://b/a"))
    b, c = mf.Entry("b", _p(1, "s3://b/b")), mf.Entry("c", _p(1, "s3://b/c"))
    assert list(mf.merge([a1, c], [a2, b])) == [a2, b, c]
    assert list(mf.diff([a1, b], [a2, c])) == [
        ("a", a1.pointer, a2.pointer), ("b", b.pointer, None), ("c", None, c.pointer)
    ]
    assert list(mf.diff([a1, b], [a1, b])) == []


def test_three_way_merge_of_records_by_path() -> None:
    def e(path: str, size: int) -> mf.Entry:
        return mf.Entry(path, _p(size, f"s3://b/{path}"))

    base = [e("both-same", 1), e("gone-theirs", 1), e("keep", 1), e("ours-changed", 1), e("x-clash", 1)]
    ours = [e("both-same", 2), e("gone-theirs", 1), e("keep", 1), e("new-ours", 1), e("ours-changed", 2), e("x-clash", 2)]
    theirs = [e("both-same", 2), e("keep", 1), e("new-theirs", 1), e("ours-changed", 1), e("x-clash", 3)]
    conflicts: list[str] = []
    merged = list(merge_records(base, ours, theirs, conflicts))
    assert [(m.path, m.pointer.size) for m in merged] == [
        ("both-same", 2), ("keep", 1), ("new-ours", 1), ("new-theirs", 1), ("ours-changed", 2), ("x-clash", 2)
    ]
    assert conflicts == ["x-clash"]


# -- end to end on a local source ------------------------------------------------------

N = 5000


def _source(root: Path, n: int = N) -> Path:
    for i in range(n):
        f = root / f"d{i // 500:02d}" / f"f{i:05d}.txt"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(f"object {i}\n".encode())
    return root


def _project(path: Path, remote: Path, threshold: int = 1000) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q")
    gd(path, "install")
    git(path, "commit", "-q", "--allow-empty", "-m", "init")
    gd(path, "remote", "add", "store", remote.as_uri())
    git(path, "config", "gitdata.manifestThreshold", str(threshold))
    gd(path, "dataset", "create", "raw")
    return path


def _status(cwd: Path, *args: str) -> list[dict]:
    return json.loads(gd(cwd, "status", "--json", "raw", *args))


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[Path, Path, Path]:
    src = _source(tmp_path / "src")
    remote = tmp_path / "remote"
    proj = _project(tmp_path / "proj", remote)
    gd(proj, "dataset", "add", "raw", src.as_uri())
    git(proj, "commit", "-q", "-m", "register")
    return src, remote, proj


def test_a_big_registration_is_one_manifest_not_5000_pointer_files(recorded) -> None:
    _src, _remote, proj = recorded
    folder = proj / "data" / "raw"
    assert sorted(os.listdir(folder)) == [".gitdata-manifest"]  # no pointer file per object
    assert git(proj, "ls-files", "data/raw").split() == ["data/raw/.gitdata-manifest"]
    pointer = (folder / ".gitdata-manifest").read_text()
    assert "manifest 1\n" in pointer and f"files {N}\n" in pointer
    rows = _status(proj)
    assert len(rows) == N and {r["local"] for r in rows} == {"pointer only"}
    assert rows[0]["path"] == "data/raw/d00/f00000.txt"
    listed = json.loads(gd(proj, "ls-files", "--json", "--offline"))
    assert sum(1 for r in listed if r["path"].startswith("data/raw/d")) == N
    assert git(proj, "status", "--porcelain") == ""


def test_below_the_threshold_pointer_files_stay(tmp_path: Path) -> None:
    src = _source(tmp_path / "src", 20)
    proj = _project(tmp_path / "proj", tmp_path / "remote", threshold=50)
    gd(proj, "dataset", "add", "raw", src.as_uri())
    files = git(proj, "ls-files", "data/raw").split()
    assert len(files) == 20 and "data/raw/.gitdata-manifest" not in files


def test_a_manifest_needs_somewhere_to_be_pushed(tmp_path: Path) -> None:
    src = _source(tmp_path / "src", 20)
    proj = tmp_path / "proj"
    proj.mkdir()
    git(proj, "init", "-q")
    gd(proj, "install")
    git(proj, "config", "gitdata.manifestThreshold", "10")
    gd(proj, "dataset", "create", "raw")
    proc = run("git", "data", "dataset", "add", "raw", src.as_uri(), cwd=proj, check=False)
    assert proc.returncode == 1
    said = proc.stderr.decode()
    assert "nowhere to push it" in said and "git data remote add" in said and "manifestThreshold 0" in said
    assert not (proj / "data/raw").exists() or not os.listdir(proj / "data/raw")
    git(proj, "config", "gitdata.manifestThreshold", "0")  # the way out it names
    gd(proj, "dataset", "add", "raw", src.as_uri())
    assert len(git(proj, "ls-files", "data/raw").split()) == 20


def test_crossing_the_threshold_moves_pointer_files_into_the_manifest(tmp_path: Path) -> None:
    src = _source(tmp_path / "src", 20)
    proj = _project(tmp_path / "proj", tmp_path / "remote", threshold=30)
    gd(proj, "dataset", "add", "raw", src.as_uri())
    git(proj, "commit", "-q", "-m", "20 pointer files")
    assert len(git(proj, "ls-files", "data/raw").split()) == 20
    for i in range(20, 40):  # 20 more (the first 20 untouched)
        (src / f"d00/f{i:05d}.txt").write_bytes(f"object {i}\n".encode())
    gd(proj, "dataset", "add", "raw", src.as_uri())
    assert git(proj, "ls-files", "data/raw").split() == ["data/raw/.gitdata-manifest"]
    [again] = json.loads(gd(proj, "dataset", "add", "raw", src.as_uri(), "--json"))  # merged into the manifest
    assert again["files"] == 40 and again["unchanged"] == 40
    assert sorted(os.listdir(proj / "data/raw")) == [".gitdata-manifest"]
    assert len(_status(proj)) == 40
    added = gd(proj, "diff").splitlines()  # the 20 that moved are not changes
    assert len(added) == 20 and all(line.startswith("A\t") for line in added)
    assert "A\tdata/raw/d00/f00020.txt" in added and "A\tdata/raw/d00/f00019.txt" not in added


def test_crossing_the_threshold_never_removes_a_staged_or_edited_file(tmp_path: Path) -> None:
    src = _source(tmp_path / "src", 20)
    proj = _project(tmp_path / "proj", tmp_path / "remote", threshold=30)
    gd(proj, "dataset", "add", "raw", src.as_uri())
    git(proj, "commit", "-q", "-m", "20 pointer files")
    gd(proj, "dataset", "stage", "raw")  # copy mode: content where the pointer files were
    (proj / "data/raw/d00/f00003.txt").write_bytes(b"edited by hand\n")
    for i in range(20, 40):
        (src / f"d00/f{i:05d}.txt").write_bytes(f"object {i}\n".encode())
    proc = run("git", "data", "dataset", "add", "raw", src.as_uri(), cwd=proj, check=False)
    assert proc.returncode == 1 and "exists with other content" in proc.stderr.decode()
    assert "nothing was written" in proc.stderr.decode()
    assert (proj / "data/raw/d00/f00003.txt").read_bytes() == b"edited by hand\n"
    assert (proj / "data/raw/d00/f00004.txt").read_bytes() == b"object 4\n"
    assert not (proj / "data/raw/.gitdata-manifest").exists()
    assert len(git(proj, "ls-files", "data/raw").split()) == 20


def test_clone_fetches_the_manifest_and_everything_reads_through_it(recorded, tmp_path: Path) -> None:
    src, remote, proj = recorded
    bare = tmp_path / "bare.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(proj, "remote", "add", "origin", str(bare))
    git(proj, "push", "-q", "origin", "HEAD:main")
    manifest_oid = (proj / "data/raw/.gitdata-manifest").read_text().split("oid ")[1].split()[0]
    assert any(manifest_oid.split(":")[1] in name for _d, _s, names in os.walk(remote) for name in names)

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "-b", "main", str(bare), str(clone))
    assert sorted(os.listdir(clone / "data" / "raw")) == [".gitdata-manifest"]  # left a pointer, never smudged
    assert git(clone, "status", "--porcelain") == ""
    rows = _status(clone, "--remote")
    assert len(rows) == N and {r["remote"] for r in rows} == {"unchanged"}

    # gitdata.open and gitdata:// read one file of it without staging anything
    code = (
        "import gitdata, fsspec\n"
        "print(gitdata.open('data/raw/d03/f01777.txt').read().decode(), end='')\n"
        "fs = fsspec.filesystem('gitdata')\n"
        "print(len(fs.ls('data/raw/d09', detail=False)), fs.info('data/raw/d09/f04999.txt')['size'])\n"
    )
    out = run("python", "-c", code, cwd=clone).stdout.decode()
    assert out == "object 1777\n500 12\n"
    assert gd(clone, "cat", "data/raw/d00/f00042.txt") == "object 42\n"

    # stage part of it: the files appear, git sees nothing new
    gd(clone, "dataset", "stage", "raw", "--include", "d01/*")
    assert (clone / "data/raw/d01/f00500.txt").read_bytes() == b"object 500\n"
    assert not (clone / "data/raw/d02").exists()
    assert git(clone, "status", "--porcelain") == ""
    states = {r["path"]: r["local"] for r in _status(clone)}
    assert sum(1 for s in states.values() if s == "staged") == 500
    assert states["data/raw/d02/f01000.txt"] == "pointer only"

    # a local edit is seen, and unstage keeps it
    (clone / "data/raw/d01/f00501.txt").write_bytes(b"edited by hand\n")
    assert {r["path"]: r["local"] for r in _status(clone)}["data/raw/d01/f00501.txt"] == "modified"
    proc = run("git", "data", "dataset", "unstage", "raw", cwd=clone, check=False)
    assert "f00501.txt: changed since it was staged" in proc.stdout.decode() + proc.stderr.decode()
    assert (clone / "data/raw/d01/f00501.txt").read_bytes() == b"edited by hand\n"
    assert not (clone / "data/raw/d01/f00500.txt").exists()


def test_update_and_diff_work_file_by_file(recorded) -> None:
    src, _remote, proj = recorded
    (src / "d00/f00007.txt").write_bytes(b"changed at the source\n")
    (src / "d04/f02000.txt").unlink()
    (src / "d09/new.txt").write_bytes(b"new\n")
    gd(proj, "update", "raw")
    assert git(proj, "diff", "--cached", "--name-only") == "data/raw/.gitdata-manifest\n"  # git: one file
    assert gd(proj, "diff").splitlines() == [  # git data: what it records
        "M\tdata/raw/d00/f00007.txt", "D\tdata/raw/d04/f02000.txt", "A\tdata/raw/d09/new.txt"
    ]
    rows = _status(proj, "--remote")
    assert len(rows) == N and {r["remote"] for r in rows} == {"unchanged"}
    git(proj, "commit", "-q", "-m", "update")
    assert len(gd(proj, "diff", "HEAD~1", "HEAD").splitlines()) == 3
    assert gd(proj, "diff", "HEAD", "HEAD") == ""
    proc = run("git", "data", "diff", "--exit-code", "HEAD~1", cwd=proj, check=False)
    assert proc.returncode == 1
    changes = json.loads(gd(proj, "diff", "--json", "HEAD~1"))
    assert changes[0]["path"] == "data/raw/d00/f00007.txt" and changes[0]["after"]["size"] == 22


def _table(text: str) -> list[list[str]]:
    """The rows of the short listing's table (PATH, LOCAL, REMOTE), without its header."""
    lines = [ln.split("  ") for ln in text.splitlines() if ln.startswith("  ") and not ln.startswith("  PATH")]
    return [[c.strip() for c in cells if c.strip()] for cells in lines]


def test_status_remote_lists_what_changed_and_counts_the_rest(recorded, tmp_path: Path) -> None:
    """5,030 files from two sources, a few changed, deleted, new at the sources and one edited here:
    the short listing shows exactly those rows and counts every file; the datasets section keeps
    a row only for those (the rest in counts); --json and -v still list every file."""
    from gitdata.datasets.status import dataset_rows
    from gitdata.project import Project
    from gitdata.statusrows import StatusOptions

    src, _remote, proj = recorded
    src2 = _source(tmp_path / "src2", 30)
    gd(proj, "dataset", "add", "raw", src2.as_uri(), "--to", "extra")
    git(proj, "commit", "-q", "-m", "second source")
    assert git(proj, "ls-files", "data/raw").split() == ["data/raw/.gitdata-manifest"]
    assert run("git", "data", "status", "--remote", "--exit-code", "raw", cwd=proj, check=False).returncode == 0
    (src / "d00/f00007.txt").write_bytes(b"changed at the source\n")
    (src / "d04/f02000.txt").unlink()
    (src / "d09/new.txt").write_bytes(b"new\n")
    (src2 / "d00/f00011.txt").unlink()
    gd(proj, "dataset", "stage", "raw", "--include", "d01/f0050*")  # 10 files
    (proj / "data/raw/d01/f00501.txt").write_bytes(b"edited by hand\n")
    total = N + 30

    text = gd(proj, "status", "--remote", "raw")
    assert text.splitlines()[0] == (
        f"dataset raw: 1 modified, {total - 10} pointer only, 9 staged, 1 changed on remote, "
        f"2 deleted on remote, 1 new on remote, {total - 3} unchanged on remote"
    )
    assert _table(text) == [
        ["data/raw/d00/f00007.txt", "pointer only", "changed"],
        ["data/raw/d01/f00501.txt", "modified", "unchanged"],
        ["data/raw/d04/f02000.txt", "pointer only", "deleted"],
        ["data/raw/extra/d00/f00011.txt", "pointer only", "deleted"],
        ["data/raw/d09/new.txt", "-", "new"],
    ]
    assert run("git", "data", "status", "--remote", "--exit-code", "raw", cwd=proj, check=False).returncode == 1

    rows = dataset_rows(Project.open(str(proj)), StatusOptions(names=("raw",), remote=True, every_file=False))
    assert [(r.path, r.local, r.remote, r.count) for r in rows] == [
        ("data/raw/d00/f00007.txt", "pointer only", "changed", 1),
        ("data/raw/d01/f00501.txt", "modified", "unchanged", 1),
        ("data/raw/d04/f02000.txt", "pointer only", "deleted", 1),
        ("data/raw/extra/d00/f00011.txt", "pointer only", "deleted", 1),
        ("", "pointer only", "unchanged", total - 13),
        ("", "staged", "unchanged", 9),
        ("data/raw/d09/new.txt", None, "new", 1),
    ]
    assert rows[0].current is not None and rows[0].current.size == len(b"changed at the source\n")

    every = _status(proj, "--remote")  # every file, the rows as before
    assert len(every) == total + 1 and all(set(r) == {"section", "name", "path", "local", "remote", "detail"}
                                           for r in every)
    assert [r["path"] for r in every[:-1]] == sorted(r["path"] for r in every[:-1])
    assert every[-1]["path"] == "data/raw/d09/new.txt" and every[-1]["remote"] == "new"
    states = {r["path"]: (r["local"], r["remote"]) for r in every}
    assert states["data/raw/d04/f02000.txt"] == ("pointer only", "deleted")
    assert states["data/raw/extra/d00/f00011.txt"] == ("pointer only", "deleted")
    assert states["data/raw/d01/f00500.txt"] == ("staged", "unchanged")
    assert sum(1 for v in states.values() if v == ("pointer only", "unchanged")) == total - 13
    verbose = gd(proj, "status", "--remote", "-v", "raw")
    assert verbose.splitlines()[0] == text.splitlines()[0] and len(_table(verbose)) == total + 1

    report = json.loads(gd(proj, "update", "raw", "--json"))  # update acts on the rows it is given
    assert report["changed"] == ["data/raw/d00/f00007.txt"] and report["added"] == ["data/raw/d09/new.txt"]
    assert report["deleted"] == ["data/raw/d04/f02000.txt", "data/raw/extra/d00/f00011.txt"]
    text = gd(proj, "status", "--remote", "raw")
    assert text.splitlines()[0] == (
        f"dataset raw: 1 modified, {total - 11} pointer only, 9 staged, {total - 1} unchanged on remote"
    )
    assert _table(text) == [["data/raw/d01/f00501.txt", "modified", "unchanged"]]


def test_a_source_that_cannot_be_asked_leaves_its_files_not_checked(
    tmp_path: Path, rclone_server, rclone_bucket, hermetic_git_env
) -> None:
    """A manifest dataset of two sources, one (an S3 server) refusing us: the local one is still
    compared, every file of the other is "not checked" (a row each, in the short listing too),
    the command exits 1, and `update` does not go on."""
    lab = rclone_server.bucket_path(rclone_bucket) / "lab"
    for i in range(30):
        (lab / f"k{i:02d}.txt").parent.mkdir(parents=True, exist_ok=True)
        (lab / f"k{i:02d}.txt").write_bytes(f"lab {i}\n".encode())
    rclone_server.flush_dir_cache()
    src = _source(tmp_path / "src", 20)
    proj = _project(tmp_path / "proj", tmp_path / "remote", threshold=10)
    secret = f"{rclone_server.key}\n{rclone_server.secret}\n".encode()
    run("git", "data", "credentials", "set", f"s3://{rclone_bucket}", "-o", f"endpoint_url={rclone_server.endpoint}",
        "--stdin", "--no-check", cwd=proj, input=secret)
    git(proj, "config", "--add", "gitdata.remote.raw.option", f"endpoint_url={rclone_server.endpoint}")  # this clone's
    gd(proj, "dataset", "add", "raw", f"s3://{rclone_bucket}/lab", "--to", "lab")
    gd(proj, "dataset", "add", "raw", src.as_uri())
    git(proj, "commit", "-q", "-m", "register")
    assert git(proj, "ls-files", "data/raw").split() == ["data/raw/.gitdata-manifest"]
    assert {r["remote"] for r in _status(proj, "--remote")} == {"unchanged"}
    (hermetic_git_env / ".config/gitdata/credentials").unlink()  # a colleague without credentials for lab
    (src / "d00/f00003.txt").write_bytes(b"changed\n")

    proc = run("git", "data", "status", "--remote", "raw", cwd=proj, check=False)
    out, err = proc.stdout.decode(), proc.stderr.decode()
    assert proc.returncode == 1 and "Traceback" not in err, err
    assert out.splitlines()[0] == (
        "dataset raw: 50 pointer only, 1 changed on remote, 30 not checked on remote, 19 unchanged on remote"
    )
    table = _table(out)
    assert table[0] == ["data/raw/d00/f00003.txt", "pointer only", "changed"]
    assert table[1:] == [[f"data/raw/lab/k{i:02d}.txt", "pointer only", "not checked"] for i in range(30)]
    assert "error: datasets raw: not compared with its remote" in err and "credentials" in err
    proc = run("git", "data", "status", "--remote", "--json", "raw", cwd=proj, check=False)
    rows = {r["path"]: r for r in json.loads(proc.stdout)}
    assert len(rows) == 50 and rows["data/raw/d00/f00004.txt"]["remote"] == "unchanged"
    assert all(rows[f"data/raw/lab/k{i:02d}.txt"]["remote"] == "not checked" for i in range(30))
    assert "credentials" in rows["data/raw/lab/k00.txt"]["detail"]
    proc = run("git", "data", "update", "raw", cwd=proj, check=False)
    assert proc.returncode != 0 and "credentials" in proc.stderr.decode()


def test_a_bad_line_deep_in_a_manifest_refuses_the_dataset_not_a_part_of_it(tmp_path: Path) -> None:
    """Read as a stream, a manifest's 3,001st line can be its first bad one: the dataset is
    unreadable as a whole (one row), with and without --remote, never half listed."""
    src = _source(tmp_path / "src", 3)
    remote = tmp_path / "remote"
    proj = _project(tmp_path / "proj", remote, threshold=1)
    gd(proj, "dataset", "add", "raw", src.as_uri())
    good = [{"path": f"d00/f{i:05d}.txt", "size": 9, "source": f"{src.as_uri()}/d00/f{i:05d}.txt"} for i in range(3000)]
    _forge(proj, remote, _lines(*good, {"path": "a-out-of-order", "size": 1, "source": src.as_uri() + "/x"}))
    for args in ((), ("--remote",)):
        proc = run("git", "data", "status", "--json", *args, cwd=proj, check=False)
        rows = json.loads(proc.stdout)
        assert proc.returncode == 1 and [(r["path"], r["local"]) for r in rows] == [
            ("data/raw/.gitdata-manifest", "unreadable")
        ], rows
        assert "manifest line 3002" in rows[0]["detail"] and "out of order" in rows[0]["detail"]
        proc = run("git", "data", "status", *args, cwd=proj, check=False)
        assert proc.returncode == 1 and "manifest line 3002" in proc.stderr.decode()
        assert "pointer only" not in proc.stdout.decode()
    # update refuses it too, naming the line, and writes nothing
    before = git(proj, "status", "--porcelain", "--untracked-files=all")
    manifest = (proj / "data/raw/.gitdata-manifest").read_bytes()
    proc = run("git", "data", "update", "raw", cwd=proj, check=False)
    assert proc.returncode != 0 and "manifest line 3002" in proc.stderr.decode(), proc.stderr
    assert git(proj, "status", "--porcelain", "--untracked-files=all") == before
    assert (proj / "data/raw/.gitdata-manifest").read_bytes() == manifest


def test_branches_that_register_different_objects_merge_by_path(recorded) -> None:
    src, _remote, proj = recorded
    git(proj, "checkout", "-q", "-b", "other")
    (src / "d00/extra-b.txt").write_bytes(b"b\n")
    gd(proj, "dataset", "add", "raw", src.as_uri())
    git(proj, "commit", "-q", "-m", "b")
    git(proj, "checkout", "-q", "-")
    (src / "d00/extra-a.txt").write_bytes(b"a\n")
    (src / "d00/extra-b.txt").unlink()
    gd(proj, "dataset", "add", "raw", src.as_uri())
    git(proj, "commit", "-q", "-m", "a")
    git(proj, "merge", "-q", "-m", "merge", "other")
    paths = {r["path"] for r in _status(proj)}
    assert {"data/raw/d00/extra-a.txt", "data/raw/d00/extra-b.txt"} <= paths and len(paths) == N + 2


def test_branches_that_record_one_file_differently_conflict(recorded) -> None:
    src, _remote, proj = recorded
    git(proj, "checkout", "-q", "-b", "other")
    (src / "d00/f00001.txt").write_bytes(b"version b\n")
    gd(proj, "update", "raw")
    git(proj, "commit", "-q", "-m", "b")
    git(proj, "checkout", "-q", "-")
    (src / "d00/f00001.txt").write_bytes(b"version a, longer\n")
    gd(proj, "update", "raw")
    git(proj, "commit", "-q", "-m", "a")
    proc = run("git", "merge", "-m", "merge", "other", cwd=proj, check=False)
    assert proc.returncode != 0
    said = proc.stdout.decode() + proc.stderr.decode()
    assert "data/raw/d00/f00001.txt" in said and "differently in the dataset's manifest" in said


# -- hostile manifests ----------------------------------------------------------------


def _forge(proj: Path, remote: Path, lines: list[bytes]) -> None:
    """Commit a manifest object of our own making (as a collaborator could), pushed to the data remote."""
    from gitdata.hashing import oid_of_file

    blob = gzip.compress(b"".join(lines), mtime=0)
    tmp = proj.parent / "forged.gz"
    tmp.write_bytes(blob)
    oid, size = oid_of_file(str(tmp), "xxh128")
    pointer = mf.manifest_pointer(oid, size, len(lines) - 1)
    (proj / "data/raw/.gitdata-manifest").write_bytes(pointer.encode())
    from gitdata.storage import oid_to_key

    key = remote / oid_to_key(oid)
    key.parent.mkdir(parents=True, exist_ok=True)
    key.write_bytes(blob)
    git(proj, "add", "data/raw/.gitdata-manifest")


def test_a_manifest_that_names_a_path_outside_its_folder_is_refused(tmp_path: Path) -> None:
    src = _source(tmp_path / "src", 3)
    remote = tmp_path / "remote"
    proj = _project(tmp_path / "proj", remote, threshold=1)
    gd(proj, "dataset", "add", "raw", src.as_uri())
    (src / "x").write_bytes(b"hostile")
    _forge(proj, remote, _lines({"path": "../../.git/hooks/post-checkout", "size": 7, "source": src.as_uri() + "/x"}))
    proc = run("git", "data", "dataset", "stage", "raw", cwd=proj, check=False)
    assert proc.returncode == 1
    assert "manifest line 2" in proc.stderr.decode() and "'..' part" in proc.stderr.decode()
    assert not (proj / ".git/hooks/post-checkout").exists()
    proc = run("git", "data", "status", "raw", cwd=proj, check=False)
    assert proc.returncode == 1 and "manifest line 2" in proc.stderr.decode()


def test_a_manifest_object_that_is_not_what_the_pointer_names_is_refused(recorded, tmp_path: Path) -> None:
    _src, remote, proj = recorded
    bare = tmp_path / "bare.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(proj, "push", "-q", str(bare), "HEAD:main")
    from gitdata.storage import oid_to_key

    oid = (proj / "data/raw/.gitdata-manifest").read_text().split("oid ")[1].split()[0]
    obj = remote / oid_to_key(oid)
    data = bytearray(obj.read_bytes())
    data[-20] ^= 0xFF  # tampered with on the bucket
    obj.write_bytes(bytes(data))
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "-b", "main", str(bare), str(clone))
    proc = run("git", "data", "status", "raw", cwd=clone, check=False)
    assert proc.returncode == 1 and f"refused object {oid}" in proc.stderr.decode()


# -- a real object store: versions are recorded in the manifest and pinned -------------------


def test_versions_in_the_manifest_are_read_pinned(versioned_moto_backend, tmp_path: Path) -> None:
    be = versioned_moto_backend
    fs = be.fs()
    for i in range(30):
        fs.pipe_file(be.key_path(f"k/{i:02d}.txt"), f"v1 {i}\n".encode())
    proj = _project(tmp_path / "proj", tmp_path / "remote", threshold=10)
    gd(proj, "dataset", "add", "raw", be.url, *[a for k, v in be.options.items() for a in ("-o", f"{k}={v}")])
    git(proj, "commit", "-q", "-m", "register")
    fs.pipe_file(be.key_path("k/07.txt"), b"v2 overwritten\n")
    out = run("python", "-c", "import gitdata; print(gitdata.open('data/raw/k/07.txt').read().decode(), end='')",
              cwd=proj).stdout.decode()
    assert out == "v1 7\n"  # the recorded version, not what the key holds now
    rows = {r["path"]: r["remote"] for r in _status(proj, "--remote")}
    assert rows["data/raw/k/07.txt"] == "changed" and rows["data/raw/k/08.txt"] == "unchanged"
    gd(proj, "dataset", "stage", "raw", "--include", "k/07.txt")
    assert (proj / "data/raw/k/07.txt").read_bytes() == b"v1 7\n"


# -- verify and copy rewrite the manifest ---------------------------------------------


def _small(tmp_path: Path, n: int = 40) -> tuple[Path, Path]:
    src = _source(tmp_path / "src", n)
    proj = _project(tmp_path / "proj", tmp_path / "remote", threshold=10)
    gd(proj, "dataset", "add", "raw", src.as_uri())
    git(proj, "commit", "-q", "-m", "register")
    return src, proj


def _records(proj: Path) -> dict[str, dict]:
    return {c["path"]: c["after"] for c in json.loads(gd(proj, "diff", "--json", "HEAD"))}


def test_verify_records_source_oids_in_the_manifest(tmp_path: Path) -> None:
    _src, proj = _small(tmp_path)
    report = json.loads(gd(proj, "dataset", "verify", "raw", "--json"))
    assert len(report["recorded"]) == 40
    after = _records(proj)
    assert len(after) == 40 and all(r["source-oid"].startswith("xxh128:") for r in after.values())
    assert git(proj, "ls-files", "data/raw").split() == ["data/raw/.gitdata-manifest"]
    again = json.loads(gd(proj, "dataset", "verify", "raw", "--json"))
    assert again["recorded"] == {} and len(again["unchanged"]) == 40


def test_copy_points_the_manifest_at_the_copies(tmp_path: Path) -> None:
    src, proj = _small(tmp_path)
    mine = tmp_path / "mine"
    gd(proj, "dataset", "copy", "raw", "--to-storage", mine.as_uri())
    after = _records(proj)
    assert len(after) == 40 and all(r["source"].startswith(mine.as_uri()) for r in after.values())
    assert all(r["origin-source"].startswith(src.as_uri()) for r in after.values())
    git(proj, "commit", "-q", "-am", "copied")
    code = "import gitdata; print(gitdata.open('data/raw/d00/f00003.txt').read().decode(), end='')"
    (src / "d00/f00003.txt").unlink()  # the original is gone: the copy is read
    assert run("python", "-c", code, cwd=proj).stdout.decode() == "object 3\n"


def test_a_manifest_dataset_mounts_and_unmounts(tmp_path: Path) -> None:
    import shutil

    if not os.path.exists("/dev/fuse") or not shutil.which("fusermount3"):
        pytest.skip("FUSE is not usable here")
    _src, proj = _small(tmp_path)
    gd(proj, "dataset", "stage", "raw", "--mount")
    try:
        folder = proj / "data/raw"
        assert sorted(os.listdir(folder)) == ["d00"]  # the recorded files, not the manifest's pointer
        assert len(os.listdir(folder / "d00")) == 40
        assert (folder / "d00/f00039.txt").read_bytes() == b"object 39\n"
        assert git(proj, "status", "--porcelain") == ""
        assert {r["local"] for r in _status(proj)} == {"staged"}
    finally:
        gd(proj, "unmount", "raw")
    assert sorted(os.listdir(proj / "data/raw")) == [".gitdata-manifest"]
    assert git(proj, "status", "--porcelain") == ""


def test_a_line_longer_than_the_limit_is_refused_before_it_fills_memory() -> None:
    import io

    from gitdata.datasets import objects

    huge = b'{"path": "a", "size": 1, "source": "' + b"x" * (objects.MAX_LINE * 4) + b'"}\n'
    with gzip.GzipFile(fileobj=io.BytesIO(gzip.compress(b"".join(_lines()) + huge)), mode="rb") as gz:
        lines = objects._lines(gz, "xxh128:" + "0" * 32)
        assert next(lines).startswith(b'{"format"')
        with pytest.raises(mf.ManifestError, match="longer than 65536 bytes"):
            next(lines)


def test_a_listing_of_several_pages_is_streamed_in_order(versioned_moto_backend) -> None:
    """1,200 keys: two ListObjectVersions pages, read one page at a time (nothing kept in
    s3fs's listing cache), in key order, each the latest version."""
    from gitdata.storage import Storage

    be = versioned_moto_backend
    fs = be.fs()
    fs.pipe({be.key_path(f"p/{i:04d}"): b"x" for i in range(1200)})
    fs.pipe_file(be.key_path("p/0007"), b"second version")
    storage = Storage(be.url, {**be.options, "version_aware": True})
    listed = list(storage.list("p"))
    assert [k for k, _fp in listed] == [f"p/{i:04d}" for i in range(1200)]
    assert dict(listed)["p/0007"].size == len(b"second version")
    assert all(fp.version_id for _k, fp in listed)
    assert not storage.fs.dircache  # streamed, not cached whole


# -- bounded memory: the listing streams through a sort in runs -------------------------


def test_sorted_lines_sorts_any_order_in_runs_and_leaves_nothing_behind(tmp_path: Path) -> None:
    """1,000 entries in random order, sorted 64 at a time in memory: 16 runs spilled to
    anonymous files and merged; the manifest equals the one sorted whole, and the cache's
    temporary folder is empty afterwards."""
    import random
    from types import SimpleNamespace

    from gitdata.cache import Cache
    from gitdata.datasets import objects

    entries = [mf.Entry(f"d{i % 7}/f{i:04d}", _p(i, f"s3://b/d{i % 7}/f{i:04d}", etag=f'"{i}"')) for i in range(1000)]
    shuffled = entries[:]
    random.Random(18).shuffle(shuffled)
    project = SimpleNamespace(cache=Cache(str(tmp_path / "cache")), algorithm="xxh128")
    spilled = objects.write_manifest_lines(project, objects.sorted_lines(project, iter(shuffled), run=64))
    whole = objects.write_manifest(project, sorted(entries, key=lambda e: e.path.encode()))
    assert spilled == whole and spilled.get(mf.COUNT_KEY) == "1000"
    with project.cache.open(spilled.oid) as raw, gzip.GzipFile(fileobj=raw) as gz:
        assert [e.path for e in mf.parse(gz)] == sorted(e.path for e in entries)
    assert os.listdir(project.cache.tmp_dir) == []


def test_sorted_lines_holds_one_run_at_a_time(tmp_path: Path) -> None:
    """The sort's memory is one run of lines, however many runs there are: a run spilled is
    freed before the next is read (it used to be held until the next one was sorted: twice
    the memory once a listing was longer than one run)."""
    import tracemalloc
    from types import SimpleNamespace

    from gitdata.cache import Cache
    from gitdata.datasets import objects

    project = SimpleNamespace(cache=Cache(str(tmp_path / "cache")), algorithm="xxh128")

    def entries(n: int):
        for i in range(n):
            yield mf.Entry(f"d{i % 97:02d}/f{i:07d}.txt", _p(100, f"s3://b/f{i:07d}", etag=f'"{i:032x}"'))

    def peak(n: int) -> int:
        tracemalloc.start()
        try:
            assert sum(1 for _ in objects.sorted_lines(project, entries(n), run=5000)) == n
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    one_run = peak(5000)  # sorted in memory, nothing spilled
    many_runs = peak(40_000)  # 8 runs spilled and merged
    assert many_runs < 1.4 * one_run, (one_run, many_runs)


def test_a_path_listed_twice_is_refused_by_the_writer(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from gitdata.cache import Cache
    from gitdata.datasets import objects

    project = SimpleNamespace(cache=Cache(str(tmp_path / "cache")), algorithm="xxh128")
    twice = [mf.Entry("a", _p(1, "s3://b/a")), mf.Entry("b", _p(1, "s3://b/b")), mf.Entry("a", _p(2, "s3://b/a"))]
    with pytest.raises(mf.ManifestError, match="out of order or repeated: 'a' then 'a'"):
        objects.write_manifest_lines(project, objects.sorted_lines(project, twice, run=2))
    assert os.listdir(project.cache.tmp_dir) == []  # the half-written manifest is gone too


def test_merge_of_keyed_lines_replaces_and_counts_what_is_unchanged() -> None:
    old = list(mf.keyed([mf.Entry("a", _p(1, "s3://b/a")), mf.Entry("c", _p(3, "s3://b/c"))]))
    new = list(mf.keyed([mf.Entry("a", _p(1, "s3://b/a")), mf.Entry("b", _p(2, "s3://b/b")),
                         mf.Entry("c", _p(4, "s3://b/c"))]))  # fmt: skip
    counts: dict[str, int] = {}
    merged = list(mf.merge(old, new, key=mf.by_line_key, counts=counts))
    assert [k for k, _l in merged] == [b"a", b"b", b"c"] and merged[2] == new[2]
    assert counts == {"unchanged": 1}


def test_registration_sorts_in_runs_when_the_listing_is_long(tmp_path: Path, monkeypatch) -> None:
    """dataset add, in process, with runs of 300: 5,000 listed objects are sorted in 17 runs
    and recorded exactly as one sort in memory records them (same manifest object)."""
    from gitdata.datasets import load_all, objects
    from gitdata.datasets.register import register
    from gitdata.project import Project

    src = _source(tmp_path / "src")
    proj = _project(tmp_path / "proj", tmp_path / "remote")
    whole_proj = _project(tmp_path / "whole", tmp_path / "remote2")
    gd(whole_proj, "dataset", "add", "raw", src.as_uri())
    runs = []
    real = objects.sorted_lines

    def counting(project, entries, run=None):
        runs.append(run)
        return real(project, entries, run=300)

    monkeypatch.setattr(objects, "sorted_lines", counting)
    project = Project.open(str(proj))
    report = register(project, load_all(project)["raw"], src.as_uri())
    assert runs and report.count == N and report.unchanged == 0
    assert (proj / "data/raw/.gitdata-manifest").read_bytes() == (whole_proj / "data/raw/.gitdata-manifest").read_bytes()
    again = register(Project.open(str(proj)), load_all(Project.open(str(proj)))["raw"], src.as_uri())
    assert again.count == N and again.unchanged == N  # merged into the old manifest, compared on the way


def test_dir_markers_are_dropped_from_a_streamed_listing() -> None:
    """The streamed marker filter keeps what the whole-listing rule keeps, in order, on
    every sorted listing of a small alphabet where '.', '-' and '/' sort around each other."""
    import random

    from gitdata.datasets.model import _drop_dir_markers
    from gitdata.storage.fingerprint import Fingerprint

    def whole(keys: list[tuple[str, int]]) -> list[str]:
        parents = {"/".join(k.split("/")[:i]) for k, _n in keys for i in range(1, len(k.split("/")))}
        return [k for k, n in keys if k and not k.endswith("/") and not (n == 0 and k in parents)]

    rnd = random.Random(18)
    for _ in range(3000):
        keys = sorted({"".join(rnd.choice("ab/-.0") for _ in range(rnd.randint(1, 5))): rnd.choice([0, 0, 5])
                       for _ in range(rnd.randint(0, 9))}.items())  # fmt: skip
        got = [k for k, _fp in _drop_dir_markers((k, Fingerprint(size=n)) for k, n in keys)]
        assert got == whole(keys), keys


def test_staging_on_worker_processes_writes_and_records_every_file(recorded) -> None:
    """1,500 objects staged by two forked workers (gitdata.processes 2): every file is there
    with its bytes, the parent recorded each one (status says staged, unstage removes them),
    and git sees nothing."""
    _src, _remote, proj = recorded
    git(proj, "config", "gitdata.processes", "2")
    gd(proj, "dataset", "stage", "raw", "--include", "d00/*", "--include", "d01/*", "--include", "d02/*")
    for i in (0, 499, 777, 1499):
        assert (proj / f"data/raw/d{i // 500:02d}/f{i:05d}.txt").read_bytes() == f"object {i}\n".encode()
    assert not (proj / "data/raw/d03").exists()
    assert git(proj, "status", "--porcelain") == ""
    states = [r["local"] for r in _status(proj)]
    assert states.count("staged") == 1500 and states.count("pointer only") == N - 1500
    gd(proj, "dataset", "unstage", "raw")
    assert not (proj / "data/raw/d00").exists()


def test_an_interrupted_batched_stage_keeps_its_batches_and_a_second_one_finishes(recorded, monkeypatch) -> None:
    """A manifest dataset is staged in batches: a stage interrupted in its third batch leaves the
    first two staged and recorded, git out of the folder; staging again adopts them, downloads
    only the rest and ends with every file and a clean work tree."""
    from gitdata.datasets import staging
    from gitdata.project import Project

    _src, _remote, proj = recorded
    monkeypatch.setattr(staging, "BATCH", 1000)
    stage_files = staging._stage_files
    calls = {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return stage_files(*args, **kwargs)

    monkeypatch.setattr(staging, "_stage_files", interrupted)
    with pytest.raises(KeyboardInterrupt):
        staging.stage(Project.open(str(proj)), "raw", progress=False)
    folder = proj / "data" / "raw"
    assert (folder / "d01/f00999.txt").read_bytes() == b"object 999\n"
    assert (folder / "d03/f01999.txt").read_bytes() == b"object 1999\n"
    assert not (folder / "d04/f02000.txt").exists()
    assert git(proj, "status", "--porcelain") == ""
    states = [r["local"] for r in _status(proj)]
    assert states.count("staged") == 2000 and states.count("pointer only") == 3000

    monkeypatch.setattr(staging, "_stage_files", stage_files)
    report = staging.stage(Project.open(str(proj)), "raw", progress=False)
    assert report.already == 2000 and report.staged == 3000 and not report.failed
    assert (folder / "d09/f04999.txt").read_bytes() == b"object 4999\n"
    assert git(proj, "status", "--porcelain") == ""
    assert {r["local"] for r in _status(proj)} == {"staged"}


def test_update_of_a_manifest_dataset_streams_it(recorded, monkeypatch) -> None:
    """`git data update` reads a manifest dataset as a stream (it no longer builds the list of
    every file: ds_mod.files is never called) and still re-records what changed."""
    from gitdata.datasets import model as ds_mod
    from gitdata.datasets.update import update
    from gitdata.project import Project

    src, _remote, proj = recorded
    (src / "d02" / "f01234.txt").write_bytes(b"changed at the source\n")
    (src / "d03" / "f01500.txt").unlink()

    def whole_list(*_a, **_k):
        raise AssertionError("update built the whole list of files")

    monkeypatch.setattr(ds_mod, "files", whole_list)
    report = update(Project.open(str(proj)), "raw")
    assert report.changed == ["data/raw/d02/f01234.txt"] and report.deleted == ["data/raw/d03/f01500.txt"]
    monkeypatch.undo()
    assert gd(proj, "cat", "data/raw/d02/f01234.txt") == "changed at the source\n"
    rows = {r["path"]: r["remote"] for r in _status(proj, "--remote")}
    assert len(rows) == N - 1 and set(rows.values()) == {"unchanged"}
