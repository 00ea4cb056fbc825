"""Mount processes: start one detached, wait until it is mounted, check it, stop it.

Per-clone state lives in ``<git-dir>/gitdata/mounts/KIND-NAME.json`` (kind,
name, mount point, pid, when, the process log); never in tracked files. A
mount is *healthy* while its process lives and the kernel reports the mount
point; it is *stale* when the process died (the mount point answers
"Transport endpoint is not connected") or the mount went away.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from .. import writer
from ..project import Project
from . import FuseUnavailable, MountError

DEFAULT_TIMEOUT = 20.0
KINDS = ("dataset", "storage")


@dataclass
class MountState:
    kind: str
    name: str
    mountpoint: str
    pid: int
    started: float
    log: str
    url: str | None = None
    service: str | None = None  # the mount service's socket, if the service made this mount
    service_id: str | None = None


# -- state ------------------------------------------------------------------------


def state_dir(project: Project) -> str:
    return os.path.join(project.repo.data_dir, "mounts")


def _state_path(project: Project, kind: str, name: str) -> str:
    return os.path.join(state_dir(project), f"{kind}-{name}.json")


def log_path(project: Project, kind: str, name: str) -> str:
    return os.path.join(state_dir(project), f"{kind}-{name}.log")


def get(project: Project, kind: str, name: str) -> MountState | None:
    try:
        with open(_state_path(project, kind, name), encoding="utf-8") as f:
            return MountState(**json.load(f))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as err:
        raise MountError(
            f"{_state_path(project, kind, name)} is damaged ({err}); unmount by hand with "
            "`fusermount3 -u MOUNTPOINT` and delete that file"
        ) from err


def load_all(project: Project) -> list[MountState]:
    try:
        names = sorted(os.listdir(state_dir(project)))
    except FileNotFoundError:
        return []
    out = []
    for fn in names:
        kind, dash, rest = fn.partition("-")
        if dash and fn.endswith(".json") and kind in KINDS:
            st = get(project, kind, rest[: -len(".json")])
            if st is not None:
                out.append(st)
    return out


def save(project: Project, st: MountState) -> None:
    path = _state_path(project, st.kind, st.name)
    writer.write_small(path, json.dumps(asdict(st), indent=1).encode())


def drop(project: Project, kind: str, name: str) -> None:
    for path in (_state_path(project, kind, name),):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


# -- FUSE on this machine ---------------------------------------------------------------


def fusermount_path(project: Project) -> str:
    """``gitdata.fusermount`` (default ``fusermount3``)."""
    return project.repo.config_get("gitdata.fusermount") or "fusermount3"


def fuse_problem(fusermount: str, device: str = "/dev/fuse") -> str | None:
    """Why FUSE cannot work here (one phrase), or None."""
    found = fusermount if "/" in fusermount else shutil.which(fusermount)
    if not found or not os.path.isfile(found) or not os.access(found, os.X_OK):
        return f"{fusermount} is not installed (Debian package fuse3)"
    try:
        fd = os.open(device, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return f"{device} does not exist (no FUSE in this kernel or container)"
    except PermissionError:
        return f"no permission to open {device} (ask for access, or run where FUSE is allowed)"
    except OSError as err:
        return f"{device} cannot be opened ({err.strerror})"
    os.close(fd)
    return None


def check_fuse(project: Project, what: str, instead: str = "stage it with --copy or --reference") -> str:
    """The fusermount command to use; :class:`FuseUnavailable` when FUSE cannot work.

    ``instead``: the staging that needs no FUSE (a storage has no --copy flag: its copy is
    ``storage stage`` without --mount); a mount service (docs/hosted.md) is the other way out.
    """
    fusermount = fusermount_path(project)
    problem = fuse_problem(fusermount)
    if problem is not None:
        raise FuseUnavailable(
            f"cannot mount {what}: {problem}; {instead} instead, or mount through a mount service "
            "(GITDATA_MOUNT_SERVICE)"
        )
    return fusermount


# -- the kernel's view ------------------------------------------------------------------


def is_mountpoint(path: str) -> bool:
    """``mountpoint -q PATH``: what the kernel's mount table says."""
    try:
        return subprocess.run(["mountpoint", "-q", path], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0  # fmt: skip
    except FileNotFoundError:  # no util-linux: the mount table itself
        return os.path.ismount(path)


#: read-ahead of a dataset mount's kernel device: 1 MiB requests instead of 128 KiB (fewer round
#: trips through libfuse and Python: 0.8x -> 0.93x of `rclone cat` measured, docs/benchmarks.md)
READ_AHEAD_KB = 1024


def mount_device(mountinfo: str, mountpoint: str) -> str | None:
    """The ``major:minor`` of the mount at ``mountpoint`` in a ``/proc/self/mountinfo`` text (pure).

    The last matching line wins (a mount on top of another hides it); the path's
    spaces, tabs, line breaks and backslashes are octal escapes there.
    """
    found = None
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        if len(fields) < 5:
            continue
        if unescape_mountinfo(fields[4]) == mountpoint:
            found = fields[2]
    return found


def unescape_mountinfo(path: str) -> str:
    """A path as ``/proc/self/mountinfo`` writes it (spaces, tabs, line breaks, backslashes octal)."""
    for esc, ch in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        path = path.replace(esc, ch)
    return path


def raise_read_ahead(mountpoint: str, kb: int = READ_AHEAD_KB) -> bool:
    """Best effort: set the kernel's read-ahead of the FUSE mount at ``mountpoint`` to ``kb``.

    Only root may write ``/sys/class/bdi/*/read_ahead_kb``; elsewhere the
    kernel's 128 KiB stay (False). Never fails the mount.
    """
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            dev = mount_device(f.read(), os.path.realpath(mountpoint))
        if dev is None or not all(part.isdigit() for part in dev.split(":")):
            return False
        with open(f"/sys/class/bdi/{dev}/read_ahead_kb", "w", encoding="ascii") as f:
            f.write(str(kb))
        return True
    except OSError:
        return False


def disconnected(path: str) -> bool:
    """The mount point answers ENOTCONN: its FUSE process is gone.

    Lists the folder rather than stat-ing it: the kernel may answer a stat
    from its attribute cache without asking the (dead) process.
    """
    try:
        os.stat(path)
        with os.scandir(path) as it:
            next(it, None)
    except OSError as err:  # ECONNABORTED: a request that was under way when it died
        return err.errno in (errno.ENOTCONN, errno.ECONNABORTED)
    return False


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours is not alive
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return True


def health(st: MountState) -> str:
    """``healthy``, ``stale`` (process dead or mount broken) or ``gone`` (nothing mounted)."""
    up = alive(st.pid)
    if disconnected(st.mountpoint):
        return "stale"
    mounted = is_mountpoint(st.mountpoint)
    if up and mounted:
        return "healthy"
    if mounted or up:
        return "stale"
    return "gone"


# -- starting and stopping --------------------------------------------------------------


def start(project: Project, kind: str, name: str, mountpoint: str, argv: Sequence[str], *,
          env: Mapping[str, str] | None = None, url: str | None = None,
          timeout: float | None = None) -> MountState:  # fmt: skip
    """Start ``argv`` detached (own session, no terminal), wait until ``mountpoint`` is mounted.

    On failure or timeout the process is ended, the mount point unmounted and
    no state recorded; the error quotes the end of the process log.
    """
    if timeout is None:
        timeout = float(project.repo.config_get("gitdata.mountTimeout") or DEFAULT_TIMEOUT)
    logfile = log_path(project, kind, name)
    pid = launch(argv, mountpoint, logfile, what=f"{kind} {name!r}", env=env, timeout=timeout,
                 fusermount=fusermount_path(project))  # fmt: skip
    st = MountState(kind=kind, name=name, mountpoint=mountpoint, pid=pid, started=time.time(),
                    log=logfile, url=url)  # fmt: skip
    save(project, st)
    return st


def launch(argv: Sequence[str], mountpoint: str, logfile: str, *, what: str, timeout: float,
           fusermount: str = "fusermount3", env: Mapping[str, str] | None = None,
           pass_fds: Sequence[int] = (), preexec: object = None) -> int:  # fmt: skip
    """Start a mount process detached and wait until ``mountpoint`` is mounted; its pid.

    On failure or timeout the process is ended and the mount point unmounted.
    """
    os.makedirs(os.path.dirname(logfile), exist_ok=True)
    with open(logfile, "ab") as logf:
        try:
            proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                    start_new_session=True, close_fds=True, pass_fds=tuple(pass_fds),
                                    env=dict(env) if env is not None else None,
                                    preexec_fn=preexec)  # type: ignore[arg-type]  # fmt: skip
        except OSError as err:
            raise MountError(f"cannot start the mount process for {what}: {err}") from err
    deadline = time.monotonic() + timeout
    try:
        while True:
            if proc.poll() is not None:
                raise MountError(f"mounting {what} at {mountpoint} failed: {_tail(logfile)} (full log: {logfile})")
            if is_mountpoint(mountpoint):
                break
            if time.monotonic() > deadline:
                raise MountError(
                    f"{what} was not mounted at {mountpoint} within {timeout:g} s "
                    f"(gitdata.mountTimeout); nothing was left mounted; see {logfile}"
                )
            time.sleep(0.05)
    except BaseException:
        _end(proc.pid, proc)
        _fusermount(fusermount, mountpoint, lazy=True)
        raise
    return proc.pid


def run_as(argv: Sequence[str], uid: int, gid: int, env: Mapping[str, str], timeout: float) -> subprocess.CompletedProcess:
    """Run ``argv`` to its end as ``uid``/``gid`` (groups dropped first), output captured: the
    project's side of ``mount-declared``, which root must not run itself."""

    def become() -> None:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)

    try:
        return subprocess.run(list(argv), env=dict(env), cwd="/", stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout, preexec_fn=become)  # fmt: skip
    except subprocess.TimeoutExpired:
        raise MountError(f"{argv[0]} did not finish within {timeout:g} s") from None


def _tail(logfile: str, lines: int = 3) -> str:
    try:
        with open(logfile, encoding="utf-8", errors="replace") as f:
            text = [x.strip() for x in f.read().splitlines() if x.strip()]
    except OSError:
        return "the mount process ended"
    return " / ".join(text[-lines:]) or "the mount process ended without a message"


def _fusermount(fusermount: str, mountpoint: str, *, lazy: bool) -> tuple[bool, str]:
    args = [fusermount, "-u", *(["-z"] if lazy else []), mountpoint]
    try:
        res = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True)
    except OSError as err:
        return False, str(err)
    return res.returncode == 0, res.stderr.decode(errors="replace").strip()


def _end(pid: int, proc: subprocess.Popen | None = None, wait: float = 5.0) -> None:
    """Wait for ``pid`` to exit after its unmount; then TERM, then KILL."""
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        if sig is not None:
            try:
                os.killpg(pid, sig) if _leads_group(pid) else os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + (wait if sig is None else 2.0)
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                return
            if proc is None:
                _reap(pid)
                if not alive(pid):
                    return
            time.sleep(0.05)


def _leads_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop(project: Project, st: MountState, *, force: bool = False) -> None:
    """Unmount ``st`` (``fusermount3 -u``; ``force``: lazily, ``-z``), end its process, drop its state.

    A mount that is busy (files open under it) is refused unless ``force``.
    A mount the service made is unmounted by the service.
    """
    if st.service:
        from . import client

        client.unmount(st.service, st.service_id or "", force=force)
        drop(project, st.kind, st.name)
        return
    unmount_path(fusermount_path(project), st.mountpoint, st.name, force=force)
    if alive(st.pid):
        _end_when_idle(st.pid)  # a storage mount may still be uploading: wait while it makes progress
    drop(project, st.kind, st.name)


#: a mount process still running after its unmount is ended once it did no I/O for this long
IDLE_END = 30.0


def _io_count(pid: int) -> int | None:
    """Bytes the process read and wrote so far (``/proc/PID/io``), or None if that cannot be read."""
    try:
        with open(f"/proc/{pid}/io", encoding="ascii") as f:
            return sum(int(line.split()[1]) for line in f if line.startswith(("rchar:", "wchar:")))
    except (OSError, ValueError, IndexError):
        return None


def _end_when_idle(pid: int, idle: float = IDLE_END) -> None:
    """Wait for ``pid`` to exit while it makes progress (rclone uploading 1 GiB after the unmount
    took longer than any fixed wait: ending it at 30 s lost the file); after ``idle`` seconds
    without I/O, TERM then KILL. Where the counters cannot be read: ``idle`` seconds in all."""
    last, quiet_since = _io_count(pid), time.monotonic()
    while alive(pid):
        _reap(pid)
        time.sleep(0.2)
        now = _io_count(pid)
        if now is not None and now != last:
            last, quiet_since = now, time.monotonic()
        elif time.monotonic() - quiet_since > idle:
            _end(pid, wait=0.0)
            return


def unmount_path(fusermount: str, mountpoint: str, name: str, *, force: bool) -> None:
    """``fusermount3 -u`` (``-z`` with ``force``) of a mount (or a stale one); busy is refused."""
    if not (is_mountpoint(mountpoint) or disconnected(mountpoint)):
        return
    ok, err = _fusermount(fusermount, mountpoint, lazy=force)
    if not ok and disconnected(mountpoint):
        ok, err = _fusermount(fusermount, mountpoint, lazy=True)
    if not ok and is_mountpoint(mountpoint):
        if "busy" in err.lower():  # fusermount's own words; nothing else tells
            raise MountError(
                f"{mountpoint} is busy (a shell or program uses files there); close them, "
                f"or `git data unmount {name} --force` to detach it lazily"
            )
        raise MountError(f"cannot unmount {mountpoint}: {err or 'fusermount failed'}")
