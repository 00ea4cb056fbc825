"""The mount service: mounts for unprivileged session processes, over HTTP+JSON on a Unix socket.

``git data mount-service serve --socket PATH --allow-root DIR ...`` runs this
(as root, or as a user that may mount). A session process asks it to mount a
storage of its project (``rclone mount``, read-write) or a dataset (the
service mounts, a view process run as the caller serves), lists and unmounts
its own mounts. The caller is who the kernel says is at the other end of the
socket (``SO_PEERCRED``): nothing in a request says who it is.

Rules, each enforced here and tested:

- a mount point must be inside an allowed root, reached from the root one
  component at a time without following a symlink (:func:`gitdata.safepath.checked_dir`),
  an empty folder owned by the caller, not already a mount;
- a caller sees and unmounts only its own mounts (another's answer 404);
- at most ``max_mounts`` mounts per caller (429);
- credentials come in the request and go only into the mount process's
  environment: never into a log, a response, the state file or argv;
- ``--no-dynamic`` refuses every mount request (403), with the line users need;
- a malformed request gets a 4xx and one reason; a failing handler a 500 with
  one line; the service goes on.

aiohttp is the server (see docs/design.md, "The mount service"): it is
already installed with s3fs, serves a Unix socket, and hands over the socket
for ``SO_PEERCRED``.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import secrets
import shutil
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from .. import safepath
from ..errors import GitDataError
from . import MountError, runner
from .protocol import ApiError, MountRequest, parse_mount
from .rclone import remote_for

log = logging.getLogger("gitdata.mount.service")
NO_DYNAMIC = ("dynamic mounting is turned off here; declare the storage with mode = mount in .gitdata "
              "and restart the session")  # fmt: skip
API = "/v1"


@dataclass
class Entry:
    id: str
    uid: int
    kind: str
    name: str
    project: str
    mountpoint: str
    pid: int
    started: float
    log: str
    url: str | None = None

    def public(self) -> dict[str, Any]:
        return {**asdict(self), "state": runner.health(self)}  # type: ignore[arg-type]


def peer_credentials(sock: Any) -> tuple[int, int, int]:
    """``(pid, uid, gid)`` of the process at the other end of a Unix socket."""
    data = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", data)
    return pid, uid, gid


class Service:
    def __init__(self, *, allow_roots: list[str], dynamic: bool = True, max_mounts: int = 8,
                 state_dir: str, rclone: str, fusermount: str = "fusermount3",
                 timeout: float = runner.DEFAULT_TIMEOUT, python: str | None = None) -> None:  # fmt: skip
        if not allow_roots:
            raise MountError("give at least one --allow-root DIR: the service mounts only under those")
        self.roots = [os.path.realpath(r) for r in allow_roots]  # the operator's: trusted, resolved once
        for r in self.roots:
            if not os.path.isdir(r):
                raise MountError(f"--allow-root {r} is not a folder")
        self.dynamic = dynamic
        self.max_mounts = max_mounts
        self.state_dir = state_dir
        self.rclone = rclone
        self.fusermount = fusermount
        self.timeout = timeout
        self.python = python or sys.executable  # runs the dataset views as the callers: they must be able to
        self.lock = threading.Lock()
        os.makedirs(state_dir, mode=0o700, exist_ok=True)
        os.chmod(state_dir, 0o700)
        self.mounts: dict[str, Entry] = self._load()

    # -- state (no secrets in it) ----------------------------------------------------
    def _state_file(self) -> str:
        return os.path.join(self.state_dir, "mounts.json")

    def _load(self) -> dict[str, Entry]:
        try:
            with open(self._state_file(), encoding="utf-8") as f:
                return {e["id"]: Entry(**e) for e in json.load(f)}
        except FileNotFoundError:
            return {}
        except (ValueError, TypeError, KeyError) as err:
            log.error("%s is damaged (%s); starting with no mounts", self._state_file(), err)
            return {}

    def _save(self) -> None:
        tmp = self._state_file() + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump([asdict(e) for e in self.mounts.values()], f, indent=1)
        os.replace(tmp, self._state_file())

    # -- checks -----------------------------------------------------------------------
    def _root_of(self, path: str, what: str) -> tuple[str, str]:
        """The allowed root ``path`` lies in, and ``path`` relative to it."""
        for root in self.roots:
            if path == root or path.startswith(root.rstrip("/") + "/"):
                return root, path[len(root) :].strip("/")
        raise ApiError(403, f"{what} {path} is outside the allowed roots of this service")

    def checked_folder(self, path: str, uid: int, what: str) -> str:
        """``path`` inside an allowed root, reached without following links, owned by ``uid``."""
        root, rel = self._root_of(path, what)
        try:
            real = safepath.checked_dir(root, rel, create=False, what=what) if rel else root
        except safepath.UnsafePath as err:
            raise ApiError(403, f"{what} {path}: {err}") from None
        except FileNotFoundError:
            raise ApiError(400, f"{what} {path} does not exist") from None
        except NotADirectoryError:
            raise ApiError(400, f"{what} {path} is not a folder") from None
        st = os.lstat(real)
        if not stat.S_ISDIR(st.st_mode):
            raise ApiError(400, f"{what} {path} is not a folder")
        if uid != 0 and st.st_uid != uid:
            raise ApiError(403, f"{what} {path} is not yours")
        return real

    def opened_folder(self, path: str, uid: int, what: str) -> tuple[str, int]:
        """As :meth:`checked_folder`, and an open descriptor of that very folder (the caller closes it).

        The mount goes through the descriptor (``/proc/PID/fd/N``), so a folder swapped for a
        symlink after the check is never followed; :func:`_landed` then confirms where it went.
        """
        root, rel = self._root_of(path, what)
        try:
            fd = safepath.open_dir(root, rel, what=what)
        except safepath.UnsafePath as err:
            raise ApiError(403, f"{what} {path}: {err}") from None
        except FileNotFoundError:
            raise ApiError(400, f"{what} {path} does not exist") from None
        except NotADirectoryError:
            raise ApiError(400, f"{what} {path} is not a folder") from None
        st = os.fstat(fd)
        if uid != 0 and st.st_uid != uid:
            os.close(fd)
            raise ApiError(403, f"{what} {path} is not yours")
        return os.path.join(root, rel) if rel else root, fd

    def own(self, uid: int) -> list[Entry]:
        return [e for e in self.mounts.values() if e.uid == uid]

    # -- mounting ---------------------------------------------------------------------
    def mount(self, req: MountRequest, uid: int, gid: int) -> Entry:
        if req.for_uid is not None:
            if uid != 0:
                raise ApiError(403, "only root may mount for another user (for_uid)")
            import pwd

            try:
                uid, gid = req.for_uid, pwd.getpwuid(req.for_uid).pw_gid
            except KeyError:
                raise ApiError(400, f"no user with id {req.for_uid}") from None
        elif not self.dynamic:
            raise ApiError(403, NO_DYNAMIC)
        with self.lock:
            if len(self.own(uid)) >= self.max_mounts:
                raise ApiError(429, f"you have {self.max_mounts} mounts here already (--max-mounts); unmount one")
            if any(e.mountpoint == req.mountpoint for e in self.mounts.values()):
                raise ApiError(409, f"{req.mountpoint} is mounted already")
        self.checked_folder(req.project, uid, "project")
        mp, dirfd = self.opened_folder(req.mountpoint, uid, "mountpoint")
        try:
            if runner.is_mountpoint(_fd_path(dirfd)):
                raise ApiError(409, f"{req.mountpoint} is a mount point already")
            if os.listdir(dirfd):
                raise ApiError(409, f"{req.mountpoint} is not empty")
            self._checked(req, mp, dirfd)
            if req.kind == "dataset":
                return self._mount_dataset(req, mp, dirfd, uid, gid)
            return self._mount_storage(req, mp, dirfd, uid, gid)
        finally:
            os.close(dirfd)

    def _checked(self, req: MountRequest, mp: str, dirfd: int) -> None:
        """Called between the checks of the mount point and the mount (nothing to do here; a
        test's subclass swaps the folder for a symlink in this window)."""

    def _mount_dataset(self, req: MountRequest, mp: str, dirfd: int, uid: int, gid: int) -> Entry:
        """Mount FUSE here (root), then serve it from a view process running as the caller.

        The view runs git on the caller's repository, which root must never do (a repository's
        config can name programs git runs): the service opens /dev/fuse and mounts, and hands the
        open descriptor to ``python -m gitdata.mount.serve ... /dev/fd/N`` started as the caller
        (libfuse takes /dev/fd/N as an existing mount).
        """
        import pwd

        try:
            home = pwd.getpwuid(uid).pw_dir
        except KeyError:
            home = "/nonexistent"
        mid = secrets.token_hex(8)
        logfile = os.path.join(self.state_dir, "logs", f"{mid}.log")
        os.makedirs(os.path.dirname(logfile), exist_ok=True)
        fd = os.open("/dev/fuse", os.O_RDWR)
        devname = f"gitdata-{mid}:{req.name}"
        try:  # through the descriptor of the folder checked: a swapped path is never followed
            _fuse_mount(fd, _fd_path(dirfd), devname, uid, gid)
        except OSError as err:
            os.close(fd)
            raise ApiError(502, f"cannot mount {req.mountpoint}: {err.strerror}") from None
        if not _landed(devname, mp):  # the folder was moved away before the mount: undo it there
            os.close(fd)
            _umount(_fd_path(dirfd), lazy=True)
            raise ApiError(409, f"{req.mountpoint} was moved or replaced while being mounted; nothing was mounted")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "LANG": "C.UTF-8",
               "AWS_EC2_METADATA_DISABLED": "true"}  # fmt: skip
        if req.credentials:
            env["AWS_ACCESS_KEY_ID"] = req.credentials["key"]
            env["AWS_SECRET_ACCESS_KEY"] = req.credentials["secret"]
            if "token" in req.credentials:
                env["AWS_SESSION_TOKEN"] = req.credentials["token"]
        for k in ("PYTHONPATH",):  # how the operator's Python finds git data
            if k in os.environ:
                env[k] = os.environ[k]

        def become_caller() -> None:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)

        argv = [self.python, "-m", "gitdata.mount.serve", req.project, req.name, f"/dev/fd/{fd}"]
        with open(logfile, "ab") as logf:
            os.fchown(logf.fileno(), uid, gid)
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, cwd="/",
                                        start_new_session=True, close_fds=True, pass_fds=(fd,), env=env,
                                        preexec_fn=become_caller)  # fmt: skip
            except OSError as err:
                _umount(_fd_path(dirfd), lazy=True)  # through the descriptor: never a swapped path
                raise ApiError(502, f"cannot start the view process: {err}") from None
            finally:
                os.close(fd)
        if not _answers(mp, proc, self.timeout):
            proc.kill()
            _umount(_fd_path(dirfd), lazy=True)
            raise ApiError(502, f"the view of dataset {req.name!r} did not answer: {runner._tail(logfile)}")
        runner.raise_read_ahead(_fd_path(dirfd))
        entry = Entry(id=mid, uid=uid, kind=req.kind, name=req.name, project=req.project, mountpoint=mp,
                      pid=proc.pid, started=time.time(), log=logfile, url=None)  # fmt: skip
        with self.lock:
            self.mounts[mid] = entry
            self._save()
        log.info("mounted %s for uid %d: %s", req.public(), uid, mid)
        return entry

    def _mount_storage(self, req: MountRequest, mp: str, dirfd: int, uid: int, gid: int) -> Entry:
        opts: dict[str, Any] = dict(req.options)
        if req.credentials:
            opts.update(req.credentials)
        try:
            remote, env = remote_for(req.url or "", opts)
        except MountError as err:
            raise ApiError(400, str(err)) from None
        if any(k.endswith("_ENV_AUTH") for k in env):  # never the service's own credentials
            raise ApiError(400, "a storage mount needs credentials (key and secret) or options.anon")
        mid = secrets.token_hex(8)
        logfile = os.path.join(self.state_dir, "logs", f"{mid}.log")
        cache = os.path.join(self.state_dir, "cache", mid)
        devname = f"gitdata-{mid}"
        # rclone's fusermount3 fails on a /proc/PID/fd/N mount point ("Transport endpoint is not
        # connected", measured here), so rclone mounts in a folder of the service's own (nobody
        # else can put a link there) and the finished mount is moved onto the checked folder
        # through its descriptor: a folder swapped for a symlink meanwhile is never followed.
        # Where a move is not allowed (a shared mount propagation), by path, with every mount
        # found again by its unique device name and undone if it landed elsewhere.
        stage = os.path.join(self.state_dir, "stage", mid)
        os.makedirs(stage, mode=0o700)
        target = stage
        argv = [self.rclone, "mount", remote, target, "--devname", devname,
                "--allow-other", "--default-permissions",
                "--uid", str(uid), "--gid", str(gid), "--umask", "077",
                "--vfs-cache-mode", "writes", "--vfs-write-back", "0s", "--cache-dir", cache,
                "--dir-cache-time", "5s", "--log-level", "INFO", "--config", os.devnull]  # fmt: skip
        full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.state_dir, **env}
        try:
            pid = runner.launch(argv, target, logfile, what=f"storage {req.name!r}", timeout=self.timeout,
                                fusermount=self.fusermount, env=full_env)  # fmt: skip
        except MountError as err:
            _unmount_strays(self.fusermount, devname, mp)
            _remove_stage(stage)
            raise ApiError(502, str(err)) from None
        moved = subprocess.run(["mount", "--move", stage, _fd_path(dirfd)], capture_output=True, text=True)
        if moved.returncode != 0:
            log.info("could not move the mount of %s onto its folder (%s); mounting it by path",
                     req.public(), moved.stderr.strip())  # fmt: skip
            try:
                _umount(stage, lazy=True)
            except OSError:
                pass  # the rclone process's end unmounts it too
            runner._end(pid, wait=30.0)
            argv[argv.index(stage)] = mp
            try:
                pid = runner.launch(argv, mp, logfile, what=f"storage {req.name!r}", timeout=self.timeout,
                                    fusermount=self.fusermount, env=full_env)  # fmt: skip
            except MountError as err:
                _unmount_strays(self.fusermount, devname, mp)
                raise ApiError(502, str(err)) from None
            finally:
                _remove_stage(stage)
        else:
            _remove_stage(stage)
        if _unmount_strays(self.fusermount, devname, mp):
            runner._end(pid, wait=30.0)
            raise ApiError(409, f"{req.mountpoint} was moved or replaced while being mounted; nothing was mounted")
        entry = Entry(id=mid, uid=uid, kind=req.kind, name=req.name, project=req.project, mountpoint=mp,
                      pid=pid, started=time.time(), log=logfile, url=req.url)  # fmt: skip
        with self.lock:
            self.mounts[mid] = entry
            self._save()
        log.info("mounted %s for uid %d: %s", req.public(), uid, mid)
        return entry

    def unmount(self, mid: str, uid: int, *, force: bool = False) -> Entry:
        with self.lock:
            entry = self.mounts.get(mid)
        if entry is None or (uid != 0 and entry.uid != uid):
            raise ApiError(404, f"no mount {mid} of yours here")
        self._unmount_checked(entry, force=force)
        if runner.alive(entry.pid):
            runner._end_when_idle(entry.pid)  # rclone may still be uploading
        shutil.rmtree(os.path.join(self.state_dir, "cache", mid), ignore_errors=True)
        with self.lock:
            self.mounts.pop(mid, None)
            self._save()
        log.info("unmounted %s (%s %s) for uid %d", mid, entry.kind, entry.name, uid)
        return entry

    def _unmount_checked(self, entry: Entry, *, force: bool) -> None:
        """Unmount ``entry``'s mount, and nothing else, whatever the caller renamed meanwhile.

        The caller owns the folders above its mount point and may rename one and put a symlink
        in its place, so the recorded path could lead to another mount (root unmounts anything).
        The mount is found by its unique device name; its folder's parent is opened from the
        allowed root without following links, the mount below it confirmed by mount id, and
        unmounted through that descriptor (``umount2`` of ``/proc/PID/fd/N/NAME``, the last
        component not followed).
        """
        devname = _devname(entry)
        where = _mounts_of(devname)
        if not where:
            return  # gone already (a restart of the machine, an unmount from outside)
        if where != [entry.mountpoint]:
            raise ApiError(409, f"{entry.mountpoint} was moved (its mount is at {', '.join(where)} now); "
                                "move it back, then unmount")  # fmt: skip
        parent, name = os.path.split(entry.mountpoint)
        try:
            _, pfd = self.opened_folder(parent, 0, "mountpoint's folder")
        except ApiError as err:
            raise ApiError(409, f"cannot unmount {entry.mountpoint}: {err.reason}") from None
        try:
            target = f"{_fd_path(pfd)}/{name}"
            if _mount_id_at(pfd, name) not in _mount_ids_of(devname):
                raise ApiError(409, f"{entry.mountpoint} was moved or replaced; nothing was unmounted")
            lazy = force or runner.disconnected(target)
            try:
                _umount(target, lazy=lazy, nofollow=True)
            except OSError as err:
                if err.errno == errno.EBUSY:
                    raise ApiError(409, f"{entry.mountpoint} is busy (a shell or program uses files there); "
                                        f"close them, or `git data unmount {entry.name} --force` to detach it "
                                        "lazily") from None  # fmt: skip
                if err.errno != errno.EPERM or entry.kind != "storage":
                    raise ApiError(409, f"cannot unmount {entry.mountpoint}: {err.strerror}") from None
                try:  # a service that is not root: rclone mounted through fusermount3, which unmounts
                    runner.unmount_path(self.fusermount, target, entry.name, force=force)
                except MountError as err2:
                    raise ApiError(409, str(err2)) from None
        finally:
            os.close(pfd)


def _devname(entry: Entry) -> str:
    """The unique device name the mount of ``entry`` was made with (see ``_mount_dataset``/``_mount_storage``)."""
    return f"gitdata-{entry.id}:{entry.name}" if entry.kind == "dataset" else f"gitdata-{entry.id}"


def _mount_ids_of(devname: str) -> set[str]:
    """The mount ids (first field of /proc/self/mountinfo) of the mounts named ``devname``."""
    out = set()
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            left, sep, right = line.partition(" - ")
            tail = right.split(" ")
            if sep and len(tail) >= 2 and tail[1] == devname:
                out.add(left.split(" ", 1)[0])
    return out


def _mount_id_at(dirfd: int, name: str) -> str | None:
    """The mount id of what ``name`` in the open folder ``dirfd`` is (not followed if a link)."""
    try:
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), dir_fd=dirfd)
    except OSError:
        return None
    try:
        with open(f"/proc/self/fdinfo/{fd}", encoding="ascii") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key == "mnt_id":
                    return value.strip()
    except OSError:
        return None
    finally:
        os.close(fd)
    return None


def _fd_path(fd: int) -> str:
    """A path that names the folder open as ``fd`` for this process and its children."""
    return f"/proc/{os.getpid()}/fd/{fd}"


def _remove_stage(stage: str) -> None:
    """The service's own empty folder a storage was first mounted in."""
    try:
        os.rmdir(stage)
    except OSError:
        pass  # still a mount point (a failed move): left for the next start's clean-up


def _mounts_of(devname: str) -> list[str]:
    """The mount points of the mounts whose source is ``devname`` (/proc/self/mountinfo)."""
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        lines = f.read().splitlines()
    out = []
    for line in lines:
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(" "), right.split(" ")
        if sep and len(fields) >= 5 and len(tail) >= 2 and tail[1] == devname:
            out.append(runner.unescape_mountinfo(fields[4]))
    return out


def _landed(devname: str, mountpoint: str) -> bool:
    """The mount named ``devname`` is at ``mountpoint`` and nowhere else."""
    return _mounts_of(devname) == [mountpoint]


def _unmount_strays(fusermount: str, devname: str, mountpoint: str) -> bool:
    """Unmount every mount named ``devname`` that is not at ``mountpoint``; whether there was one."""
    strays = [m for m in _mounts_of(devname) if m != mountpoint]
    for m in strays:
        log.error("a mount meant for %s appeared at %s (the folder was moved or replaced); unmounting it",
                  mountpoint, m)  # fmt: skip
        try:  # root: through a descriptor, never by a path the caller can redirect meanwhile
            _umount_exactly(m, devname, lazy=True)
        except OSError as err:
            if err.errno != errno.EPERM:
                log.error("could not unmount the stray mount at %s: %s", m, err)
            else:  # a service that is not root: its storages were mounted by fusermount3
                runner._fusermount(fusermount, m, lazy=True)
    return bool(strays)


def _umount_exactly(path: str, devname: str, *, lazy: bool) -> None:
    """Unmount the mount named ``devname`` at ``path`` (canonical, as in /proc/self/mountinfo),
    and nothing else: the parent is opened from ``/`` without following links, the mount below it
    confirmed by its mount id, and unmounted through that descriptor (last part not followed).
    OSError when any of that fails (ESTALE: something else is there now)."""
    parent, name = os.path.split(path)
    try:
        pfd = safepath.open_dir("/", parent.strip("/"), what="mount point") if parent.strip("/") else os.open(
            "/", os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    except safepath.UnsafePath as err:
        raise OSError(errno.ESTALE, str(err)) from None
    try:
        if _mount_id_at(pfd, name) not in _mount_ids_of(devname):
            raise OSError(errno.ESTALE, f"{path} is no longer the mount {devname}")
        _umount(f"{_fd_path(pfd)}/{name}", lazy=lazy, nofollow=True)
    finally:
        os.close(pfd)


def _libc() -> Any:
    import ctypes
    import ctypes.util

    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _fuse_mount(fd: int, mountpoint: str, fsname: str, uid: int, gid: int) -> None:
    """mount(2) of a read-only FUSE filesystem served through ``fd`` (open /dev/fuse)."""
    import ctypes

    ms_rdonly, ms_nosuid, ms_nodev = 1, 2, 4
    opts = f"fd={fd},rootmode=40000,user_id={uid},group_id={gid},allow_other,default_permissions"
    res = _libc().mount(fsname.encode(), mountpoint.encode(), b"fuse.gitdata", ms_rdonly | ms_nosuid | ms_nodev,
                        opts.encode())  # fmt: skip
    if res != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _umount(mountpoint: str, *, lazy: bool, nofollow: bool = False) -> None:
    import ctypes

    flags = (2 if lazy else 0) | (8 if nofollow else 0)  # MNT_DETACH, UMOUNT_NOFOLLOW
    if _libc().umount2(mountpoint.encode(), flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _answers(mountpoint: str, proc: Any, timeout: float) -> bool:
    """The view process serves the mount (a listing answers) before ``timeout``."""
    done = threading.Event()

    def probe() -> None:
        try:
            os.listdir(mountpoint)
            done.set()
        except OSError:
            pass

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done.is_set():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    return done.is_set()


# -- HTTP ---------------------------------------------------------------------------------


def make_app(service: Service) -> Any:
    from aiohttp import web

    from .openapi import DOCUMENT

    def caller(request: web.Request) -> tuple[int, int, int]:
        sock = request.transport.get_extra_info("socket") if request.transport else None
        if sock is None:
            raise ApiError(400, "no peer credentials on this connection")
        return peer_credentials(sock)

    def answer(status: int, data: Any) -> web.Response:
        return web.json_response(data, status=status)

    @web.middleware
    async def errors(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as err:
            return answer(err.status, {"error": err.reason})
        except web.HTTPException as err:
            return answer(err.status, {"error": err.reason})
        except Exception as err:  # noqa: BLE001 - one line to the caller, the trace to the log
            log.exception("request %s %s failed", request.method, request.path)
            return answer(500, {"error": f"internal error: {type(err).__name__}"})

    async def health(request: web.Request) -> web.Response:
        _pid, uid, _gid = caller(request)
        return answer(200, {"ok": True, "dynamic": service.dynamic, "max_mounts": service.max_mounts,
                            "yours": len(service.own(uid))})  # fmt: skip

    async def listing(request: web.Request) -> web.Response:
        _pid, uid, _gid = caller(request)
        rows = await asyncio.to_thread(lambda: [e.public() for e in service.own(uid)])
        return answer(200, {"mounts": rows})

    async def create(request: web.Request) -> web.Response:
        _pid, uid, gid = caller(request)
        body = await request.content.read(256 << 10)
        req = parse_mount(body)
        entry = await asyncio.to_thread(service.mount, req, uid, gid)
        return answer(201, entry.public())

    async def delete(request: web.Request) -> web.Response:
        _pid, uid, _gid = caller(request)
        force = request.query.get("force", "false") == "true"
        entry = await asyncio.to_thread(service.unmount, request.match_info["id"], uid, force=force)
        return answer(200, {"unmounted": entry.id, "kind": entry.kind, "name": entry.name})

    async def openapi(request: web.Request) -> web.Response:
        return answer(200, DOCUMENT)

    app = web.Application(middlewares=[errors], client_max_size=256 << 10)
    app.router.add_get(f"{API}/health", health)
    app.router.add_get(f"{API}/mounts", listing)
    app.router.add_post(f"{API}/mounts", create)
    app.router.add_delete(f"{API}/mounts/{{id}}", delete)
    app.router.add_get(f"{API}/openapi.json", openapi)
    return app


def serve(service: Service, socket_path: str) -> None:
    """Serve on ``socket_path`` (mode 0666: any local user may ask; SO_PEERCRED tells who) until stopped."""
    from aiohttp import web

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    if os.path.lexists(socket_path):
        if not stat.S_ISSOCK(os.lstat(socket_path).st_mode):
            raise GitDataError(f"{socket_path} exists and is not a socket; move it away")
        os.unlink(socket_path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(socket_path)
    os.chmod(socket_path, 0o666)
    log.info("serving on %s (allowed roots: %s; dynamic: %s)", socket_path, ", ".join(service.roots),
             service.dynamic)  # fmt: skip
    web.run_app(make_app(service), sock=sock, print=None, handle_signals=True)
