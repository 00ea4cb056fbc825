"""Benchmark: reading through a dataset mount against `rclone cat` and a plain `rclone mount`.

One object of --size-mb (default 1024) and --files small files (default
10,000 x 4 KiB) on `rclone serve s3` (127.0.0.1), registered in a dataset
(nothing downloaded) and mounted with `git data dataset stage --mount`.
Same server, same run, alternating rounds, medians:

- sequential read of the object (1 MiB reads): dataset mount, the storage
  mount (`storage stage --mount`, rclone), a plain `rclone mount` and `rclone cat`
  (target: dataset mount >= 0.8x of `rclone cat`);
- time to first byte: open + read(1) through each mount (after the sequential
  reads), and the first MiB of each sequential read (a fresh dataset mount per
  round: its process's first open);
- `ls -lR` (the command) and os.walk + stat of the small files through the
  dataset mount and the plain rclone mount (target: <= 1.0x), then reading
  all of them (`cat`) through the dataset mount and the plain rclone mount;
- writing --write-mb (default 1024) through the storage mount until
  `git data unmount` returns (the bytes are in the bucket then), against
  `rclone rcat` of the same bytes;
- peak memory (VmHWM) of the mount processes.

    .venv/bin/python benchmarks/bench_mount.py [--size-mb 1024] [--files 10000] [--write-mb 1024] [--rounds 3]
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

from servers import RcloneS3Server, hermetic_server_env, rclone_binary  # noqa: E402

CHUNK = 1 << 20


def _run(cwd: Path, env: dict[str, str], *args: str) -> str:
    proc = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def _peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


FIRST: dict[str, list[float]] = {}  # seconds to the first MiB of each sequential read


def _read_all(path: Path, name: str = "") -> float:
    t = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        f.read(CHUNK)
        FIRST.setdefault(name, []).append(time.perf_counter() - t)
        while f.read(CHUNK):
            pass
    return time.perf_counter() - t


def _ttfb(path: Path) -> float:
    t = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        f.read(1)
    return time.perf_counter() - t


def _walk(root: Path) -> tuple[float, int]:
    t = time.perf_counter()
    n = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            os.stat(os.path.join(dirpath, name))
            n += 1
    return time.perf_counter() - t, n


def _ls_lr(root: Path) -> float:
    t = time.perf_counter()
    subprocess.run(["ls", "-lR", str(root)], stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t


def _cat_all(root: Path) -> float:
    t = time.perf_counter()
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            with open(os.path.join(dirpath, name), "rb") as f:
                f.read()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--write-mb", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path, help="write the results here too")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-mount-"))
    home = work / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = b\n\temail = b@example.com\n[init]\n\tdefaultBranch = main\n")
    env = hermetic_server_env(home, AWS_EC2_METADATA_DISABLED="true", AWS_DEFAULT_REGION="us-east-1")
    env["PATH"] = f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    srv = RcloneS3Server(workdir=work / "srv").start()
    proj = work / "proj"
    plain = work / "plain"
    plain_proc = None
    try:
        env.update(srv.env)
        bucket = srv.make_bucket("bench")
        served = srv.bucket_path(bucket)
        obj = served / "raw" / "big.bin"
        obj.parent.mkdir(parents=True)
        with open(obj, "wb") as f:
            for _ in range(args.size_mb):
                f.write(os.urandom(1 << 20))
        for i in range(args.files):
            d = served / "small" / f"d{i % 100:02d}"
            d.mkdir(parents=True, exist_ok=True)
            (d / f"f{i:06d}.bin").write_bytes(os.urandom(4096))
        srv.flush_dir_cache()
        proj.mkdir()
        _run(proj, env, "git", "init", "-q")
        _run(proj, env, "git", "data", "install")
        # rclone serve s3 hashes a whole object for each HEAD (its ETag): for 1 GiB on a loaded
        # machine that took over the default 30 s of retries (EIO at the first open)
        _run(proj, env, "git", "config", "gitdata.retryMaxTime", "300")
        for name in ("raw", "small"):
            _run(proj, env, "git", "data", "dataset", "create", name, "-o", f"endpoint_url={srv.endpoint}")
            _run(proj, env, "git", "data", "dataset", "add", name, f"s3://{bucket}/{name}")
        _run(proj, env, "git", "data", "storage", "add", "lab", f"s3://{bucket}", "-o", f"endpoint_url={srv.endpoint}")
        _run(proj, env, "git", "add", "-A")
        _run(proj, env, "git", "commit", "-qm", "register")
        t = time.perf_counter()
        _run(proj, env, "git", "data", "dataset", "stage", "raw", "--mount")
        mount_s = time.perf_counter() - t
        _run(proj, env, "git", "data", "dataset", "stage", "small", "--mount")
        _run(proj, env, "git", "data", "storage", "stage", "lab", "--mount")
        plain.mkdir()
        remote = f":s3,provider=Other,endpoint='{srv.endpoint}',env_auth=true:{bucket}"
        plain_proc = subprocess.Popen([str(rclone_binary()), "mount", remote, str(plain), "--config", os.devnull],
                                      env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 20
        while subprocess.run(["mountpoint", "-q", str(plain)]).returncode != 0:
            if time.monotonic() > deadline:
                raise SystemExit("the plain rclone mount did not come up")
            time.sleep(0.1)
        paths = {
            "dataset_mount": proj / "data" / "raw" / "big.bin",
            "storage_mount": proj / "storages" / "lab" / "raw" / "big.bin",
            "plain_rclone_mount": plain / "raw" / "big.bin",
        }

        def rclone_cat() -> float:
            t = time.perf_counter()
            subprocess.run([str(rclone_binary()), "cat", f":s3,provider=Other,endpoint='{srv.endpoint}',env_auth=true:"
                            f"{bucket}/raw/big.bin", "--config", os.devnull], env=env, check=True,
                           stdout=subprocess.DEVNULL)  # fmt: skip
            return time.perf_counter() - t

        table: dict[str, list[float]] = {}
        for r in range(args.rounds):
            order = list(paths.items()) + [("rclone_cat", None)]
            if r % 2:
                order.reverse()
            # a fresh dataset mount per round: it lets the kernel keep pages (kernel_cache), so a
            # second read in the same mount would measure the page cache
            _run(proj, env, "git", "data", "dataset", "stage", "raw", "--mount")
            for name, path in order:
                table.setdefault(f"seq_{name}", []).append(rclone_cat() if path is None else _read_all(path, name))
            for name, path in paths.items():
                table.setdefault(f"ttfb_{name}", []).append(_ttfb(path))
            walks = [("dataset_mount", proj / "data" / "small"), ("plain_rclone_mount", plain / "small")]
            if r % 2:
                walks.reverse()
            for name, root in walks:
                took, n = _walk(root)
                assert n == args.files, (name, n)
                table.setdefault(f"walk_{name}", []).append(took)
                table.setdefault(f"lslr_{name}", []).append(_ls_lr(root))
        cat_small = _cat_all(proj / "data" / "small")
        cat_small_plain = _cat_all(plain / "small")
        rows = {r["name"]: r for r in json.loads(_run(proj, env, "git", "data", "mount", "ls", "--json"))}
        peak_storage_read = _peak_mb(rows["lab"]["pid"])
        # writing through the storage mount: durable in the bucket when unmount returns
        t = time.perf_counter()
        block = os.urandom(CHUNK)
        with open(proj / "storages" / "lab" / "written.bin", "wb") as f:
            for _ in range(args.write_mb):
                f.write(block)
        write_close_s = time.perf_counter() - t
        peak_storage_write = _peak_mb(rows["lab"]["pid"])
        _run(proj, env, "git", "data", "unmount", "lab")
        write_s = time.perf_counter() - t
        assert (served / "written.bin").stat().st_size == args.write_mb * CHUNK
        t = time.perf_counter()
        with subprocess.Popen([str(rclone_binary()), "rcat", f":s3,provider=Other,endpoint='{srv.endpoint}',"
                               f"env_auth=true:{bucket}/rcat.bin", "--config", os.devnull], env=env,
                              stdin=subprocess.PIPE) as rc:  # fmt: skip
            assert rc.stdin is not None
            for _ in range(args.write_mb):
                rc.stdin.write(block)
            rc.stdin.close()
        rcat_s = time.perf_counter() - t
        med = {k: statistics.median(v) for k, v in table.items()}
        mb = (args.size_mb << 20) / 1e6
        results = {
            "size_mb": args.size_mb, "files": args.files, "rounds": args.rounds,
            "mount_s": round(mount_s, 2),
            **{f"seq_{n}_MBps": round(mb / med[f"seq_{n}"], 1)
               for n in ("dataset_mount", "storage_mount", "plain_rclone_mount", "rclone_cat")},
            "seq_dataset_mount_vs_rclone_cat": round(med["seq_rclone_cat"] / med["seq_dataset_mount"], 3),
            # the same reads without their first MiB (the mount process's first open: imports,
            # credentials, the storage client), against the whole `rclone cat` (its start included)
            **{f"first_mib_{n}_s": round(statistics.median(v), 3) for n, v in FIRST.items()},
            "seq_dataset_mount_after_first_mib_vs_rclone_cat": round(
                med["seq_rclone_cat"] / (med["seq_dataset_mount"] - statistics.median(FIRST["dataset_mount"]))
                * (args.size_mb - 1) / args.size_mb, 3),
            **{f"ttfb_{n}_s": round(med[f"ttfb_{n}"], 4) for n in paths},
            "walk_dataset_mount_s": round(med["walk_dataset_mount"], 3),
            "walk_plain_rclone_mount_s": round(med["walk_plain_rclone_mount"], 3),
            "walk_ratio": round(med["walk_dataset_mount"] / med["walk_plain_rclone_mount"], 3),
            "ls_lR_dataset_mount_s": round(med["lslr_dataset_mount"], 3),
            "ls_lR_plain_rclone_mount_s": round(med["lslr_plain_rclone_mount"], 3),
            "ls_lR_ratio": round(med["lslr_dataset_mount"] / med["lslr_plain_rclone_mount"], 3),
            "cat_all_small_dataset_mount_s": round(cat_small, 2),
            "cat_all_small_plain_rclone_mount_s": round(cat_small_plain, 2),
            "write_mb": args.write_mb,
            "write_storage_mount_until_closed_s": round(write_close_s, 2),
            "write_storage_mount_until_unmounted_s": round(write_s, 2),
            "write_storage_mount_MBps": round(args.write_mb * CHUNK / 1e6 / write_s, 1),
            "write_rclone_rcat_MBps": round(args.write_mb * CHUNK / 1e6 / rcat_s, 1),
            "peak_mb_dataset_mount_raw": _peak_mb(rows["raw"]["pid"]),
            "peak_mb_dataset_mount_small": _peak_mb(rows["small"]["pid"]),
            "peak_mb_storage_mount_reading": peak_storage_read,
            "peak_mb_storage_mount_after_write": peak_storage_write,
        }
    finally:
        subprocess.run(["git", "data", "unmount", "--all", "--force"], cwd=proj, env=env, capture_output=True)
        if plain_proc is not None:
            subprocess.run(["fusermount3", "-u", "-z", str(plain)], capture_output=True)
            plain_proc.wait(timeout=30)
        srv.stop()
    print(json.dumps(results, indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
