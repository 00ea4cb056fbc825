#!/usr/bin/env bash
# Sets up everything git data needs on this machine: Debian packages (when run
# as root and missing), a virtualenv in .venv with the project and its test
# dependencies. Idempotent; a second run takes a second.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
extras=${GITDATA_EXTRAS:-test}

need_apt=()
command -v git >/dev/null || need_apt+=(git)
command -v git-lfs >/dev/null || need_apt+=(git-lfs)
command -v fusermount3 >/dev/null || need_apt+=(fuse3)
if [ "${GITDATA_BENCH:-0}" = 1 ]; then
  command -v git-annex >/dev/null || need_apt+=(git-annex)
  command -v hyperfine >/dev/null || true
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Debian packages: ${need_apt[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "setup: please install these Debian packages: ${need_apt[*]} (optional for the demo)" >&2
  fi
fi

py=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
stamp=.venv/.gitdata-installed-$extras
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  # pip's notes about unused local index folders are noise here; errors still show.
  .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -m pip install -q -e ".[$extras]" 2>&1 | grep -vE "^WARNING: Location|BuildBackendWarning|^ *$" >&2 || true
  .venv/bin/python -c "import gitdata" || { echo "setup: install failed" >&2; exit 1; }
  touch "$stamp"
fi
# man pages for `git help data` / `git data --help` (cheap: only changed pages are written)
.venv/bin/git-data help --write-man >/dev/null || echo "setup: could not write the man pages" >&2
