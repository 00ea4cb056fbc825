"""Benchmark: push and clone through s3data::s3://... vs git daemon + pre-push upload.

A repository of 1,000 commits and 10,000 tracked files (plus 100 data files
through the filter) is pushed and cloned

  A) through ``s3data::s3://bucket/a`` on rclone's S3 server (git objects and
     data objects in the bucket), and
  B) with ``git push`` to ``git daemon`` while the pre-push hook uploads the
     data objects to ``s3://bucket/b`` on the same rclone server; the clone
     comes from git daemon and the filter fetches data from the bucket.

Runs alternate (A, B, A, B, ...) and the medians and the ratio A/B are printed.
Run: ``.venv/bin/python benchmarks/bench_remote.py [--runs N]``. Loopback only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import conftest  # noqa: E402,F401  (environment hygiene: loopback only, no metadata probes)
from servers import GitDaemon, RcloneS3Server, unique_name  # noqa: E402

COMMITS = 1000
FILES = 10_000
DATA_FILES = 100


def sh(*args, cwd=None, env=None) -> str:
    proc = subprocess.run(list(map(str, args)), cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, args))} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def make_source(path: Path) -> None:
    """1,000 commits touching 10 new files each (10,000 files), then 100 data files."""
    sh("git", "init", "-q", "-b", "main", path)
    per = FILES // COMMITS
    lines = []
    for c in range(COMMITS):
        lines += ["commit refs/heads/main", f"committer B <b@e> {1700000000 + c} +0000", f"data {len(str(c))}", str(c)]
        for j in range(per):
            body = f"file {c}/{j}\n" * 20
            lines += [f"M 100644 inline src/d{c % 100:02d}/f{c}_{j}.txt", f"data {len(body)}", body]
        lines.append("")
    subprocess.run(["git", "fast-import", "--quiet"], cwd=path, input="\n".join(lines), text=True, check=True)
    sh("git", "reset", "-q", "--hard", "main", cwd=path)
    sh("git", "data", "track", "*.bin", cwd=path)
    data = path / "data"
    data.mkdir()
    for i in range(DATA_FILES):
        (data / f"d{i:03d}.bin").write_bytes(os.urandom(64 << 10))
    sh("git", "add", "-A", cwd=path)
    sh("git", "commit", "-qm", "data", cwd=path)


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-remote-"))
    home = work / "home"
    home.mkdir()
    (home / ".gitconfig").write_text(
        "[user]\n\tname = B\n\temail = b@e\n[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n"
    )
    os.environ.update({"HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", "PATH": f"{ROOT / '.venv/bin'}:{os.environ['PATH']}"})
    rclone = RcloneS3Server(workdir=work / "rclone")
    daemon = GitDaemon(workdir=work / "daemon")
    try:
        rclone.start()
        daemon.start()
        os.environ.update(rclone.env)
        sh("git", "data", "install")
        src = work / "src"
        print(f"building {COMMITS} commits, {FILES} files, {DATA_FILES} data files ...", flush=True)
        make_source(src)
        opt = f"endpoint_url={rclone.endpoint}"
        results: dict[str, dict[str, list[float]]] = {"s3data": {"push": [], "clone": []}, "daemon": {"push": [], "clone": []}}
        for run in range(args.runs):
            for kind in ("s3data", "daemon"):
                bucket = rclone.make_bucket(unique_name("bench"))
                repo = work / f"push-{kind}-{run}"
                sh("git", "clone", "-q", "--no-local", src, repo)
                sh("git", "remote", "remove", "origin", cwd=repo)
                sh("git", "config", "gitdata.cachedir", src / ".git" / "gitdata", cwd=repo)  # the data's cache
                clone = work / f"clone-{kind}-{run}"
                if kind == "s3data":
                    url = f"s3data::s3://{bucket}/a"
                    sh("git", "remote", "add", "origin", url, cwd=repo)
                    sh("git", "config", "remote.origin.s3dataOption", opt, cwd=repo)
                    push = lambda: sh("git", "push", "-q", "origin", "main", cwd=repo)  # noqa: B023,E731
                    clone_cmd = ["git", "clone", "-q", "-c", f"remote.origin.s3dataOption={opt}", url, clone]
                else:
                    name = unique_name("bench") + ".git"
                    daemon.make_bare(name)
                    sh("git", "remote", "add", "origin", daemon.url(name), cwd=repo)
                    sh("git", "data", "remote", "add", "store", f"s3://{bucket}/b", "-o", opt, "--default", cwd=repo)
                    sh("git", "add", ".gitdata", cwd=repo)
                    sh("git", "commit", "-qm", "data remote", cwd=repo)
                    push = lambda: sh("git", "push", "-q", "origin", "main", cwd=repo)  # noqa: B023,E731
                    clone_cmd = ["git", "clone", "-q", daemon.url(name), clone]
                results[kind]["push"].append(timed(push))
                results[kind]["clone"].append(timed(lambda: sh(*clone_cmd)))  # noqa: B023
                got = sorted((clone / "data").iterdir())
                assert len(got) == DATA_FILES and got[0].stat().st_size == 64 << 10, f"{kind}: data not materialized"
                shutil.rmtree(repo)
                shutil.rmtree(clone)
                print(f"run {run + 1} {kind}: push {results[kind]['push'][-1]:.2f} s, clone {results[kind]['clone'][-1]:.2f} s", flush=True)
        print()
        print(f"{'':10}{'s3data::s3 (rclone)':>22}{'git daemon + pre-push':>24}{'ratio':>8}")
        for op in ("push", "clone"):
            a = statistics.median(results["s3data"][op])
            b = statistics.median(results["daemon"][op])
            print(f"{op:10}{a:>20.2f} s{b:>22.2f} s{a / b:>8.2f}")
        ratios = [
            (results["s3data"]["push"][i] + results["s3data"]["clone"][i])
            / (results["daemon"]["push"][i] + results["daemon"]["clone"][i])
            for i in range(args.runs)
        ]
        print(f"median ratio of (push + clone), per run: {statistics.median(ratios):.2f} (target <= 1.5)")
    finally:
        rclone.close()
        daemon.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
