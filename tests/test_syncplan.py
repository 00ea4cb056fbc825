"""The three-way sync decision table, cell by cell (pure: no servers)."""

from __future__ import annotations

import itertools

import pytest

from gitdata import syncplan as sp
from gitdata.storage.fingerprint import Fingerprint

FP_BASE = Fingerprint(size=3, etag='"e-base"')
FP_CHANGED = Fingerprint(size=4, etag='"e-changed"')
FP_CHANGED_SAME_SIZE = Fingerprint(size=3, etag='"e-other"')
BASE = sp.BaseEntry(size=3, remote=FP_BASE, local_hash="h-base", mtime_ns=100)
L_SAME = sp.LocalEntry(size=3, mtime_ns=100, hash="h-base")
L_TOUCHED = sp.LocalEntry(size=3, mtime_ns=999, hash="h-base")
L_CHANGED = sp.LocalEntry(size=4, mtime_ns=200, hash="h-changed")
L_CHANGED_SAME_SIZE = sp.LocalEntry(size=3, mtime_ns=200, hash="h-other")

# (name, base, local, remote, delete, prefer) -> (kinds of actions, conflict kind, pending?)
P = "x/file.bin"
CELLS = [
    # unchanged
    ("unchanged", BASE, L_SAME, FP_BASE, False, None, [], None, False),
    ("touched-only", BASE, L_TOUCHED, FP_BASE, False, None, [sp.REFRESH], None, False),
    # one side changed
    ("local-only change", BASE, L_CHANGED, FP_BASE, False, None, [sp.UPLOAD], None, False),
    ("remote-only change", BASE, L_SAME, FP_CHANGED, False, None, [sp.DOWNLOAD], None, False),
    # both changed
    ("both changed", BASE, L_CHANGED, FP_CHANGED, False, None, [], sp.BOTH_CHANGED, False),
    ("both changed, prefer local", BASE, L_CHANGED, FP_CHANGED, False, "local", [sp.UPLOAD], None, False),
    ("both changed, prefer remote", BASE, L_CHANGED, FP_CHANGED, False, "remote", [sp.DOWNLOAD], None, False),
    # deleted on one side
    ("deleted local", BASE, None, FP_BASE, False, None, [], None, True),
    ("deleted local --delete", BASE, None, FP_BASE, True, None, [sp.DELETE_REMOTE], None, False),
    ("deleted remote", BASE, L_SAME, None, False, None, [], None, True),
    ("deleted remote --delete", BASE, L_SAME, None, True, None, [sp.DELETE_LOCAL], None, False),
    ("deleted both", BASE, None, None, False, None, [sp.FORGET], None, False),
    # new
    ("new local", None, L_CHANGED, None, False, None, [sp.UPLOAD], None, False),
    ("new remote", None, None, FP_CHANGED, False, None, [sp.DOWNLOAD], None, False),
    ("new both, different sizes", None, L_CHANGED, FP_BASE, False, None, [], sp.NEW_BOTH, False),
    ("new both, prefer local", None, L_CHANGED, FP_BASE, False, "local", [sp.UPLOAD], None, False),
    ("new both, prefer remote", None, L_CHANGED, FP_BASE, False, "remote", [sp.DOWNLOAD], None, False),
    # delete against change: never a deletion, even with --delete and --prefer
    ("deleted local, changed remote", BASE, None, FP_CHANGED, True, None, [], sp.DELETED_LOCAL_CHANGED_REMOTE, False),
    ("deleted local, changed remote, prefer local", BASE, None, FP_CHANGED, True, "local", [sp.DOWNLOAD], None, False),
    ("deleted local, changed remote, prefer remote", BASE, None, FP_CHANGED, True, "remote", [sp.DOWNLOAD], None, False),
    ("changed local, deleted remote", BASE, L_CHANGED, None, True, None, [], sp.CHANGED_LOCAL_DELETED_REMOTE, False),
    ("changed local, deleted remote, prefer remote", BASE, L_CHANGED, None, True, "remote", [sp.UPLOAD], None, False),
    ("changed local, deleted remote, prefer local", BASE, L_CHANGED, None, True, "local", [sp.UPLOAD], None, False),
]  # fmt: skip


@pytest.mark.parametrize(
    "name,base,local,remote,delete,prefer,kinds,conflict,pending", CELLS, ids=[c[0] for c in CELLS]
)
def test_cell(name, base, local, remote, delete, prefer, kinds, conflict, pending):
    p = sp.plan(
        {P: base} if base else {},
        {P: local} if local else {},
        {P: remote} if remote else {},
        prefer=prefer,
        delete=delete,
    )
    assert [a.kind for a in p.actions] == kinds
    assert [c.kind for c in p.conflicts] == ([conflict] if conflict else [])
    assert p.blocked == bool(conflict)
    assert bool(p.pending) == pending
    for a in p.actions:
        assert a.path == P
        if a.kind == sp.UPLOAD:
            # conditional on the remote being what was listed (None = create-only)
            assert a.remote == remote
        if a.kind in (sp.UPLOAD, sp.DOWNLOAD, sp.DELETE_LOCAL):
            assert a.local == local


def test_every_reachable_cell_is_decided():
    """Every (local, remote) state pair yields actions, a conflict or pending; never an error."""
    locals_ = [None, L_SAME, L_CHANGED, L_CHANGED_SAME_SIZE]
    remotes = [None, FP_BASE, FP_CHANGED, FP_CHANGED_SAME_SIZE]
    for base, lo, ro, delete, prefer in itertools.product(
        [None, BASE], locals_, remotes, [False, True], [None, "local", "remote"]
    ):
        if base is None and lo is None and ro is None:
            continue
        p = sp.plan({P: base} if base else {}, {P: lo} if lo else {}, {P: ro} if ro else {},
                    prefer=prefer, delete=delete)  # fmt: skip
        decided = p.actions or p.conflicts or p.pending or p.unchanged
        assert decided, (base, lo, ro, delete, prefer)
        if prefer is not None:
            assert not p.conflicts
        # a deletion never happens unless asked for, and never against a change
        for a in p.actions:
            if a.kind in (sp.DELETE_LOCAL, sp.DELETE_REMOTE):
                assert delete
                assert sp.local_state(base, lo) in (sp.SAME, sp.DELETED)
                assert sp.remote_state(base, ro) in (sp.SAME, sp.DELETED)


@pytest.mark.parametrize(
    "base,local,remote",
    [(BASE, L_CHANGED_SAME_SIZE, FP_CHANGED_SAME_SIZE), (None, L_CHANGED_SAME_SIZE, FP_CHANGED_SAME_SIZE)],
    ids=["both-changed", "new-both"],
)
def test_same_bytes_on_both_sides_is_adopted_not_a_conflict(base, local, remote):
    bases = {P: base} if base else {}
    assert sp.paths_to_probe(bases, {P: local}, {P: remote}) == [P]
    same = sp.plan(bases, {P: local}, {P: remote}, equal={P: True})
    assert [a.kind for a in same.actions] == [sp.ADOPT] and not same.conflicts
    different = sp.plan(bases, {P: local}, {P: remote}, equal={P: False})
    assert different.conflicts and not different.actions
    unknown = sp.plan(bases, {P: local}, {P: remote})
    assert unknown.conflicts, "an unanswered probe must count as different"


def test_probe_skips_different_sizes_and_one_sided_changes():
    assert sp.paths_to_probe({P: BASE}, {P: L_CHANGED}, {P: FP_CHANGED_SAME_SIZE}) == []
    assert sp.paths_to_probe({P: BASE}, {P: L_CHANGED_SAME_SIZE}, {P: FP_BASE}) == []
    assert sp.paths_to_probe({}, {P: L_SAME}, {}) == []


def test_an_unresolved_conflict_holds_back_its_folder_only():
    base = {"a": BASE, "b": BASE, "sub/d": BASE}
    local = {"a": L_CHANGED, "b": L_CHANGED, "c": L_SAME, "sub/d": L_CHANGED, "sub/e": L_SAME}
    remote = {"a": FP_CHANGED, "b": FP_BASE, "sub/d": FP_BASE}
    p = sp.plan(base, local, remote)
    assert p.blocked and [c.path for c in p.conflicts] == ["a"]
    # the conflict's folder (the root's own files) waits; the sub-folder is synced
    assert {(a.path, a.kind) for a in p.actions} == {("sub/d", sp.UPLOAD), ("sub/e", sp.UPLOAD)}
    assert p.held == [("b", ""), ("c", "")]
    resolved = sp.plan(base, local, remote, prefer="remote")
    assert {(a.path, a.kind, a.keep) for a in resolved.actions} == {
        ("a", sp.DOWNLOAD, "local"),
        ("b", sp.UPLOAD, None),
        ("c", sp.UPLOAD, None),
        ("sub/d", sp.UPLOAD, None),
        ("sub/e", sp.UPLOAD, None),
    }
    assert resolved.resolved and not resolved.blocked and resolved.held == []
    assert sp.plan(base, local, remote, prefer="local").actions[0].keep == "remote"


def test_prefer_paths_resolve_the_chosen_conflicts_only():
    base = {"r/x": BASE, "r/y": BASE, "s/z": BASE}
    local = {"r/x": L_CHANGED, "r/y": L_CHANGED, "s/z": L_CHANGED, "t/new": L_SAME}
    remote = {"r/x": FP_CHANGED, "r/y": FP_CHANGED, "s/z": FP_CHANGED}
    p = sp.plan(base, local, remote, prefer="local", prefer_paths=["r/x", "s"])
    assert [c.path for c in p.conflicts] == ["r/y"]  # not chosen: still a conflict
    assert dict(p.resolved).keys() == {"r/x", "s/z"}
    # the chosen r/x goes ahead although r/y holds its folder; s/ and t/ go ahead
    assert {(a.path, a.kind, a.keep) for a in p.actions} == {
        ("r/x", sp.UPLOAD, "remote"), ("s/z", sp.UPLOAD, "remote"), ("t/new", sp.UPLOAD, None),
    }  # fmt: skip
    assert p.held == []
    local["r/w"] = L_SAME  # a new file in r/: it waits with its folder
    assert sp.plan(base, local, remote, prefer="local", prefer_paths=["r/x"]).held == [("r/w", "r")]
    everything = sp.plan(base, local, remote, prefer="local", prefer_paths=[""])
    assert not everything.conflicts and len(everything.actions) == 5  # r/w added above
    with pytest.raises(ValueError, match="prefer_paths needs prefer"):
        sp.plan(base, local, remote, prefer_paths=["r"])


def test_same_inputs_same_plan():
    base = {f"f{i}": BASE for i in range(20)}
    local = {f"f{i}": (L_CHANGED if i % 3 == 0 else L_SAME) for i in range(20) if i % 7}
    remote = {f"f{i}": (FP_CHANGED if i % 5 == 0 else FP_BASE) for i in range(25)}
    a = sp.plan(base, local, remote, prefer="local", delete=True)
    b = sp.plan(dict(reversed(base.items())), local, remote, prefer="local", delete=True)
    assert a == b and a.actions == b.actions and a.held == b.held
    assert [x.path for x in a.actions] == sorted(x.path for x in a.actions)


def test_bad_prefer_is_refused():
    with pytest.raises(ValueError, match="prefer"):
        sp.plan({}, {}, {}, prefer="both")


@pytest.mark.parametrize(
    "scope,path,inside",
    [
        (sp.Scope(), "a/b.txt", True),
        (sp.Scope(paths=("raw",)), "raw/x.csv", True),
        (sp.Scope(paths=("raw",)), "rawer/x.csv", False),
        (sp.Scope(paths=("raw/x.csv",)), "raw/x.csv", True),
        (sp.Scope(include=("*.csv",)), "raw/x.csv", True),
        (sp.Scope(include=("*.csv",)), "raw/x.tif", False),
        (sp.Scope(exclude=("*.tmp",)), "a/b.tmp", False),
        (sp.Scope(exclude=("cache",)), "cache/b.txt", False),
        (sp.Scope(exclude=("figs/*",)), "figs/a.png", False),
        (sp.Scope(exclude=("figs/*",)), "raw/figs.png", True),
    ],
)
def test_scope(scope, path, inside):
    assert scope.contains(path) is inside


def test_scope_list_prefix():
    assert sp.Scope().list_prefix() == ""
    assert sp.Scope(paths=("raw/",)).list_prefix() == "raw"
    assert sp.Scope(paths=("a", "b")).list_prefix() == ""


def test_remote_state_uses_fingerprint_compare():
    # a listing that states the same md5 in another form is unchanged
    base = sp.BaseEntry(3, Fingerprint(size=3, etag='"0123456789abcdef0123456789abcdef"'), "h", 1)
    listed = Fingerprint(size=3, md5="0123456789abcdef0123456789abcdef")
    assert sp.remote_state(base, listed) == sp.SAME
    assert sp.remote_state(base, Fingerprint(size=5)) == sp.CHANGED


def test_conflict_name():
    assert sp.conflict_name("d/x.csv", "20260101T000000Z") == "d/x.csv.conflict-20260101T000000Z"
