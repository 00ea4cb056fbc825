#!/usr/bin/env bash
# Sets up everything the benchmark needs (git-lfs, git-annex, dvc, .venv), then
# runs it. Arguments go to benchmarks/run.py, e.g. `bash benchmarks/run.sh --only big`;
# `bash benchmarks/run.sh --scale [--objects 20000,100000]` runs benchmarks/bench_scale.py
# with the arguments after --scale instead.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
GITDATA_BENCH=1 GITDATA_EXTRAS=test,bench bash scripts/setup.sh
if [ "${1:-}" = "--scale" ]; then
    shift
    exec .venv/bin/python benchmarks/bench_scale.py "$@"
fi
exec .venv/bin/python benchmarks/run.py "$@"
