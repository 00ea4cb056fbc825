#!/usr/bin/env bash
# Sets everything up and runs the demo: a throwaway project whose data remote is
# a local directory (no cloud account). add -> commit -> push -> clone -> the
# files come back, while git itself only holds small pointer files.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bash "$here/scripts/setup.sh"
export PATH="$here/.venv/bin:$PATH"

demo=${GITDATA_DEMO_DIR:-$(mktemp -d /tmp/gitdata-demo.XXXXXX)}
mkdir -p "$demo"
export HOME="$demo/home"   # keep the demo's git config away from yours
mkdir -p "$HOME"
git config --global user.name "Demo Scientist"
git config --global user.email "demo@example.org"
git config --global init.defaultBranch main
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

cd "$demo"
step git init -q --bare project.git            # any plain git host works
step git init -q project
cd project
step git data install                           # once per user
step git data remote add storage "$demo/data-remote"   # the embedded default: a local directory
step git data track 'data/**'
mkdir -p data/raw
python3 - <<'PY'
import os, random
random.seed(7)
os.makedirs("data/raw", exist_ok=True)
for i in range(5):
    with open(f"data/raw/scan-{i:03d}.bin", "wb") as f:
        f.write(random.randbytes(2_000_000))
with open("data/readme.txt", "w") as f:
    f.write("five scans of 2 MB each\n")
PY
step git add .gitattributes .gitdata data
step git commit -q -m "Add raw scans"
step git show HEAD:data/raw/scan-000.bin       # git stores only this pointer
step git remote add origin "$demo/project.git"
step git push -q origin main                    # the pre-push hook uploads the data first
step git data ls-files
cd "$demo"
step git clone -q project.git colleague         # a colleague clones: files come back
cd colleague
step ls -l data/raw
step cmp data/raw/scan-003.bin ../project/data/raw/scan-003.bin
step git status --short
step git data fsck --remote
printf '\nDemo done in %s: the data remote is %s/data-remote\n' "$demo" "$demo"
