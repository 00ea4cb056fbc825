"""Benchmark git data against git-lfs (and git-annex, DVC where they run here).

    .venv/bin/python benchmarks/run.py [--quick] [--only SCENARIO] [--repeat N]

Builds deterministic data sets once into benchmarks/work/, then for every
scenario and repeat runs each tool in turn (the order rotates every repeat):
add+commit, push (to a file:// bare remote on /dev/shm, so objects are copied
across filesystems), clone+checkout, the first `git status` in the new clone
and a second one (nothing changed). Every command goes through a wrapper that
reports wall time and the peak RSS of the largest process. Prints a table of
medians and ratios git data / git-lfs against the issue's targets, writes
benchmarks/results/latest.json and the table into docs/benchmarks.md.
See docs/benchmarks.md for the method.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    ALL_TOOLS,
    ROOT,
    CommandFailed,
    Scenario,
    Tool,
    build_dataset,
    link_tree,
    measure,
    rmtree,
    scenarios,
    setup_home,
    tool_version,
)

OPS = ("add+commit", "push", "clone+checkout", "first status", "status")
#: ``status`` (nothing changed) is timed over this many runs in a row.
STATUS_LOOPS = 20
DOC = ROOT / "docs" / "benchmarks.md"
RESULTS = ROOT / "benchmarks" / "results" / "latest.json"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
PEAK_LIMIT_MB = 150.0


def ratio_target(sc_key: str, op: str) -> float:
    if op in ("add+commit", "clone+checkout"):
        return 0.7 if sc_key == "small" else 0.6
    return 1.0


def peak_target(sc_key: str, op: str) -> float | None:
    return PEAK_LIMIT_MB if sc_key == "big" and op in ("add+commit", "clone+checkout") else None


def one_repeat(tool: Tool, sc: Scenario, data: Path, work: Path, shm: Path, env, log: Path) -> dict:
    """The five operations for one tool, once; returns op -> (seconds, peak MB)."""
    base = work / "runs" / sc.key / tool.key
    remotes = shm / sc.key / tool.key
    rmtree(base)
    rmtree(remotes)
    base.mkdir(parents=True)
    remotes.mkdir(parents=True)
    src = base / "src"
    out: dict[str, tuple[float, float]] = {}
    try:
        tool.setup(sc, src, remotes, env, log)
        link_tree(data, src)
        m = measure(tool.add_commit(sc), cwd=src, env=env, log=log)
        out["add+commit"] = (m.seconds, m.peak_mb)
        m = measure(tool.push(), cwd=src, env=env, log=log)
        out["push"] = (m.seconds, m.peak_mb)
        m = measure(tool.clone(f"file://{remotes}/remote.git"), cwd=base, env=env, log=log)
        out["clone+checkout"] = (m.seconds, m.peak_mb)
        clone = base / "clone"
        _check_clone(sc, clone)
        m = measure(tool.status(), cwd=clone, env=env, log=log)
        out["first status"] = (m.seconds, m.peak_mb)
        # a few ms each: time STATUS_LOOPS in a row and divide, so that the
        # wrapper's own start-up and timer resolution do not decide the ratio
        m = measure(f"for i in $(seq {STATUS_LOOPS}); do {tool.status()}; done", cwd=clone, env=env, log=log)
        out["status"] = (m.seconds / STATUS_LOOPS, m.peak_mb)
    finally:
        rmtree(base)
        rmtree(remotes)
    return out


def _check_clone(sc: Scenario, clone: Path) -> None:
    """The clone must hold the data (not pointers): sizes checked for every file."""
    for rel, size in sc.files:
        p = clone / rel
        got = os.stat(p).st_size  # follows git-annex symlinks
        if got != size:
            raise CommandFailed(f"clone has {rel} of {got} bytes, expected {size}")


def run_scenario(sc: Scenario, tools: list[Tool], repeat: int, work: Path, shm: Path, env, logdir: Path) -> dict:
    data = build_dataset(sc, work / "data" / sc.key)
    samples: dict[str, dict[str, list[tuple[float, float]]]] = {t.key: {op: [] for op in OPS} for t in tools}
    errors: dict[str, str] = {}
    for r in range(repeat):
        order = tools[r % len(tools):] + tools[: r % len(tools)]
        for tool in order:
            if tool.key in errors:
                continue
            log = logdir / f"{sc.key}-{tool.key}.log"
            t0 = time.perf_counter()
            try:
                res = one_repeat(tool, sc, data, work, shm, env, log)
            except CommandFailed as err:
                errors[tool.key] = str(err).splitlines()[0][:300] + f" (log: {log})"
                print(f"  {tool.name}: FAILED: {err}", file=sys.stderr)
                continue
            for op, v in res.items():
                samples[tool.key][op].append(v)
            figures = "  ".join(f"{op} {s:.2f}s/{p:.0f}MB" for op, (s, p) in res.items())
            print(f"  [{sc.key} {r + 1}/{repeat}] {tool.name:9} {figures}  ({time.perf_counter() - t0:.0f}s)",
                  file=sys.stderr, flush=True)
    rows = []
    for op in OPS:
        row: dict = {"scenario": sc.key, "title": sc.title, "op": op, "tools": {}}
        for t in tools:
            s = samples[t.key][op]
            if s:
                row["tools"][t.key] = {
                    "seconds": [round(x, 4) for x, _ in s],
                    "median": round(statistics.median(x for x, _ in s), 4),
                    "peak_mb": round(max(p for _, p in s), 1),
                }
        gd, lfs = samples.get("gitdata", {}).get(op), samples.get("lfs", {}).get(op)
        if gd and lfs and len(gd) == len(lfs):
            # paired by repeat (same moment on the machine), then the median
            row["ratio"] = round(statistics.median(a[0] / b[0] for a, b in zip(gd, lfs)), 3)
        row["target"] = ratio_target(sc.key, op)
        row["peak_target_mb"] = peak_target(sc.key, op)
        row["pass"] = _passes(row)
        rows.append(row)
    return {"rows": rows, "errors": errors}


def _passes(row: dict) -> bool | None:
    if "ratio" not in row:
        return None
    ok = row["ratio"] <= row["target"]
    if row["peak_target_mb"] is not None:
        ok = ok and row["tools"]["gitdata"]["peak_mb"] < row["peak_target_mb"]
    return ok


# -- output ----------------------------------------------------------------------

COLS = [
    ("scenario", 12), ("operation", 14), ("git data s", 10), ("git-lfs s", 9), ("ratio", 6),
    ("target", 7), ("result", 6), ("git-annex s", 11), ("DVC s", 7), ("gd+cache s", 10), ("peak MB gd", 10),
    ("peak MB lfs", 11),
]


def _cells(row: dict) -> list[str]:
    t = row["tools"]

    def sec(k):
        if k not in t:
            return "-"
        v = t[k]["median"]
        return f"{v:.3f}" if v < 0.1 else f"{v:.2f}"

    def peak(k):
        return f"{t[k]['peak_mb']:.0f}" if k in t else "-"

    target = f"<= {row['target']:.1f}"
    if row.get("peak_target_mb"):
        target += f", < {row['peak_target_mb']:.0f} MB"
    result = {True: "pass", False: "FAIL", None: "-"}[row.get("pass")]
    ratio = f"{row['ratio']:.2f}" if "ratio" in row else "-"
    return [row["title"], row["op"], sec("gitdata"), sec("lfs"), ratio, target, result,
            sec("annex"), sec("dvc"), sec("gdcache"), peak("gitdata"), peak("lfs")]


def text_table(rows: list[dict]) -> str:
    cells = [[c for c, _ in COLS]] + [_cells(r) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLS))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells)


def markdown_table(rows: list[dict]) -> str:
    head = "| " + " | ".join(c for c, _ in COLS) + " |"
    sep = "|" + "|".join(" --- " for _ in COLS) + "|"
    body = ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def machine_info(env) -> dict:
    def first(cmd):
        return tool_version(cmd, env)

    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            mem = f.readline().split(":")[1].strip()
    except OSError:
        pass
    return {
        "when": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "gitdata_commit": commit,
        "cpus": os.cpu_count(),
        "memory": mem,
        "python": platform.python_version(),
        "git": first(["git", "--version"]),
        "git-lfs": first(["git", "lfs", "version"]),
        "git-annex": first(["git", "annex", "version", "--raw"]),
        "dvc": first(["dvc", "--version"]),
    }


def write_docs(result: dict) -> None:
    if not DOC.exists():
        return
    text = DOC.read_text()
    if BEGIN not in text or END not in text:
        return
    info = result["machine"]
    skipped = "".join(f"\n- {k}: not run: {v}" for k, v in result.get("skipped", {}).items())
    errors = "".join(f"\n- {k}: failed: {v}" for k, v in result.get("errors", {}).items())
    block = (
        f"{BEGIN}\nLast full run: {info['when']}, git data {info['gitdata_commit']}, "
        f"{info['cpus']} CPUs, {info['memory']} RAM; {info['git']}, {info['git-lfs']}, "
        f"git-annex {info['git-annex']}, dvc {info['dvc']}; medians of {result['repeat']} repeats; "
        + "; ".join(f"`{c}`" for c in result.get("commands", [result["command"]]))
        + f".\n\n{markdown_table(result['rows'])}\n{skipped}{errors}\n{END}"
    )
    start, end = text.index(BEGIN), text.index(END) + len(END)
    DOC.write_text(text[:start] + block + text[end:])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny data sets, one repeat (smoke test)")
    ap.add_argument("--only", action="append", default=[], help="scenario: big, small or medium (repeatable)")
    ap.add_argument("--repeat", type=int, default=None, help="repeats per tool (default 3; 1 with --quick)")
    ap.add_argument("--tools", default="gitdata,lfs,annex,dvc",
                    help="comma-separated: gitdata,lfs,annex,dvc,gdcache (git data with gitdata.cacheLocalRemote=true)")
    ap.add_argument("--work", type=Path, default=None, help="work folder (default benchmarks/work)")
    ap.add_argument("--shm", type=Path, default=Path("/dev/shm"), help="where remotes live (another filesystem)")
    ap.add_argument("--results", type=Path, default=None, help="JSON output (default benchmarks/results/latest.json)")
    args = ap.parse_args(argv)

    repeat = args.repeat or (1 if args.quick else 3)
    work = (args.work or ROOT / "benchmarks" / "work" / ("quick" if args.quick else "full")).resolve()
    results_path = args.results or (work / "results.json" if args.quick else RESULTS)
    work.mkdir(parents=True, exist_ok=True)
    shm = args.shm / f"gitdata-bench-{os.getpid()}"
    wanted = [k.strip() for k in args.tools.split(",") if k.strip()]
    chosen = [t for t in ALL_TOOLS if t.key in wanted]
    all_sc = scenarios(args.quick)
    only = {k for o in args.only for k in o.split(",")}
    unknown = only - {s.key for s in all_sc}
    if unknown:
        ap.error(f"unknown scenario {', '.join(sorted(unknown))}; choose from big, small, medium")
    run_sc = [s for s in all_sc if not only or s.key in only]

    probe_env = setup_home(work / "home", [])
    tools, skipped = [], {}
    for t in chosen:
        ok, why = t.available(probe_env)
        if ok:
            tools.append(t)
        else:
            skipped[t.name] = why
            print(f"skipping {t.name}: {why}", file=sys.stderr)
    if not any(t.key == "gitdata" for t in tools) or not any(t.key == "lfs" for t in tools):
        print("error: git data and git-lfs must both be available to compare them", file=sys.stderr)
        return 2
    # --quick: its "big" file is small, so make git data write it outside git's
    # smudge path anyway, as it does for the real 1 GiB file (the smoke test covers that path)
    extra = {"gitdata.smudgemax": str(1 << 20)} if args.quick else None
    env = setup_home(work / "home", tools, extra)
    logdir = work / "logs"
    rmtree(logdir)
    logdir.mkdir(parents=True)

    rows, errors = [], {}
    try:
        for sc in run_sc:
            print(f"{sc.title}: {len(sc.files)} file(s), {sc.total / (1 << 20):.0f} MiB", file=sys.stderr)
            res = run_scenario(sc, tools, repeat, work, shm, env, logdir)
            rows += res["rows"]
            errors.update({f"{k} ({sc.key})": v for k, v in res["errors"].items()})
    finally:
        rmtree(shm)

    cmd = "python benchmarks/run.py" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    result = {"machine": machine_info(env), "repeat": repeat, "quick": args.quick, "command": cmd,
              "rows": rows, "skipped": skipped, "errors": errors}
    if not args.quick and args.results is None and only and results_path.exists():
        # --only: keep the other scenarios' rows from the previous run
        old = json.loads(results_path.read_text())
        keep = [r for r in old.get("rows", []) if r["scenario"] not in only]
        if keep:
            result["commands"] = [*old.get("commands", [old.get("command", "")]), cmd]
        order = {s.key: i for i, s in enumerate(all_sc)}
        result["rows"] = sorted(keep + rows, key=lambda r: (order.get(r["scenario"], 9), OPS.index(r["op"])))
    results_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = results_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(results_path)
    print(text_table(result["rows"]))
    for k, v in {**skipped, **errors}.items():
        print(f"note: {k}: {v}")
    if not args.quick and args.results is None:
        write_docs(result)
    print(f"results: {results_path}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
