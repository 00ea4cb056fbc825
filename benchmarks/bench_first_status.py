"""The first ``git status`` after a clone (issue 18): git data with and without
``gitdata.settleIndex``, against plain git on the same files.

    .venv/bin/python benchmarks/bench_first_status.py [--files 10000] [--size 4096] [--wait 1.5] [--rounds 3]

A project of ``--files`` random files of ``--size`` bytes is pushed to a local data
remote and cloned ``--rounds`` times each way; ``--wait`` seconds after each clone (a
person's pause; the settling runs in the background for up to about a second) the first
``git status`` is timed, then a second one. "plain git" is a repository holding the same
files without git data. Medians; ratios against plain git's first status of the same
round. Everything in a temporary folder under HOME-less git config.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> None:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.decode(errors='replace')}")


def _timed_status(repo: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    _run(["git", "status", "--porcelain"], repo, env)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--wait", type=float, default=1.5)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-first-status-"))
    try:
        home = work / "home"
        home.mkdir()
        env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
               "GIT_CONFIG_NOSYSTEM": "1"}  # fmt: skip
        _run(["git", "config", "--global", "user.name", "b"], work, env)
        _run(["git", "config", "--global", "user.email", "b@b"], work, env)
        _run(["git", "config", "--global", "init.defaultBranch", "main"], work, env)
        proj, plain = work / "proj", work / "plain"
        for repo in (proj, plain):
            (repo / "data").mkdir(parents=True)
            _run(["git", "init", "-q"], repo, env)
            for i in range(args.files):
                (repo / "data" / f"f{i:06d}.bin").write_bytes(os.urandom(args.size))
        _run(["git", "data", "install"], proj, env)
        _run(["git", "data", "track", "data/**"], proj, env)
        _run(["git", "data", "remote", "add", "origin", str(work / "store")], proj, env)
        for repo in (proj, plain):
            _run(["git", "add", "-A"], repo, env)
            _run(["git", "commit", "-qm", "files"], repo, env)
        _run(["git", "data", "push"], proj, env)
        rows: dict[str, list[tuple[float, float]]] = {"plain git": [], "git data": [], "git data, settleIndex false": []}
        ratios: dict[str, list[float]] = {k: [] for k in rows}
        for r in range(args.rounds):
            firsts = {}
            for label, src, extra in (("plain git", plain, []), ("git data", proj, []),
                                      ("git data, settleIndex false", proj, ["-c", "gitdata.settleIndex=false"])):  # fmt: skip
                clone = work / f"clone-{r}-{len(firsts)}"
                _run(["git", *extra, "clone", "-q", str(src), str(clone)], work, env)
                time.sleep(args.wait)
                first = _timed_status(clone, env)
                second = _timed_status(clone, env)
                rows[label].append((first, second))
                firsts[label] = first
                shutil.rmtree(clone)
            for label in rows:
                ratios[label].append(firsts[label] / firsts["plain git"])
        print(f"{args.files:,} x {args.size:,} B, first `git status` {args.wait} s after the clone, "
              f"medians of {args.rounds}")  # fmt: skip
        print("| repository | first status s | second status s | first / plain git's first |")
        print("| --- | --- | --- | --- |")
        for label, samples in rows.items():
            first = statistics.median(s[0] for s in samples)
            second = statistics.median(s[1] for s in samples)
            print(f"| {label} | {first:.3f} | {second:.3f} | {statistics.median(ratios[label]):.2f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
