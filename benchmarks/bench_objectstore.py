"""Benchmark push and clone (data included) through a real S3 server.

    .venv/bin/python benchmarks/bench_objectstore.py [--only small|big] [--repeat N]
        [--tools gitdata,rclone,dvc,annex] [--server-dir DIR] [--json FILE]

One ``rclone serve s3`` on 127.0.0.1 (its folder on tmpfs by default:
``--server-dir /dev/shm/...``, so the server's disk is not the limit) holds
every tool's data; work trees live on the disk under ``benchmarks/work/``.
For each data set of benchmarks/common.py (10,000 x 4 KiB, one 1 GiB file)
and each repeat, the tools run one after the other (the order rotates):

- git data: data remote ``s3://BUCKET/gd`` (``endpoint_url`` option);
  push is ``git push`` to a bare repository on tmpfs (the pre-push hook
  uploads), clone is ``git clone`` (the filter downloads).
- ``rclone copy`` of the same files to ``BUCKET/rc`` and back to a new folder
  (no git at all: the practical limit of the server and the network path).
- DVC with an S3 remote (``dvc-s3``, ``endpointurl``): ``dvc push && git
  push``; ``git clone && dvc pull``.
- git-annex's S3 special remote (``host=127.0.0.1 port=P protocol=http
  requeststyle=path encryption=none``): ``git annex copy --to s3 -J N && git
  push``; ``git clone && git annex init && git annex enableremote s3 && git
  annex get -J N``.

Add+commit is set-up here (unmeasured; benchmarks/run.py measures it).
Every measured command runs under common.py's wrapper (wall time, peak RSS of
the largest process). Prints one table of medians and the ratios git data /
best of DVC and git-annex, git data / rclone copy, per repeat paired.
Loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from common import (  # noqa: E402
    ROOT,
    CommandFailed,
    Scenario,
    build_dataset,
    link_tree,
    measure,
    rmtree,
    run,
    scenarios,
    setup_home,
    tool_version,
)

from servers import RcloneS3Server, rclone_binary  # noqa: E402

OPS = ("push", "clone")
JOBS = 8  # the parallelism given to the peers that take one (git-annex -J, rclone --transfers)


class S3Tool:
    """One tool's push and clone against the shared S3 server."""

    name = ""
    key = ""

    def __init__(self, server: RcloneS3Server, jobs: int) -> None:
        self.server = server
        self.jobs = jobs

    def available(self, env: dict[str, str]) -> tuple[bool, str]:
        return True, ""

    def setup(self, sc: Scenario, src: Path, bare: Path, bucket: str, env: dict[str, str], log: Path) -> None:
        """Make ``src`` (data already linked in) ready to push; commit the data."""
        raise NotImplementedError

    def push(self, bucket: str) -> str:
        return "git push -q origin main"

    def clone(self, bare: Path, bucket: str) -> str:
        return f"git clone -q file://{bare} clone"


def _git_init(src: Path, bare: Path, env: dict[str, str], log: Path) -> None:
    run(["git", "init", "-q", "--bare", str(bare)], cwd=bare.parent, env=env, log=log)
    run(["git", "init", "-q", str(src)], cwd=src.parent, env=env, log=log)
    run(["git", "remote", "add", "origin", f"file://{bare}"], cwd=src, env=env, log=log)


class GitDataS3(S3Tool):
    name = "git data"
    key = "gitdata"

    def available(self, env):
        v = tool_version(["git", "data", "--version"], env)
        return (v is not None, v or "git data is not installed in .venv (run scripts/setup.sh)")

    def setup(self, sc, src, bare, bucket, env, log):
        _git_init(src, bare, env, log)
        run(
            f"git data install --local >/dev/null && git data track '{sc.pattern}' && "
            f"git data remote add store s3://{bucket}/gd -o endpoint_url={self.server.endpoint} --default && "
            f"git config gitdata.jobs {self.jobs} && "
            "git add -A && git commit -q -m data",
            cwd=src, env=env, log=log,
        )

    def clone(self, bare, bucket):
        return f"git -c gitdata.jobs={self.jobs} clone -q file://{bare} clone"


class RcloneCopy(S3Tool):
    """``rclone copy`` to and from the bucket: no git, no hashing beyond rclone's own."""

    name = "rclone copy"
    key = "rclone"

    def remote_env(self) -> dict[str, str]:
        return {
            "RCLONE_CONFIG_BENCH_TYPE": "s3",
            "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
            "RCLONE_CONFIG_BENCH_ENDPOINT": self.server.endpoint,
            "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": self.server.key,
            "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": self.server.secret,
            "RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE": "true",
        }

    def setup(self, sc, src, bare, bucket, env, log):
        env.update(self.remote_env())

    def push(self, bucket):
        return f"{rclone_binary()} copy --transfers {self.jobs} src bench:{bucket}/rc"

    def clone(self, bare, bucket):
        return f"{rclone_binary()} copy --transfers {self.jobs} bench:{bucket}/rc clone"


class DvcS3(S3Tool):
    name = "DVC"
    key = "dvc"

    def available(self, env):
        v = tool_version(["dvc", "--version"], env)
        if v is None:
            return False, "dvc is not installed (pip extra `bench`)"
        try:
            run(["python", "-c", "import dvc_s3"], cwd=ROOT, env=env)
        except CommandFailed:
            return False, "dvc-s3 is not installed (pip extra `bench`)"
        return True, f"dvc {v}"

    def setup(self, sc, src, bare, bucket, env, log):
        _git_init(src, bare, env, log)
        run(
            f"dvc init -q && dvc remote add -d store s3://{bucket}/dvc && "
            f"dvc remote modify store endpointurl {self.server.endpoint} && "
            "dvc remote modify store read_timeout 600 && "  # see docs/benchmarks.md: rclone hashes per request
            f"dvc add -q {sc.dvc_target} && git add -A && git commit -q -m data",
            cwd=src, env=env, log=log,
        )

    def push(self, bucket):
        return "dvc push && git push -q origin main"

    def clone(self, bare, bucket):
        return f"git clone -q file://{bare} clone && cd clone && dvc pull"


class AnnexS3(S3Tool):
    name = "git-annex"
    key = "annex"

    def available(self, env):
        if self.server.port != 80:
            return False, "git-annex's S3 signatures only match on port 80 (run as root, port 80 free)"
        v = tool_version(["git", "annex", "version", "--raw"], env)
        return (v is not None, f"git-annex {v}" if v else "git-annex is not installed (Debian package git-annex)")

    def setup(self, sc, src, bare, bucket, env, log):
        _git_init(src, bare, env, log)
        run(
            "git annex init -q bench-src && "
            "git annex initremote s3 type=S3 host=127.0.0.1 port=80 protocol=http "
            f"requeststyle=path encryption=none bucket={bucket} fileprefix=annex/ signature=v4 >/dev/null && "
            "git annex add --quiet . && git commit -q -m data",
            cwd=src, env=env, log=log,
        )

    def push(self, bucket):
        return f"git annex copy --quiet -J {self.jobs} --to s3 . && git push -q origin main git-annex"

    def clone(self, bare, bucket):
        return (
            f"git clone -q file://{bare} clone && cd clone && git annex init -q bench-clone && "
            f"git annex enableremote s3 >/dev/null && git annex get --quiet -J {self.jobs} --from s3 ."
        )


TOOLS = {t.key: t for t in (GitDataS3, RcloneCopy, DvcS3, AnnexS3)}


def _check_clone(sc: Scenario, clone: Path) -> None:
    for rel, size in sc.files:
        got = os.stat(clone / rel).st_size  # follows git-annex symlinks
        if got != size:
            raise CommandFailed(f"clone has {rel} of {got} bytes, expected {size}")


def one_repeat(tool: S3Tool, sc: Scenario, data: Path, work: Path, shm: Path, env, log: Path, n: int) -> dict:
    base = work / "runs" / sc.key / tool.key
    rmtree(base)
    base.mkdir(parents=True)
    bare = shm / "git" / f"{sc.key}-{tool.key}.git"
    rmtree(bare)
    bare.parent.mkdir(parents=True, exist_ok=True)
    bucket = tool.server.make_bucket(f"b-{sc.key}-{tool.key}-{n}")
    src = base / "src"
    env = dict(env)
    out: dict[str, tuple[float, float]] = {}
    try:
        src.mkdir()
        link_tree(data, src)
        tool.setup(sc, src, bare, bucket, env, log)
        m = measure(tool.push(bucket), cwd=src if tool.key != "rclone" else base, env=env, log=log)
        out["push"] = (m.seconds, m.peak_mb)
        m = measure(tool.clone(bare, bucket), cwd=base, env=env, log=log)
        out["clone"] = (m.seconds, m.peak_mb)
        _check_clone(sc, base / "clone")
    finally:
        rmtree(base)
        rmtree(bare)
        tool.server.delete_bucket(bucket)
    return out


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", choices=("small", "big"), help="data set (repeatable)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--tools", default="gitdata,rclone,dvc,annex")
    ap.add_argument("--jobs", type=int, default=JOBS, help="parallel transfers for every tool that takes a number")
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "objstore")
    ap.add_argument("--server-dir", type=Path, default=Path("/dev/shm") / f"gitdata-bench-s3-{os.getpid()}",
                    help="the folder rclone serves (default on tmpfs)")
    ap.add_argument("--port", type=int, help="the server's port (default 80 when git-annex runs, else any)")
    ap.add_argument("--quick", action="store_true", help="tiny data sets (a smoke test)")
    ap.add_argument("--json", type=Path, help="write the samples here")
    args = ap.parse_args(argv)

    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    shm = args.server_dir.resolve()
    rmtree(shm)
    shm.mkdir(parents=True)
    keys = [k.strip() for k in args.tools.split(",") if k.strip()]
    # git-annex signs the Host header without the port (SignatureDoesNotMatch on
    # any other port than 80 with rclone's server, seen with 10.20230126): the
    # one server for every tool listens on 80 when git-annex is compared
    port = args.port if args.port is not None else (80 if "annex" in keys and _port_free(80) else None)
    server = RcloneS3Server(data_dir=shm / "data", workdir=shm / "server", port=port)
    tools = [TOOLS[k](server, args.jobs) for k in keys]
    # git-annex refuses loopback addresses unless allowed
    env = setup_home(work / "home", [], {"annex.security.allowed-ip-addresses": "127.0.0.1"})
    env.update(AWS_DEFAULT_REGION="us-east-1")
    run(["git", "data", "install", "--global"], cwd=work, env=env)
    logdir = work / "logs"
    logdir.mkdir(exist_ok=True)
    wanted = set(args.only or ("small", "big"))
    result: dict = {"jobs": args.jobs, "server_dir": str(shm), "versions": {}, "samples": {}}
    try:
        server.start()
        env.update(server.env)
        for t in list(tools):
            ok, version = t.available(env)
            if not ok:
                print(f"skipping {t.name}: {version}", file=sys.stderr)
                tools.remove(t)
            result["versions"][t.key] = version
        result["versions"]["rclone"] = tool_version([str(rclone_binary()), "version"], env)
        for sc in scenarios(args.quick):
            if sc.key not in wanted:
                continue
            data = build_dataset(sc, work.parent / "data" / sc.key)
            samples: dict[str, dict[str, list[tuple[float, float]]]] = {t.key: {op: [] for op in OPS} for t in tools}
            errors: dict[str, str] = {}
            for r in range(args.repeat):
                order = tools[r % len(tools):] + tools[: r % len(tools)]
                for tool in order:
                    log = logdir / f"{sc.key}-{tool.key}.log"
                    t0 = time.perf_counter()
                    if tool.key in errors:
                        continue
                    try:
                        res = one_repeat(tool, sc, data, work, shm, env, log, r)
                    except CommandFailed as err:
                        errors[tool.key] = f"{str(err).splitlines()[0][:200]} (log: {log})"
                        print(f"  {tool.name}: FAILED: {errors[tool.key]}", file=sys.stderr, flush=True)
                        continue
                    for op, v in res.items():
                        samples[tool.key][op].append(v)
                    figures = "  ".join(f"{op} {s:.2f}s/{p:.0f}MB" for op, (s, p) in res.items())
                    print(f"  [{sc.key} {r + 1}/{args.repeat}] {tool.name:11} {figures}  "
                          f"({time.perf_counter() - t0:.0f}s)", file=sys.stderr, flush=True)
            result["samples"][sc.key] = samples
            result.setdefault("errors", {})[sc.key] = errors
            print(table(sc, samples))
            for key, why in errors.items():
                print(f"  {TOOLS[key].name} failed: {why}")
    finally:
        server.close()
        rmtree(shm)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


def table(sc: Scenario, samples: dict) -> str:
    keys = [k for k in ("gitdata", "rclone", "dvc", "annex") if k in samples]
    head = f"{sc.title}: " + " | ".join(f"{TOOLS[k].name}" for k in keys)
    lines = [head]
    for op in OPS:
        cells = []
        for k in keys:
            s = [x for x, _p in samples[k][op]]
            peak = max((p for _s, p in samples[k][op]), default=0)
            cells.append(f"{statistics.median(s):.2f}s [{min(s):.2f}-{max(s):.2f}] {peak:.0f}MB" if s else "-")
        line = f"  {op:6} " + " | ".join(cells)
        gd = [x for x, _p in samples.get("gitdata", {}).get(op, [])]
        rc = [x for x, _p in samples.get("rclone", {}).get(op, [])]
        if gd and len(rc) == len(gd):
            line += f" | gd/rclone {statistics.median(a / b for a, b in zip(gd, rc)):.2f}"
        peers = [k for k in ("dvc", "annex") if k in samples and len(samples[k][op]) == len(gd)]
        if gd and peers:
            best = [min(samples[k][op][i][0] for k in peers) for i in range(len(gd))]
            line += f" | gd/best(dvc,annex) {statistics.median(a / b for a, b in zip(gd, best)):.2f}"
        lines.append(line)
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
