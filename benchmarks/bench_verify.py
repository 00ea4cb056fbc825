"""Benchmark `git data dataset verify` against the read limit of the same server.

    .venv/bin/python benchmarks/bench_verify.py [--files 2000] [--file-kb 64] [--big-mb 256]
        [--rounds 1] [--dask] [--jobs 8] [--json FILE]

One ``rclone serve s3`` on 127.0.0.1 over a tmpfs folder holds ``--files``
objects of ``--file-kb`` KiB and one of ``--big-mb`` MiB, registered in a
dataset (nothing downloaded). Per round, alternating:

- ``git data dataset verify`` (local threads, ``--jobs``), and with
  ``--dask`` on a ``LocalCluster`` of 2 worker processes on 127.0.0.1;
- ``rclone cat`` of the same prefix to /dev/null (``--transfers`` = jobs is
  not used by cat: one stream, the server's plain read limit), and
- s3fs ``cat_file`` of every object on ``--jobs`` threads (the same client
  library, no hashing, no git).

Prints MB/s and the ratio verify / best read limit. Loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

import conftest  # noqa: E402,F401  (environment hygiene: loopback only, no metadata probes)
from servers import RcloneS3Server, rclone_binary  # noqa: E402


def sh(*args, cwd=None, env=None) -> str:
    proc = subprocess.run(list(map(str, args)), cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode not in (0,):
        raise SystemExit(f"{' '.join(map(str, args))} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--file-kb", type=int, default=64)
    ap.add_argument("--big-mb", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--dask", action="store_true", help="also on a LocalCluster of 2 worker processes")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    shm = Path(tempfile.mkdtemp(prefix="gitdata-bench-verify-", dir="/dev/shm"))
    work = Path(tempfile.mkdtemp(prefix="bench-verify-"))
    server = RcloneS3Server(data_dir=shm / "data", workdir=shm / "server")
    cluster = None
    try:
        server.start()
        bucket = server.make_bucket("verify")
        d = server.bucket_path(bucket) / "raw"
        for i in range(args.files):
            p = d / f"d{i % 50:02d}" / f"f{i:06d}.bin"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(os.urandom(args.file_kb << 10))
        if args.big_mb:
            with open(d / "big.bin", "wb") as f:
                for _ in range(args.big_mb):
                    f.write(os.urandom(1 << 20))
        server.flush_dir_cache()
        total = args.files * (args.file_kb << 10) + (args.big_mb << 20)
        home = work / "home"
        home.mkdir()
        env = {**os.environ, **server.env, "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1",
               "AWS_DEFAULT_REGION": "us-east-1", "PATH": f"{ROOT / '.venv/bin'}:{os.environ['PATH']}"}
        for k, v in (("user.name", "B"), ("user.email", "b@e"), ("init.defaultBranch", "main")):
            sh("git", "config", "--global", k, v, env=env)
        proj = work / "p"
        sh("git", "init", "-q", proj, env=env)
        sh("git", "data", "install", env=env, cwd=proj)
        sh("git", "commit", "-q", "--allow-empty", "-m", "init", cwd=proj, env=env)
        sh("git", "data", "dataset", "add", "raw", f"s3://{bucket}/raw", "--create", "-o",
           f"endpoint_url={server.endpoint}", cwd=proj, env=env)
        sh("git", "commit", "-qm", "register", cwd=proj, env=env)
        if args.dask:
            from distributed import LocalCluster

            os.environ.update(server.env)
            cluster = LocalCluster(processes=True, n_workers=2, threads_per_worker=2, host="127.0.0.1",
                                   dashboard_address=None, silence_logs=50)
        renv = {**env, "RCLONE_CONFIG_B_TYPE": "s3", "RCLONE_CONFIG_B_PROVIDER": "Other",
                "RCLONE_CONFIG_B_ENDPOINT": server.endpoint, "RCLONE_CONFIG_B_ACCESS_KEY_ID": server.key,
                "RCLONE_CONFIG_B_SECRET_ACCESS_KEY": server.secret}
        import s3fs

        fs = s3fs.S3FileSystem(endpoint_url=server.endpoint, key=server.key, secret=server.secret,
                               skip_instance_cache=True)
        keys = [p for p in fs.find(f"{bucket}/raw")]

        def s3fs_read() -> None:
            with ThreadPoolExecutor(args.jobs) as ex:
                list(ex.map(lambda k: len(fs.cat_file(k)), keys))

        def verify(*extra: str) -> None:
            sh("git", "reset", "-q", "--hard", "HEAD", cwd=proj, env=env)  # nothing recorded yet
            sh("git", "data", "dataset", "verify", "raw", "--jobs", args.jobs, *extra, cwd=proj, env=env)

        runs: dict[str, list[float]] = {"verify": [], "rclone cat": [], "s3fs cat": []}
        if cluster is not None:
            runs["verify --dask"] = []
        steps = {
            "verify": lambda: verify(),
            "rclone cat": lambda: sh(rclone_binary(), "cat", "--discard", f"b:{bucket}/raw", env=renv) and None,
            "s3fs cat": s3fs_read,
        }
        if cluster is not None:
            steps["verify --dask"] = lambda: verify("--dask", cluster.scheduler_address)
        for r in range(args.rounds):
            names = list(steps)
            names = names[r % len(names):] + names[: r % len(names)]
            for name in names:
                s = timed(steps[name])
                runs[name].append(s)
                print(f"round {r + 1} {name}: {s:.2f} s, {total / s / 1e6:.1f} MB/s", file=sys.stderr, flush=True)
        med = {k: statistics.median(v) for k, v in runs.items() if v}
        limit = min(med["rclone cat"], med["s3fs cat"])
        print(f"{args.files} x {args.file_kb} KiB + {args.big_mb} MiB ({total / 1e6:.0f} MB), "
              f"{args.rounds} round(s), medians:")
        for k, s in med.items():
            print(f"  {k:14} {s:8.2f} s {total / s / 1e6:8.1f} MB/s  {s / limit:5.2f}x the best read limit")
        if args.json:
            args.json.write_text(json.dumps({"total": total, "runs": runs}, indent=1))
    finally:
        if cluster is not None:
            cluster.close()
        server.close()
        subprocess.run(["rm", "-rf", str(shm), str(work)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
