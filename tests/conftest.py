"""Shared fixtures: hermetic environment and real loopback servers.

Fixtures (see tests/servers.py for the server classes):

session   moto_server, rclone_server, gcs_server, git_daemon
function  moto_bucket, versioned_moto_bucket, rclone_bucket, gcs_bucket  -> bucket name
          backend (params local/moto/rclone/gcs), versioned_moto_backend -> Backend
          daemon_repo -> DaemonRepo(name, url, path) (fresh bare repo on git_daemon)
          rclone_server_factory -> callable starting private RcloneS3Server(s)
          hermetic_git_env (autouse) -> Path of the test's HOME
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

import servers  # noqa: E402
from helpers import use_server_env  # noqa: E402
from servers import (  # noqa: E402
    FakeGcsServer,
    GitDaemon,
    MotoServer,
    RcloneS3Server,
    unique_name,
    venv_bin_dir,
)

# --------------------------------------------------------------------------
# Environment hygiene.  Applied at import time too: gcsfs decides at *import*
# whether to use its experimental (60 s-stalling) class, and botocore/google-
# auth must never probe metadata servers, even during collection.

HYGIENE_SET = {
    "AWS_EC2_METADATA_DISABLED": "true",
    "NO_GCE_CHECK": "True",
    "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
    "AWS_DEFAULT_REGION": "us-east-1",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}
HYGIENE_REMOVE = (
    # AWS: profiles, config files, credentials, CA bundle, endpoint overrides
    "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CA_BUNDLE", "AWS_REGION",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
    "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_S3_ENDPOINT",
    # GCP
    "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT",
    "GCSFS_DEFAULT_PROJECT", "CLOUDSDK_CONFIG", "CLOUDSDK_CORE_PROJECT",
    "STORAGE_EMULATOR_HOST", "GCE_METADATA_HOST", "GCE_METADATA_IP",
    # proxies would swallow loopback traffic
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
)  # fmt: skip

VENV_BIN = venv_bin_dir()

# Loopback only, enforced (tests/netguard/sitecustomize.py): this process loads the guard
# here; every Python process the tests start loads it from PYTHONPATH.
NETGUARD_DIR = str(Path(__file__).resolve().parent / "netguard")
NETLOG = "GITDATA_TEST_NETLOG"


def _load_netguard() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("gitdata_tests_netguard", os.path.join(NETGUARD_DIR, "sitecustomize.py"))
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


netguard = _load_netguard()


def _pythonpath_with_netguard(path: str | None) -> str:
    parts = [p for p in (path or "").split(os.pathsep) if p and p != NETGUARD_DIR]
    return os.pathsep.join([NETGUARD_DIR, *parts])


def _path_with_venv_first(path: str | None) -> str:
    parts = [p for p in (path or "").split(os.pathsep) if p and Path(p) != VENV_BIN]
    return os.pathsep.join([str(VENV_BIN), *parts])


def _apply_hygiene(setenv: Callable[[str, str], Any], delenv: Callable[[str], Any]) -> None:
    for k in HYGIENE_REMOVE:
        if k in os.environ:
            delenv(k)
    for k in list(os.environ):
        if k.startswith("RCLONE_"):
            delenv(k)
    for k, v in HYGIENE_SET.items():
        setenv(k, v)
    setenv("PATH", _path_with_venv_first(os.environ.get("PATH")))
    setenv("PYTHONPATH", _pythonpath_with_netguard(os.environ.get("PYTHONPATH")))


_apply_hygiene(os.environ.__setitem__, os.environ.__delitem__)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: long-running test (large data, benchmarks)")


@pytest.fixture(scope="session", autouse=True)
def _session_hygiene() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        _apply_hygiene(mp.setenv, mp.delenv)
        if "gcsfs" in sys.modules:  # imported before this conftest (plugin?)
            import gcsfs

            if gcsfs.GCSFileSystem.__name__ != "GCSFileSystem":
                pytest.exit(
                    "gcsfs was imported before tests/conftest.py set "
                    "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false; every GCS call would stall 60 s",
                    returncode=3,
                )
        yield


# --------------------------------------------------------------------------
# Per-test hermetic git environment

GIT_NAME = "Test User"
GIT_EMAIL = "test@example.com"
_GIT_ENV_KEEP = {"GIT_SSL_CAINFO"}


@pytest.fixture(autouse=True)
def hermetic_git_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Fresh HOME with a minimal ~/.gitconfig; no system config; no leaked GIT_*.

    Returns the HOME path.  The venv's bin dir is first on PATH so git finds
    ``git-data`` / ``git-remote-s3data`` installed there.
    """
    home = tmp_path_factory.mktemp("home")
    for k in list(os.environ):
        # GIT_DIR/GIT_INDEX_FILE/GIT_CONFIG_* leaking from a hook or the
        # developer's shell would redirect every git call the tests make.
        if k.startswith("GIT_") and k not in _GIT_ENV_KEEP:
            monkeypatch.delenv(k)
    (home / ".config").mkdir()
    (home / ".gitconfig").write_text(
        "[init]\n\tdefaultBranch = main\n"
        f"[user]\n\tname = {GIT_NAME}\n\temail = {GIT_EMAIL}\n"
        '[protocol "file"]\n\tallow = always\n'
        "[gc]\n\tautoDetach = false\n"
        "[advice]\n\tdetachedHead = false\n"
    )
    env = {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": GIT_NAME,
        "GIT_AUTHOR_EMAIL": GIT_EMAIL,
        "GIT_COMMITTER_NAME": GIT_NAME,
        "GIT_COMMITTER_EMAIL": GIT_EMAIL,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "",
        "SSH_ASKPASS": "",
        "PATH": _path_with_venv_first(os.environ.get("PATH")),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return home


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Fails the test if it, or any Python process it started, reached for an address that
    is not loopback (a connect or a name lookup; the guard also refused it)."""
    log = tmp_path_factory.mktemp("netlog") / "netlog"
    monkeypatch.setenv(NETLOG, str(log))
    yield log
    if log.exists() and log.read_text(encoding="utf-8").strip():
        pytest.fail("reached past loopback (pid, what, host):\n" + log.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------
# Session-scoped servers (started lazily, on first use)


def _start_or_skip(factory: Callable[[], Any]) -> Any:
    try:
        return factory()
    except FileNotFoundError as e:  # binary / package missing in this env
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    srv = MotoServer(port=0).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def rclone_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RcloneS3Server]:
    work = tmp_path_factory.mktemp("rclone-server")
    srv = _start_or_skip(lambda: RcloneS3Server(workdir=work))
    try:
        srv.start()
        yield srv
    finally:
        srv.close()


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGcsServer]:
    work = tmp_path_factory.mktemp("fake-gcs")
    srv = _start_or_skip(lambda: FakeGcsServer(workdir=work))
    try:
        srv.start()
        yield srv
    finally:
        srv.close()


@pytest.fixture(scope="session")
def git_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitDaemon]:
    work = tmp_path_factory.mktemp("git-daemon")
    srv = GitDaemon(workdir=work)
    try:
        srv.start()
        yield srv
    finally:
        srv.close()


@pytest.fixture
def rclone_server_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., RcloneS3Server]]:
    """Start private rclone servers (for tests that stop/kill/restart them)."""
    started: list[RcloneS3Server] = []

    def make(**kw: Any) -> RcloneS3Server:
        kw.setdefault("workdir", tmp_path_factory.mktemp("rclone-private"))
        srv = _start_or_skip(lambda: RcloneS3Server(**kw))
        started.append(srv)
        return srv.start()

    try:
        yield make
    finally:
        for srv in started:
            srv.close()


# --------------------------------------------------------------------------
# Fresh buckets


@pytest.fixture
def moto_bucket(moto_server: MotoServer) -> Iterator[str]:
    """A fresh bucket on the shared moto server; request counts start at 0."""
    moto_server.ensure_running()
    name = moto_server.make_bucket(unique_name("moto"))
    moto_server.reset_counts()
    try:
        yield name
    finally:
        moto_server.delete_bucket(name)


@pytest.fixture
def versioned_moto_bucket(moto_server: MotoServer) -> Iterator[str]:
    moto_server.ensure_running()
    name = moto_server.make_bucket(unique_name("motov"), versioned=True)
    moto_server.reset_counts()
    try:
        yield name
    finally:
        moto_server.delete_bucket(name)


@pytest.fixture
def rclone_bucket(rclone_server: RcloneS3Server) -> Iterator[str]:
    rclone_server.ensure_running()  # an earlier test may have stopped it
    name = rclone_server.make_bucket(unique_name("rclone"))
    try:
        yield name
    finally:
        rclone_server.delete_bucket(name)


@pytest.fixture
def gcs_bucket(gcs_server: FakeGcsServer) -> Iterator[str]:
    gcs_server.ensure_running()
    name = gcs_server.make_bucket(unique_name("gcs"))
    try:
        yield name
    finally:
        gcs_server.delete_bucket(name)


@dataclass
class DaemonRepo:
    name: str
    url: str  # git://127.0.0.1:PORT/name.git
    path: Path  # the bare repository on disk


@pytest.fixture
def daemon_repo(git_daemon: GitDaemon) -> Iterator[DaemonRepo]:
    """A fresh, empty bare repository served by the session git daemon."""
    git_daemon.ensure_running()
    name = unique_name("repo") + ".git"
    path = git_daemon.make_bare(name)
    try:
        yield DaemonRepo(name=name, url=git_daemon.url(name), path=path)
    finally:
        git_daemon.delete_repo(name)


# --------------------------------------------------------------------------
# Backends


@dataclass
class Backend:
    """One storage location for a test.

    url      fsspec URL of the test's root: file:///..., s3://bucket/prefix, gs://bucket/prefix
    options  non-secret fsspec storage options ({"endpoint_url": ...}, GCS adds token="anon")
    env      credential env vars (already applied to os.environ for the test)
    """

    name: str  # "local" | "moto" | "rclone" | "gcs"
    protocol: str  # "file" | "s3" | "gs"
    url: str
    options: dict[str, Any]
    env: dict[str, str]
    bucket: str | None = None
    prefix: str = ""
    server: Any = None  # MotoServer / RcloneS3Server / FakeGcsServer (None for local)
    versioned: bool = False
    local_root: Path | None = field(default=None, repr=False)  # for "local" only

    @property
    def path(self) -> str:
        """The root as an fsspec path without protocol (bucket/prefix or /abs/dir)."""
        if self.local_root is not None:
            return str(self.local_root)
        return f"{self.bucket}/{self.prefix}" if self.prefix else str(self.bucket)

    def join(self, *parts: str) -> str:
        """URL of a key under the root."""
        return "/".join([self.url.rstrip("/"), *(p.strip("/") for p in parts)])

    def key_path(self, *parts: str) -> str:
        """fsspec path (no protocol) of a key under the root."""
        return "/".join([self.path.rstrip("/"), *(p.strip("/") for p in parts)])

    @property
    def credentials(self) -> dict[str, str]:
        """Secrets as fsspec kwargs (s3fs key/secret); empty for local/gcs."""
        if "AWS_ACCESS_KEY_ID" in self.env:
            return {
                "key": self.env["AWS_ACCESS_KEY_ID"],
                "secret": self.env["AWS_SECRET_ACCESS_KEY"],
            }
        return {}

    def fs(self, **overrides: Any) -> Any:
        """A fresh (uncached) fsspec filesystem: options + credentials + overrides.

        For "local" it defaults to ``auto_mkdir=True`` so writing a key works
        like on an object store (parents are created).
        """
        import fsspec

        kw = {**self.options, **self.credentials, **overrides}
        if self.protocol == "file":
            kw.setdefault("auto_mkdir", True)
        return fsspec.filesystem(self.protocol, skip_instance_cache=True, **kw)


BACKENDS = ("local", "moto", "rclone", "gcs")


def _make_backend(
    kind: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
    versioned: bool = False,
) -> Backend:
    prefix = "prefix"
    if kind == "local":
        root = tmp_path_factory.mktemp("backend") / "store"
        root.mkdir()
        be = Backend("local", "file", root.as_uri(), {}, {}, local_root=root)
    elif kind == "moto":
        srv: Any = request.getfixturevalue("moto_server")
        bucket = request.getfixturevalue("versioned_moto_bucket" if versioned else "moto_bucket")
        be = Backend(
            "moto", "s3", f"s3://{bucket}/{prefix}", {"endpoint_url": srv.endpoint},
            dict(srv.env), bucket, prefix, srv, versioned=versioned,
        )  # fmt: skip
    elif kind == "rclone":
        srv = request.getfixturevalue("rclone_server")
        bucket = request.getfixturevalue("rclone_bucket")
        be = Backend(
            "rclone", "s3", f"s3://{bucket}/{prefix}", {"endpoint_url": srv.endpoint},
            dict(srv.env), bucket, prefix, srv,
        )  # fmt: skip
    elif kind == "gcs":
        srv = request.getfixturevalue("gcs_server")
        bucket = request.getfixturevalue("gcs_bucket")
        be = Backend(
            "gcs", "gs", f"gs://{bucket}/{prefix}",
            {"endpoint_url": srv.endpoint, "token": "anon"}, {}, bucket, prefix, srv,
        )  # fmt: skip
    else:  # pragma: no cover
        raise ValueError(kind)
    use_server_env(monkeypatch, be)
    return be


@pytest.fixture(params=BACKENDS)
def backend(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> Backend:
    """Each test runs once per storage: local dir, moto S3, rclone S3, fake GCS."""
    return _make_backend(request.param, request, monkeypatch, tmp_path_factory)


@pytest.fixture
def versioned_moto_backend(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> Backend:
    return _make_backend("moto", request, monkeypatch, tmp_path_factory, versioned=True)


__all__ = ["Backend", "DaemonRepo", "servers"]
