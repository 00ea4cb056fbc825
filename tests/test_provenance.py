"""Provenance end to end: git data run / status / rerun / log / crate against real servers.

The pipeline (issue 16): raw data registered from a versioned moto bucket,
staged by reference, plus a copy-mode dataset -> an intermediate table ->
a figure. git data runs as a subprocess, as a user would run it; moto
counts every request it serves.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import git, new_project, run, use_server_env, write

PY = sys.executable

STEP1 = """\
import subprocess, sys
raw = b"".join(subprocess.run(["git", "data", "cat", p], check=True, capture_output=True).stdout
               for p in ("data/raw/a.csv", "data/raw/b.csv"))
params = open("data/params/p.txt", "rb").read()
if b"FAIL" in params + raw:
    open("results/table.csv", "wb").write(b"half a tab")
    sys.exit(3)
open("results/table.csv", "wb").write(b"table\\n" + raw + params)
"""
STEP2 = """\
data = open("results/table.csv", "rb").read()
open("results/fig.txt", "wb").write(b"figure of %d bytes\\n" % len(data))
"""


def gd(cwd, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    return run("git", "data", *args, cwd=cwd, check=check, env=env)


def fail(cwd, *args: str) -> str:
    """`git data ARGS` must exit 1 with one `error:` line and no traceback; returns stderr."""
    proc = gd(cwd, *args, check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 1, (proc.returncode, proc.stdout, err)
    assert "Traceback" not in err and "error: " in err, err
    return err


def runs_status(root: Path, *args: str) -> dict[str, dict]:
    proc = gd(root, "status", "--json", *args)
    return {r["name"]: r for r in json.loads(proc.stdout) if r["section"] == "runs"}


@pytest.fixture
def pipeline(moto_server, versioned_moto_bucket, monkeypatch, tmp_path):
    """Two registered datasets (raw: reference mode; params: copy mode), two recorded runs."""
    use_server_env(monkeypatch, moto_server)
    bucket = versioned_moto_bucket
    client = moto_server.client()
    client.put_object(Bucket=bucket, Key="raw/a.csv", Body=b"a,1\n")
    client.put_object(Bucket=bucket, Key="raw/b.csv", Body=b"b,2\n")
    client.put_object(Bucket=bucket, Key="params/p.txt", Body=b"scale=2\n")
    root = new_project(tmp_path / "p", patterns=("data/**",))
    store = tmp_path / "store"
    store.mkdir()
    gd(root, "remote", "add", "origin", store.as_uri())
    ep = f"endpoint_url={moto_server.endpoint}"
    gd(root, "dataset", "create", "raw", "--title", "Raw scans", "--keyword", "mri", "-o", ep)
    gd(root, "dataset", "add", "raw", f"s3://{bucket}/raw")
    gd(root, "dataset", "stage", "raw", "--reference")
    gd(root, "dataset", "create", "params", "-o", ep)
    gd(root, "dataset", "add", "params", f"s3://{bucket}/params")
    write(root / "step1.py", STEP1.encode())
    write(root / "step2.py", STEP2.encode())
    (root / "results").mkdir()
    git(root, "add", "step1.py", "step2.py")
    git(root, "commit", "-q", "-m", "pipeline")
    gd(root, "run", "-n", "table", "-i", "raw", "-i", "data/params", "-i", "step1.py",
       "-o", "results/table.csv", "--", PY, "step1.py")  # fmt: skip
    gd(root, "run", "-n", "figure", "-i", "results/table.csv", "-i", "step2.py",
       "-o", "results/fig.txt", "--", PY, "step2.py")  # fmt: skip
    git(root, "commit", "-q", "-m", "runs")
    return root, bucket, client, store


def test_pipeline_stale_in_bucket_then_rerun(pipeline, moto_server):
    root, bucket, client, _store = pipeline
    table = (root / "results/table.csv").read_bytes()
    assert table == b"table\na,1\nb,2\nscale=2\n"
    assert (root / "results/fig.txt").read_bytes() == b"figure of %d bytes\n" % len(table)
    # the copy-mode dataset was staged by `run`; the reference one stayed pointers
    assert (root / "data/params/p.txt").read_bytes() == b"scale=2\n"
    assert (root / "data/raw/a.csv").read_bytes().startswith(b"version gitdata/1")
    # outputs are tracked data (pointers in git), the records plain JSON in git
    assert git(root, "show", "HEAD:results/table.csv").startswith("version gitdata/1")
    rec = json.loads(git(root, "show", "HEAD:.gitdata-runs/table.json"))
    assert rec["format"] == "gitdata-run/1" and rec["command"][1] == "step1.py"
    assert {i["path"] for i in rec["inputs"]} == {"data/raw", "data/params", "step1.py"}
    assert rec["commit"] == git(root, "rev-parse", "HEAD~1").strip()
    assert git(root, "status", "--porcelain") == ""
    assert {n: r["local"] for n, r in runs_status(root).items()} == {"table": "up to date", "figure": "up to date"}

    client.put_object(Bucket=bucket, Key="raw/b.csv", Body=b"b,20\n")  # one input object changes
    moto_server.reset_counts()
    rows = runs_status(root, "--remote")
    counts = moto_server.counts(bucket)
    assert counts["GET_OBJECT"] == 0, moto_server.counts(bucket, by_api=True)
    assert rows["table"]["remote"] == "stale" and rows["table"]["local"] == "up to date"
    assert "data/raw/b.csv changed" in rows["table"]["detail"]
    assert rows["figure"]["remote"] == "stale" and "depends on stale run table" in rows["figure"]["detail"]
    assert "data/params" not in rows["table"]["detail"]
    # without --remote nothing is stale: nothing local changed
    assert all(r["local"] == "up to date" for r in runs_status(root).values())
    proc = gd(root, "status", "--remote", "--exit-code", check=False)
    assert proc.returncode == 1 and b"depends on stale run table" in proc.stdout

    dry = gd(root, "rerun", "--dry-run").stdout.decode()
    assert dry.index("would rerun table") < dry.index("would rerun figure"), dry
    assert (root / "results/table.csv").read_bytes() == table  # --dry-run changed nothing

    proc = gd(root, "rerun")
    out, err = proc.stdout.decode(), proc.stderr.decode()
    assert "table: rerun" in out and "figure: rerun" in out, out
    assert f"$ {PY} step1.py" in err  # the command is printed before it runs
    new_table = (root / "results/table.csv").read_bytes()
    assert new_table == b"table\na,1\nb,20\nscale=2\n"
    assert (root / "results/fig.txt").read_bytes() == b"figure of %d bytes\n" % len(new_table)
    assert all(r["local"] == "up to date" and r["remote"] == "unchanged" for r in runs_status(root, "--remote").values())
    git(root, "commit", "-q", "-m", "rerun")
    assert git(root, "status", "--porcelain") == ""
    # a second rerun does nothing
    again = gd(root, "rerun")
    assert again.stdout.decode().strip() == "nothing to rerun: every run is up to date"
    assert git(root, "status", "--porcelain") == ""


def test_export_log_and_hand_edited_output(pipeline, monkeypatch):
    """The export validates; `log` walks the lineage; a hand-edited output is reported."""
    root, _bucket, _client, _store = pipeline
    gd(root, "crate", "--license", "https://spdx.org/licenses/CC-BY-4.0")
    crate = json.loads((root / "ro-crate-metadata.json").read_text())
    by_id = {e["@id"]: e for e in crate["@graph"]}
    assert by_id["./"]["license"] == {"@id": "https://spdx.org/licenses/CC-BY-4.0"}
    assert by_id["data/raw/"]["name"] == "Raw scans" and by_id["data/raw/"]["keywords"] == "mri"
    action = by_id["#run-table"]
    assert action["@type"] == "CreateAction"
    assert {"@id": "results/table.csv"} in action["result"] and {"@id": "data/raw/"} in action["object"]
    from rocrate.rocrate import ROCrate

    parsed = ROCrate(str(root))  # ro-crate-py reads it back: descriptor, root, every entity
    assert parsed.name == root.name
    assert {e.id for e in parsed.get_entities()} >= {"#run-table", "#run-figure", "results/fig.txt"}
    _validate(root, monkeypatch)
    _validate(root, monkeypatch, "process-run-crate")  # runs as CreateActions, the profile's rules
    # the validator does check: a crate whose root lacks datePublished fails
    broken = root.parent / "broken"
    broken.mkdir()
    root_entity = next(e for e in crate["@graph"] if e["@id"] == "./")
    del root_entity["datePublished"]
    (broken / "ro-crate-metadata.json").write_text(json.dumps(crate))
    with pytest.raises(AssertionError, match="datePublished|Root Data Entity"):
        _validate(broken, monkeypatch)

    (root / "results/table.csv").write_bytes(b"edited\n")
    rows = runs_status(root)
    assert rows["table"]["local"] == "stale" and "output results/table.csv was edited by hand" in rows["table"]["detail"]
    assert rows["figure"]["local"] == "stale"
    assert "input results/table.csv changed" in rows["figure"]["detail"]
    text = gd(root, "status").stdout.decode()
    assert "run table: stale" in text and "was edited by hand" in text
    before = json.loads(gd(root, "log", "results/fig.txt", "--json").stdout)

    tree = json.loads(gd(root, "log", "results/fig.txt", "--json").stdout)
    assert tree["run"]["name"] == "figure"
    child = next(i for i in tree["inputs"] if i["path"] == "results/table.csv")
    assert child["run"]["name"] == "table"
    raw = next(i for i in child["inputs"] if i["path"] == "data/raw")
    assert raw["dataset"] == "raw" and raw["identity"].startswith("tree:") and raw["count"] == 2
    text = gd(root, "log", "results/fig.txt").stdout.decode()
    assert "results/fig.txt" in text and "<- run figure" in text and "<- run table" in text
    dot = gd(root, "log", "results/fig.txt", "--dot").stdout.decode()
    assert dot.startswith("digraph provenance {") and '"run:table" -> "file:results/table.csv"' in dot
    err = fail(root, "log", "step1.py")
    assert "step1.py was not made by a recorded run" in err
    assert before["run"]["name"] == "figure"

    # rerun: table makes the recorded bytes again, so figure's input is as recorded: skipped
    out = gd(root, "rerun").stdout.decode()
    assert "table: rerun" in out and "figure: skipped" in out, out
    assert (root / "results/table.csv").read_bytes() == b"table\na,1\nb,2\nscale=2\n"
    assert all(r["local"] == "up to date" for r in runs_status(root).values())


def test_failing_command_records_nothing_and_keeps_outputs(pipeline, moto_server):
    root, bucket, client, _store = pipeline
    before = (root / "results/table.csv").read_bytes()
    record = (root / ".gitdata-runs/table.json").read_bytes()
    client.put_object(Bucket=bucket, Key="params/p.txt", Body=b"FAIL\n")
    err = fail(root, "rerun", "table")
    assert "the command exited with status 3; nothing was recorded" in err
    assert (root / "results/table.csv").read_bytes() == before  # not the half-written "half a tab"
    assert (root / ".gitdata-runs/table.json").read_bytes() == record
    assert not list((root / ".git/gitdata/run-aside").glob("*"))  # nothing left set aside
    # a new run whose command fails leaves no record behind
    err = fail(root, "run", "-n", "broken", "-o", "results/broken.txt", "--", PY, "-c", "import sys; open('results/broken.txt','w').write('x'); sys.exit(2)")
    assert "exited with status 2" in err
    assert not (root / ".gitdata-runs/broken.json").exists() and not (root / "results/broken.txt").exists()
    err = fail(root, "run", "-o", "results/never.txt", "--", PY, "-c", "pass")
    assert "did not write output results/never.txt" in err


def test_collaborator_clone_sees_the_same_stale_set(pipeline, moto_server, tmp_path):
    root, bucket, client, _store = pipeline
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(root, "remote", "add", "origin", str(bare))
    git(root, "push", "-q", "origin", "HEAD:main")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(bare), str(clone))
    assert (clone / "results/fig.txt").read_bytes() == (root / "results/fig.txt").read_bytes()
    assert {n: r["local"] for n, r in runs_status(clone).items()} == {"table": "up to date", "figure": "up to date"}
    client.put_object(Bucket=bucket, Key="raw/a.csv", Body=b"a,100\n")
    mine = {n: (r["local"], r["remote"]) for n, r in runs_status(root, "--remote").items()}
    theirs = {n: (r["local"], r["remote"]) for n, r in runs_status(clone, "--remote").items()}
    assert mine == theirs == {"table": ("up to date", "stale"), "figure": ("up to date", "stale")}


def _validate(root: Path, monkeypatch, profile: str = "ro-crate-1.1") -> None:
    """roc-validator (the RO-Crate community's validator) on the crate, its required checks.

    Tests never leave loopback: name lookups other than loopback fail, and
    the JSON-LD context is the one ro-crate-py ships (1.3, whose terms are
    a superset of 1.1's) instead of a download.
    """
    import socket

    import requests
    import rocrate
    from rocrate_validator import models, services
    from rocrate_validator.utils.http import HttpRequester

    real = socket.getaddrinfo

    def loopback_only(host, *a, **kw):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise OSError(f"test: no network ({host})")
        return real(host, *a, **kw)

    bundled = (Path(rocrate.__file__).parent / "data" / "ro-crate.jsonld").read_bytes()

    def get(self, url: str, *args, **kwargs):  # the validator's one HTTP client
        if not (url.startswith("https://w3id.org/ro/crate/") and url.endswith("/context")):
            raise OSError(f"test: no network ({url})")
        resp = requests.Response()
        resp.status_code, resp._content, resp.url = 200, bundled, url
        resp.headers["Content-Type"] = "application/ld+json"
        return resp

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)
    monkeypatch.setattr(HttpRequester, "get", get, raising=False)
    settings = services.ValidationSettings(
        rocrate_uri=str(root), profile_identifier=profile,
        requirement_severity=models.Severity.REQUIRED,
    )  # fmt: skip
    result = services.validate(settings)
    issues = [f"{i.check.identifier}: {i.message}" for i in result.get_issues()]
    assert not result.has_issues(), issues
    assert result.passed()


# --------------------------------------------------------------------------
# records arrive with a clone: hostile ones are refused, nothing is written outside


def _record(name: str, outputs: list[dict], command: list[str], **extra) -> bytes:
    rec = {"format": "gitdata-run/1", "name": name, "command": command, "cwd": "", "env": {},
           "inputs": [], "outputs": outputs, "started": "2026-01-01T00:00:00Z",
           "ended": "2026-01-01T00:00:01Z", "commit": None, "tool": "gitdata 0.1.0", "exit": 0, **extra}  # fmt: skip
    return json.dumps(rec).encode()


def _out(path: str, kind: str = "file") -> dict:
    return {"path": path, "kind": kind, "identity": "xxh128:" + "0" * 32}


@pytest.fixture
def local_project(tmp_path):
    root = new_project(tmp_path / "p", patterns=("results/**",))
    git(root, "commit", "-q", "--allow-empty", "-m", "init")
    return root


def test_hostile_records_are_refused_and_write_nothing_outside(local_project, tmp_path):
    root = local_project
    outside = tmp_path / "outside"
    outside.mkdir()
    marker = tmp_path / "ran"
    cmd = [PY, "-c", f"open({str(marker)!r}, 'w').write('the command ran')"]
    hostile = {
        "up": (_record("up", [_out("../outside/x.txt")], cmd), "'..' part"),
        "abs": (_record("abs", [_out(str(outside / "x.txt"))], cmd), "is absolute"),
        "hook": (_record("hook", [_out(".git/hooks/pre-commit")], cmd), "'.git' part"),
        "hook2": (_record("hook2", [_out("sub/.GIT/hooks/x")], cmd), "'.git' part"),
        "cwd": (_record("cwd", [_out("results/x.txt")], cmd, cwd="../.."), "'..' part"),
        "newer": (_record("newer", [_out("results/x.txt")], cmd, format="gitdata-run/9"), "upgrade git data"),
        "secret": (_record("secret", [_out("results/x.txt")], cmd, env={"AWS_SECRET_ACCESS_KEY": "x"}), "env"),
        "junk": (b"{not json", "not valid JSON"),
    }
    for name, (data, _why) in hostile.items():
        write(root / ".gitdata-runs" / f"{name}.json", data)
    rows = runs_status(root)
    for name, (_data, why) in hostile.items():
        assert rows[name]["local"] == "unreadable" and why in rows[name]["detail"], (name, rows[name])
        err = fail(root, "rerun", name)
        assert why in err, (name, err)
    err = fail(root, "rerun", "--all")
    assert not marker.exists() and not list(outside.iterdir())
    assert not (root / ".git/hooks/x").exists() and not list((root / ".git").rglob("x.txt"))


def test_symlinked_output_folder_is_refused_before_the_command_runs(local_project, tmp_path):
    root = local_project
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (root / "results").symlink_to(outside)
    marker = tmp_path / "ran"
    cmd = [PY, "-c", f"open({str(marker)!r}, 'w').write('x'); open('results/fig.txt', 'w').write('pwned')"]
    write(root / ".gitdata-runs/fig.json", _record("fig", [_out("results/fig.txt")], cmd))
    err = fail(root, "rerun", "fig", "--force")
    assert "is a symlink" in err and "does not write through it" in err, err
    assert not marker.exists() and not list(outside.iterdir())
    # the same for a run typed by the user
    err = fail(root, "run", "-o", "results/fig.txt", "--", *cmd)
    assert "is a symlink" in err
    assert not marker.exists() and not list(outside.iterdir())


def test_run_refuses_bad_outputs_and_credentials(local_project, monkeypatch):
    root = local_project
    ok = [PY, "-c", "open('results/t.txt', 'w').write('t')"]
    assert "outside the project" in fail(root, "run", "-o", "../x.txt", "--", *ok)
    assert "'.git' part" in fail(root, "run", "-o", ".git/hooks/post-checkout", "--", *ok)
    assert "outside the project" in fail(root, "run", "-o", "/tmp/x.txt", "--", *ok)
    assert "where git data keeps run records" in fail(root, "run", "-o", ".gitdata-runs/x.json", "--", *ok)
    for var in ("AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "DB_PASSWORD", "MY_SECRET_THING", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.setenv(var, "s3cr3t-value")
        err = fail(root, "run", "--env", var, "-o", "results/t.txt", "--", *ok)
        assert f"--env {var} looks like a credential" in err and "s3cr3t-value" not in err
    monkeypatch.setenv("INNOCENT", "s3cr3t-value")  # the value of a secret under another name
    assert "holds the value of a credential" in fail(root, "run", "--env", "INNOCENT", "-o", "results/t.txt", "--", *ok)
    assert "is not set" in fail(root, "run", "--env", "UNSET_VAR_X", "-o", "results/t.txt", "--", *ok)
    assert not (root / "results/t.txt").exists() and not (root / ".gitdata-runs").exists()
    # a plain variable is recorded, and set again on rerun
    monkeypatch.setenv("SEED", "42")
    gd(root, "run", "--env", "SEED", "-n", "t", "-o", "results/t.txt", "--", PY, "-c",
       "import os; open('results/t.txt', 'w').write(os.environ['SEED'])")  # fmt: skip
    assert json.loads((root / ".gitdata-runs/t.json").read_text())["env"] == {"SEED": "42"}
    monkeypatch.setenv("SEED", "7")
    gd(root, "rerun", "t", "--force")
    assert (root / "results/t.txt").read_text() == "42"
    assert gd(root, "run", "--help").stdout.decode().count("Credentials are refused") == 1


def test_url_inputs_are_listed_not_downloaded(moto_server, versioned_moto_bucket, monkeypatch, tmp_path):
    use_server_env(monkeypatch, moto_server)
    bucket = versioned_moto_bucket
    client = moto_server.client()
    client.put_object(Bucket=bucket, Key="lab/c.csv", Body=b"c,3\n")
    client.put_object(Bucket=bucket, Key="lab/more/d.csv", Body=b"d,4\n")
    root = new_project(tmp_path / "p", patterns=("results/**",))
    gd(root, "dataset", "create", "lab", "-o", f"endpoint_url={moto_server.endpoint}")
    gd(root, "dataset", "add", "lab", f"s3://{bucket}/lab")
    gd(root, "dataset", "stage", "lab", "--reference")
    one, prefix = f"s3://{bucket}/lab/c.csv", f"s3://{bucket}/lab/more"
    gd(root, "run", "-n", "u", "-i", one, "-i", prefix, "-o", "results/u.txt", "--",
       PY, "-c", "open('results/u.txt', 'w').write('u')")  # fmt: skip
    rec = json.loads((root / ".gitdata-runs/u.json").read_text())
    by_path = {i["path"]: i for i in rec["inputs"]}
    assert by_path[one]["kind"] == "url" and by_path[one]["fingerprint"]["version-id"]
    assert by_path[prefix]["identity"].startswith("tree:") and by_path[prefix]["count"] == 1
    git(root, "commit", "-q", "-m", "u")
    assert runs_status(root, "--remote")["u"]["remote"] == "unchanged"
    client.put_object(Bucket=bucket, Key="lab/more/e.csv", Body=b"e,5\n")  # a new object under the prefix
    moto_server.reset_counts()
    row = runs_status(root, "--remote")["u"]
    assert row["remote"] == "stale" and f"input {prefix} changed in the bucket" in row["detail"], row
    assert f"input {one} " not in row["detail"]
    assert moto_server.counts(bucket)["GET_OBJECT"] == 0, moto_server.counts(bucket, by_api=True)
    # a URL under no declared source is refused: others' clones would not know where it is
    err = fail(root, "run", "-i", "s3://elsewhere/x.csv", "-o", "results/v.txt", "--", PY, "-c", "pass")
    assert "lies under no dataset source, storage or data remote" in err and "git data dataset add" in err


def test_subfolder_cwd_folder_output_and_untracked_input(local_project):
    root = local_project
    write(root / "sub/in.txt", b"hello")  # an input git does not know: hashed
    make = "import os; os.makedirs('../results/figs', exist_ok=True); open('../results/figs/a.txt', 'w').write(open('in.txt').read())"
    gd(root / "sub", "run", "-n", "f", "-i", "in.txt", "-o", "../results/figs/", "--", PY, "-c", make)
    rec = json.loads((root / ".gitdata-runs/f.json").read_text())
    assert rec["cwd"] == "sub" and [i["path"] for i in rec["inputs"]] == ["sub/in.txt"]
    assert rec["outputs"][0]["kind"] == "folder" and rec["outputs"][0]["path"] == "results/figs"
    assert rec["outputs"][0]["count"] == 1
    assert git(root, "show", ":results/figs/a.txt").startswith("version gitdata/1")  # tracked data
    assert runs_status(root)["f"]["local"] == "up to date"
    (root / "results/figs/a.txt").unlink()
    assert "output results/figs was edited by hand" in runs_status(root)["f"]["detail"]
    write(root / "sub/in.txt", b"bye")
    assert "input sub/in.txt changed" in runs_status(root)["f"]["detail"]
    gd(root, "rerun", "f")  # from the root: the record says where it ran
    assert (root / "results/figs/a.txt").read_text() == "bye"
    assert runs_status(root)["f"]["local"] == "up to date"
    assert "needs at least one output" in fail(root, "run", "--", PY, "-c", "pass")
    assert "is not a file or folder of the project" in fail(root, "run", "-i", "nope.txt", "-o", "results/x", "--", PY, "-c", "pass")
    assert "no run named 'nope'" in fail(root, "rerun", "nope")


def test_folder_inputs_tracked_files_or_all_files_on_disk(local_project):
    """A folder git tracks files under counts its tracked files (a __pycache__ the command makes
    there is no change); a folder git tracks nothing under counts every file on disk."""
    root = local_project
    write(root / "code/lib.py", b"X = 1\n")
    git(root, "add", "code/lib.py")
    write(root / "notes/a.txt", b"a")  # untracked, as a mapped storage's folder is
    gd(root, "run", "-n", "n", "-i", "code", "-i", "notes", "-o", "results/n.txt", "--", PY, "-c",
       "import os; os.makedirs('code/__pycache__', exist_ok=True); open('code/__pycache__/lib.pyc', 'w').write('x');"
       "open('results/n.txt', 'w').write(str(len(os.listdir('notes'))))")  # fmt: skip
    rec = json.loads((root / ".gitdata-runs/n.json").read_text())
    assert [(i["path"], i["count"]) for i in rec["inputs"]] == [("code", 1), ("notes", 1)]
    assert runs_status(root)["n"]["local"] == "up to date"  # the __pycache__ it wrote is not a change
    write(root / "notes/b.txt", b"b")
    assert runs_status(root)["n"]["detail"] == "input notes changed"
    write(root / "code/lib.py", b"X = 2\n")
    assert "input code changed" in runs_status(root)["n"]["detail"]
