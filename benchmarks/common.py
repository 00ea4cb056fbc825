"""Helpers for benchmarks/run.py: data sets, a hermetic environment, the tools
compared, and the measuring wrapper.

Run as a script (``python common.py measure OUT LOG -- CMD ...``) this file is
the wrapper every measured command goes through: it runs CMD, times it, and
reads ``getrusage(RUSAGE_CHILDREN).ru_maxrss``, which is the largest resident
set of any descendant it (transitively) waited for, so each measurement of
peak memory starts from zero and counts git, filters and hooks alike.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV_BIN = ROOT / ".venv" / "bin"

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30


# -- the measuring wrapper -------------------------------------------------------


def _measure_main(argv: list[str]) -> int:
    import resource

    out, log, sep, *cmd = argv
    assert sep == "--" and cmd, "usage: common.py measure OUT LOG -- CMD ..."
    with open(log, "ab") as logf:
        start = time.perf_counter()
        rc = subprocess.call(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
        seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    with open(out, "w") as f:
        json.dump({"seconds": seconds, "peak_mb": peak_kib / 1024, "rc": rc}, f)
    return 0


@dataclass
class Measurement:
    seconds: float
    peak_mb: float


class CommandFailed(RuntimeError):
    pass


def measure(cmd: list[str] | str, *, cwd: Path, env: dict[str, str], log: Path) -> Measurement:
    """Run ``cmd`` (a list, or a shell string) through the wrapper; raise if it fails."""
    if isinstance(cmd, str):
        cmd = ["sh", "-ec", cmd]
    out = log.with_suffix(".measure.json")
    os.sync()  # flush the previous step's writes so they are not billed to this one
    with open(log, "ab") as f:
        f.write(f"\n$ {' '.join(cmd)}   (in {cwd})\n".encode())
    subprocess.run(
        [sys.executable, "-S", str(Path(__file__).resolve()), "measure", str(out), str(log), "--", *cmd],
        cwd=cwd, env=env, check=True,
    )
    res = json.loads(out.read_text())
    out.unlink()
    if res["rc"] != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise CommandFailed(f"{cmd!r} in {cwd} exited with {res['rc']}:\n{tail}")
    return Measurement(res["seconds"], res["peak_mb"])


def run(cmd: list[str] | str, *, cwd: Path, env: dict[str, str], log: Path | None = None) -> str:
    """Run an unmeasured set-up command; raise with its output if it fails."""
    if isinstance(cmd, str):
        cmd = ["sh", "-ec", cmd]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if log is not None:
        with open(log, "a") as f:
            f.write(f"\n$ {' '.join(cmd)}   (in {cwd})\n{proc.stdout}{proc.stderr}")
    if proc.returncode != 0:
        raise CommandFailed(f"{cmd!r} in {cwd} exited with {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


# -- data sets -------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    key: str  # for --only
    title: str  # for the table
    files: tuple[tuple[str, int], ...]  # (relative path, size)
    pattern: str  # what the tools track
    dvc_target: str  # what `dvc add` is given

    @property
    def total(self) -> int:
        return sum(s for _p, s in self.files)


def scenarios(quick: bool) -> list[Scenario]:
    """The three data sets of the issue; ``quick`` shrinks them for the smoke test."""
    big = 8 * MiB if quick else GiB
    n_small, n_dirs = (60, 6) if quick else (10_000, 100)
    n_med, med = (6, 256 * KiB) if quick else (200, 5 * MiB)
    per_dir = n_small // n_dirs
    return [
        Scenario("big", "1 GiB file" if not quick else "1 big file", (("big.bin", big),), "*.bin", "big.bin"),
        Scenario(
            "small",
            f"{n_small:,} x 4 KiB",
            tuple((f"data/d{i // per_dir:03d}/f{i:05d}.bin", 4 * KiB) for i in range(n_small)),
            "data/**",
            "data",
        ),
        Scenario(
            "medium",
            f"{n_med} x {med // MiB} MiB" if med >= MiB else f"{n_med} x {med // KiB} KiB",
            tuple((f"data/m{i:03d}.bin", med) for i in range(n_med)),
            "data/**",
            "data",
        ),
    ]


def build_dataset(sc: Scenario, dest: Path) -> Path:
    """Deterministic, incompressible bytes; built once (a stamp records the layout)."""
    stamp = dest / ".built"
    want = json.dumps([sc.key, list(sc.files)])
    if stamp.exists() and stamp.read_text() == want:
        return dest
    if dest.exists():
        rmtree(dest)
    dest.mkdir(parents=True)
    for i, (rel, size) in enumerate(sc.files):
        rng = random.Random(f"{sc.key}:{i}:{rel}")
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            left = size
            while left:
                n = min(left, 16 * MiB)
                f.write(rng.randbytes(n))
                left -= n
    stamp.write_text(want)
    return dest


def link_tree(src: Path, dst: Path) -> None:
    """Hard-link a data set into a work tree (tools only read their input)."""
    for dirpath, _dirs, files in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        target = dst / rel
        target.mkdir(parents=True, exist_ok=True)
        for name in files:
            if name == ".built" and rel == ".":
                continue
            os.link(os.path.join(dirpath, name), target / name)


def rmtree(path: Path) -> None:
    """Remove a tree even where git-annex or DVC made things read-only."""

    def onerror(func, p, exc):
        if isinstance(exc[1], FileNotFoundError):
            return
        parent = os.path.dirname(p)
        for q in (parent, p):
            try:
                os.chmod(q, os.stat(q).st_mode | stat.S_IWUSR | stat.S_IXUSR | stat.S_IRUSR)
            except OSError:
                pass
        func(p)

    if os.path.lexists(path):
        shutil.rmtree(path, onerror=onerror)


# -- environment -----------------------------------------------------------------


def hermetic_env(home: Path) -> dict[str, str]:
    keep = ("LANG", "TERM", "TMPDIR", "USER", "LOGNAME", "SHELL")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    path = [p for p in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep) if p and Path(p) != VENV_BIN]
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
        PATH=os.pathsep.join([str(VENV_BIN), *path]),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_TERMINAL_PROMPT="0",
        LC_ALL="C.UTF-8",
        AWS_EC2_METADATA_DISABLED="true",
        NO_GCE_CHECK="True",
        DVC_NO_ANALYTICS="1",
        DVC_SITE_CACHE_DIR=str(home / ".dvc-site"),
    )
    return env


def setup_home(home: Path, tools: list[Tool], extra_config: dict[str, str] | None = None) -> dict[str, str]:
    if home.exists():
        rmtree(home)
    home.mkdir(parents=True)
    env = hermetic_env(home)
    for key, value in (
        ("user.name", "Bench Mark"),
        ("user.email", "bench@example.invalid"),
        ("init.defaultBranch", "main"),
        ("advice.detachedHead", "false"),
        ("gc.auto", "0"),  # no background repacking in the middle of a measurement
        ("maintenance.auto", "false"),
        ("protocol.file.allow", "always"),
        *(extra_config or {}).items(),
    ):
        run(["git", "config", "--global", key, value], cwd=home, env=env)
    for tool in tools:
        tool.install_home(home, env)
    return env


def tool_version(cmd: list[str], env: dict[str, str]) -> str | None:
    try:
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return (out.stdout or out.stderr).strip().splitlines()[0]


# -- the tools -------------------------------------------------------------------


class Tool:
    """One tool's way of doing the four operations. ``src``/``clone`` are work
    trees on disk; ``shm`` is a folder on /dev/shm holding its remotes."""

    name = ""
    key = ""

    def available(self, env: dict[str, str]) -> tuple[bool, str]:
        raise NotImplementedError

    def install_home(self, home: Path, env: dict[str, str]) -> None:
        pass

    def setup(self, sc: Scenario, src: Path, shm: Path, env: dict[str, str], log: Path) -> None:
        raise NotImplementedError

    def add_commit(self, sc: Scenario) -> str:
        raise NotImplementedError

    def push(self) -> str:
        return "git push -q origin main"

    def clone(self, url: str) -> str:
        return f"git clone -q {url} clone"

    def status(self) -> str:
        return "git status --porcelain >/dev/null"


def _git_init(src: Path, shm: Path, env: dict[str, str], log: Path) -> None:
    run(["git", "init", "-q", "--bare", str(shm / "remote.git")], cwd=shm, env=env, log=log)
    run(["git", "init", "-q", str(src)], cwd=src.parent, env=env, log=log)
    run(["git", "remote", "add", "origin", f"file://{shm}/remote.git"], cwd=src, env=env, log=log)


class GitData(Tool):
    name = "git data"
    key = "gitdata"

    def available(self, env):
        v = tool_version(["git", "data", "--version"], env)
        return (v is not None, v or "git data is not installed in .venv (run scripts/setup.sh)")

    def install_home(self, home, env):
        run(["git", "data", "install", "--global"], cwd=home, env=env)

    def setup(self, sc, src, shm, env, log):
        _git_init(src, shm, env, log)
        run(
            f"git data install --local >/dev/null && git data track '{sc.pattern}' && "
            f"git data remote add store file://{shm}/store --default && "
            "git add .gitattributes .gitdata && git commit -q -m setup",
            cwd=src, env=env, log=log,
        )

    def add_commit(self, sc):
        return "git add -A && git commit -q -m data"


class GitDataCached(GitData):
    """git data with ``gitdata.cacheLocalRemote=true``: a checkout copies every
    object into the cache, as git-lfs does, instead of reading the local data
    remote directly (git data's default for a folder remote)."""

    name = "gd+cache"
    key = "gdcache"

    def clone(self, url):
        return f"git -c gitdata.cacheLocalRemote=true clone -q {url} clone"


class GitLfs(Tool):
    name = "git-lfs"
    key = "lfs"

    def available(self, env):
        v = tool_version(["git", "lfs", "version"], env)
        return (v is not None, v or "git-lfs is not installed (Debian package git-lfs)")

    def install_home(self, home, env):
        run(["git", "lfs", "install", "--skip-repo"], cwd=home, env=env)

    def setup(self, sc, src, shm, env, log):
        _git_init(src, shm, env, log)
        run(
            f"git lfs install --local >/dev/null && git lfs track '{sc.pattern}' >/dev/null && "
            "git add .gitattributes && git commit -q -m setup",
            cwd=src, env=env, log=log,
        )

    def add_commit(self, sc):
        return "git add -A && git commit -q -m data"


class GitAnnex(Tool):
    name = "git-annex"
    key = "annex"

    def available(self, env):
        v = tool_version(["git", "annex", "version", "--raw"], env)
        return (v is not None, f"git-annex {v}" if v else "git-annex is not installed (Debian package git-annex)")

    def setup(self, sc, src, shm, env, log):
        _git_init(src, shm, env, log)
        run("git annex init -q bench-remote", cwd=shm / "remote.git", env=env, log=log)
        # fetch first so that the local git-annex branch grows from the remote's
        run("git fetch -q origin && git annex init -q bench-src && git commit -q --allow-empty -m setup",
            cwd=src, env=env, log=log)

    def add_commit(self, sc):
        return "git annex add --quiet . && git commit -q -m data"

    def push(self):
        # copy also records the new locations in the remote's git-annex branch;
        # sync merges that and pushes main and git-annex
        return "git annex copy --quiet --to origin . && git annex sync --quiet --no-content origin"

    def clone(self, url):
        return f"git clone -q {url} clone && cd clone && git annex init -q bench-clone && git annex get --quiet ."


class Dvc(Tool):
    name = "DVC"
    key = "dvc"

    def available(self, env):
        v = tool_version(["dvc", "--version"], env)
        return (v is not None, f"dvc {v}" if v else "dvc is not installed (pip extra `bench`)")

    def install_home(self, home, env):
        run("dvc config --global core.analytics false", cwd=home, env=env)

    def setup(self, sc, src, shm, env, log):
        _git_init(src, shm, env, log)
        run(
            f"dvc init -q && dvc remote add -d store {shm}/dvcstore && "
            "git add .dvc .dvcignore && git commit -q -m setup",
            cwd=src, env=env, log=log,
        )

    def add_commit(self, sc):
        return f"dvc add -q {sc.dvc_target} && git add -A && git commit -q -m data"

    def push(self):
        return "dvc push -q && git push -q origin main"

    def clone(self, url):
        return f"git clone -q {url} clone && cd clone && dvc pull -q"

    def status(self):
        # git status alone cannot see DVC-tracked data; `dvc status` is the check.
        return "git status --porcelain >/dev/null && dvc status -q"


ALL_TOOLS = [GitData(), GitLfs(), GitAnnex(), Dvc(), GitDataCached()]


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "measure":
    sys.exit(_measure_main(sys.argv[2:]))
