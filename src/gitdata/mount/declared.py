"""Start-of-session mounts: every storage ``.gitdata`` declares with ``mode = mount``, through the service.

Run as root by whatever starts the session (an init container, the sidecar):
the mounts are made for the owner of the project folder (``for_uid``), which
only a root caller may ask for, and are allowed also with ``--no-dynamic``.
Each storage is reported on its own: one failing does not stop the others.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ..errors import GitDataError
from ..project import Project


def _owned_dirs(root: str, rel: str, uid: int, gid: int) -> str:
    """``root/rel`` as folders (made if missing, no link followed); those made here get ``uid``."""
    from .. import safepath

    parts = [p for p in rel.split("/") if p]
    for i in range(1, len(parts) + 1):
        sub = "/".join(parts[:i])
        existed = os.path.lexists(os.path.join(root, sub))
        path = safepath.checked_dir(root, sub, create=True, what="storage folder")
        if not existed:
            os.chown(path, uid, gid)
    return os.path.join(root, *parts)


def mount_declared(project_dir: str, socket_path: str, environ: Mapping[str, str]) -> list[dict[str, Any]]:
    from .. import credentials
    from .. import storages as storages_mod
    from . import client, runner
    from .rclone import KIND, service_request

    project = Project.open(project_dir)
    st = os.stat(project.root)
    uid, gid = st.st_uid, st.st_gid
    rows: list[dict[str, Any]] = []
    for name, spec in sorted(storages_mod.load_all(project).items()):
        if spec.mode != "mount":
            continue
        row: dict[str, Any] = {"kind": KIND, "name": name, "mountpoint": spec.to, "ok": False}
        try:
            folder = _owned_dirs(project.root, spec.to, uid, gid)
            row["mountpoint"] = folder
            options = credentials.resolve_options(project, name, spec.url, dict(spec.options))
            req = service_request(name, os.path.realpath(project.root), os.path.realpath(folder), spec.url,
                                  options, environ)  # fmt: skip
            req["for_uid"] = uid
            got = client.mount(socket_path, req)
            state = runner.MountState(kind=KIND, name=name, mountpoint=folder, pid=int(got["pid"]),
                                      started=float(got["started"]), log="", url=spec.url,
                                      service=socket_path, service_id=str(got["id"]))  # fmt: skip
            for d in (project.repo.data_dir, runner.state_dir(project)):  # the session's, not root's
                if not os.path.isdir(d):
                    os.makedirs(d)
                    os.chown(d, uid, gid)
            runner.save(project, state)
            os.chown(runner._state_path(project, KIND, name), uid, gid)
            row["ok"] = True
        except (GitDataError, OSError) as err:
            row["error"] = str(err)
        rows.append(row)
    return rows
