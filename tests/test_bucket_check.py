"""`remote add`, `storage add` and `credentials set` check the bucket first (`--no-check` skips it)."""

from __future__ import annotations

from helpers import git, new_project, run, use_server_env


def _env(srv):
    return dict(srv.env)


def test_remote_add_refuses_a_missing_bucket(tmp_path, moto_server, moto_bucket, monkeypatch):
    use_server_env(monkeypatch, moto_server)
    proj = new_project(tmp_path / "proj")
    ep = f"endpoint_url={moto_server.endpoint}"
    proc = run("git", "data", "remote", "add", "lab", "s3://no-such-bucket-x/p", "-o", ep, cwd=proj, check=False)
    assert proc.returncode == 1
    assert proc.stderr.decode().splitlines() == [
        f"error: bucket no-such-bucket-x does not exist at {moto_server.endpoint} (lab at s3://no-such-bucket-x/p): "
        "create it first, or correct the URL (--no-check adds it without this check)"
    ]
    assert not (proj / ".gitdata").exists() or "no-such-bucket-x" not in (proj / ".gitdata").read_text()
    # an existing bucket is fine, and --no-check adds a missing one anyway
    run("git", "data", "remote", "add", "lab", f"s3://{moto_bucket}/p", "-o", ep, cwd=proj)
    run("git", "data", "remote", "add", "later", "s3://no-such-bucket-x/p", "-o", ep, "--no-check", cwd=proj)
    assert "no-such-bucket-x" in git(proj, "config", "-f", ".gitdata", "remote.later.url")


def test_storage_add_refuses_a_missing_bucket(tmp_path, moto_server, moto_bucket, monkeypatch):
    use_server_env(monkeypatch, moto_server)
    proj = new_project(tmp_path / "proj")
    ep = f"endpoint_url={moto_server.endpoint}"
    proc = run("git", "data", "storage", "add", "res", "s3://no-such-bucket-y/r", "-o", ep, cwd=proj, check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 1 and "Traceback" not in err
    assert "error: bucket no-such-bucket-y does not exist" in err and "--no-check" in err
    assert not (proj / ".gitignore").exists()
    run("git", "data", "storage", "add", "res", f"s3://{moto_bucket}/r", "-o", ep, cwd=proj)
    run("git", "data", "storage", "add", "res2", "s3://no-such-bucket-y/r", "-o", ep, "--no-check", cwd=proj)


def test_refused_keys_fail_and_a_dead_server_or_no_keys_only_note(tmp_path, rclone_server_factory):
    srv = rclone_server_factory()
    srv.make_bucket("lab")
    proj = new_project(tmp_path / "proj")
    ep = f"endpoint_url={srv.endpoint}"
    wrong = {"AWS_ACCESS_KEY_ID": srv.key, "AWS_SECRET_ACCESS_KEY": "wrong-secret"}
    proc = run("git", "data", "remote", "add", "a", "s3://lab/p", "-o", ep, cwd=proj, env=wrong, check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 3 and "access denied" in err and "--no-check" in err and "wrong-secret" not in err
    # no credentials anywhere (and no terminal): added, with a note naming the command that stores them
    proc = run("git", "data", "remote", "add", "b", "s3://lab/p", "-o", ep, cwd=proj)
    assert "note: the bucket of b was not checked: no credentials for it yet; store them with `git data credentials set b`" in proc.stderr.decode()  # fmt: skip
    # a server that does not answer is no verdict: added, with a note
    srv.stop()
    proc = run("git", "data", "remote", "add", "c", "s3://lab/p", "-o", ep, cwd=proj, env=_env(srv))
    assert "note: the bucket of c was not checked: cannot reach" in proc.stderr.decode()


def test_credentials_set_does_not_verify_a_missing_bucket(tmp_path, rclone_server):
    srv = rclone_server
    srv.ensure_running()
    secret_in = f"{srv.key}\n{srv.secret}\n".encode()
    url, ep = "s3://no-such-bucket-z", f"endpoint_url={srv.endpoint}"
    proc = run("git", "data", "credentials", "set", url, "-o", ep, "--stdin", cwd=tmp_path, input=secret_in, check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 1 and "Traceback" not in err and srv.secret not in err
    assert f"bucket no-such-bucket-z does not exist at {srv.endpoint}: the credentials were accepted" in err and "nothing was stored" in err
    assert "no-such-bucket-z" not in run("git", "data", "credentials", "ls", cwd=tmp_path).stdout.decode()
    out = run("git", "data", "credentials", "set", url, "-o", ep, "--stdin", "--no-check", cwd=tmp_path, input=secret_in).stdout.decode()  # fmt: skip
    assert out.startswith("stored credentials for bucket no-such-bucket-z")
    srv.make_bucket("real-bucket")
    try:
        out = run("git", "data", "credentials", "set", "s3://real-bucket", "-o", ep, "--stdin", cwd=tmp_path, input=secret_in).stdout.decode()  # fmt: skip
        assert "(verified)" in out
    finally:
        srv.delete_bucket("real-bucket")


def test_dataset_create_storage_refuses_a_missing_bucket(tmp_path, moto_server, moto_bucket, monkeypatch):
    use_server_env(monkeypatch, moto_server)
    proj = new_project(tmp_path / "proj")
    ep = f"endpoint_url={moto_server.endpoint}"
    proc = run("git", "data", "dataset", "create", "d", "--storage", "s3://no-such-bucket-d/d", "-o", ep,
               cwd=proj, check=False)  # fmt: skip
    err = proc.stderr.decode()
    assert proc.returncode == 1 and "Traceback" not in err, err
    assert "error: bucket no-such-bucket-d does not exist" in err and "--no-check" in err, err
    assert not (proj / ".gitdata").exists() or "no-such-bucket-d" not in (proj / ".gitdata").read_text()
    run("git", "data", "dataset", "create", "d", "--storage", f"s3://{moto_bucket}/d", "-o", ep, cwd=proj)
    run("git", "data", "dataset", "create", "e", "--storage", "s3://no-such-bucket-d/e", "-o", ep, "--no-check",
        cwd=proj)  # fmt: skip
    assert "no-such-bucket-d" in git(proj, "config", "-f", ".gitdata", "dataset.e.storage")


def test_push_to_a_missing_bucket_says_the_bucket_is_missing(tmp_path, moto_server, moto_bucket, monkeypatch):
    use_server_env(monkeypatch, moto_server)
    proj = new_project(tmp_path / "proj")
    ep = f"endpoint_url={moto_server.endpoint}"
    run("git", "data", "remote", "add", "origin", "s3://no-such-bucket-p/proj", "-o", ep, "--no-check", cwd=proj)
    (proj / "a.bin").write_bytes(b"some data\n")
    git(proj, "add", "-A")
    git(proj, "commit", "-qm", "a")
    proc = run("git", "data", "push", cwd=proj, check=False)
    err = proc.stderr.decode()
    assert proc.returncode != 0 and "Traceback" not in err, err
    assert f"bucket no-such-bucket-p does not exist at {moto_server.endpoint}" in err, err
    assert "not found" not in err.lower() and "create it" in err, err
    # and so does `git push` (the pre-push hook), with no ref moved
    bare = tmp_path / "bare.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(proj, "remote", "add", "up", str(bare))
    proc = run("git", "push", "up", "HEAD:refs/heads/main", cwd=proj, check=False)
    err = proc.stderr.decode()
    assert proc.returncode != 0 and "bucket no-such-bucket-p does not exist" in err, err
    assert git(bare, "for-each-ref") == ""
