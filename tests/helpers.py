"""Small helpers for tests that drive git and git data as a user would."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def run(*args: str, cwd: str | os.PathLike | None = None, input: bytes | None = None,
        check: bool = True, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    full_env = None
    if env:
        full_env = {**os.environ, **env}
    proc = subprocess.run(list(args), cwd=cwd, input=input, capture_output=True, env=full_env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {proc.returncode}\nstdout: {proc.stdout.decode(errors='replace')}\n"
            f"stderr: {proc.stderr.decode(errors='replace')}"
        )
    return proc


def out(*args: str, cwd=None, **kw) -> str:
    return run(*args, cwd=cwd, **kw).stdout.decode()


def git(cwd, *args: str, **kw) -> str:
    return out("git", *args, cwd=cwd, **kw)


def gd(cwd, *args: str, **kw) -> str:
    """Run `git data ARGS` and return stdout."""
    return out("git", "data", *args, cwd=cwd, **kw)


def new_project(path: Path, remote_url: str | None = None, options: dict | None = None,
                patterns: tuple[str, ...] = ("data/**", "*.bin")) -> Path:
    """A fresh repository with git data installed, tracking ``patterns``."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q")
    gd(path, "install")  # --global: HOME is the test's own, and clones need the filter too
    gd(path, "track", *patterns)
    if remote_url:
        args = ["remote", "add", "origin", remote_url]
        for k, v in (options or {}).items():
            args += ["-o", f"{k}={v}"]
        gd(path, *args)
    return path


def registered_project(path: Path, url: str, endpoint: str) -> Path:
    """A fresh repository (branch main) with git data installed and dataset
    ``field`` registered from ``url`` (an S3 prefix at ``endpoint``), committed."""
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    gd(path, "install", input=b"")
    gd(path, "dataset", "create", "field", "-o", f"endpoint_url={endpoint}", input=b"")
    gd(path, "dataset", "add", "field", url, input=b"")  # stdin not a terminal: never a prompt
    git(path, "commit", "-qm", "register")
    return path


def use_server_env(monkeypatch, server) -> None:
    """Put a test server's credentials (its ``env``: the AWS key pair) into
    this test's environment; undone when the test ends."""
    for k, v in server.env.items():
        monkeypatch.setenv(k, v)


def prompted(cwd, args: list[str], answers: list[tuple[str, str]], timeout: float = 30) -> tuple[int, str]:
    """Run ``git-data ARGS`` on a pseudo-terminal, answering each prompt (a
    regular expression) in turn; ``(exit status, transcript)``."""
    import sys

    import pexpect

    gitdata = str(Path(sys.executable).parent / "git-data")
    child = pexpect.spawn(gitdata, list(args), cwd=str(cwd), env=dict(os.environ), timeout=timeout)
    for prompt, answer in answers:
        child.expect(prompt)
        child.sendline(answer)
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus, child.before.decode()


def key_pair(server, secret: str | None = None) -> list[tuple[str, str]]:
    """The answers to git data's credential prompt: the server's key, then ``secret`` (its own by default)."""
    return [("Access key", server.key), ("Secret key", server.secret if secret is None else secret)]


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def status_short(cwd) -> str:
    return git(cwd, "status", "--short")


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A small tmpfs of ``size`` (``1m``) mounted at the new folder ``path``, for full-disk
    tests (root can mount one here); the test is skipped where mounting is not allowed."""
    import pytest

    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)
