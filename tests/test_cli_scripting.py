"""What scripts and CI rely on: `status --exit-code`, `--json` of fetch, checkout and pull."""

from __future__ import annotations

import json

from helpers import gd, git, new_project, run, use_server_env, write


def _data_project(tmp_path, daemon_repo):
    """A project with two files pushed to a local data remote, and a clone that
    kept their pointers (GIT_DATA_SKIP_SMUDGE=1)."""
    store = tmp_path / "store"
    proj = new_project(tmp_path / "proj", str(store))
    write(proj / "data" / "a.csv", b"a\n")
    write(proj / "data" / "b.csv", b"b\n")
    git(proj, "add", ".")
    git(proj, "commit", "-qm", "data")
    git(proj, "push", "-q", daemon_repo.url, "HEAD:main")
    git(tmp_path, "clone", "-q", daemon_repo.url, "clone", env={"GIT_DATA_SKIP_SMUDGE": "1"})
    return proj, tmp_path / "clone", store


def test_status_exit_code_for_files_outside_datasets(tmp_path, daemon_repo):
    proj, clone, _store = _data_project(tmp_path, daemon_repo)
    assert run("git", "data", "status", "--exit-code", cwd=proj).returncode == 0
    proc = run("git", "data", "status", "--exit-code", cwd=clone, check=False)
    assert proc.returncode == 1
    assert "not materialized" in proc.stdout.decode()
    proc = run("git", "data", "status", "--exit-code", "--json", cwd=clone, check=False)
    assert proc.returncode == 1
    rows = json.loads(proc.stdout)
    assert {(r["path"], r["local"]) for r in rows} == {("data/a.csv", "not materialized"), ("data/b.csv", "not materialized")}  # fmt: skip
    # without --exit-code, status reports and succeeds
    assert run("git", "data", "status", cwd=clone).returncode == 0
    gd(clone, "pull")
    assert run("git", "data", "status", "--exit-code", cwd=clone).returncode == 0


def test_status_remote_exit_code_sees_a_changed_bucket(tmp_path, moto_server, moto_bucket, monkeypatch):
    use_server_env(monkeypatch, moto_server)
    client = moto_server.client()
    client.put_object(Bucket=moto_bucket, Key="raw/x.txt", Body=b"one")
    proj = new_project(tmp_path / "proj")
    gd(proj, "dataset", "create", "raw")
    gd(proj, "dataset", "add", "raw", f"s3://{moto_bucket}/raw/", "-o", f"endpoint_url={moto_server.endpoint}")
    git(proj, "commit", "-qm", "register")
    assert run("git", "data", "status", "--remote", "--exit-code", cwd=proj).returncode == 0
    client.put_object(Bucket=moto_bucket, Key="raw/x.txt", Body=b"two, longer")
    proc = run("git", "data", "status", "--remote", "--exit-code", "--json", cwd=proj, check=False)
    assert proc.returncode == 1
    assert [r["remote"] for r in json.loads(proc.stdout)] == ["changed"]
    # the local side alone is in order: without --remote nothing differs
    assert run("git", "data", "status", "--exit-code", cwd=proj).returncode == 0


def test_fetch_checkout_pull_json(tmp_path, daemon_repo):
    _proj, clone, store = _data_project(tmp_path, daemon_repo)
    assert json.loads(gd(clone, "fetch", "--json", "-I", "data/a.csv")) == {"downloaded": 1, "failed": {}}
    assert json.loads(gd(clone, "checkout", "--json", "data/a.csv")) == {"checked_out": 1, "failed": {}}
    assert (clone / "data" / "a.csv").read_bytes() == b"a\n"
    # b's object is gone from the data remote: pull reports it in JSON and exits 1
    for obj in store.rglob("*"):
        if obj.is_file() and obj.read_bytes() == b"b\n":
            obj.unlink()
    proc = run("git", "data", "pull", "--json", cwd=clone, check=False)
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert report["downloaded"] == 0 and report["checked_out"] == 0
    assert list(report["failed"]) == ["data/b.csv"]
    err = proc.stderr.decode()
    assert "error: 1 file(s) could not be fetched" in err and "Traceback" not in err


def test_one_error_format_for_usage_errors_and_our_own(tmp_path):
    """Every error is one `error: ...` line (click's `Error:` never shows), with its exit code."""
    for args, code, says in [
        (("data", "nosuch"), 2, "error: No such command 'nosuch'. (see `git data --help`)"),
        (("data", "dataset", "add"), 2, "error: Missing argument 'NAME'. (see `git data dataset add --help`)"),
        (("data", "status", "--no-such-flag"), 2, "error: No such option '--no-such-flag'."),
        (("data", "status"), 1, "error: "),  # not a repository: our own error
        (("remote-s3data", "log"), 2, "error: Missing argument 'REMOTE'."),
    ]:
        proc = run("git", *args, cwd=tmp_path, check=False)
        err = proc.stderr.decode()
        assert proc.returncode == code, (args, proc.returncode, err)
        assert says in err, (args, err)
        assert "Error:" not in err and "Traceback" not in err, (args, err)


def test_json_output_streams_a_long_array_and_reads_as_json_dumps_would():
    """emit_json writes a JsonItems array item by item as its maker yields (a million sync
    actions are never one list), and the text parses to what json.dumps of the list gives,
    empty or not."""
    import io

    from gitdata.cli.base import JsonItems, emit_json

    out = io.StringIO()
    written_at: list[int] = []

    def rows():
        for i in range(5):
            written_at.append(len(out.getvalue()))  # how much was out when this item was asked for
            yield {"path": f"p/{i}", "n": i}

    obj = [{"storage": "raw", "actions": JsonItems(rows), "empty": JsonItems(lambda: iter(())), "z": [1]}]
    emit_json(obj, out)
    text = out.getvalue()
    expected = [{"storage": "raw", "actions": [{"path": f"p/{i}", "n": i} for i in range(5)], "empty": [], "z": [1]}]
    assert json.loads(text) == expected
    assert written_at == sorted(written_at) and written_at[0] < written_at[1] < written_at[4]  # streamed
    assert text == json.dumps(expected, indent=2, sort_keys=True) + "\n"  # the very text it was before
    again = io.StringIO()
    emit_json(obj, again)  # the maker runs again: the value is not used up by one write
    assert json.loads(again.getvalue()) == expected
