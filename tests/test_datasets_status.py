"""The pure parts of datasets and status: tables of inputs, no I/O."""

from __future__ import annotations

import pytest

from gitdata import status as st
from gitdata.datasets import Dataset, Source, UnsafeSource, split_source
from gitdata.pointer import Pointer
from gitdata.storage.fingerprint import Fingerprint

MD5 = '"5d41402abc4b2a76b9719d911017c592"'
MD5_OTHER = '"7d793037a0760186574b0282f2f435e7"'
MULTI = '"0f343b0931126a20f133d67c2b018a3b-2"'


def _ptr() -> Pointer:
    return Pointer.make(None, 5, {"source": "s3://b/p/a"})


@pytest.mark.parametrize(
    "worktree, modified, linked, mode, expected",
    [
        ("content", False, False, "copy", st.STAGED),
        ("content", True, False, "copy", st.MODIFIED),
        ("pointer", False, False, None, st.POINTER),
        ("pointer", False, False, "reference", st.REFERENCE),
        ("missing", False, False, "copy", st.MISSING),
        ("content", False, True, "location", st.LINKED),
        ("missing", False, True, "location", st.MISSING),
    ],
)
def test_local_state(worktree, modified, linked, mode, expected):
    assert st.local_state(_ptr(), worktree, modified=modified, linked=linked, mode=mode) == expected


def test_remote_states_compare_like_with_like():
    recorded = {
        "same": Fingerprint(5, etag=MD5),
        "changed": Fingerprint(5, etag=MD5),
        "deleted": Fingerprint(5, etag=MD5),
        "resized": Fingerprint(5, etag=MD5),
        # recorded as multipart, now listed as a plain md5 (re-uploaded the same bytes in
        # one part, or a server whose ETag is the whole-file md5): not a change by itself
        "form": Fingerprint(5, etag=MULTI),
        "version": Fingerprint(5, etag=MD5, version_id="v1"),
        "gcs": Fingerprint(5, etag='"XrY7u+Ae7tCTyyK7j1rNww=="', md5="5eb63bbbe01eeed093cb22bb8f5acdc3"),
    }
    current = {
        "same": Fingerprint(5, etag=MD5),
        "changed": Fingerprint(5, etag=MD5_OTHER),
        "resized": Fingerprint(6, etag=MD5),
        "form": Fingerprint(5, etag=MD5),
        "version": Fingerprint(5, etag=MD5, version_id="v2"),
        "gcs": Fingerprint(5, etag='"other-form"', md5="5eb63bbbe01eeed093cb22bb8f5acdc3"),
        "appeared": Fingerprint(1),
    }
    states, new = st.remote_states(recorded, current)
    assert states == {
        "same": st.UNCHANGED,
        "changed": st.CHANGED,
        "deleted": st.DELETED,
        "resized": st.CHANGED,
        "form": st.UNCHANGED,
        "version": st.CHANGED,
        "gcs": st.UNCHANGED,
    }
    assert new == ["appeared"]


def test_recorded_fingerprint_round_trips_through_a_pointer():
    fp = Fingerprint(12, etag=MD5, md5=None, version_id="abc", mtime="2024-01-01T00:00:00.000000Z")
    p = Pointer.make(None, fp.size, {"source": "s3://b/k", **fp.pointer_fields()})
    assert st.recorded_fingerprint(p) == fp


def test_split_source_prefers_the_longest_registered_root():
    ds = Dataset("d", "data/d", sources=[Source("s3://b/raw"), Source("s3://b/raw/extra", "x")])
    assert split_source(ds, "s3://b/raw/a/b.txt") == ("s3://b/raw", "a/b.txt")
    assert split_source(ds, "s3://b/raw/extra/c") == ("s3://b/raw/extra", "c")
    # not under "raw/": a pointer may only name data under its dataset's declared sources
    with pytest.raises(UnsafeSource, match="not under a source of dataset 'd'"):
        split_source(ds, "s3://b/rawfile")
    with pytest.raises(UnsafeSource, match="'..'"):
        split_source(ds, "s3://b/raw/../secret/x")
    single = Dataset("s", "data/s", sources=[Source("s3://b/one/file.csv")])
    assert split_source(single, "s3://b/one/file.csv") == ("s3://b/one", "file.csv")
    assert Source.decode(Source("s3://b/x", "sub/dir").encode()) == Source("s3://b/x", "sub/dir")


def test_status_rows_notable():
    assert not st.StatusRow("datasets", "d", "p", st.STAGED, st.UNCHANGED).notable
    assert st.StatusRow("datasets", "d", "p", st.STAGED, st.CHANGED).notable
    assert st.StatusRow("datasets", "d", "p", st.MODIFIED).notable
    assert "current" not in st.StatusRow("datasets", "d", "p", None, st.NEW, current=Fingerprint(1)).as_dict()
