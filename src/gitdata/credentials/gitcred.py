"""git's credential helpers: ``git credential fill|approve|reject`` for a target.

Keyed by ``protocol=s3|gs``, ``host=<endpoint>``, ``path=<bucket>``; git is
never allowed to prompt, and the child gets no cloud secrets in its
environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from .target import Secret, Target


def _git_env(environ: Mapping[str, str]) -> dict[str, str]:
    """Environment for ``git credential``: never prompts, carries no cloud secrets."""
    env = {
        k: v
        for k, v in environ.items()
        if k not in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
    }
    env.update({"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": ""})
    return env


def _git_credential(action: str, target: Target, secret: Secret | None, cwd: str | None, environ: Mapping[str, str]) -> dict[str, str] | None:
    from ..git.repo import GitError, run_git

    lines = [f"protocol={target.scheme}", f"host={target.host}", f"path={target.bucket}"]
    if secret is not None:
        user, password = (secret.key, secret.secret) if secret.key else ("token", secret.token)
        lines += [f"username={user}", f"password={password}"]
    if any(c in line for line in lines for c in "\r\n\0"):
        return None  # a value with a line break would inject attributes
    data = ("\n".join(lines) + "\n\n").encode()
    try:
        out = run_git(
            ["-c", "credential.interactive=false", "credential", action],
            cwd=cwd, input=data, check=action == "fill", env=_git_env(environ),
        )  # fmt: skip
    except GitError:
        return None  # no helper had it (git would prompt, but prompts are off)
    result: dict[str, str] = {}
    for line in out.decode("utf-8", "replace").splitlines():
        k, sep, v = line.partition("=")
        if sep:
            result[k] = v
    return result


def git_fill(target: Target, cwd: str | None = None, environ: Mapping[str, str] | None = None) -> Secret | None:
    got = _git_credential("fill", target, None, cwd, os.environ if environ is None else environ)
    if not got or not got.get("password"):
        return None
    if target.scheme == "gs":
        return Secret(token=got["password"])
    return Secret(key=got.get("username", ""), secret=got["password"])


def git_approve(target: Target, secret: Secret, cwd: str | None = None, environ: Mapping[str, str] | None = None) -> None:
    _git_credential("approve", target, secret, cwd, os.environ if environ is None else environ)


def git_reject(target: Target, secret: Secret | None, cwd: str | None = None, environ: Mapping[str, str] | None = None) -> None:
    _git_credential("reject", target, secret, cwd, os.environ if environ is None else environ)
