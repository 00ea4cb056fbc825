"""Why git data drives git as a subprocess: the start-up cost of dulwich and pygit2
against one git process, and reading a 10,000-entry index each way.

    .venv/bin/python benchmarks/bench_git_access.py [--entries 10000] [--rounds 7] [--python PY]

``--python`` names an interpreter that has dulwich and pygit2 (the ``bench`` extra);
rows whose library is missing there are reported as such. Medians of ``--rounds``
runs, each a fresh process, as a filter or hook start is.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time


def _median_ms(cmd: list[str], rounds: int) -> float | None:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        if subprocess.run(cmd, capture_output=True).returncode != 0:
            return None
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def _repo(entries: int) -> str:
    root = tempfile.mkdtemp(prefix="bench-git-")
    subprocess.run(["git", "init", "-q", root], check=True)
    os.makedirs(os.path.join(root, "data"))
    for i in range(entries):
        with open(os.path.join(root, "data", f"f{i:05d}.txt"), "w") as f:
            f.write(f"version gitdata/1\noid xxh128:{i:032x}\nsize {i}\n")
    subprocess.run(["git", "-C", root, "add", "-A"], check=True)
    subprocess.run(["git", "-C", root, "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "x"], check=True)
    return root


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--entries", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--python", default=sys.executable, help="an interpreter with dulwich and pygit2")
    args = ap.parse_args(argv)
    repo = _repo(args.entries)
    py = args.python
    rows = [
        ("python start", [py, "-c", "pass"]),
        ("import gitdata.filters (the filter process start)", [sys.executable, "-c", "import gitdata.filters"]),
        ("import dulwich.repo", [py, "-c", "import dulwich.repo"]),
        ("import pygit2", [py, "-c", "import pygit2"]),
        ("git rev-parse HEAD", ["git", "-C", repo, "rev-parse", "HEAD"]),
        (f"git ls-files -s ({args.entries:,} entries)", ["git", "-C", repo, "ls-files", "-s"]),
        (f"python + git ls-files -s ({args.entries:,})",
         [py, "-c", f"import subprocess; subprocess.run(['git','-C',{repo!r},'ls-files','-s'],capture_output=True,check=True)"]),
        (f"dulwich: open + read the index ({args.entries:,})",
         [py, "-c", f"from dulwich.repo import Repo; list(Repo({repo!r}).open_index().items())"]),
        (f"pygit2: open + read the index ({args.entries:,})",
         [py, "-c", f"import pygit2; [e.path for e in pygit2.Repository({repo!r}).index]"]),
    ]  # fmt: skip
    print(f"| step (median of {args.rounds}, fresh process each) | ms |")
    print("| --- | --- |")
    for name, cmd in rows:
        ms = _median_ms(cmd, args.rounds)
        print(f"| {name} | {'not installed' if ms is None else f'{ms:.1f}'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
