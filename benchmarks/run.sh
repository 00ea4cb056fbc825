#!/usr/bin/env bash
# Sets up everything the benchmark needs (git-lfs, git-annex, dvc, .venv), then
# runs it. Arguments go to benchmarks/run.py, e.g. `bash benchmarks/run.sh --only big`.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
GITDATA_BENCH=1 GITDATA_EXTRAS=test,bench bash scripts/setup.sh
exec .venv/bin/python benchmarks/run.py "$@"
