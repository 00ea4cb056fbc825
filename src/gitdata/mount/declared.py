"""Start-of-session mounts: every storage and dataset ``.gitdata`` declares with ``mode = mount``.

Run as root by whatever starts the session (an init container, the sidecar).
The mounts are made through the service for the owner of the project folder
(``for_uid``, which only a root caller may ask for, and which is allowed also
with ``--no-dynamic``). Each is reported on its own: one failing does not stop
the others.

Root never runs git on the owner's repository (its config can name programs
git runs): the project's side (reading ``.gitdata``, pointers, skip-worktree,
the sparse-checkout and exclude lines, the per-clone state) runs in a child
process **as the owner** (groups dropped, then gid and uid). That child asks
a relay, a Unix socket only the owner can reach, which lives while this runs;
the relay (root) adds ``for_uid`` and the operator's credentials from its own
environment to each mount request and forwards it to the service. The child
never sees those credentials (a storage's rclone runs as root; a dataset's
view, as the owner, gets them in its environment, as for a session's own
dataset mounts). Only mount requests are forwarded.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socketserver
import sys
import tempfile
import threading
from collections.abc import Mapping
from typing import Any

from ..errors import GitDataError

CHILD_TIMEOUT = 600.0


def mount_declared(project_dir: str, socket_path: str, environ: Mapping[str, str], *,
                   python: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Mount what ``project_dir``'s ``.gitdata`` declares in mount mode; one row per mount."""
    st = os.stat(project_dir)
    uid, gid = st.st_uid, st.st_gid
    creds = _credentials(environ)
    with _Relay(socket_path, uid, gid, creds) as relay:
        if os.geteuid() == uid:  # the owner itself (or root's own project): no one to become
            return mount_all(project_dir, relay.path, socket_path, dict(environ))
        return _as_owner(project_dir, relay.path, socket_path, uid, gid, python or sys.executable)


def mount_all(project_dir: str, relay: str, service: str, environ: Mapping[str, str]) -> list[dict[str, Any]]:
    """The project's side, run as its owner: mount each declared storage and dataset, asking
    ``relay``; the per-clone state names ``service`` (what the session asks from then on)."""
    from ..datasets import model as ds_mod
    from ..lock import clone_lock
    from ..project import Project
    from . import dataset as mount_ds
    from . import rclone as mount_rc

    env = {**environ, "GITDATA_MOUNT_SERVICE": relay}
    rows: list[dict[str, Any]] = []
    try:
        project = Project.open(project_dir)
        from .. import storages as storages_mod

        storages = sorted(storages_mod.load_all(project).items())
        datasets = sorted(ds_mod.load_all(project))
    except (GitDataError, OSError) as err:
        return [{"kind": "project", "name": os.path.basename(project_dir), "mountpoint": project_dir, "ok": False,
                 "error": str(err)}]  # fmt: skip
    for name, spec in storages:
        if spec.mode != "mount":
            continue
        row: dict[str, Any] = {"kind": "storage", "name": name, "mountpoint": spec.to, "ok": False}
        try:
            st = mount_rc.mount(project, name, env, resolve=False)
            _record(project, st, service)
            row.update(mountpoint=st.mountpoint, ok=True)
        except (GitDataError, OSError) as err:
            row["error"] = str(err)
        rows.append(row)
    sections = project.config.sections("dataset")
    for name in datasets:
        if (sections.get(name, {}).get("mode") or ["copy"])[-1] != "mount":
            continue
        row = {"kind": "dataset", "name": name, "mountpoint": ds_mod.get(project, name).path, "ok": False}
        try:
            with clone_lock(project.repo.data_dir, f"dataset-{name}", f"dataset stage {name}"):
                st = mount_ds.mount(project, name, env, check_credentials=False)
                _record(project, st, service)
            row.update(mountpoint=st.mountpoint, ok=True)
        except (GitDataError, OSError) as err:
            row["error"] = str(err)
        rows.append(row)
    return rows


def _record(project: Any, st: Any, service: str) -> None:
    """The mount's per-clone state names the service itself, not the relay (gone after this run)."""
    from . import runner

    st.service = service
    runner.save(project, st)


def _credentials(environ: Mapping[str, str]) -> dict[str, str]:
    key, secret = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
    if not (key and secret):
        return {}
    out = {"key": key, "secret": secret}
    if environ.get("AWS_SESSION_TOKEN"):
        out["token"] = environ["AWS_SESSION_TOKEN"]
    return out


def _as_owner(project_dir: str, relay: str, service: str, uid: int, gid: int, python: str) -> list[dict[str, Any]]:
    import pwd

    try:
        home = pwd.getpwuid(uid).pw_dir
    except KeyError:
        home = "/nonexistent"
    path = os.environ.get("PATH", "/usr/bin:/bin")
    if os.access(os.path.join(os.path.dirname(python), "git-data"), os.X_OK):
        # git, run as the owner, starts `git-data filter-process` from PATH: the one beside the
        # owner's Python first (the operator's may live where the owner cannot run it)
        path = f"{os.path.dirname(python)}:{path}"
    env = {"PATH": path, "HOME": home, "LANG": "C.UTF-8",
           "AWS_EC2_METADATA_DISABLED": "true"}  # fmt: skip  (no credentials: the relay adds them)
    if "PYTHONPATH" in os.environ:  # how the operator's Python finds git data
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]

    from . import runner

    try:
        proc = runner.run_as([python, "-m", "gitdata.mount.declared", project_dir, relay, service], uid, gid, env,
                             CHILD_TIMEOUT)  # fmt: skip
    except (OSError, GitDataError) as err:
        raise GitDataError(f"cannot run the project's side as its owner (uid {uid}) with {python}: {err}") from None
    try:
        rows = json.loads(proc.stdout.decode("utf-8"))
        assert isinstance(rows, list)
        return rows
    except (UnicodeDecodeError, ValueError, AssertionError):
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        raise GitDataError(f"the project's side, run as uid {uid} with {python}, failed: {tail[0]}") from None


class _Relay:
    """A Unix socket for the owner only: mount requests get ``for_uid`` and credentials, then go on."""

    def __init__(self, service: str, uid: int, gid: int, creds: dict[str, str]) -> None:
        self.service, self.uid, self.creds = service, uid, creds
        self.dir = tempfile.mkdtemp(prefix="gitdata-declared-")
        os.chown(self.dir, uid, gid)  # 0700: the owner (and root) only
        self.path = os.path.join(self.dir, "relay.sock")
        relay = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def address_string(self) -> str:
                return "owner"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
                pass

            def _answer(self, status: int, data: Any) -> None:
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                if self.path != "/v1/mounts":
                    return self._answer(403, {"error": "mount-declared forwards mount requests only"})
                try:
                    body = json.loads(self.rfile.read(min(int(self.headers.get("Content-Length") or 0), 256 << 10)))
                    assert isinstance(body, dict)
                except (ValueError, AssertionError):
                    return self._answer(400, {"error": "the request body is not a JSON object"})
                body["for_uid"] = relay.uid
                if not body.get("credentials") and relay.creds:
                    body["credentials"] = dict(relay.creds)
                from . import client

                try:
                    status, data = client.call(relay.service, "POST", "/v1/mounts", body)
                except GitDataError as err:
                    return self._answer(502, {"error": str(err)})
                return self._answer(status, data)

            def do_GET(self) -> None:  # noqa: N802
                self._answer(403, {"error": "mount-declared forwards mount requests only"})

            do_DELETE = do_GET  # noqa: N815

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        self.server = Server(self.path, Handler)
        os.chown(self.path, uid, gid)

    def __enter__(self) -> _Relay:
        threading.Thread(target=self.server.serve_forever, name="gitdata-declared-relay", daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
        shutil.rmtree(self.dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m gitdata.mount.declared PROJECT RELAY SERVICE``: the owner's side; rows as JSON on stdout."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        print("usage: python -m gitdata.mount.declared PROJECT_DIR RELAY_SOCKET SERVICE_SOCKET", file=sys.stderr)
        return 2
    from ..credentials import Session, use_session

    use_session(Session(interactive=False))
    rows = mount_all(args[0], args[1], args[2], dict(os.environ))
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
