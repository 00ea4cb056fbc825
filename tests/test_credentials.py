"""Credentials: resolution order, storage, prompts and secrecy, against real
rclone S3 servers that enforce their key pair (``rclone serve s3 --auth-key``)."""

from __future__ import annotations

import contextvars
import io
import json
import os
import re
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from gitdata import credentials as cred
from gitdata.credentials.gitcred import _git_env
from gitdata.storage.errors import AccessDenied
from helpers import key_pair, prompted, use_server_env

GOOD_KEY = "AKIDGOODKEY4242"
#: The prompt that offers to store credentials typed at the terminal.
STORE = r"Store credentials\? \(y/N\)"


def run(*args: str, cwd=None, input: bytes | None = None, timeout: float = 60, env=None):
    return subprocess.run(
        list(args), cwd=cwd, input=input if input is not None else b"", capture_output=True,
        timeout=timeout, env={**os.environ, **(env or {})},
    )  # fmt: skip


@dataclass
class Result:
    returncode: int
    stdout: bytes
    stderr: bytes


class Outputs:
    """Runs commands and keeps every output, so a test can scan it all for secrets.

    ``gd`` runs ``git data`` in this process (through ``gitdata.cli.main``, in a
    fresh context, stdin not a terminal) to spare interpreter start-ups;
    ``gd_proc`` and ``__call__`` run real subprocesses.
    """

    def __init__(self) -> None:
        self.seen: list[bytes] = []

    def _check(self, args, res, ok):
        self.seen += [res.stdout, res.stderr]
        if ok and res.returncode != 0:
            raise AssertionError(f"{args} exited {res.returncode}: {res.stderr.decode()}")
        return res

    def __call__(self, *args: str, cwd=None, input: bytes | None = None, ok: bool = True, **kw):
        proc = run(*args, cwd=cwd, input=input, **kw)
        return self._check(args, Result(proc.returncode, proc.stdout, proc.stderr), ok)

    def gd_proc(self, cwd, *args: str, **kw):
        return self("git", "data", *args, cwd=cwd, **kw)

    def gd(self, cwd, *args: str, input: bytes = b"", ok: bool = True, env=None):
        from gitdata.cli import main

        out, err = io.BytesIO(), io.BytesIO()
        streams = (
            io.TextIOWrapper(io.BytesIO(input), encoding="utf-8"),
            io.TextIOWrapper(out, encoding="utf-8", write_through=True),
            io.TextIOWrapper(err, encoding="utf-8", write_through=True),
        )
        saved, saved_cwd, saved_env = (sys.stdin, sys.stdout, sys.stderr), os.getcwd(), dict(os.environ)
        code = 0
        try:
            os.chdir(cwd)
            os.environ.update(env or {})
            sys.stdin, sys.stdout, sys.stderr = streams
            contextvars.copy_context().run(main, list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            sys.stdin, sys.stdout, sys.stderr = saved
            os.chdir(saved_cwd)
            os.environ.clear()
            os.environ.update(saved_env)
        return self._check(("git", "data", *args), Result(code, out.getvalue(), err.getvalue()), ok)


@pytest.fixture
def sh() -> Outputs:
    return Outputs()


def make_project(path: Path, sh: Outputs, remotes: dict[str, tuple[str, str]]) -> Path:
    """A repository with one committed tracked file and data remotes ``name -> (url, endpoint)``."""
    path.mkdir(parents=True)
    sh("git", "init", "-q", cwd=path)
    sh.gd(path, "install", "--local")
    sh.gd(path, "track", "*.bin")
    for name, (url, endpoint) in remotes.items():
        sh.gd(path, "remote", "add", name, url, "-o", f"endpoint_url={endpoint}")
    (path / "a.bin").write_bytes(b"protected data " * 100)
    sh("git", "add", ".", cwd=path)
    sh("git", "commit", "-qm", "data", cwd=path)
    return path


def objects_in(server, bucket: str) -> list[str]:
    root = server.bucket_path(bucket)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def creds_file(home: Path) -> Path:
    return home / ".config" / "gitdata" / "credentials"


def secret_stdin(key: str, secret: str) -> bytes:
    return f"{key}\n{secret}\n".encode()


def scan_tree(root: Path, needles: list[bytes]) -> list[str]:
    hits = []
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink():
            data = p.read_bytes()
            hits += [f"{p}: {n!r}" for n in needles if n in data]
    return hits


@pytest.fixture
def server(rclone_server):
    rclone_server.ensure_running()
    return rclone_server


@pytest.fixture
def bucket(rclone_bucket):
    return rclone_bucket


# --------------------------------------------------------------------------
# Pure pieces: targets, file permissions, redaction


def test_targets_are_keyed_by_endpoint_and_bucket():
    a = cred.target_for("s3://b1/x", {"endpoint_url": "http://127.0.0.1:9000"}, "a", environ={})
    b = cred.target_for("s3://b1/y", {"endpoint_url": "http://127.0.0.1:9001"}, "b", environ={})
    c = cred.target_for("s3://b2", {"endpoint_url": "http://127.0.0.1:9000"}, None, environ={})
    aws = cred.target_for("s3://b1", {}, None, environ={})
    assert a.ident == "s3://127.0.0.1:9000/b1"
    assert len({a.ident, b.ident, c.ident, aws.ident}) == 4
    assert aws.ident == "s3://s3.amazonaws.com/b1"
    assert cred.target_for("file:///tmp/x", {}, "local") is None
    assert cred.target_for("gs://g1/p", {}, None, environ={}).ident == "gs://storage.googleapis.com/g1"
    with pytest.raises(cred.CredentialsError) as err:
        cred.target_for("s3://AKID:topsecret@b1/x", {}, None)
    assert "topsecret" not in str(err.value)


def test_secret_repr_hides_secret():
    s = cred.Secret(key="AKIDLONGKEYVALUE", secret="verysecretvalue")
    for text in (repr(s), str(s), repr([s]), repr(cred.Resolution(None, "file", "", s))):
        assert "verysecretvalue" not in text
        assert "AKIDLONGKEYVALUE" not in text


def test_git_child_env_has_no_cloud_secret_and_never_prompts():
    env = _git_env({"AWS_SECRET_ACCESS_KEY": "x", "AWS_SESSION_TOKEN": "y", "PATH": "/bin", "GIT_ASKPASS": "/bin/ask"})
    assert "AWS_SECRET_ACCESS_KEY" not in env and "AWS_SESSION_TOKEN" not in env
    assert env["GIT_TERMINAL_PROMPT"] == "0" and env["GIT_ASKPASS"] == "" and env["PATH"] == "/bin"


def test_file_is_0600_and_a_readable_file_is_refused(hermetic_git_env, sh, tmp_path):
    home = hermetic_git_env
    os.umask(0o022)
    cfile = cred.CredentialsFile()
    assert cfile.path == str(creds_file(home))
    cfile.set("s3://h:1/b", cred.Secret(key="AKIDFILEKEY01", secret="filesecret-0600"), "origin")
    assert stat.S_IMODE(os.stat(cfile.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(cfile.path)).st_mode) == 0o700
    assert cfile.get("s3://h:1/b").secret == "filesecret-0600"
    # rewriting keeps 0600 and the storage names
    cfile.set("s3://h:1/b", cred.Secret(key="AKIDFILEKEY01", secret="filesecret-0600"), "other")
    assert stat.S_IMODE(os.stat(cfile.path).st_mode) == 0o600
    assert cfile.entries()[0].storages == ["origin", "other"]

    os.chmod(cfile.path, 0o644)
    with pytest.raises(cred.InsecureCredentialsFile) as err:
        cfile.get("s3://h:1/b")
    assert f"chmod 600 {cfile.path}" in str(err.value)
    proc = sh.gd(tmp_path, "credentials", "ls", ok=False)
    assert proc.returncode == 1
    assert f"chmod 600 {cfile.path}" in proc.stderr.decode()
    assert b"filesecret-0600" not in proc.stdout + proc.stderr
    os.chmod(cfile.path, 0o600)
    assert "****EY01" in sh.gd(tmp_path, "credentials", "ls").stdout.decode()


def test_malformed_file_error_does_not_quote_it(hermetic_git_env):
    path = creds_file(hermetic_git_env)
    path.parent.mkdir(parents=True)
    path.write_text("garbage line with leakedsecret\n")
    os.chmod(path, 0o600)
    with pytest.raises(cred.CredentialsError) as err:
        cred.CredentialsFile().entries()
    assert "leakedsecret" not in str(err.value) and "malformed" in str(err.value)


# --------------------------------------------------------------------------
# Against rclone serve s3 --auth-key


def test_wrong_key_is_refused_clearly_and_nothing_is_written(hermetic_git_env, sh, server, bucket, tmp_path):
    home = hermetic_git_env
    p = make_project(tmp_path / "p", sh, {"origin": (f"s3://{bucket}/proj", server.endpoint)})

    # nothing anywhere: fails at once (stdin is not a terminal), names the command
    t0 = time.monotonic()
    proc = sh.gd_proc(p, "push", ok=False)
    assert time.monotonic() - t0 < 20
    assert proc.returncode == 3
    err = proc.stderr.decode()
    assert "no credentials for storage 'origin'" in err and server.endpoint in err
    assert "run `git data credentials set origin`" in err

    # a wrong secret is checked before storing: refused, nothing stored
    proc = sh.gd(p, "credentials", "set", "origin", "--stdin", input=secret_stdin(server.key, "wrong-secret-1"), ok=False)
    assert proc.returncode == 3
    assert f"access denied for storage 'origin' (bucket {bucket} at {server.endpoint})" in proc.stderr.decode()
    assert "nothing was stored" in proc.stderr.decode()
    assert not creds_file(home).exists()

    # stored anyway (--no-verify): the command using it names storage, endpoint and fix; writes nothing
    sh.gd(p, "credentials", "set", "origin", "--stdin", "--no-verify", input=secret_stdin(server.key, "wrong-secret-2"))
    proc = sh.gd(p, "push", ok=False)
    assert proc.returncode == 3
    err = proc.stderr.decode()
    assert f"access denied for storage 'origin' (bucket {bucket} at {server.endpoint})" in err
    assert "run `git data credentials set origin`" in err
    assert objects_in(server, bucket) == []

    # the right pair replaces it, and the push works
    sh.gd(p, "credentials", "set", "origin", "--stdin", input=secret_stdin(server.key, server.secret))
    out = sh.gd(p, "push").stdout.decode()
    assert "1 object(s) uploaded" in out
    assert len(objects_in(server, bucket)) == 1

    needles = [server.secret.encode(), b"wrong-secret-1", b"wrong-secret-2"]
    assert scan_tree(p, needles) == []  # work tree, .gitdata and all of .git
    server_log = server.log_path.read_bytes()
    assert all(n not in server_log for n in needles)
    for blob in sh.seen:
        for n in needles:
            assert n not in blob


def test_prompt_on_a_terminal_then_stored(hermetic_git_env, sh, server, bucket, tmp_path):
    home = hermetic_git_env
    p = make_project(tmp_path / "p", sh, {"origin": (f"s3://{bucket}/proj", server.endpoint)})

    # 1. a wrong secret typed at the prompt: refused, nothing stored, nothing written
    status, transcript = prompted(p, ["push"], key_pair(server, "typed-wrong-secret"))
    assert status == 3
    assert "access denied" in transcript and "nothing was" in transcript
    assert "typed-wrong-secret" not in transcript
    assert not creds_file(home).exists() and objects_in(server, bucket) == []

    # 2. the right pair, not stored: the command works, nothing is kept
    status, transcript = prompted(p, ["push"], [*key_pair(server), (STORE, "")])
    assert status == 0, transcript
    assert "not stored" in transcript and "uploaded" in transcript
    assert server.secret not in transcript
    assert not creds_file(home).exists()
    assert len(objects_in(server, bucket)) == 1

    # 3. asked again next time; now stored: says where, 0600, then no more prompts
    (p / "b.bin").write_bytes(b"more")
    sh("git", "add", "b.bin", cwd=p)
    sh("git", "commit", "-qm", "b", cwd=p)
    status, transcript = prompted(
        p, ["push"], [*key_pair(server), (STORE, "y"), (r"Use these for every bucket at .*\? \(y/N\)", "")]
    )  # no: for this bucket only
    assert status == 0, transcript
    assert f"stored in {creds_file(home)}" in transcript
    assert server.secret not in transcript
    assert stat.S_IMODE(creds_file(home).stat().st_mode) == 0o600
    assert len(objects_in(server, bucket)) == 2
    proc = sh.gd(p, "credentials", "ls", "--json")
    [row] = json.loads(proc.stdout)
    assert row["storage"] == "origin" and row["source"] == "file"
    assert scan_tree(p, [server.secret.encode(), b"typed-wrong-secret"]) == []


def test_clone_without_credentials_fails_fast_under_git(hermetic_git_env, sh, server, bucket, tmp_path):
    p = make_project(tmp_path / "p", sh, {"origin": (f"s3://{bucket}/proj", server.endpoint)})
    sh.gd(p, "credentials", "set", "origin", "--stdin", input=secret_stdin(server.key, server.secret))
    sh.gd(p, "push")
    bare = tmp_path / "bare.git"
    sh("git", "clone", "-q", "--bare", str(p), str(bare))
    sh.gd(tmp_path, "install")  # the global filter, for the clone
    creds_file(hermetic_git_env).unlink()  # a colleague without credentials

    t0 = time.monotonic()
    proc = sh("git", "clone", str(bare), str(tmp_path / "c"), ok=False, timeout=60)
    elapsed = time.monotonic() - t0
    err = proc.stderr.decode()
    assert elapsed < 30, err
    assert "no credentials for storage 'origin'" in err
    assert "git data credentials set origin" in err
    # the data stays a pointer (never half-written content)
    assert (tmp_path / "c" / "a.bin").read_bytes().startswith(b"version gitdata/1")

    # with credentials, pull gets it
    sh.gd(tmp_path / "c", "credentials", "set", "origin", "--stdin", input=secret_stdin(server.key, server.secret))
    sh.gd(tmp_path / "c", "pull")
    assert (tmp_path / "c" / "a.bin").read_bytes() == b"protected data " * 100
    for blob in sh.seen:
        assert server.secret.encode() not in blob


def test_two_storages_two_servers_two_key_pairs(hermetic_git_env, sh, server, bucket, rclone_server_factory, tmp_path):
    other = rclone_server_factory(key="AKIDSECONDSERVER", secret="second-server-secret-77")
    other.make_bucket(bucket)  # the same bucket name on another endpoint
    p = make_project(
        tmp_path / "p", sh,
        {"one": (f"s3://{bucket}/proj", server.endpoint), "two": (f"s3://{bucket}/proj", other.endpoint)},
    )  # fmt: skip
    sh.gd(p, "credentials", "set", "one", "--stdin", input=secret_stdin(server.key, server.secret))
    # one's key pair is refused by two: they are really different
    proc = sh.gd(p, "credentials", "set", "two", "--stdin", input=secret_stdin(server.key, server.secret), ok=False)
    assert proc.returncode == 3
    sh.gd(p, "credentials", "set", "two", "--stdin", input=secret_stdin(other.key, other.secret))

    sh.gd(p, "push", "one")
    sh.gd(p, "push", "two")
    assert len(objects_in(server, bucket)) == 1
    assert len(objects_in(other, bucket)) == 1

    rows = {r["storage"]: r for r in json.loads(sh.gd(p, "credentials", "ls", "--json").stdout)}
    assert rows["one"]["source"] == rows["two"]["source"] == "file"
    assert rows["one"]["target"] != rows["two"]["target"]
    assert rows["two"]["key"] == cred.mask(other.key)

    # rm forgets one of them only
    sh.gd(p, "credentials", "rm", "two")
    rows = {r["storage"]: r for r in json.loads(sh.gd(p, "credentials", "ls", "--json").stdout)}
    assert rows["two"]["source"] == "missing" and rows["one"]["source"] == "file"
    proc = sh.gd(p, "credentials", "rm", "two", ok=False)
    assert proc.returncode == 1 and "no stored credentials" in proc.stderr.decode()

    needles = [server.secret.encode(), other.secret.encode()]
    assert scan_tree(p, needles) == []
    for blob in sh.seen:
        for n in needles:
            assert n not in blob


def test_git_credential_helper_fill_approve_reject(hermetic_git_env, sh, server, bucket, tmp_path):
    home = hermetic_git_env
    first, second = home / "helper-first", home / "helper-second"
    sh("git", "config", "--global", "--add", "credential.helper", f"store --file={first}")
    sh("git", "config", "--global", "--add", "credential.helper", f"store --file={second}")
    p = make_project(tmp_path / "p", sh, {"origin": (f"s3://{bucket}/proj", server.endpoint)})
    host = server.endpoint.split("//", 1)[1]
    host_enc = host.replace(":", "%3a")  # how git-credential-store writes a port

    # set --helper stores through git (approve goes to every helper), not in our file
    sh.gd(p, "credentials", "set", "origin", "--helper", "--stdin", input=secret_stdin(server.key, server.secret))
    assert not creds_file(home).exists()
    assert f"s3://{server.key}:" in first.read_text() and f"@{host_enc}/{bucket}" in first.read_text()
    rows = json.loads(sh.gd(p, "credentials", "ls", "--json").stdout)
    assert rows[0]["source"] == "git-credential" and rows[0]["key"] == cred.mask(server.key)

    # fill: used by a command; approve after success reaches the second helper too
    second.unlink()
    sh.gd(p, "push")
    assert len(objects_in(server, bucket)) == 1
    assert f"@{host_enc}/{bucket}" in second.read_text()

    # reject: a refused pair is erased from the helpers; the file then serves
    bad = f"s3://{server.key}:refused-by-server@{host_enc}/{bucket}\n"
    first.write_text(bad)
    second.write_text(bad)
    os.chmod(first, 0o600)
    cred.CredentialsFile().set(f"s3://{host}/{bucket}", cred.Secret(key=server.key, secret=server.secret), "origin")
    (p / "b.bin").write_bytes(b"second file")
    sh("git", "add", "b.bin", cwd=p)
    sh("git", "commit", "-qm", "b", cwd=p)
    proc = sh.gd(p, "push")
    assert "were rejected" in proc.stderr.decode()
    assert "refused-by-server" not in first.read_text() + second.read_text()
    assert len(objects_in(server, bucket)) == 2

    # library level, same path: a helper with nothing leaves fill empty, never prompting
    target = cred.target_for(f"s3://{bucket}", {"endpoint_url": server.endpoint}, "origin")
    assert cred.git_fill(target, str(p)) is None
    for blob in sh.seen:
        assert server.secret.encode() not in blob and b"refused-by-server" not in blob


def test_provider_chain_comes_first(hermetic_git_env, sh, server, bucket, tmp_path, monkeypatch):
    p = make_project(tmp_path / "p", sh, {"origin": (f"s3://{bucket}/proj", server.endpoint)})
    # a stored pair that does not work would be refused...
    cred.CredentialsFile().set(
        f"s3://{server.endpoint.split('//')[1]}/{bucket}", cred.Secret(key="AKIDSTALE000", secret="stale-secret"), "origin"
    )
    proc = sh.gd(p, "push", ok=False)
    assert proc.returncode == 3 and "were refused" in proc.stderr.decode()
    # ...but environment credentials come first and are used as they are
    env = {"AWS_ACCESS_KEY_ID": server.key, "AWS_SECRET_ACCESS_KEY": server.secret}
    sh.gd(p, "push", env=env)
    assert len(objects_in(server, bucket)) == 1
    use_server_env(monkeypatch, server)
    rows = json.loads(sh.gd(p, "credentials", "ls", "--json").stdout)
    assert rows[0]["source"] == "provider" and rows[0]["key"] == ""


def test_library_never_prompts(hermetic_git_env, sh, server, bucket, tmp_path):
    from gitdata.project import Project

    p = make_project(tmp_path / "p", sh, {"origin": (f"s3://{bucket}/proj", server.endpoint)})
    project = Project.open(str(p))
    with pytest.raises(cred.CredentialsMissing) as err:
        project.storage("origin")
    assert isinstance(err.value, AccessDenied)
    assert "git data credentials set origin" in str(err.value)


def test_gcs_token_file_resolution(hermetic_git_env, sh, tmp_path, monkeypatch):
    key_file = tmp_path / "sa.json"
    key_file.write_text('{"type": "service_account"}')
    target = cred.target_for("gs://gbucket/p", {"endpoint_url": "http://127.0.0.1:9"}, None)
    assert target.ident == "gs://127.0.0.1:9/gbucket"
    assert cred.find_source(target, {}, cwd=None).source == "missing"
    assert cred.find_source(target, {"token": "anon"}, cwd=None).source == "options"

    res = sh.gd(tmp_path, "credentials", "set", "gs://gbucket", "-o", "endpoint_url=http://127.0.0.1:9",
                "--token-file", str(key_file), "--no-verify", "--json")
    assert json.loads(res.stdout)["target"] == target.ident
    found = cred.find_source(target, {}, cwd=None)
    assert found.source == "file"
    assert cred.PROVIDERS["gs"].to_options(found.secret) == {"token": str(key_file)}

    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    assert cred.find_source(target, {}, cwd=None).source == "provider"


def test_set_on_a_terminal_hides_the_secret(hermetic_git_env, server, bucket, tmp_path):
    status, transcript = prompted(
        tmp_path, ["credentials", "set", f"s3://{bucket}", "-o", f"endpoint_url={server.endpoint}"],
        [("Access key", server.key), (r"Secret key \(hidden\)", server.secret)],
    )  # fmt: skip
    assert status == 0, transcript
    assert "(verified)" in transcript and server.secret not in transcript
    host = server.endpoint.split("//", 1)[1]
    assert cred.CredentialsFile().get(f"s3://{host}/{bucket}").secret == server.secret


def test_one_key_pair_for_every_bucket_at_an_endpoint(hermetic_git_env, sh, server, tmp_path):
    """After the first prompt: "use these for every bucket at ENDPOINT?"; a bucket's own pair still wins."""
    b1, b2 = server.make_bucket(f"one-{os.getpid()}"), server.make_bucket(f"two-{os.getpid()}")
    p1 = make_project(tmp_path / "p1", sh, {"origin": (f"s3://{b1}/proj", server.endpoint)})
    p2 = make_project(tmp_path / "p2", sh, {"origin": (f"s3://{b2}/proj", server.endpoint)})
    every = rf"Use these for every bucket at {re.escape(server.endpoint)}\? \(y/N\)"
    status, transcript = prompted(p1, ["push"], [*key_pair(server), (STORE, "y"), (every, "y")])
    assert status == 0, transcript
    assert f"every bucket at {server.endpoint} stored in {creds_file(hermetic_git_env)}" in transcript
    assert server.secret not in transcript
    assert len(objects_in(server, b1)) == 1
    host = server.endpoint.split("//", 1)[1]
    assert cred.CredentialsFile().get(f"s3://{host}/*").secret == server.secret
    assert cred.CredentialsFile().get(f"s3://{host}/{b1}") is None

    # the second bucket on that endpoint: no prompt (no terminal here), the endpoint's pair is used
    out = sh.gd(p2, "push").stdout.decode()
    assert "1 object(s) uploaded" in out and len(objects_in(server, b2)) == 1
    rows = json.loads(sh.gd(p2, "credentials", "ls", "--json").stdout)
    [row] = [r for r in rows if r["storage"] == "origin" and not r["target"].endswith("/*")]
    assert row["source"] == "file"
    assert any(r["target"] == f"s3://{server.endpoint.split('//', 1)[1]}/*" for r in rows), rows

    # a pair stored for one bucket wins there: a wrong one for b2 is refused, b1 keeps working
    sh.gd(p2, "credentials", "set", "origin", "--stdin", "--no-verify", input=secret_stdin(server.key, "wrong"))
    (p2 / "c.bin").write_bytes(b"more")
    sh("git", "add", "c.bin", cwd=p2)
    sh("git", "commit", "-qm", "c", cwd=p2)
    proc = sh.gd(p2, "push", ok=False)
    assert proc.returncode == 3 and "access denied" in proc.stderr.decode()
    (p1 / "c.bin").write_bytes(b"more")
    sh("git", "add", "c.bin", cwd=p1)
    sh("git", "commit", "-qm", "c", cwd=p1)
    assert "1 object(s) uploaded" in sh.gd(p1, "push").stdout.decode()



def test_a_bucket_hosted_git_remote_gets_credentials_by_its_name(hermetic_git_env, sh, server, bucket, tmp_path):
    """The remote helper's hint (`git data credentials set origin`) names a command that works:
    a git remote kept in a bucket is a storage name for `credentials set`."""
    p = tmp_path / "p"
    p.mkdir()
    sh("git", "init", "-q", cwd=p)
    sh.gd(p, "install", "--local")
    sh.gd(p, "track", "*.bin")
    (p / "a.bin").write_bytes(b"bucket-hosted data " * 10)
    sh("git", "add", ".", cwd=p)
    sh("git", "commit", "-qm", "data", cwd=p)
    sh("git", "remote", "add", "origin", f"s3data::s3://{bucket}/hosted", cwd=p)
    sh("git", "config", "remote.origin.s3dataOption", f"endpoint_url={server.endpoint}", cwd=p)
    proc = sh("git", "push", "origin", "HEAD:refs/heads/main", cwd=p, ok=False)
    err = proc.stderr.decode()
    assert proc.returncode != 0
    hint = re.search(r"git data credentials set (\S+?)`", err)
    assert hint and hint.group(1) == "origin", err
    sh.gd(p, "credentials", "set", "origin", "--stdin", input=secret_stdin(server.key, server.secret))
    sh("git", "push", "-q", "origin", "HEAD:refs/heads/main", cwd=p)
    assert any(k.startswith("hosted/git/manifests/") for k in objects_in(server, bucket))
    for blob in sh.seen:
        assert server.secret.encode() not in blob


def test_status_remote_reports_each_remote_and_goes_on_past_one_without_credentials(
    hermetic_git_env, sh, server, bucket, tmp_path
):
    """A dataset whose server refuses us does not stop `status --remote`: the
    dataset beside it is still compared, the refused one's line says why it was
    not, and the command exits 1 (scripts see it)."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.csv").write_text("a\n")
    lab = server.bucket_path(bucket) / "lab"
    lab.mkdir(parents=True)
    (lab / "x.csv").write_text("x\n")
    server.flush_dir_cache()  # written beside the server: it lists the bucket again
    p = tmp_path / "p"
    p.mkdir()
    sh("git", "init", "-q", cwd=p)
    sh.gd(p, "install", "--local")
    sh.gd(p, "dataset", "add", "local", src.as_uri(), "--create")
    sh.gd(p, "credentials", "set", f"s3://{bucket}", "-o", f"endpoint_url={server.endpoint}", "--stdin",
          "--no-check", input=secret_stdin(server.key, server.secret))  # the bucket check is not what this tests
    sh.gd(p, "dataset", "add", "lab", f"s3://{bucket}/lab", "--create", "-o", f"endpoint_url={server.endpoint}")
    creds_file(hermetic_git_env).unlink()  # a colleague without credentials for lab
    (src / "a.csv").write_text("a changed\n")
    proc = sh.gd_proc(p, "status", "--remote", ok=False)
    out, err = proc.stdout.decode(), proc.stderr.decode()
    assert proc.returncode == 1, (out, err)
    assert "dataset local" in out and "1 changed on remote" in out  # the other remote was still asked
    assert "error: datasets lab: not compared with its remote" in err
    assert "git data credentials set lab" in err
    assert "Traceback" not in err
    proc = sh.gd_proc(p, "status", "--remote", "--json", ok=False)
    lab_rows = [r for r in json.loads(proc.stdout) if r["name"] == "lab"]
    assert [r["remote"] for r in lab_rows] == ["not checked"] and "credentials" in lab_rows[0]["detail"]
    proc = sh.gd_proc(p, "update", "lab", ok=False)  # update cannot go on without the remote
    assert proc.returncode != 0 and "git data credentials set lab" in proc.stderr.decode()
    for blob in sh.seen:
        assert server.secret.encode() not in blob
