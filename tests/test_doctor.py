"""`git data doctor` against real servers: what passes, what fails, and the fix it names."""

from __future__ import annotations

import json
import time

from gitdata.doctor import git_version
from helpers import gd, git, new_project, run, use_server_env


def doctor(cwd, *args, env=None):
    proc = run("git", "data", "doctor", *args, cwd=cwd, env=env, check=False)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def checks(cwd, env=None):
    code, out, err = doctor(cwd, "--json", env=env)
    report = json.loads(out)
    assert report["ok"] == (code == 0)
    return code, {c["name"]: c for c in report["checks"]}, err


def _store_credentials(proj, name, key, secret, *extra):
    run("git", "data", "credentials", "set", name, "--stdin", *extra, cwd=proj, input=f"{key}\n{secret}\n".encode())


def test_all_good_with_a_reachable_bucket_and_stored_credentials(tmp_path, rclone_server, rclone_bucket):
    srv = rclone_server
    proj = new_project(tmp_path / "proj", f"s3://{rclone_bucket}/p", {"endpoint_url": srv.endpoint})
    _store_credentials(proj, "origin", srv.key, srv.secret)
    code, out, err = doctor(proj)
    assert code == 0, out + err
    assert srv.secret not in out + err and srv.key not in out + err
    assert "everything looks right" in out
    code, by_name, _ = checks(proj)
    assert code == 0
    assert by_name["remote origin"]["status"] == "ok"
    assert "credentials from" in by_name["remote origin"]["detail"]
    assert "credentials" in by_name["remote origin"]["detail"] and srv.secret not in json.dumps(by_name)
    for name in ("git", "path", "filter", "hooks"):
        assert by_name[name]["status"] == "ok", by_name[name]


def test_missing_bucket_fails_and_says_how_to_fix(tmp_path, moto_server, moto_bucket, monkeypatch):
    use_server_env(monkeypatch, moto_server)
    proj = new_project(tmp_path / "proj", f"s3://{moto_bucket}/p", {"endpoint_url": moto_server.endpoint})
    gd(proj, "storage", "add", "results", "s3://no-such-bucket-here/results", "-o", f"endpoint_url={moto_server.endpoint}", "--no-check")
    code, out, err = doctor(proj)
    assert code == 1
    assert "Traceback" not in err
    lines = out.splitlines()
    bad = next(i for i, line in enumerate(lines) if line.startswith("FAIL  storage results"))
    assert "bucket no-such-bucket-here does not exist" in lines[bad]
    assert "fix: create it, or correct the URL in .gitdata (`git config -f .gitdata storage.results.url URL`)" in lines[bad + 1]  # fmt: skip
    assert any(line.startswith("ok    remote origin") for line in lines)
    assert moto_server.secret not in out
    assert out.rstrip().endswith("1 check(s) failed")


def test_stopped_server_and_refused_credentials(tmp_path, rclone_server_factory):
    srv = rclone_server_factory()
    srv.make_bucket("lab")
    proj = new_project(tmp_path / "proj", "s3://lab/p", {"endpoint_url": srv.endpoint})
    _store_credentials(proj, "origin", srv.key, "not-the-secret", "--no-verify")
    code, by_name, err = checks(proj)
    assert code == 1 and "Traceback" not in err
    origin = by_name["remote origin"]
    assert origin["status"] == "fail"
    assert "access denied" in origin["detail"] and "git data credentials set origin" in origin["detail"]
    assert "not-the-secret" not in json.dumps(by_name)
    assert origin["fix"].startswith("run `git data credentials set origin`")

    _store_credentials(proj, "origin", srv.key, srv.secret)
    assert checks(proj)[0] == 0
    srv.stop()
    started = time.monotonic()
    code, by_name, err = checks(proj)
    assert time.monotonic() - started < 30  # a dead server is reported, not waited for
    assert code == 1 and "Traceback" not in err
    assert by_name["remote origin"]["status"] == "fail"
    assert "cannot reach" in by_name["remote origin"]["detail"]
    assert "is the endpoint right and the server up?" in by_name["remote origin"]["detail"]
    assert by_name["remote origin"]["fix"].startswith("check the endpoint_url option of remote origin")


def test_repository_without_install(tmp_path):
    repo = tmp_path / "plain"
    repo.mkdir()
    git(repo, "init", "-q")
    code, out, err = doctor(repo)
    assert code == 1 and "Traceback" not in err
    assert "FAIL  filter" in out and "FAIL  hooks" in out
    assert out.count("fix: run `git data install`") == 2
    code, by_name, _ = checks(repo)
    assert by_name["storages"]["status"] == "skip"
    # install fixes both
    gd(repo, "install")
    code, by_name, _ = checks(repo)
    assert code == 0 and by_name["filter"]["status"] == by_name["hooks"]["status"] == "ok"


def test_foreign_hook_is_named_with_the_line_to_add(tmp_path):
    repo = tmp_path / "r"
    repo.mkdir()
    git(repo, "init", "-q")
    gd(repo, "install")
    (repo / ".git" / "hooks" / "pre-push").write_text("#!/bin/sh\nexit 0\n")
    code, by_name, _ = checks(repo)
    assert code == 1
    assert by_name["hooks"]["fix"] == 'add to them: git-data hook pre-push "$@"'


def test_outside_a_repository(tmp_path):
    code, by_name, err = checks(tmp_path)
    assert by_name["repository"]["status"] == "skip"
    assert by_name["filter"]["status"] == "fail"  # this HOME never ran `git data install`
    assert code == 1 and "Traceback" not in err


def test_git_version_parsing():
    assert git_version("git version 2.39.5") == (2, 39, 5)
    assert git_version("git version 2.45.1.windows.1") == (2, 45, 1)
    assert git_version("git version 2.20") == (2, 20)
    assert git_version("hub version 3") is None
