"""Benchmark: reading a registered object through `gitdata.open` against s3fs and `rclone cat`.

One object of --size-mb (default 1024) on `rclone serve s3` (127.0.0.1),
registered in a dataset (nothing downloaded). Same server, same run,
alternating rounds; medians and ratios:

- sequential read of the whole object (8 MiB reads): gitdata.open, s3fs `open`, `rclone cat`
  (target: gitdata >= 0.9x of s3fs's throughput);
- time to first byte: open + read(1) (target: <= 1.2x of s3fs);
- 1,000 random 4 KiB reads (target: <= 1.1x of s3fs).

Peak memory of the gitdata sequential read is reported (it must not grow with size).

    .venv/bin/python benchmarks/bench_api.py [--size-mb 1024] [--rounds 3] [--random 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from servers import RcloneS3Server, hermetic_server_env, rclone_binary  # noqa: E402

CHUNK = 8 << 20


def _git(cwd: Path, env: dict[str, str], *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--random", type=int, default=1000)
    ap.add_argument("--json", type=Path, help="write the results here too")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-api-"))
    home = work / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = b\n\temail = b@example.com\n[init]\n\tdefaultBranch = main\n")
    env = hermetic_server_env(home, AWS_EC2_METADATA_DISABLED="true", AWS_DEFAULT_REGION="us-east-1")
    env["PATH"] = f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    srv = RcloneS3Server(workdir=work / "srv").start()
    try:
        env.update(srv.env)
        os.environ.update(env)  # this process reads through gitdata and s3fs too
        bucket = srv.make_bucket("bench")
        obj = srv.bucket_path(bucket) / "raw" / "big.bin"
        obj.parent.mkdir(parents=True)
        with open(obj, "wb") as f:
            for _ in range(args.size_mb):
                f.write(os.urandom(1 << 20))
        srv.flush_dir_cache()
        proj = work / "proj"
        proj.mkdir()
        _git(proj, env, "init", "-q")
        _git(proj, env, "data", "install")
        _git(proj, env, "data", "dataset", "create", "raw", "-o", f"endpoint_url={srv.endpoint}")
        _git(proj, env, "data", "dataset", "add", "raw", f"s3://{bucket}/raw")
        _git(proj, env, "commit", "-qm", "register")
        size = args.size_mb << 20
        results = run_rounds(args, proj, srv, bucket, size, env)
    finally:
        srv.stop()
    print(json.dumps(results, indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


def run_rounds(args, proj: Path, srv, bucket: str, size: int, env: dict[str, str]) -> dict:
    import s3fs

    import gitdata

    key = f"{bucket}/raw/big.bin"
    path = str(proj / "data" / "raw" / "big.bin")
    offsets = [random.Random(i).randrange(0, size - 4096) for i in range(args.random)]

    def s3() -> s3fs.S3FileSystem:
        return s3fs.S3FileSystem(endpoint_url=srv.endpoint, skip_instance_cache=True)

    def seq_gitdata() -> float:
        t = time.perf_counter()
        with gitdata.open(path) as f:
            while f.read(CHUNK):
                pass
        return time.perf_counter() - t

    def seq_s3fs() -> float:
        t = time.perf_counter()
        with s3().open(key, "rb") as f:
            while f.read(CHUNK):
                pass
        return time.perf_counter() - t

    def seq_rclone() -> float:
        cmd = [str(rclone_binary()), "cat", f":s3,provider=Other,endpoint='{srv.endpoint}',"
               f"access_key_id={srv.env['AWS_ACCESS_KEY_ID']},secret_access_key={srv.env['AWS_SECRET_ACCESS_KEY']}:{key}"]
        t = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - t

    def ttfb_gitdata() -> float:
        t = time.perf_counter()
        with gitdata.open(path) as f:
            f.read(1)
        return time.perf_counter() - t

    def ttfb_s3fs() -> float:
        t = time.perf_counter()
        with s3().open(key, "rb") as f:
            f.read(1)
        return time.perf_counter() - t

    def rand_gitdata() -> float:
        t = time.perf_counter()
        with gitdata.open(path) as f:
            for off in offsets:
                f.seek(off)
                f.read(4096)
        return time.perf_counter() - t

    def rand_s3fs() -> float:
        t = time.perf_counter()
        with s3().open(key, "rb") as f:
            for off in offsets:
                f.seek(off)
                f.read(4096)
        return time.perf_counter() - t

    table: dict[str, list[float]] = {}
    for r in range(args.rounds):
        pairs = [("seq", seq_gitdata, seq_s3fs), ("ttfb", ttfb_gitdata, ttfb_s3fs), ("random", rand_gitdata, rand_s3fs)]
        for name, ours, theirs in pairs:
            first, second = (ours, theirs) if r % 2 == 0 else (theirs, ours)
            a, b = first(), second()
            g, s = (a, b) if r % 2 == 0 else (b, a)
            print(f"round {r + 1} {name}: gitdata {g:.3f} s, s3fs {s:.3f} s", file=sys.stderr, flush=True)
            table.setdefault(f"{name}_gitdata", []).append(g)
            table.setdefault(f"{name}_s3fs", []).append(s)
            table.setdefault(f"{name}_ratio", []).append(g / s)
        table.setdefault("seq_rclone", []).append(seq_rclone())
    med = {k: statistics.median(v) for k, v in table.items()}
    mb = size / 1e6
    return {
        "size_mb": size >> 20,
        "rounds": args.rounds,
        "seq_gitdata_MBps": round(mb / med["seq_gitdata"], 1),
        "seq_s3fs_MBps": round(mb / med["seq_s3fs"], 1),
        "seq_rclone_MBps": round(mb / med["seq_rclone"], 1),
        "seq_throughput_ratio_vs_s3fs": round(1 / med["seq_ratio"], 3),
        "ttfb_gitdata_s": round(med["ttfb_gitdata"], 4),
        "ttfb_s3fs_s": round(med["ttfb_s3fs"], 4),
        "ttfb_ratio": round(med["ttfb_ratio"], 3),
        f"random_{args.random}x4KiB_gitdata_s": round(med["random_gitdata"], 3),
        f"random_{args.random}x4KiB_s3fs_s": round(med["random_s3fs"], 3),
        "random_ratio": round(med["random_ratio"], 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


if __name__ == "__main__":
    main()
