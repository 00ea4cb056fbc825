#!/usr/bin/env bash
# Sets everything up (Debian packages, .venv) and runs the whole test suite:
# lint, then pytest against real servers on 127.0.0.1 started by fixtures.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k pointer`.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bash scripts/setup.sh

# Keep everything on loopback: no cloud metadata probes, no real credentials.
export AWS_EC2_METADATA_DISABLED=true NO_GCE_CHECK=True GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false
export AWS_DEFAULT_REGION=us-east-1
unset AWS_PROFILE AWS_CA_BUNDLE AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN GOOGLE_APPLICATION_CREDENTIALS || true
export PATH="$here/.venv/bin:$PATH"

echo "== ruff"
.venv/bin/ruff check src tests benchmarks
echo "== pytest"
set +e
# Two workers by default (CI has 2 cores; most tests wait on git, servers and FUSE, not CPU);
# work stealing keeps both busy to the end (test durations range from 0.01 s to a minute).
# GITDATA_TEST_WORKERS=0 runs everything in one process.
workers=${GITDATA_TEST_WORKERS:-2}
xdist=()
if [ "$workers" != 0 ]; then xdist=(-n "$workers" --dist worksteal); fi
.venv/bin/python -m pytest -q -p no:cacheprovider --durations=30 "${xdist[@]}" "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$rc"
