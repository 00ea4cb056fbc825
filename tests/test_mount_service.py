"""The mount service on real FUSE: the service runs as root, the clients as unprivileged users
created here (useradd), run with setpriv; rclone serve s3 on 127.0.0.1 holds the bucket.

The clients' git config points gitdata.fusermount at nothing: a local mount would fail, so
whatever gets mounted was mounted by the service.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from gitdata.mount.openapi import DOCUMENT
from gitdata.mount.service import NO_DYNAMIC

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("useradd"),
                                reason="needs root and useradd (the service runs as root)")  # fmt: skip

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = str(Path(sys.executable).parent)  # the venv running the tests (a worktree may have none)


def _system_python() -> str | None:
    """A Python of this version that other users may run (the venv's may live under /root)."""
    for cand in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.access(cand, os.X_OK):
            out = subprocess.run([cand, "-c", "import sys;print(sys.version_info[:2])"], capture_output=True,
                                 text=True).stdout.strip()  # fmt: skip
            if out == str(sys.version_info[:2]):
                return cand
    return None


def _client_bin(base: Path) -> Path:
    """``git-data`` and ``python`` for the test users: the system Python on this checkout and the
    venv's packages (both readable by everyone)."""
    import site

    py = _system_python()
    if py is None:
        pytest.skip(f"no Python {sys.version_info[0]}.{sys.version_info[1]} that other users can run")
    pkgs = [p for p in site.getsitepackages() if p.startswith(sys.prefix)]
    path = ":".join([str(ROOT / "src"), *pkgs])
    d = base / "bin"
    d.mkdir(exist_ok=True)
    for name, line in (("git-data", f'exec {py} -m gitdata "$@"'), ("python", f'exec {py} "$@"')):
        (d / name).write_text(f"#!/bin/sh\nPYTHONPATH={path}\nexport PYTHONPATH\n{line}\n")
        os.chmod(d / name, 0o755)
    return d


def _fuse_or_skip() -> None:
    try:
        os.close(os.open("/dev/fuse", os.O_RDWR))
    except OSError as err:
        pytest.skip(f"/dev/fuse cannot be opened here: {err}")


class User:
    def __init__(self, name: str, base: Path) -> None:
        self.name = name
        subprocess.run(["useradd", "--no-create-home", "--home-dir", str(base / name / "home"), "--shell",
                        "/bin/sh", name], check=True, capture_output=True)  # fmt: skip
        pw = pwd.getpwnam(name)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        self.home = base / name / "home"
        self.home.mkdir(parents=True)
        (self.home / ".gitconfig").write_text(
            "[init]\n\tdefaultBranch = main\n[user]\n\tname = u\n\temail = u@example.com\n"
            "[gitdata]\n\tfusermount = /nonexistent/fusermount3\n"
        )
        for p in (base / name, self.home, self.home / ".gitconfig"):
            os.chown(p, self.uid, self.gid)
        self.env: dict[str, str] = {}
        self.bin = _client_bin(base.parent)

    def run(self, cwd: Path, *args: str, ok: bool = True, extra: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess:  # fmt: skip
        env = {"HOME": str(self.home), "PATH": f"{self.bin}:/usr/bin:/bin", "LANG": "C.UTF-8",
               "AWS_EC2_METADATA_DISABLED": "true", "NO_PROXY": "127.0.0.1", **self.env, **(extra or {})}  # fmt: skip
        argv = ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups", "env", "-i",
                *(f"{k}={v}" for k, v in env.items()), *args]  # fmt: skip
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)  # fmt: skip
        if ok:
            assert proc.returncode == 0, f"{args}: {proc.stderr}{proc.stdout}"
        return proc

    def gd(self, cwd: Path, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.run(cwd, "git", "data", *args, **kw)

    def call(self, sock: Path, method: str, url: str, body: object = None) -> tuple[int, object]:
        """One request to the service as this user (the stdlib client, run as the user)."""
        code = ("import json,sys;from gitdata.mount.client import call;"
                f"print(json.dumps(call({str(sock)!r}, {method!r}, {url!r}, json.loads(sys.argv[1]))))")  # fmt: skip
        proc = self.run(Path("/"), "python", "-c", code, json.dumps(body))
        status, data = json.loads(proc.stdout)
        return status, data

    def delete(self) -> None:
        """userdel refuses while a process of the user runs (a view ending after its unmount)."""
        deadline = time.monotonic() + 10
        while subprocess.run(["userdel", self.name], capture_output=True).returncode not in (0, 6):
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)


@pytest.fixture
def base():
    """A folder every test user can reach (tmp_path is root's own, mode 0700)."""
    d = Path(tempfile.mkdtemp(prefix="gd-svc-"))
    os.chmod(d, 0o755)
    (d / "roots").mkdir()
    os.chmod(d / "roots", 0o755)
    yield d
    for line in Path("/proc/mounts").read_text().splitlines():
        mp = line.split()[1]
        if mp.startswith(str(d)):
            subprocess.run(["fusermount3", "-u", "-z", mp], capture_output=True)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def users(base):
    made: list[User] = []

    def make() -> User:
        u = User(f"gds{os.getpid() % 10000}{len(made)}{os.urandom(2).hex()}", base / "roots")
        made.append(u)
        return u

    yield make
    for u in made:
        u.delete()


class Service:
    def __init__(self, base: Path, *args: str) -> None:
        self.sock = base / "svc.sock"
        self.log = base / "service.log"
        self.state = base / "state"
        self.args = args
        self.base = base
        self.proc: subprocess.Popen | None = None

    def start(self) -> Service:
        env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}"}
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(
                [f"{VENV_BIN}/git-data", "mount-service", "serve", "--socket", str(self.sock), "--allow-root",
                 str(self.base / "roots"), "--state-dir", str(self.state), *self.args],
                stdout=logf, stderr=logf, stdin=subprocess.DEVNULL, env=env, start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(str(self.sock))
                break
            except OSError:
                assert self.proc.poll() is None, self.log.read_text()
                assert time.monotonic() < deadline, "the service did not start"
                time.sleep(0.1)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        for e in json.loads((self.state / "mounts.json").read_text()) if (self.state / "mounts.json").exists() else []:
            subprocess.run(["fusermount3", "-u", "-z", e["mountpoint"]], capture_output=True)
            try:
                os.kill(e["pid"], signal.SIGTERM)
            except ProcessLookupError:
                pass


@pytest.fixture
def service_factory(base):
    _fuse_or_skip()
    made: list[Service] = []

    def make(*args: str) -> Service:
        s = Service(base, *args).start()
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()


def _project(user: User, rclone_server, bucket: str, mode: str = "copy") -> Path:
    p = user.home.parent / "proj"
    p.mkdir()
    os.chown(p, user.uid, user.gid)
    user.run(p, "git", "init", "-q")
    user.gd(p, "install")
    # --no-check: some tests give the session placeholder keys (the service is what they test)
    user.gd(p, "storage", "add", "lab", f"s3://{bucket}/lab", "-o", f"endpoint_url={rclone_server.endpoint}",
            "--mode", mode, "--no-check")  # fmt: skip
    user.run(p, "git", "add", "-A")
    user.run(p, "git", "commit", "-qm", "map lab")
    return p


def _resolve(schema: dict) -> dict:
    """``schema`` with the document's ``$ref``s put in place (for jsonschema)."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            node = DOCUMENT
            for part in schema["$ref"].lstrip("#/").split("/"):
                node = node[part]
            return _resolve(node)
        return {k: _resolve(v) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_resolve(x) for x in schema]
    return schema


def _check(path: str, method: str, status: int, data: object) -> None:
    """The answer matches the OpenAPI document: the status is listed and the body fits its schema."""
    import jsonschema

    responses = DOCUMENT["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method} {path}: status {status} is not in the document"
    schema = _resolve(responses[str(status)])["content"]["application/json"]["schema"]
    jsonschema.validate(data, schema)


def _our_ps() -> str:
    return subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout


def test_storage_mount_through_the_service(base, users, service_factory, rclone_server, rclone_bucket):
    """An unprivileged user (no local FUSE) mounts a storage read-write through the service; a
    second user neither sees nor unmounts it nor reads it; the secret is nowhere to be seen."""
    svc = service_factory("--max-mounts", "1")
    alice, bob = users(), users()
    secret = rclone_server.env["AWS_SECRET_ACCESS_KEY"]
    alice.env = {"AWS_ACCESS_KEY_ID": rclone_server.env["AWS_ACCESS_KEY_ID"], "AWS_SECRET_ACCESS_KEY": secret,
                 "GITDATA_MOUNT_SERVICE": str(svc.sock)}  # fmt: skip
    served = rclone_server.bucket_path(rclone_bucket)
    (served / "lab").mkdir(parents=True)
    (served / "lab" / "in.csv").write_bytes(b"a,b\n")
    rclone_server.flush_dir_cache()
    p = _project(alice, rclone_server, rclone_bucket)
    local = alice.gd(p, "storage", "stage", "lab", "--mount", ok=False, extra={"GITDATA_MOUNT_SERVICE": ""})
    assert local.returncode == 1 and "/nonexistent/fusermount3 is not installed" in local.stderr  # no local FUSE
    if not os.stat("/dev/fuse").st_mode & 0o006:  # as here: the session user has no access to /dev/fuse
        local = alice.run(p, "git", "-c", "gitdata.fusermount=fusermount3", "data", "storage", "stage", "lab",
                          "--mount", ok=False, extra={"GITDATA_MOUNT_SERVICE": ""})  # fmt: skip
        assert local.returncode == 1 and "no permission to open /dev/fuse" in local.stderr, local.stderr
        assert "mount service (GITDATA_MOUNT_SERVICE)" in local.stderr
    res = alice.gd(p, "storage", "stage", "lab", "--mount")
    mp = p / "storages" / "lab"
    assert "mounted storage lab" in res.stdout
    assert secret not in res.stdout + res.stderr
    assert subprocess.run(["mountpoint", "-q", str(mp)]).returncode == 0
    rows = json.loads(alice.gd(p, "mount", "ls", "--json").stdout)
    assert [(r["name"], r["kind"], r["state"], r["service"]) for r in rows] == [
        ("lab", "storage", "healthy", str(svc.sock))]
    assert "service" in alice.gd(p, "mount", "ls").stdout
    assert alice.run(p, "cat", "storages/lab/in.csv").stdout == "a,b\n"
    alice.run(p, "sh", "-c", "mkdir -p storages/lab/out && printf 'fig' > storages/lab/out/fig.txt")
    assert os.stat(mp / "out" / "fig.txt").st_uid == alice.uid
    # bob: sees nothing, cannot unmount it, cannot read it
    status, data = bob.call(svc.sock, "GET", "/v1/mounts")
    assert status == 200 and data == {"mounts": []}
    _check("/v1/mounts", "get", status, data)
    status, data = alice.call(svc.sock, "GET", "/v1/mounts")
    _check("/v1/mounts", "get", status, data)
    (mid,) = [m["id"] for m in data["mounts"]]
    assert secret not in json.dumps(data)
    assert data["mounts"][0]["uid"] == alice.uid
    status, data = bob.call(svc.sock, "DELETE", f"/v1/mounts/{mid}")
    assert status == 404 and data == {"error": f"no mount {mid} of yours here"}
    _check("/v1/mounts/{id}", "delete", status, data)
    assert bob.run(Path("/"), "cat", str(mp / "in.csv"), ok=False).returncode != 0
    # one mount per client here (--max-mounts 1)
    (p / "storages" / "two").mkdir()
    os.chown(p / "storages" / "two", alice.uid, alice.gid)
    body = {"kind": "storage", "name": "two", "project": str(p), "mountpoint": str(p / "storages" / "two"),
            "url": f"s3://{rclone_bucket}/lab", "options": {"endpoint_url": rclone_server.endpoint},
            "credentials": {"key": "k", "secret": "s"}}  # fmt: skip
    status, data = alice.call(svc.sock, "POST", "/v1/mounts", body)
    assert status == 429 and "--max-mounts" in data["error"]
    _check("/v1/mounts", "post", status, data)
    # the secret: in no command line, no log, no state file, no answer
    assert secret not in _our_ps()
    assert secret not in svc.log.read_text()
    for f in svc.state.rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f
    for f in (p / ".git" / "gitdata").rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f
    assert secret not in json.dumps(rows)
    # unmount: through the service; the write is in the bucket when it returns
    alice.gd(p, "unmount", "lab")
    assert subprocess.run(["mountpoint", "-q", str(mp)]).returncode != 0
    assert (served / "lab" / "out" / "fig.txt").read_bytes() == b"fig"
    assert json.loads(alice.gd(p, "mount", "ls", "--json").stdout) == []
    # the API itself (no CLI): a mount answers 201, an unmount 200, both as the document says,
    # and neither answer carries the secret
    body = {**body, "credentials": {"key": rclone_server.env["AWS_ACCESS_KEY_ID"], "secret": secret}}
    status, data = alice.call(svc.sock, "POST", "/v1/mounts", body)
    assert status == 201, data
    _check("/v1/mounts", "post", status, data)
    assert data["mountpoint"] == str(p / "storages" / "two") and data["uid"] == alice.uid
    assert data["state"] == "healthy" and secret not in json.dumps(data)
    assert alice.run(p, "cat", "storages/two/in.csv").stdout == "a,b\n"
    status, data = alice.call(svc.sock, "DELETE", f"/v1/mounts/{data['id']}")
    assert status == 200 and data["name"] == "two" and secret not in json.dumps(data)
    _check("/v1/mounts/{id}", "delete", status, data)
    assert subprocess.run(["mountpoint", "-q", str(p / "storages" / "two")]).returncode != 0
    assert secret not in svc.log.read_text() and secret not in _our_ps()
    status, data = alice.call(svc.sock, "GET", "/v1/health")
    assert status == 200 and data["yours"] == 0
    _check("/v1/health", "get", status, data)


def test_paths_outside_the_allowed_root_are_refused(base, users, service_factory, rclone_server, rclone_bucket):
    svc = service_factory()
    alice = users()
    outside = base / "outside"
    outside.mkdir()
    os.chown(outside, alice.uid, alice.gid)
    p = _project(alice, rclone_server, rclone_bucket)
    body = {"kind": "storage", "name": "lab", "url": f"s3://{rclone_bucket}/lab",
            "options": {"endpoint_url": rclone_server.endpoint}, "credentials": {"key": "k", "secret": "s"}}  # fmt: skip
    # a folder outside every allowed root
    status, data = alice.call(svc.sock, "POST", "/v1/mounts", {**body, "project": str(base), "mountpoint": str(outside)})
    assert status == 403 and "outside the allowed roots" in data["error"]
    # a symlink inside the root that leads out of it
    os.symlink(outside, p / "escape")
    status, data = alice.call(svc.sock, "POST", "/v1/mounts", {**body, "project": str(p), "mountpoint": str(p / "escape")})
    assert status == 403 and "link" in data["error"], data
    os.makedirs(outside / "deeper")
    status, data = alice.call(svc.sock, "POST", "/v1/mounts",
                              {**body, "project": str(p), "mountpoint": str(p / "escape" / "deeper")})  # fmt: skip
    assert status == 403 and "link" in data["error"], data
    # '..' and relative paths never get that far
    status, data = alice.call(svc.sock, "POST", "/v1/mounts",
                              {**body, "project": str(p), "mountpoint": f"{p}/../../outside"})  # fmt: skip
    assert status == 400 and "'..'" in data["error"]
    # a folder of another user inside the root
    bob = users()
    theirs = bob.home.parent / "theirs"
    theirs.mkdir()
    os.chown(theirs, bob.uid, bob.gid)
    status, data = alice.call(svc.sock, "POST", "/v1/mounts",
                              {**body, "project": str(bob.home.parent), "mountpoint": str(theirs)})  # fmt: skip
    assert status == 403 and "is not yours" in data["error"]
    _check("/v1/mounts", "post", status, data)
    assert "/gd-svc-" not in subprocess.run(["grep", "gd-svc", "/proc/mounts"], capture_output=True, text=True).stdout


@pytest.mark.parametrize("raw, status, reason", [
    (b"POST /v1/mounts HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\nnotjson", 400, "not JSON"),
    (b"POST /v1/mounts HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n[]", 400, "JSON object"),
    (b'POST /v1/mounts HTTP/1.1\r\nHost: x\r\nContent-Length: 15\r\n\r\n{"kind": "zip"}', 400, "kind must be"),
    (b'POST /v1/mounts HTTP/1.1\r\nHost: x\r\nContent-Length: 13\r\n\r\n{"evil": 1.0}', 400, "unknown field"),
    (b"POST /v1/mounts HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\n\r\n" + b"x" * 300000, 413, ""),
    (b"GET /v1/nothing HTTP/1.1\r\nHost: x\r\n\r\n", 404, ""),
    (b"DELETE /v1/mounts/..%2f..%2fetc HTTP/1.1\r\nHost: x\r\n\r\n", 404, "no mount"),
])  # fmt: skip
def test_malformed_requests_get_a_4xx_and_the_service_goes_on(base, service_factory, raw, status, reason):
    svc = service_factory()
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(svc.sock))
        s.sendall(raw)
        s.settimeout(30)
        got = b""
        while b"\r\n\r\n" not in got or len(got.split(b"\r\n\r\n", 1)[1]) < int(
                dict(line.split(b": ", 1) for line in got.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]
                     if b": " in line).get(b"Content-Length", b"0")):  # fmt: skip
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.split()[1] == str(status).encode(), got[:300]
    data = json.loads(body)
    assert set(data) == {"error"} and reason in data["error"]
    assert b"Traceback" not in got
    from gitdata.mount.client import health

    assert health(str(svc.sock))["ok"] is True  # still serving
    assert "Traceback" not in svc.log.read_text()


def test_openapi_document_is_what_the_service_serves(base, service_factory):
    from gitdata.mount.client import call

    svc = service_factory()
    status, data = call(str(svc.sock), "GET", "/v1/openapi.json")
    assert status == 200 and data == json.loads(json.dumps(DOCUMENT))
    import jsonschema

    for name, schema in DOCUMENT["components"]["schemas"].items():
        jsonschema.Draft202012Validator.check_schema(_resolve(schema)), name
    status, data = call(str(svc.sock), "GET", "/v1/health")
    _check("/v1/health", "get", status, data)


def test_no_dynamic_refuses_sessions_and_mount_declared_mounts(base, users, service_factory, rclone_server,
                                                              rclone_bucket):  # fmt: skip
    svc = service_factory("--no-dynamic", "--view-python", str(_client_bin(base) / "python"))
    alice = users()
    alice.env = {"GITDATA_MOUNT_SERVICE": str(svc.sock), "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"}
    served = rclone_server.bucket_path(rclone_bucket)
    (served / "lab").mkdir(parents=True)
    (served / "lab" / "in.csv").write_bytes(b"declared\n")
    rclone_server.flush_dir_cache()
    p = _project(alice, rclone_server, rclone_bucket, mode="mount")
    res = alice.gd(p, "storage", "stage", "lab", ok=False)  # mode = mount in .gitdata
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [f"error: the mount service refused to mount storage 'lab': {NO_DYNAMIC}"]
    assert not (p / "storages" / "lab").exists() or not os.listdir(p / "storages" / "lab")
    # a dataset declared with mode = mount too: alice's own files, pushed to a local data remote
    alice.gd(p, "remote", "add", "origin", (alice.home.parent / "remote").as_uri())
    alice.gd(p, "track", "data/own/**")
    alice.gd(p, "dataset", "create", "own")
    alice.run(p, "git", "config", "-f", ".gitdata", "dataset.own.mode", "mount")
    alice.run(p, "sh", "-c", "mkdir -p data/own && printf 'own bytes\\n' > data/own/a.txt")
    alice.run(p, "git", "add", "-A")
    alice.run(p, "git", "commit", "-qm", "own")
    alice.gd(p, "push")
    alice.gd(p, "dataset", "unstage", "own")
    # what the session's start runs, as root, with the operator's credentials in its environment; no
    # safe.directory: root runs no git in alice's project (a child process as alice does)
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}", **rclone_server.env}
    trace = base / "git-trace"
    env.update(GIT_TRACE=str(trace))  # every git that runs writes here: as whom is checked below
    proc = subprocess.run([f"{VENV_BIN}/git-data", "mount-service", "mount-declared", str(p), "--socket",
                           str(svc.sock), "--python", str(_client_bin(base) / "python")],
                          capture_output=True, text=True, env=env, timeout=180, stdin=subprocess.DEVNULL)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert sorted(proc.stdout.strip().splitlines()) == [f"mounted dataset own at {p / 'data' / 'own'}",
                                                        f"mounted storage lab at {p / 'storages' / 'lab'}"]
    assert not trace.exists() or trace.stat().st_size == 0, trace.read_text()  # no git ran as root
    assert alice.run(p, "cat", "storages/lab/in.csv").stdout == "declared\n"
    assert alice.run(p, "cat", "data/own/a.txt").stdout == "own bytes\n"
    assert alice.run(p, "git", "status", "--porcelain").stdout == ""
    rows = json.loads(alice.gd(p, "mount", "ls", "--json").stdout)
    assert sorted((r["name"], r["state"]) for r in rows) == [("lab", "healthy"), ("own", "healthy")]
    for e in json.loads((svc.state / "mounts.json").read_text()):  # both for alice
        assert e["uid"] == alice.uid
    assert os.stat(p / ".git" / "gitdata" / "mounts").st_uid == alice.uid  # state written as alice
    assert rclone_server.env["AWS_SECRET_ACCESS_KEY"] not in _our_ps()
    alice.gd(p, "unmount", "lab")  # the session may unmount what was mounted for it
    assert subprocess.run(["mountpoint", "-q", str(p / "storages" / "lab")]).returncode != 0
    alice.gd(p, "unmount", "own")
    assert (p / "data" / "own" / "a.txt").read_bytes().startswith(b"version gitdata/1")


def test_service_killed_midway(base, users, service_factory, rclone_server, rclone_bucket):
    svc = service_factory()
    alice = users()
    alice.env = {"AWS_ACCESS_KEY_ID": rclone_server.env["AWS_ACCESS_KEY_ID"],
                 "AWS_SECRET_ACCESS_KEY": rclone_server.env["AWS_SECRET_ACCESS_KEY"],
                 "GITDATA_MOUNT_SERVICE": str(svc.sock)}  # fmt: skip
    p = _project(alice, rclone_server, rclone_bucket)
    alice.gd(p, "storage", "stage", "lab", "--mount")
    svc.kill()
    res = alice.gd(p, "unmount", "lab", ok=False)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines()[-1].startswith(f"error: the mount service at {svc.sock} is not answering")
    assert "Traceback" not in res.stderr
    rows = json.loads(alice.gd(p, "mount", "ls", "--json").stdout)
    assert [r["name"] for r in rows] == ["lab"]
    # its rclone dies too: stale, reported; a restarted service cleans it
    (entry,) = json.loads((svc.state / "mounts.json").read_text())
    os.kill(entry["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while json.loads(alice.gd(p, "mount", "ls", "--json").stdout)[0]["state"] != "stale":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert "storage lab is mounted but stale" in alice.gd(p, "status").stderr
    svc2 = service_factory()
    assert svc2.sock == svc.sock
    alice.gd(p, "unmount", "lab")
    assert json.loads(alice.gd(p, "mount", "ls", "--json").stdout) == []
    assert subprocess.run(["mountpoint", "-q", str(p / "storages" / "lab")]).returncode != 0
    assert json.loads((svc.state / "mounts.json").read_text()) == []


def test_dataset_mount_through_the_service(base, users, service_factory):
    """A dataset of the user's own files: the service mounts (root) and hands /dev/fuse to a view
    process that runs as the user; the bytes are the recorded ones, git status stays clean, and a
    second user cannot read it."""
    py = _client_bin(base) / "python"
    svc = service_factory("--view-python", str(py))
    alice, bob = users(), users()
    alice.env = {"GITDATA_MOUNT_SERVICE": str(svc.sock)}
    p = alice.home.parent / "proj"
    p.mkdir()
    os.chown(p, alice.uid, alice.gid)
    alice.run(p, "git", "init", "-q")
    alice.gd(p, "install")
    alice.gd(p, "remote", "add", "origin", (alice.home.parent / "remote").as_uri())
    alice.gd(p, "track", "data/own/**")
    alice.gd(p, "dataset", "create", "own")
    data = os.urandom(300_000)
    alice.run(p, "sh", "-c", "mkdir -p data/own/sub && printf 'hello\\n' > data/own/a.txt")
    (p / "data/own/sub/b.bin").write_bytes(data)
    os.chown(p / "data/own/sub/b.bin", alice.uid, alice.gid)
    alice.run(p, "git", "add", "-A")
    alice.run(p, "git", "commit", "-qm", "own")
    alice.gd(p, "push")
    alice.gd(p, "dataset", "stage", "own", "--reference")
    res = alice.gd(p, "dataset", "stage", "own", "--mount")
    assert "mode mount" in res.stdout
    mp = p / "data" / "own"
    assert subprocess.run(["mountpoint", "-q", str(mp)]).returncode == 0
    assert alice.run(p, "cat", "data/own/a.txt").stdout == "hello\n"
    got = alice.run(p, "python", "-c", "import sys;sys.stdout.write(open('data/own/sub/b.bin','rb').read().hex())")
    assert bytes.fromhex(got.stdout) == data
    assert alice.run(p, "git", "status", "--porcelain").stdout == ""
    rows = json.loads(alice.gd(p, "mount", "ls", "--json").stdout)
    assert [(r["name"], r["kind"], r["state"], r["service"]) for r in rows] == [
        ("own", "dataset", "healthy", str(svc.sock))]
    (entry,) = json.loads((svc.state / "mounts.json").read_text())
    status = Path(f"/proc/{entry['pid']}/status").read_text()
    assert f"Uid:\t{alice.uid}\t{alice.uid}\t{alice.uid}\t{alice.uid}" in status  # the view is alice's, not root's
    assert bob.run(Path("/"), "cat", str(mp / "a.txt"), ok=False).returncode != 0
    write = alice.run(p, "sh", "-c", "echo x > data/own/new.txt", ok=False)
    assert write.returncode != 0 and "Read-only file system" in write.stderr
    alice.gd(p, "unmount", "own")
    assert subprocess.run(["mountpoint", "-q", str(mp)]).returncode != 0
    assert (mp / "a.txt").read_bytes().startswith(b"version gitdata/1")
    assert alice.run(p, "git", "status", "--porcelain").stdout == ""
    assert json.loads((svc.state / "mounts.json").read_text()) == []


def _gitdata_mounts_under(path: Path) -> list[str]:
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mp = line.split(" ")[4]
        if mp.startswith(str(path)):
            out.append(mp)
    return out


@pytest.mark.parametrize("kind", ["dataset", "storage"])
def test_a_mount_point_swapped_for_a_symlink_after_the_check_is_not_followed(tmp_path, kind, rclone_server,
                                                                             rclone_bucket):  # fmt: skip
    """The caller owns the folder, so it can rename it and put a symlink in its place between
    the service's check and the mount. The service mounts through the descriptor it checked and
    then confirms where the mount went: nothing may end up at the symlink's target (outside the
    allowed root) nor anywhere else. The window is hit deterministically by a subclass that swaps
    the folder in the one method called between check and mount (``Service._checked``)."""
    from gitdata.mount import service as svc
    from gitdata.mount.protocol import ApiError, parse_mount
    from servers import rclone_binary

    _fuse_or_skip()
    allowed = tmp_path / "allowed"
    project = allowed / "proj"
    mp = project / "data" / "x"
    mp.mkdir(parents=True)
    outside = tmp_path / "outside"
    target = outside / "target"
    target.mkdir(parents=True)
    moved = outside / "moved"

    class Swapping(svc.Service):
        def _checked(self, req, mp_path, dirfd):
            os.rename(mp, moved)
            os.symlink(target, mp)

    service = Swapping(allow_roots=[str(allowed)], state_dir=str(tmp_path / "state"), rclone=str(rclone_binary()),
                       python=sys.executable, timeout=20)  # fmt: skip
    body = {"kind": kind, "name": "x", "project": str(project), "mountpoint": str(mp)}
    if kind == "storage":
        body.update(url=f"s3://{rclone_bucket}", options={"endpoint_url": rclone_server.endpoint},
                    credentials={"key": rclone_server.key, "secret": rclone_server.secret})
    try:
        with pytest.raises(ApiError) as err:
            service.mount(parse_mount(json.dumps(body).encode()), 0, 0)
        assert err.value.status in (409, 502), err.value.reason
        # storages too: rclone mounts in the service's own folder, then the mount is moved onto
        # the checked descriptor (the folder the caller moved away), found there, and undone
        assert "moved or replaced" in err.value.reason, err.value.reason
        assert _gitdata_mounts_under(tmp_path) == []  # not at the target, not where the folder went
        assert os.listdir(target) == [] and os.listdir(moved) == []
        assert service.mounts == {}
    finally:
        for m in _gitdata_mounts_under(tmp_path):
            subprocess.run(["fusermount3", "-u", "-z", m], capture_output=True)
            subprocess.run(["umount", "-l", m], capture_output=True)


def test_registered_dataset_through_the_service_reads_recorded_bytes_and_eio_after_a_change(
        base, users, service_factory, rclone_server, rclone_bucket):  # fmt: skip
    """A dataset registered from `rclone serve s3` (no versions), mounted through the service: the
    view (run as the caller, the session's credentials in its environment) reads the recorded
    bytes; once the source is overwritten (same size), that file gives EIO, never the new bytes."""
    svc = service_factory("--view-python", str(_client_bin(base) / "python"))
    alice = users()
    alice.env = {"GITDATA_MOUNT_SERVICE": str(svc.sock), **rclone_server.env}
    served = rclone_server.bucket_path(rclone_bucket)
    (served / "raw" / "sub").mkdir(parents=True)
    (served / "raw" / "sub" / "obs.csv").write_bytes(b"site,1\n")
    (served / "raw" / "top.csv").write_bytes(b"top,2\n")
    rclone_server.flush_dir_cache()
    p = alice.home.parent / "proj"
    p.mkdir()
    os.chown(p, alice.uid, alice.gid)
    alice.run(p, "git", "init", "-q")
    alice.gd(p, "install")
    alice.gd(p, "dataset", "create", "field", "-o", f"endpoint_url={rclone_server.endpoint}")
    alice.gd(p, "dataset", "add", "field", f"s3://{rclone_bucket}/raw")
    alice.run(p, "git", "commit", "-qm", "register")
    alice.gd(p, "dataset", "stage", "field", "--mount")
    assert alice.run(p, "cat", "data/field/sub/obs.csv").stdout == "site,1\n"
    assert alice.run(p, "cat", "data/field/top.csv").stdout == "top,2\n"
    (served / "raw" / "sub" / "obs.csv").write_bytes(b"site,9\n")  # same size, other bytes
    rclone_server.flush_dir_cache()
    got = alice.run(p, "python", "-c", "open('data/field/sub/obs.csv','rb').read()", ok=False)
    assert got.returncode != 0 and "Input/output error" in got.stderr, got.stdout
    assert alice.run(p, "cat", "data/field/top.csv").stdout == "top,2\n"  # only that file
    secret = rclone_server.env["AWS_SECRET_ACCESS_KEY"]
    assert secret not in _our_ps()
    alice.gd(p, "unmount", "field")
    assert alice.run(p, "git", "status", "--porcelain").stdout == ""
    assert secret not in svc.log.read_text()  # the view's environment only: no log, no state file
    for f in [*svc.state.rglob("*"), *(p / ".git" / "gitdata").rglob("*")]:
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f


@pytest.mark.parametrize("when", ["before", "after_lookup"])
def test_an_unmount_after_the_folder_above_was_swapped_for_a_symlink_unmounts_nothing_else(
        tmp_path, when, rclone_server, rclone_bucket, monkeypatch):  # fmt: skip
    """Root unmounts. The caller owns the folders above its mount point: it renames the one
    above and puts a symlink there that leads to another mount (here a tmpfs outside the
    allowed root), before the unmount or in the window between the service's look-up of its
    mount and the unmount. Nothing but the caller's own mount may ever be unmounted: the
    request is refused and the other mount stays; moved back, the unmount works."""
    from gitdata.mount import service as svc
    from gitdata.mount.protocol import ApiError, parse_mount
    from servers import rclone_binary

    _fuse_or_skip()
    allowed = tmp_path / "allowed"
    project = allowed / "proj"
    mp = project / "storages" / "x"
    mp.mkdir(parents=True)
    outside = tmp_path / "outside"
    victim = outside / "x"
    victim.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "gd-victim", str(victim)], check=True)
    service = svc.Service(allow_roots=[str(allowed)], state_dir=str(tmp_path / "state"), rclone=str(rclone_binary()),
                          python=sys.executable, timeout=20)  # fmt: skip
    body = {"kind": "storage", "name": "x", "project": str(project), "mountpoint": str(mp),
            "url": f"s3://{rclone_bucket}", "options": {"endpoint_url": rclone_server.endpoint},
            "credentials": {"key": rclone_server.key, "secret": rclone_server.secret}}  # fmt: skip

    def swap() -> None:
        os.rename(project / "storages", project / "moved")
        os.symlink(outside, project / "storages")

    def ismount(path: Path) -> bool:
        return subprocess.run(["mountpoint", "-q", str(path)]).returncode == 0

    try:
        entry = service.mount(parse_mount(json.dumps(body).encode()), 0, 0)
        assert ismount(mp) and ismount(victim)
        if when == "before":
            swap()
        else:  # right after the service looked its mount up by device name
            real = svc._mounts_of

            def looked_up(devname: str) -> list[str]:
                found = real(devname)
                monkeypatch.setattr(svc, "_mounts_of", real)
                swap()
                return found

            monkeypatch.setattr(svc, "_mounts_of", looked_up)
        with pytest.raises(ApiError) as err:
            service.unmount(entry.id, 0)
        assert err.value.status == 409, err.value.reason
        assert ("moved" if when == "before" else "link") in err.value.reason, err.value.reason
        assert ismount(victim), "the other mount was unmounted"
        assert ismount(project / "moved" / "x") and entry.id in service.mounts
        os.unlink(project / "storages")
        os.rename(project / "moved", project / "storages")
        service.unmount(entry.id, 0)
        assert not ismount(mp) and ismount(victim)
        assert service.mounts == {}
    finally:
        for m in _gitdata_mounts_under(tmp_path):
            subprocess.run(["fusermount3", "-u", "-z", m], capture_output=True)
            subprocess.run(["umount", "-l", m], capture_output=True)


def test_registered_dataset_on_versioned_moto_through_the_service_reads_the_recorded_versions(
        base, users, service_factory, moto_server, versioned_moto_bucket, monkeypatch):  # fmt: skip
    """A dataset registered from a versioned bucket (moto), every object overwritten after
    that: through the service the view (the caller's) reads the recorded versions, not the
    bucket's current objects; the secret shows in no command line or log."""
    import s3fs

    for k, v in moto_server.env.items():
        monkeypatch.setenv(k, v)
    s3 = s3fs.S3FileSystem(endpoint_url=moto_server.endpoint, skip_instance_cache=True)
    b = versioned_moto_bucket
    recorded = {"obs.csv": b"site,value\nA,1\n", "deep/scan.bin": os.urandom(3 << 20)}
    for key, data in recorded.items():
        s3.pipe_file(f"{b}/raw/{key}", data)
    svc = service_factory("--view-python", str(_client_bin(base) / "python"))
    alice = users()
    alice.env = {"GITDATA_MOUNT_SERVICE": str(svc.sock), **moto_server.env}
    p = alice.home.parent / "proj"
    p.mkdir()
    os.chown(p, alice.uid, alice.gid)
    alice.run(p, "git", "init", "-q")
    alice.gd(p, "install")
    alice.gd(p, "dataset", "create", "field", "-o", f"endpoint_url={moto_server.endpoint}")
    alice.gd(p, "dataset", "add", "field", f"s3://{b}/raw")
    alice.run(p, "git", "commit", "-qm", "register")
    for key in recorded:
        s3.pipe_file(f"{b}/raw/{key}", b"overwritten " + key.encode())
    alice.gd(p, "dataset", "stage", "field", "--mount")
    assert alice.run(p, "cat", "data/field/obs.csv").stdout == "site,value\nA,1\n"
    got = alice.run(p, "python", "-c", "import sys;sys.stdout.write(open('data/field/deep/scan.bin','rb').read().hex())")
    assert bytes.fromhex(got.stdout) == recorded["deep/scan.bin"]
    write = alice.run(p, "sh", "-c", "echo x > data/field/new.txt", ok=False)
    assert write.returncode != 0 and "Read-only file system" in write.stderr
    rows = json.loads(alice.gd(p, "mount", "ls", "--json").stdout)
    assert [(r["name"], r["state"], r["service"]) for r in rows] == [("field", "healthy", str(svc.sock))]
    secret = moto_server.env["AWS_SECRET_ACCESS_KEY"]
    assert secret not in _our_ps()
    alice.gd(p, "unmount", "field")
    assert (p / "data/field/obs.csv").read_bytes().startswith(b"version gitdata/1")
    assert alice.run(p, "git", "status", "--porcelain").stdout == ""
    assert secret not in svc.log.read_text()


def test_undoing_a_stray_mount_is_not_turned_onto_another_mount(tmp_path, rclone_server, rclone_bucket,
                                                                monkeypatch):  # fmt: skip
    """The folder is moved away between check and mount, so the storage's mount lands where it
    went (a stray) and the service undoes it. In the window between finding the stray and
    unmounting it, the caller swaps a folder above the stray for a symlink leading to another
    mount (a tmpfs): that one stays mounted; the request still answers 409."""
    from gitdata.mount import service as svc
    from gitdata.mount.protocol import ApiError, parse_mount
    from servers import rclone_binary

    _fuse_or_skip()
    allowed = tmp_path / "allowed"
    project = allowed / "proj"
    mp = project / "data" / "x"
    mp.mkdir(parents=True)
    away = tmp_path / "away"
    away.mkdir()
    decoy = tmp_path / "decoy"
    (decoy / "moved").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "gd-victim", str(decoy / "moved")], check=True)

    class Swapping(svc.Service):
        def _checked(self, req, mp_path, dirfd):
            os.rename(mp, away / "moved")  # the mount follows the descriptor there

    real = svc._mounts_of
    calls = []

    def looked_up(devname: str) -> list[str]:
        found = real(devname)
        if any(m.startswith(str(away)) for m in found) and not calls:
            calls.append(found)
            os.rename(away, tmp_path / "away-real")
            os.symlink(decoy, away)
        return found

    monkeypatch.setattr(svc, "_mounts_of", looked_up)
    service = Swapping(allow_roots=[str(allowed)], state_dir=str(tmp_path / "state"), rclone=str(rclone_binary()),
                       python=sys.executable, timeout=20)  # fmt: skip
    body = {"kind": "storage", "name": "x", "project": str(project), "mountpoint": str(mp),
            "url": f"s3://{rclone_bucket}", "options": {"endpoint_url": rclone_server.endpoint},
            "credentials": {"key": rclone_server.key, "secret": rclone_server.secret}}  # fmt: skip
    try:
        with pytest.raises(ApiError) as err:
            service.mount(parse_mount(json.dumps(body).encode()), 0, 0)
        assert err.value.status == 409 and "moved or replaced" in err.value.reason, err.value.reason
        assert calls, "the stray was never looked up"
        assert subprocess.run(["mountpoint", "-q", str(decoy / "moved")]).returncode == 0, "the other mount went"
        assert service.mounts == {}
    finally:
        for m in _gitdata_mounts_under(tmp_path):
            subprocess.run(["fusermount3", "-u", "-z", m], capture_output=True)
            subprocess.run(["umount", "-l", m], capture_output=True)
