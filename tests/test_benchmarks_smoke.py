"""The benchmark must keep working: run it on tiny data sets and check its output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "benchmarks" / "run.py"
OPS = ("add+commit", "push", "clone+checkout", "first status", "status")


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(RUN), *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(subprocess.run(["git", "lfs", "version"], capture_output=True).returncode != 0,
                    reason="git-lfs is not installed (scripts/setup.sh installs it)")
def test_quick_run_produces_a_table_with_ratios(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    proc = _run("--quick", "--only", "big", "--only", "small", "--tools", "gitdata,lfs",
                "--work", str(tmp_path / "work"), "--results", str(results))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:4] == ["scenario", "operation", "git", "data"]
    assert "ratio" in lines[0] and "peak MB gd" in lines[0]
    data = json.loads(results.read_text())
    rows = data["rows"]
    assert [(r["scenario"], r["op"]) for r in rows] == [(s, op) for s in ("big", "small") for op in OPS]
    for row in rows:
        assert row["ratio"] > 0
        assert row["pass"] in (True, False)
        for tool in ("gitdata", "lfs"):
            figures = row["tools"][tool]
            assert figures["median"] > 0 and figures["peak_mb"] > 1
        # the printed table carries the same ratio
        assert any(row["op"] in line and f"{row['ratio']:.2f}" in line for line in lines)
    big_add = rows[0]
    assert big_add["peak_target_mb"] == 150.0 and big_add["target"] == 0.6
    assert data["errors"] == {}
    # the work folder is cleaned up after each repeat; only data sets, home and logs stay
    assert not any((tmp_path / "work" / "runs").glob("*/*/*"))


def test_unknown_scenario_is_a_clear_error(tmp_path: Path) -> None:
    proc = _run("--quick", "--only", "huge", "--work", str(tmp_path), timeout=30)
    assert proc.returncode == 2
    assert "unknown scenario huge; choose from big, small, medium" in proc.stderr
    assert not (tmp_path / "results.json").exists()
