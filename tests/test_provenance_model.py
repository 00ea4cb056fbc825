"""The pure parts of provenance: record parsing, staleness decisions, order. No I/O."""

from __future__ import annotations

import json

import pytest

from gitdata.provenance import lineage as lin
from gitdata.provenance import model as m

A = "xxh128:" + "a" * 32
B = "xxh128:" + "b" * 32
T1 = "tree:" + "1" * 32
T2 = "tree:" + "2" * 32


def rec(name: str, inputs=(), outputs=(("out/" + "x", "file", A),), **kw) -> m.Record:
    return m.Record(
        name=name, command=("python", f"{name}.py"), cwd="", env=(),
        inputs=tuple(m.Entry(p, k, i) for p, k, i in inputs),
        outputs=tuple(m.Entry(p, k, i) for p, k, i in outputs),
        started="s", ended="e", commit=None, tool="gitdata test", **kw,
    )  # fmt: skip


def test_encode_parse_round_trip_and_canonical():
    r = rec("step", inputs=[("data/raw", "folder", T1), ("s3://b/k", "url", "fp:size=3;etag=\"e\"")],
            outputs=[("results/t.csv", "file", A)])  # fmt: skip
    data = r.encode()
    assert m.parse(data) == r
    assert m.parse(data).encode() == data
    assert data.endswith(b"}\n") and json.loads(data)["format"] == m.FORMAT


def _json(**changes) -> bytes:
    base = json.loads(rec("r", outputs=[("o.txt", "file", A)]).encode())
    for k, v in changes.items():
        if v is None:
            base.pop(k)
        else:
            base[k] = v
    return json.dumps(base).encode()


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"[1]", "expected a JSON object"),
        (b"\xff", "not valid JSON"),
        (_json(format="gitdata-run/2"), "upgrade git data"),
        (_json(format=None), "has no 'format'"),
        (_json(extra=1), "unknown key 'extra'"),
        (_json(name="../x"), "bad run name"),
        (_json(command=[]), "non-empty list"),
        (_json(command="rm -rf /"), "non-empty list"),
        (_json(cwd="/etc"), "is absolute"),
        (_json(env={"GH_TOKEN": "x"}), "not a variable a record may hold"),
        (_json(env={"A": 1}), "'env' must map"),
        (_json(outputs=[]), "at least one output"),
        (_json(outputs=[{"path": "../o", "kind": "file", "identity": A}]), "'..' part"),
        (_json(outputs=[{"path": ".git/config", "kind": "file", "identity": A}]), "'.git' part"),
        (_json(outputs=[{"path": "s3://b/o", "kind": "url", "identity": A}]), "is not one of file or folder"),
        (_json(outputs=[{"path": "o", "kind": "file", "identity": "md5:abc"}]), "bad identity"),
        (_json(outputs=[{"path": "o", "kind": "file", "identity": A, "size": 3}]), "unknown key 'size'"),
        (_json(inputs=[{"path": "o/x", "kind": "file", "identity": A}],
               outputs=[{"path": "o", "kind": "folder", "identity": T1}]), "both an input and an output"),
        (_json(exit=2), "'exit' must be 0"),
        (b" " * (m.MAX_RECORD_BYTES + 1), "over the"),
    ],
)
def test_parse_refuses(data, reason):
    with pytest.raises(m.RecordError, match=reason.replace("(", r"\(").replace(".", r"\.")):
        m.parse(data)


PIPE = {
    "table": rec("table", inputs=[("data/raw", "folder", T1), ("step1.py", "file", A)],
                 outputs=[("results/table.csv", "file", B)]),
    "figure": rec("figure", inputs=[("results/table.csv", "file", B)], outputs=[("results/fig", "folder", T2)]),
    "other": rec("other", inputs=[("data/params/p.txt", "file", A)], outputs=[("results/o.txt", "file", A)]),
}  # fmt: skip
SAME = {"data/raw": T1, "step1.py": A, "results/table.csv": B, "results/fig": T2,
        "data/params/p.txt": A, "results/o.txt": A}  # fmt: skip


def _reasons(verdicts):
    return {n: sorted(v.reasons) for n, v in verdicts.items() if v.stale}


@pytest.mark.parametrize(
    "current, remote, expected",
    [
        ({}, {}, {}),  # nothing looked at: nothing stale
        (SAME, {}, {}),
        ({**SAME, "step1.py": B}, {}, {
            "table": [("local", "input step1.py changed")],
            "figure": [("local", "depends on stale run table")]}),
        ({**SAME, "data/raw": None}, {}, {
            "table": [("local", "input data/raw is missing")],
            "figure": [("local", "depends on stale run table")]}),
        (SAME, {"data/raw": "data/raw/b.csv changed"}, {
            "table": [("remote", "input data/raw changed in the bucket: data/raw/b.csv changed")],
            "figure": [("remote", "depends on stale run table")]}),
        ({**SAME, "results/table.csv": A}, {}, {  # edited by hand: its producer and its reader
            "table": [("local", "output results/table.csv was edited by hand")],
            "figure": [("local", "depends on stale run table"), ("local", "input results/table.csv changed")]}),
        ({**SAME, "results/fig": None}, {}, {"figure": [("local", "output results/fig is missing")]}),
        ({**SAME, "data/params/p.txt": B}, {}, {"other": [("local", "input data/params/p.txt changed")]}),
    ],
)  # fmt: skip
def test_judge_table(current, remote, expected):
    assert _reasons(m.judge(PIPE, current, remote)) == expected


def test_url_inputs_are_remote_reasons():
    recs = {"u": rec("u", inputs=[("s3://b/k", "url", "fp:size=1")])}
    assert _reasons(m.judge(recs, {"s3://b/k": "fp:size=2"})) == {"u": [("remote", "input s3://b/k changed in the bucket")]}
    assert _reasons(m.judge(recs, {}, {"s3://b/k": "deleted"})) == {"u": [("remote", "input s3://b/k changed in the bucket: deleted")]}


def test_order_and_dependencies():
    assert m.dependencies(PIPE) == {"table": set(), "figure": {"table"}, "other": set()}
    assert m.order(PIPE) == ["other", "table", "figure"]
    assert m.order(PIPE, ["figure"]) == ["table", "figure"]  # what it reads first
    assert m.order(PIPE, ["table"]) == ["table"]
    loop = {"a": rec("a", inputs=[("y", "file", A)], outputs=[("x", "file", A)]),
            "b": rec("b", inputs=[("x", "file", A)], outputs=[("y", "file", A)])}  # fmt: skip
    with pytest.raises(m.CycleError, match="runs a, b read each other's outputs"):
        m.order(loop)


def test_producer_and_lineage():
    assert lin.producer(PIPE, "results/fig/panel.png").name == "figure"  # inside a folder output
    assert lin.producer(PIPE, "data/raw") is None
    tree = lin.lineage(PIPE, "results/fig")
    assert tree["run"]["name"] == "figure" and tree["identity"] == T2
    (child,) = tree["inputs"]
    assert child["path"] == "results/table.csv" and child["run"]["name"] == "table"
    assert {i["path"] for i in child["inputs"]} == {"data/raw", "step1.py"}
    dot = lin.dot(tree)
    assert '"run:table" -> "file:results/table.csv";' in dot and '"file:results/table.csv" -> "run:figure";' in dot


@pytest.mark.parametrize("name", ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "GITHUB_TOKEN", "DB_PASSWORD",
                                  "MY_SECRET", "client_secret", "GOOGLE_APPLICATION_CREDENTIALS", "OPENAI_API_KEY"])  # fmt: skip
def test_secret_names_refused(name):
    assert m.is_secret_name(name)
    with pytest.raises(m.SecretVariable, match="looks like a credential"):
        m.check_env([name], {name: "v"})


def test_check_env():
    env = {"SEED": "1", "THREADS": "4", "AWS_SECRET_ACCESS_KEY": "abcdef", "COPY": "abcdef"}
    assert m.check_env(["THREADS", "SEED"], env) == (("SEED", "1"), ("THREADS", "4"))
    assert not m.is_secret_name("SEED") and not m.is_secret_name("KEYWORDS")
    with pytest.raises(m.SecretVariable, match="holds the value of a credential"):
        m.check_env(["COPY"], env)
    with pytest.raises(m.SecretVariable, match="is not set"):
        m.check_env(["NOPE"], env)


def test_tree_identity_is_order_free_and_content_bound():
    a = m.tree_identity([("x", A), ("y", B)])
    assert a == m.tree_identity([("y", B), ("x", A)]) and a.startswith("tree:")
    assert a != m.tree_identity([("x", B), ("y", A)])
    assert m.fingerprint_identity("s3://b/k", {"size": 3, "etag": '"e"', "md5": None}) == 'fp:source=s3://b/k;etag="e";size=3'
