"""Benchmark: `git data storage sync` (two-way) against `rclone sync` (one-way).

10,000 files of 4 KiB on `rclone serve s3` (127.0.0.1); each round changes 100
files on each side, then times `git data storage sync`; `rclone sync` gets the
same data, the same server and the same 100+100 changes (it copies the local
ones up and, being one-way, reverts the remote ones). Runs alternate; prints
the medians and the ratio (target: git data within 1.5x of rclone).

    .venv/bin/python benchmarks/bench_sync.py [--files 10000] [--changed 100] [--rounds 3]
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from servers import RcloneS3Server, hermetic_server_env, rclone_binary  # noqa: E402

BIN = ROOT / ".venv" / "bin"


def write_tree(root: Path, n: int, seed: bytes) -> None:
    for i in range(n):
        p = root / f"d{i // 500:03d}" / f"f{i:05d}.bin"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes((seed + i.to_bytes(4, "big")) * (4096 // (len(seed) + 4)))


def touch_some(root: Path, n_total: int, count: int, offset: int, tag: bytes) -> None:
    step = max(1, n_total // count)
    for k in range(count):
        i = (offset + k * step) % n_total
        p = root / f"d{i // 500:03d}" / f"f{i:05d}.bin"
        p.write_bytes(tag + os.urandom(4096 - len(tag)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--changed", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    env = hermetic_server_env(work / "home", AWS_EC2_METADATA_DISABLED="true", AWS_DEFAULT_REGION="us-east-1")
    (work / "home").mkdir(exist_ok=True)
    (work / "home" / ".gitconfig").write_text("[user]\n\tname = b\n\temail = b@example.com\n")
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', os.environ['PATH'])}"
    srv = RcloneS3Server(workdir=work / "srv").start()
    try:
        env.update(srv.env)
        srv.make_bucket("bkt")
        gd_remote = srv.bucket_path("bkt") / "gd"
        rc_remote = srv.bucket_path("bkt") / "rc"
        proj = work / "proj"
        proj.mkdir()
        subprocess.run(["git", "init", "-q"], cwd=proj, env=env, check=True)
        subprocess.run(
            [str(BIN / "git-data"), "storage", "add", "lab", "s3://bkt/gd", f"-oendpoint_url={srv.endpoint}"],
            cwd=proj, env=env, check=True, capture_output=True,
        )  # fmt: skip
        local_gd = proj / "storages" / "lab"
        local_rc = work / "rc-local"
        for d in (gd_remote, local_gd, rc_remote, local_rc):
            write_tree(d, args.files, b"base")
        t = time.perf_counter()
        subprocess.run([str(BIN / "git-data"), "storage", "stage", "lab"], cwd=proj, env=env, check=True,
                       capture_output=True)  # fmt: skip
        print(f"initial stage over identical trees ({args.files} files, compared by md5): "
              f"{time.perf_counter() - t:.2f} s")  # fmt: skip
        rc_env = dict(env)
        rc_env.update(
            RCLONE_CONFIG_BENCH_TYPE="s3", RCLONE_CONFIG_BENCH_PROVIDER="Other",
            RCLONE_CONFIG_BENCH_ENDPOINT=srv.endpoint, RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=srv.key,
            RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=srv.secret,
        )  # fmt: skip
        rclone = str(rclone_binary())
        subprocess.run([rclone, "sync", str(local_rc), "bench:bkt/rc"], env=rc_env, check=True,
                       capture_output=True)  # fmt: skip
        ours, theirs = [], []
        for r in range(args.rounds):
            for local, remote, times, cmd, cenv in (
                (local_gd, gd_remote, ours, [str(BIN / "git-data"), "storage", "sync", "lab"], env),
                (local_rc, rc_remote, theirs, [rclone, "sync", str(local_rc), "bench:bkt/rc"], rc_env),
            ):
                touch_some(local, args.files, args.changed, offset=r * 7, tag=b"L%d" % r)
                touch_some(remote, args.files, args.changed, offset=r * 7 + 3, tag=b"R%d" % r)
                t = time.perf_counter()
                proc = subprocess.run(cmd, cwd=proj, env=cenv, capture_output=True, text=True)
                times.append(time.perf_counter() - t)
                if proc.returncode != 0:
                    raise SystemExit(f"{cmd[0]} failed: {proc.stderr[-2000:]}")
            # git data must have converged both ways
            for rel in ("d000/f00003.bin", f"d000/f{(r * 7) % args.files:05d}.bin"):
                assert (local_gd / rel).read_bytes() == (gd_remote / rel).read_bytes(), rel
            print(f"round {r + 1}: git data sync {ours[-1]:.2f} s, rclone sync {theirs[-1]:.2f} s")
        mo, mt = statistics.median(ours), statistics.median(theirs)
        ratios = [a / b for a, b in zip(ours, theirs)]
        print(f"median: git data storage sync {mo:.2f} s (two-way), rclone sync {mt:.2f} s (one-way)")
        print(f"ratio git data / rclone: {mo / mt:.2f} (median of per-round ratios {statistics.median(ratios):.2f});"
              " target <= 1.5")  # fmt: skip
    finally:
        srv.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
