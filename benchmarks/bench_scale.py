"""Scale benchmark (issue 18): datasets of many small objects in one S3 prefix.

    .venv/bin/python benchmarks/bench_scale.py [--objects 100000[,N...]] [--threshold N]
        [--jobs 8] [--stage-max 100000] [--keep-going] [--json FILE]
    bash benchmarks/run.sh --scale [--objects 20000,100000]

For each N (``--objects``, default 100000; the issue's target size is
1,000,000, allowed but slow with per-file pointers), in one run so that the
ratios are fair on a shared, noisy machine:

- set-up (unmeasured): N objects of 100 bytes (distinct content), 1,000 per
  folder, written straight into the folder that one ``rclone serve s3`` on
  127.0.0.1 serves (on tmpfs: ``/dev/shm/...``).
- bare listings: ``rclone lsf -R`` of the prefix (an rclone remote from
  ``RCLONE_CONFIG_BENCH_*`` variables) and s3fs ``find`` of it (the client
  library git data uses, in a fresh ``python -c``), once before
  ``dataset add`` and once again before ``status --remote`` (each ratio is
  paired with the listing measured next to it; the faster one is the base).
- git data, in a fresh project (``git init``; ``git data install`` there,
  which writes the hermetic HOME's config): ``dataset create`` (unmeasured),
  ``git config gitdata.manifestThreshold N`` only with ``--threshold``,
  then measured: ``dataset add NAME s3://BUCKET/objects -o endpoint_url=...``;
  ``git commit``; ``git clone`` from a bare copy on disk (nothing staged:
  the clone keeps the pointers); ``git status`` in the clone twice (first,
  second); ``git data status --remote`` in the project; and for N <=
  ``--stage-max``: ``rclone copy`` of the prefix to a folder on the disk and
  ``git data dataset stage NAME`` (copy mode) in the clone, then ``git
  data storage add raw s3://BUCKET/objects --to raw`` (unmeasured) and
  ``git data storage stage raw`` in the project (a sync base recorded for
  every object), same ``--jobs``.

Every measured command runs under common.py's wrapper (wall time; peak RSS
of the largest descendant process), inside ``timeout --step-timeout``.
Credentials reach git data, s3fs and rclone through the environment
(``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, the server's key pair).
Prints a markdown table (step, N, seconds, peak MB, ratio, target, result)
and writes the figures to ``--json`` (default
benchmarks/results/scale-latest.json). The tmpfs folders and the work trees
are removed at the end, also after a failure. With ``--keep-going`` a step
that fails is recorded with its log tail and the others still run (steps
that need its result are recorded as skipped). Loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from common import ROOT, CommandFailed, measure, rmtree, run, setup_home, tool_version  # noqa: E402

from servers import RcloneS3Server, rclone_binary, venv_bin_dir  # noqa: E402

PER_FOLDER = 1000
OBJECT_SIZE = 100
PREFIX = "objects"
DATASET = "scale"
STORAGE = "raw"

# step key -> (title, base of its ratio, ratio target, absolute target seconds)
LISTINGS = ("rclone_lsf", "s3fs_find")
STEPS: dict[str, tuple[str, str | None, float | None, float | None]] = {
    "rclone_lsf": ("bare listing: rclone lsf -R", None, None, None),
    "s3fs_find": ("bare listing: s3fs find", None, None, None),
    "dataset_add": ("git data dataset add", "listing1", 1.5, None),
    "commit": ("git commit", None, None, 10.0),
    "clone": ("git clone (nothing staged)", None, None, 30.0),
    "status_first": ("git status in the clone (first)", None, None, 1.0),
    "status_second": ("git status in the clone (second)", None, None, 1.0),
    "rclone_lsf2": ("bare listing: rclone lsf -R (again)", None, None, None),
    "s3fs_find2": ("bare listing: s3fs find (again)", None, None, None),
    "status_remote": ("git data status --remote", "listing2", 1.3, None),
    "rclone_copy": ("rclone copy of the prefix", None, None, None),
    "dataset_stage": ("git data dataset stage (copy)", "rclone_copy", 1.2, None),
    "storage_stage": ("git data storage stage", "rclone_copy", 1.2, None),
}
GITDATA_STEPS = {"dataset_add", "commit", "clone", "status_first", "status_second", "status_remote",
                 "dataset_stage", "storage_stage"}
PEAK_TARGET_MB = 500.0


@dataclass
class Step:
    key: str
    status: str = "not run"  # ok | failed | skipped | not run
    seconds: float | None = None
    peak_mb: float | None = None
    error: str = ""
    log: str = ""
    note: str = ""


@dataclass
class SizeRun:
    n: int
    steps: dict[str, Step] = field(default_factory=dict)

    def ok(self, *keys: str) -> bool:
        return all(self.steps.get(k) is not None and self.steps[k].status == "ok" for k in keys)


class StopRun(Exception):
    """A step failed and --keep-going was not given."""


class Runner:
    def __init__(self, args, env: dict[str, str], logdir: Path) -> None:
        self.args = args
        self.env = env
        self.logdir = logdir

    def step(self, sr: SizeRun, key: str, cmd: str, cwd: Path, *, needs: tuple[str, ...] = (),
             check=None) -> Step:
        """Measure ``cmd`` (a shell string); ``check()`` runs after it and may raise."""
        st = Step(key)
        sr.steps[key] = st
        missing = [k for k in needs if not sr.ok(k)]
        if missing:
            st.status = "skipped"
            st.error = f"needs {', '.join(missing)}"
            print(f"  [{sr.n}] {key}: skipped ({st.error})", file=sys.stderr, flush=True)
            return st
        log = self.logdir / f"{sr.n}-{key}.log"
        log.write_text("")
        st.log = str(log)
        full = ["timeout", "-k", "10", str(self.args.step_timeout), "sh", "-ec", cmd]
        try:
            m = measure(full, cwd=cwd, env=self.env, log=log)
            st.seconds, st.peak_mb = m.seconds, m.peak_mb
            if check is not None:
                note = check()
                if note:
                    st.note = note
            st.status = "ok"
        except (CommandFailed, AssertionError, OSError) as err:
            st.status = "failed"
            text = str(err)
            if isinstance(err, CommandFailed):  # "CMD in CWD exited with RC:\nLOG TAIL"
                head, _, tail = text.partition(":\n")
                code = head.rsplit("exited with ", 1)[-1]
                why = f"exited with {code}" + (f" (timed out after {self.args.step_timeout} s)"
                                               if code == "124" else "")
                text = f"{why}; log {log}\n{tail}"
            st.error = text[-3000:]
            print(f"  [{sr.n}] {key}: FAILED: {st.error}", file=sys.stderr, flush=True)
            if not self.args.keep_going:
                raise StopRun(key) from err
            return st
        print(f"  [{sr.n}] {key}: {st.seconds:.2f} s, {st.peak_mb:.0f} MB {st.note}", file=sys.stderr,
              flush=True)
        return st


def write_objects(base: Path, n: int) -> int:
    """N distinct 100-byte objects under ``base``, PER_FOLDER per folder; returns the bytes."""
    total = 0
    for d in range((n + PER_FOLDER - 1) // PER_FOLDER):
        folder = base / f"d{d:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(d * PER_FOLDER, min(n, (d + 1) * PER_FOLDER)):
            head = f"object {i:09d} of the scale benchmark; "
            data = (head + f"{(i * 2654435761) % (1 << 32):010d}" * 10)[: OBJECT_SIZE - 1] + "\n"
            with open(folder / f"f{i:07d}.txt", "w") as f:
                f.write(data)
            total += len(data)
    return total


def count_files(root: Path) -> tuple[int, int]:
    """Files and bytes under ``root`` (a dataset manifest's own pointer file is not one of its files)."""
    files = size = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            if name == ".gitdata-manifest":
                continue
            files += 1
            size += os.lstat(os.path.join(dirpath, name)).st_size
    return files, size


def count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def one_size(runner: Runner, server: RcloneS3Server, sr: SizeRun, work: Path) -> None:
    args = runner.args
    env = runner.env
    n = sr.n
    base = work / f"n{n}"
    rmtree(base)
    base.mkdir(parents=True)
    bucket = server.make_bucket(f"scale-{n}")
    rclone = str(rclone_binary())
    url = f"s3://{bucket}/{PREFIX}"
    jobs = args.jobs
    try:
        t0 = time.perf_counter()
        total = write_objects(server.bucket_path(bucket) / PREFIX, n)
        server.flush_dir_cache()
        print(f"  [{n}] set-up: {n:,} objects, {total:,} bytes in {time.perf_counter() - t0:.1f} s",
              file=sys.stderr, flush=True)
        # warm-up (unmeasured): the first listing after writing reads the folders cold
        run(f"{rclone} lsf -R --files-only bench:{bucket}/{PREFIX} >/dev/null", cwd=base, env=env)

        def listings(suffix: str) -> None:
            out = base / f"lsf{suffix}.txt"
            runner.step(sr, f"rclone_lsf{suffix}", f"{rclone} lsf -R --files-only bench:{bucket}/{PREFIX} > {out}",
                        base, check=lambda: _expect(count_lines(out), n, "rclone lsf lines"))
            if args.no_s3fs:  # rclone's listing is the faster one: the ratios are against it anyway
                return
            out2 = base / f"find{suffix}.txt"
            code = ("import os, s3fs; fs = s3fs.S3FileSystem(endpoint_url=os.environ['BENCH_ENDPOINT']); "
                    f"print(len(fs.find('{bucket}/{PREFIX}')))")
            runner.step(sr, f"s3fs_find{suffix}", f"python -c \"{code}\" > {out2}", base,
                        check=lambda: _expect(int(out2.read_text().strip() or 0), n, "s3fs find count"))

        listings("")

        proj = base / "project"
        proj.mkdir()
        run("git init -q && git data install >/dev/null && git commit -q --allow-empty -m init",
            cwd=proj, env=env)
        # a data remote on the disk: a manifest (above the threshold) is pushed like data
        run(["git", "data", "remote", "add", "store", (base / "data-remote").as_uri()], cwd=proj, env=env)
        run(["git", "data", "dataset", "create", DATASET, "--title", f"{n} small objects"], cwd=proj, env=env)
        if args.threshold is not None:
            run(["git", "config", "gitdata.manifestThreshold", str(args.threshold)], cwd=proj, env=env)
        dsdir = proj / "data" / DATASET
        # above gitdata.manifestThreshold the dataset is recorded by one manifest (docs/spec.md)
        limit = args.threshold if args.threshold is not None else _default_threshold()
        per_file = not limit or n <= limit

        def added() -> str:
            if per_file:
                return _expect(count_files(dsdir)[0], n, "files in the dataset folder")
            _expect(sorted(os.listdir(dsdir)), [".gitdata-manifest"], "the dataset folder")
            listed = subprocess.run(["git", "data", "ls-files", "--offline", "--json"], cwd=proj, env=env,
                                    capture_output=True, check=True).stdout
            return _expect(len(json.loads(listed)) - 1, n, "files its manifest records")

        runner.step(sr, "dataset_add",
                    f"git data dataset add {DATASET} {url} -o endpoint_url={server.endpoint} >/dev/null",
                    proj, check=added)
        runner.step(sr, "commit", "git commit -q -m x", proj, needs=("dataset_add",),
                    check=lambda: _expect(_tracked(proj, env), (n if per_file else 1) + 2,
                                          "files in HEAD (+.gitdata, .gitattributes)"))

        bare = base / "project.git"
        clone = base / "clone"
        if sr.ok("commit"):  # a push runs the pre-push hook (it uploads a manifest to the data remote)
            run(["git", "init", "-q", "--bare", str(bare)], cwd=base, env=env)
            run(["git", "push", "-q", str(bare), "HEAD:refs/heads/main"], cwd=proj, env=env)
            run(["git", "symbolic-ref", "HEAD", "refs/heads/main"], cwd=bare, env=env)
        runner.step(sr, "clone", f"git clone -q file://{bare} {clone}", base, needs=("commit",),
                    check=lambda: _check_clone(clone, n if per_file else None, env))
        status_out = base / "status.txt"

        def clean_status() -> str:
            text = status_out.read_text()
            return "" if not text.strip() else f"(not clean: {len(text.splitlines())} lines)"

        for key in ("status_first", "status_second"):
            runner.step(sr, key, f"git status --porcelain > {status_out}", clone, needs=("clone",),
                        check=clean_status)

        listings("2")
        runner.step(sr, "status_remote", "git data status --remote >/dev/null", proj, needs=("commit",))

        if n <= args.stage_max:
            dest = base / "rclone-copy"
            runner.step(sr, "rclone_copy",
                        f"{rclone} copy --transfers {jobs} --checkers {jobs} bench:{bucket}/{PREFIX} {dest}",
                        base, check=lambda: _expect(count_files(dest), (n, total), "files, bytes copied"))
            runner.step(sr, "dataset_stage", f"git data dataset stage {DATASET} --jobs {jobs} >/dev/null",
                        clone, needs=("clone",),
                        check=lambda: _expect(count_files(clone / "data" / DATASET), (n, total),
                                              "files, bytes staged"))
            # the same prefix as a storage (a bucket folder synced both ways), staged by copy
            run(["git", "data", "storage", "add", STORAGE, url, "--to", STORAGE, "--no-check",
                 "-o", f"endpoint_url={server.endpoint}"], cwd=proj, env=env)
            runner.step(sr, "storage_stage", f"git data storage stage {STORAGE} --jobs {jobs} >/dev/null",
                        proj, check=lambda: _expect(count_files(proj / STORAGE), (n, total),
                                                    "files, bytes staged"))
    finally:
        rmtree(base)
        server.delete_bucket(bucket)


def _default_threshold() -> int:
    sys.path.insert(0, str(ROOT / "src"))
    from gitdata.settings import SETTINGS

    return int(next(s.default for s in SETTINGS if s.key == "gitdata.manifestThreshold"))


def _expect(got, want, what: str) -> str:
    """Raise unless ``got == want``; '' (no note) otherwise."""
    if got != want:
        raise AssertionError(f"{what}: {got}, expected {want}")
    return ""


def _check_clone(clone: Path, n: int | None, env: dict[str, str]) -> str:
    """The clone has the git data filter and (``n`` given) N pointer files (nothing staged)."""
    filt = subprocess.run(["git", "config", "--get", "filter.s3data.process"], cwd=clone, env=env,
                          capture_output=True, text=True).stdout.strip()
    if not filt:
        raise AssertionError("the clone has no git data filter (filter.s3data.process is not set)")
    if n is None:  # one manifest: its pointer, left as it is
        _expect(sorted(os.listdir(clone / "data" / DATASET)), [".gitdata-manifest"], "the clone's dataset folder")
        return ""
    _expect(count_files(clone / "data" / DATASET)[0], n, "files in the clone")
    first = next((clone / "data" / DATASET).glob("*/*"))
    if not first.read_bytes().startswith(b"version gitdata/"):
        raise AssertionError(f"{first} is not a pointer file")
    return ""


def _tracked(repo: Path, env: dict[str, str]) -> int:
    out = subprocess.run(["git", "ls-tree", "-r", "--name-only", "-z", "HEAD"], cwd=repo, env=env,
                         capture_output=True, check=True).stdout
    return out.count(b"\0")


# -- the table -------------------------------------------------------------------


def rows_for(sr: SizeRun) -> list[dict]:
    rows = []
    for key, (title, base, ratio_target, abs_target) in STEPS.items():
        st = sr.steps.get(key)
        if st is None:
            continue
        row = {"step": key, "title": title, "n": sr.n, "status": st.status, "seconds": st.seconds,
               "peak_mb": st.peak_mb, "ratio": None, "ratio_base": None, "ratios": {}, "target": "",
               "pass": None, "note": st.note, "error": st.error, "log": st.log}
        checks: list[bool] = []
        targets: list[str] = []
        if base is not None:
            bases = {"listing1": LISTINGS, "listing2": tuple(k + "2" for k in LISTINGS)}.get(base, (base,))
            for b in bases:
                bst = sr.steps.get(b)
                if st.status == "ok" and bst is not None and bst.status == "ok" and bst.seconds:
                    row["ratios"][b] = st.seconds / bst.seconds
            if row["ratios"]:
                best = min(row["ratios"], key=lambda b: sr.steps[b].seconds)
                row["ratio"], row["ratio_base"] = row["ratios"][best], best
                checks.append(row["ratio"] <= ratio_target)
            targets.append(f"<= {ratio_target}x")
        if abs_target is not None:
            targets.append(f"<= {abs_target:g} s")
            if st.status == "ok":
                checks.append(st.seconds <= abs_target)
        if key in GITDATA_STEPS:
            targets.append(f"<= {PEAK_TARGET_MB:.0f} MB")
            if st.status == "ok":
                checks.append(st.peak_mb <= PEAK_TARGET_MB)
        row["target"] = ", ".join(targets)
        if st.status == "ok" and checks:
            row["pass"] = all(checks)
        rows.append(row)
    return rows


def _short(key: str) -> str:
    return STEPS[key][0].split(": ")[-1].replace(" (again)", "").replace(" of the prefix", "")


def table(rows: list[dict]) -> str:
    lines = ["| step | N | seconds | peak MB | ratio | target | result |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        if r["status"] != "ok":
            why = r["error"].splitlines()[0].split("; log ")[0][:100] if r["error"] else ""
            lines.append(f"| {r['title']} | {r['n']:,} | {r['status']} | - | - | {r['target']} | {why} |")
            continue
        ratio = "-"
        if r["ratio"] is not None:  # the judged one (of the faster base) first, then the others
            order = [r["ratio_base"], *(b for b in r["ratios"] if b != r["ratio_base"])]
            ratio = "; ".join(f"{r['ratios'][b]:.2f} of {_short(b)}" for b in order)
        result = {True: "pass", False: "miss", None: ""}[r["pass"]]
        if r["note"]:
            result = f"{result} {r['note']}".strip()
        lines.append(f"| {r['title']} | {r['n']:,} | {r['seconds']:.2f} | {r['peak_mb']:.0f} | {ratio} | "
                     f"{r['target']} | {result} |")
    return "\n".join(lines)


# -- main ------------------------------------------------------------------------


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--objects takes numbers separated by commas, not {text!r}") from None
    if not sizes or any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError("--objects takes positive numbers")
    return sizes


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def _on_signal(signum, _frame):
    raise SystemExit(128 + signum)  # run the finally blocks: tmpfs and work trees are removed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=_sizes, default=[100_000],
                    help="object counts, comma-separated (default 100000; the issue's target is 1000000)")
    ap.add_argument("--threshold", type=int, help="run `git config gitdata.manifestThreshold N` before dataset add")
    ap.add_argument("--jobs", type=int, default=8, help="--jobs of dataset stage, --transfers of rclone copy")
    ap.add_argument("--stage-max", type=int, default=100_000,
                    help="measure dataset stage and rclone copy only up to this many objects")
    ap.add_argument("--step-timeout", type=int, default=3600, help="seconds before a measured step is killed")
    ap.add_argument("--no-s3fs", action="store_true",
                    help="skip the s3fs find listings (200 s each at 1,000,000 objects; rclone lsf stays)")
    ap.add_argument("--keep-going", action="store_true", help="record a failed step and run the others")
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "scale")
    ap.add_argument("--server-dir", type=Path, default=Path("/dev/shm") / f"gitdata-bench-scale-{os.getpid()}",
                    help="the folder rclone serves (default on tmpfs)")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "scale-latest.json")
    args = ap.parse_args(argv)

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    shm = args.server_dir.resolve()
    logdir = work / "logs"
    result: dict = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "argv": sys.argv[1:],
        "uptime_start": _uptime(),
        "cpus": os.cpu_count(),
        "machine": platform.platform(),
        "object_size": OBJECT_SIZE,
        "per_folder": PER_FOLDER,
        "threshold": args.threshold,
        "jobs": args.jobs,
        "rows": [],
    }
    server = None
    rc = 0
    try:
        rmtree(shm)
        shm.mkdir(parents=True)
        rmtree(logdir)
        logdir.mkdir(parents=True)
        env = setup_home(work / "home", [])
        # the interpreter running this script is the project's venv (ROOT/.venv may not exist in a worktree)
        env["PATH"] = os.pathsep.join([str(venv_bin_dir()), env["PATH"]])
        # measure the code of this checkout, whichever checkout the venv was installed from
        env["PYTHONPATH"] = str(ROOT / "src")
        server = RcloneS3Server(data_dir=shm / "data", workdir=shm / "server")
        env.update(
            AWS_DEFAULT_REGION="us-east-1",
            GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT="false",
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
            RCLONE_CONFIG=str(work / "home" / "rclone.conf"),  # empty: the remote comes from the variables
            RCLONE_CONFIG_BENCH_TYPE="s3",
            RCLONE_CONFIG_BENCH_PROVIDER="Other",
            RCLONE_CONFIG_BENCH_ENDPOINT=server.endpoint,
            RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=server.key,
            RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=server.secret,
            RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE="true",
            BENCH_ENDPOINT=server.endpoint,
            **server.env,
        )
        (work / "home" / "rclone.conf").touch()
        server.start()
        result["versions"] = {
            "git data": tool_version(["git", "data", "--version"], env),
            "git": tool_version(["git", "--version"], env),
            "rclone": tool_version([str(rclone_binary()), "version"], env),
            "s3fs": tool_version(["python", "-c", "import s3fs; print(s3fs.__version__)"], env),
        }
        result["gitdata_module"] = tool_version(["python", "-c", "import gitdata; print(gitdata.__file__)"], env)
        result["commit"] = tool_version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], env)
        runner = Runner(args, env, logdir)
        for n in args.objects:
            print(f"N = {n:,}", file=sys.stderr, flush=True)
            sr = SizeRun(n)
            try:
                one_size(runner, server, sr, work)
            except StopRun as stop:
                print(f"stopped after the failed step {stop} (--keep-going runs the others)", file=sys.stderr)
                break
            finally:
                result["rows"].extend(rows_for(sr))
                if any(s.status == "failed" for s in sr.steps.values()):
                    rc = 1
    finally:
        if server is not None:
            server.close()
        rmtree(shm)
        result["uptime_end"] = _uptime()
        result["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{result['started']} - {result['finished']}; {result.get('versions', {}).get('git data')} "
          f"({result.get('commit')}); {result['cpus']} CPUs; load at start: "
          f"{result['uptime_start'].split('load average:')[-1].strip()}, at end: "
          f"{result['uptime_end'].split('load average:')[-1].strip()}"
          + (f"; gitdata.manifestThreshold={args.threshold}" if args.threshold is not None else ""))
    print()
    print(table(result["rows"]))
    return rc


if __name__ == "__main__":
    sys.exit(main())
