"""Benchmark: `git data status --remote` with 100 recorded runs vs the same status without runs.

A dataset of 10,000 objects is registered from moto (S3 on 127.0.0.1, in
this process) and staged by reference. One run is recorded with `git data
run` (input: the whole dataset); 99 more records are made from it, each
reading the whole dataset and the previous run's output (a 100-step chain,
so staleness propagates through every run), each with an output of its own.
Rounds alternate with and without `.gitdata-runs/` (moved aside); prints the
medians, the ratio (target: at most 1.2) and the LIST requests of each kind
of round (the runs must add none: one listing per prefix, not per run).

    .venv/bin/python benchmarks/bench_provenance.py [--objects 10000] [--runs 100] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import logging
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

from servers import MotoServer, hermetic_server_env  # noqa: E402

BIN = ROOT / ".venv" / "bin"


def seed(srv: MotoServer, bucket: str, n: int) -> None:
    """Objects straight into moto's store (10,000 PUTs over HTTP cost minutes on a loaded machine)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
    for i in range(n):
        backend.put_object(bucket, f"big/part{i % 50:02d}/obj-{i:05d}.dat", f"object {i}\n".encode())


def gd(proj: Path, env: dict[str, str], *args: str) -> str:
    proc = subprocess.run([str(BIN / "git-data"), *args], cwd=proj, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"git data {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout


def make_runs(proj: Path, env: dict[str, str], runs: int) -> None:
    (proj / "results").mkdir()
    gd(proj, env, "run", "-n", "r0", "-i", "big", "-o", "results/r0.txt", "--",
       sys.executable, "-c", "open('results/r0.txt', 'w').write('result')")  # fmt: skip
    first = json.loads((proj / ".gitdata-runs/r0.json").read_text())
    out_identity = first["outputs"][0]["identity"]
    for i in range(1, runs):
        rec = dict(first, name=f"r{i}")
        rec["inputs"] = [first["inputs"][0], {"path": f"results/r{i - 1}.txt", "kind": "file", "identity": out_identity}]
        rec["outputs"] = [{"path": f"results/r{i}.txt", "kind": "file", "identity": out_identity}]
        (proj / f".gitdata-runs/r{i}.json").write_text(json.dumps(rec, indent=2, sort_keys=True) + "\n")
        (proj / f"results/r{i}.txt").write_text("result")
    subprocess.run(["git", "add", "-A"], cwd=proj, env=env, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "runs"], cwd=proj, env=env, check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--keep", action="store_true", help="keep the work folder (to profile in it)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-prov-"))
    home = work / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = b\n\temail = b@example.com\n[init]\n\tdefaultBranch = main\n")
    env = hermetic_server_env(home, AWS_EC2_METADATA_DISABLED="true", AWS_DEFAULT_REGION="us-east-1")
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', os.environ['PATH'])}"
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto logs every request
    srv = MotoServer().start()
    try:
        env.update(srv.env)
        srv.make_bucket("bkt")
        seed(srv, "bkt", args.objects)
        proj = work / "proj"
        proj.mkdir()
        subprocess.run(["git", "init", "-q"], cwd=proj, env=env, check=True)
        gd(proj, env, "install", "--local")
        gd(proj, env, "track", "results/**")
        t = time.perf_counter()
        gd(proj, env, "dataset", "add", "big", "s3://bkt/big", "--create", "-o", f"endpoint_url={srv.endpoint}",
           "-o", "version_aware=false")  # fmt: skip
        gd(proj, env, "dataset", "stage", "big", "--reference")
        subprocess.run(["git", "commit", "-q", "-m", "register"], cwd=proj, env=env, check=True)
        print(f"registered {args.objects} objects in {time.perf_counter() - t:.1f} s")
        make_runs(proj, env, args.runs)
        rows = json.loads(gd(proj, env, "status", "--remote", "--json"))
        runs = [r for r in rows if r["section"] == "runs"]
        assert len(runs) == args.runs and all(r["local"] == "up to date" and r["remote"] == "unchanged" for r in runs), runs[:3]
        records, aside = proj / ".gitdata-runs", work / "runs-aside"
        times: dict[str, list[float]] = {"with runs": [], "without runs": []}
        lists: dict[str, int] = {}
        for _ in range(args.rounds):
            for kind in ("without runs", "with runs"):
                if kind == "without runs":
                    shutil.move(str(records), str(aside))
                srv.reset_counts()
                t = time.perf_counter()
                gd(proj, env, "status", "--remote", "--json")
                times[kind].append(time.perf_counter() - t)
                lists[kind] = srv.counts("bkt")["LIST"]
                if kind == "without runs":
                    shutil.move(str(aside), str(records))
        med = {k: statistics.median(v) for k, v in times.items()}
        ratio = med["with runs"] / med["without runs"]
        print(f"git data status --remote, {args.objects} registered objects, median of {args.rounds}:")
        for k in ("without runs", "with runs"):
            print(f"  {k:13s} {med[k]:.2f} s  ({lists[k]} LIST requests)")
        print(f"  ratio {ratio:.2f} (target <= 1.2): {'pass' if ratio <= 1.2 else 'FAIL'}")
    finally:
        srv.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
