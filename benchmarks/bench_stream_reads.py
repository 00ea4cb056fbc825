"""Benchmark: how a dataset mount should read a large S3 object, against `rclone cat`.

One object of --size-mb on `rclone serve s3` (127.0.0.1). Same server, same
run, alternating rounds, MB/s and the ratio to `rclone cat`:

- `rclone cat` (one GET, Go);
- one streaming GET read in 1 MiB pieces (`gitdata.storage.stream.StreamFile`,
  what a dataset mount does since issue 14);
- s3fs's readahead cache with 16 MiB and 64 MiB blocks (one range request per
  block: what a dataset mount did before; 16 MiB was its cap).

    .venv/bin/python benchmarks/bench_stream_reads.py [--size-mb 256] [--rounds 3] [--json FILE]
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from servers import RcloneS3Server, rclone_binary  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    import s3fs

    from gitdata.storage.stream import StreamFile, stream_opener

    work = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    srv = RcloneS3Server(workdir=work / "srv").start()
    try:
        os.environ.update(srv.env)
        bucket = srv.make_bucket("bench")
        with open(srv.bucket_path(bucket) / "big.bin", "wb") as f:
            for _ in range(args.size_mb):
                f.write(os.urandom(1 << 20))
        srv.flush_dir_cache()
        fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": srv.endpoint}, skip_instance_cache=True)
        path = f"{bucket}/big.bin"
        size = args.size_mb << 20

        def rclone_cat() -> float:
            t = time.perf_counter()
            subprocess.run([str(rclone_binary()), "cat", f":s3,provider=Other,endpoint='{srv.endpoint}',"
                            f"env_auth=true:{path}", "--config", os.devnull], check=True,
                           stdout=subprocess.DEVNULL)  # fmt: skip
            return time.perf_counter() - t

        def stream() -> float:
            t = time.perf_counter()
            n = 0
            with StreamFile(stream_opener(fs, path, {})).start() as f:  # type: ignore[arg-type]
                while chunk := f.read(1 << 20):
                    n += len(chunk)
            assert n == size
            return time.perf_counter() - t

        def ranges(block: int) -> float:
            t = time.perf_counter()
            with fs.open(path, "rb", block_size=block, cache_type="readahead") as f:
                while f.read(1 << 20):
                    pass
            return time.perf_counter() - t

        runs = [("rclone_cat", rclone_cat), ("stream", stream), ("ranges_16MiB", lambda: ranges(16 << 20)),
                ("ranges_64MiB", lambda: ranges(64 << 20))]  # fmt: skip
        table: dict[str, list[float]] = {}
        for r in range(args.rounds):
            for name, fn in runs if r % 2 == 0 else list(reversed(runs)):
                table.setdefault(name, []).append(fn())
        mb = size / 1e6
        med = {k: statistics.median(v) for k, v in table.items()}
        results = {"size_mb": args.size_mb, "rounds": args.rounds,
                   **{f"{k}_MBps": round(mb / v, 1) for k, v in med.items()},
                   **{f"{k}_vs_rclone_cat": round(med["rclone_cat"] / v, 3) for k, v in med.items() if k != "rclone_cat"},
                   "load": round(os.getloadavg()[0], 1)}  # fmt: skip
    finally:
        srv.stop()
    print(json.dumps(results, indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
