"""The pure parts of datasets and status: tables of inputs, no I/O."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hyp

from gitdata import status as st
from gitdata.datasets import Dataset, Source, UnsafeSource, split_source
from gitdata.datasets.status import join_listing, state_of
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


# -- the merge-join of recorded keys with a listing ------------------------------------------


def _joined(recorded: dict[str, Fingerprint], listed: list[tuple[str, Fingerprint]]):
    """join_listing's answer in remote_states' form (each recorded key once, each listed key once)."""
    states: dict[str, str] = {}
    new = []
    for key, rec, now in join_listing(sorted(recorded.items()), listed):
        if rec is None:
            assert now is not None and key not in recorded
            new.append(key)
        else:
            assert key not in states, key  # every recorded entry exactly once
            assert rec is recorded[key]
            states[key] = state_of(rec, now)
    assert len(new) == len(set(new))
    return states, sorted(new)


def test_join_listing_of_a_sorted_listing_finds_changes_deletions_and_new_keys():
    fp, other = Fingerprint(5, etag=MD5), Fingerprint(5, etag=MD5_OTHER)
    recorded = {"a": fp, "b": fp, "c": fp, "e": fp}
    listed = [("0-first", fp), ("a", fp), ("b", other), ("d", fp), ("e", fp), ("z", fp)]
    out = list(join_listing(sorted(recorded.items()), listed))
    assert [(k, r is not None, n) for k, r, n in out] == [
        ("a", True, fp), ("b", True, other), ("e", True, fp),  # matched as both sides stream
        ("c", True, None),  # recorded, never listed: deleted (known only at the end)
        ("0-first", False, fp), ("d", False, fp), ("z", False, fp),  # listed, not recorded: new
    ]
    assert _joined(recorded, listed) == st.remote_states(recorded, dict(listed))
    assert list(join_listing([], [])) == []
    assert list(join_listing([("a", 1)], [])) == [("a", 1, None)]
    assert list(join_listing([], [("a", fp)])) == [("a", None, fp)]


def test_join_listing_gives_a_repeated_recorded_key_the_same_fingerprint():
    """Two files naming one object (a copied pointer file): both are compared, neither is deleted."""
    fp = Fingerprint(5, etag=MD5)
    assert list(join_listing([("a", 1), ("a", 2), ("b", 3)], [("a", fp), ("b", fp)])) == [
        ("a", 1, fp), ("a", 2, fp), ("b", 3, fp)
    ]
    # the listing comes after both: they wait together
    assert list(join_listing([("b", 1), ("b", 2)], [("a", fp), ("b", fp)])) == [
        ("b", 1, fp), ("b", 2, fp), ("a", None, fp)
    ]


def _disorder(keys: list[str], how: str, rnd) -> list[str]:
    keys = sorted(keys)
    if how == "shuffled":
        rnd.shuffle(keys)
    elif how == "swapped":  # a few neighbours out of place (a server sorting per folder)
        for _ in range(max(1, len(keys) // 5)):
            if len(keys) > 1:
                i = rnd.randrange(len(keys) - 1)
                keys[i], keys[i + 1] = keys[i + 1], keys[i]
    elif how == "chunks":  # sorted runs, in reverse order (pages of a listing out of order)
        n = max(1, len(keys) // 4)
        keys = [k for i in reversed(range(0, len(keys), n)) for k in keys[i : i + n]]
    elif how == "reversed":
        keys.reverse()
    return keys


_keys = hyp.lists(hyp.text(alphabet="ab/.-é", min_size=1, max_size=4), unique=True, max_size=40)


@given(recorded_keys=_keys, listed_keys=_keys, seed=hyp.integers(0, 2**32 - 1),
       how=hyp.sampled_from(["sorted", "shuffled", "swapped", "chunks", "reversed"]))
@settings(max_examples=300, deadline=None)
def test_join_listing_in_any_order_answers_as_the_dict_comparison(recorded_keys, listed_keys, seed, how):
    import random

    rnd = random.Random(seed)
    fps = [Fingerprint(5, etag=MD5), Fingerprint(5, etag=MD5_OTHER), Fingerprint(6, etag=MD5)]
    recorded = {k: rnd.choice(fps) for k in recorded_keys}
    current = {k: rnd.choice(fps) for k in listed_keys}
    listed = [(k, current[k]) for k in _disorder(list(current), how, rnd)]
    assert _joined(recorded, listed) == st.remote_states(recorded, current)


def test_join_listing_holds_only_what_is_unmatched_when_both_sides_are_sorted():
    """200,000 recorded keys against a sorted listing of the same (every 1,000th deleted, one new
    per 1,000): the join's peak (tracemalloc) stays under 2 MB, which holding the listing in a
    dict, as a plain comparison does, exceeds several times over."""
    import tracemalloc

    n = 200_000
    fp = Fingerprint(5, etag=MD5)

    def recorded():
        return ((f"part-{i:07d}.csv", fp) for i in range(n))

    def listing():
        for i in range(n):
            if i % 1000 != 7:
                yield f"part-{i:07d}.csv", fp
            if i % 1000 == 500:
                yield f"part-{i:07d}.csv.new", fp

    def joined() -> tuple[int, int, int]:
        deleted = new = same = 0
        for _key, rec, now in join_listing(recorded(), listing()):
            if rec is None:
                new += 1
            elif now is None:
                deleted += 1
            else:
                same += 1
        return deleted, new, same

    def as_dict() -> int:
        current = dict(listing())
        return sum(1 for k, _fp in recorded() if k not in current)

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        assert joined() == (200, 200, n - 200)
        _now, join_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        assert as_dict() == 200
        _now, dict_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    bound = 2 << 20
    assert join_peak < bound, join_peak
    assert dict_peak > 4 * bound, dict_peak  # the bound tells the two apart
