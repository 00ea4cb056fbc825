"""`git data storage sync NAME --prefer SIDE PATH...` and the folder as the unit of atomicity.

A mapped storage on a local folder (the sync logic is the same for every
backend: tests/test_storages.py runs the cells against the servers); git
data runs as a subprocess.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path


def run(cwd, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(args), cwd=cwd, capture_output=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} exited {proc.returncode}: {proc.stderr.decode(errors='replace')}")
    return proc


def write(p: Path, data: bytes) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)


def setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    from gitdata.install import install

    bucket = tmp_path / "bucket"
    for rel in ("results/x.csv", "results/y.csv", "raw/z.dat"):
        write(bucket / rel, b"base " + rel.encode())
    root = tmp_path / "p"
    root.mkdir()
    run(root, "git", "init", "-q")
    install("global", None)
    run(root, "git", "commit", "-q", "--allow-empty", "-m", "init")
    run(root, "git", "data", "storage", "add", "lab", bucket.as_uri(), "--to", "lab")
    run(root, "git", "data", "storage", "stage", "lab")
    local = root / "lab"
    # both sides change results/x.csv and results/y.csv: two conflicts in one folder
    for rel in ("results/x.csv", "results/y.csv"):
        write(local / rel, b"LOCAL " + rel.encode())
        write(bucket / rel, b"REMOTE " + rel.encode() + b"!")
    return root, bucket, local


def test_a_conflict_holds_back_its_folder_and_an_unrelated_new_file_is_synced(tmp_path):
    root, bucket, local = setup(tmp_path)
    write(local / "figures/f1.png", b"new figure")  # another folder
    write(local / "results/new.csv", b"new result")  # the conflicts' folder
    proc = run(root, "git", "data", "storage", "sync", "lab", "--json", check=False)
    assert proc.returncode == 1
    (res,) = json.loads(proc.stdout)
    assert res["blocked"] is True
    assert {c["path"] for c in res["conflicts"]} == {"results/x.csv", "results/y.csv"}
    assert res["held"] == [{"path": "results/new.csv", "folder": "results"}]
    assert (bucket / "figures/f1.png").read_bytes() == b"new figure"  # not blocked by results/
    assert not (bucket / "results/new.csv").exists()  # waits with its folder
    assert (bucket / "results/x.csv").read_bytes() == b"REMOTE results/x.csv!"
    proc = run(root, "git", "data", "storage", "sync", "lab", check=False)
    assert "held back the files of their folder(s) (results)" in proc.stderr.decode()


def test_prefer_with_paths_resolves_only_those(tmp_path):
    root, bucket, local = setup(tmp_path)
    proc = run(local, "git", "data", "storage", "sync", "lab", "--prefer", "local", "results/x.csv", "--json", check=False)
    assert proc.returncode == 1  # results/y.csv is still a conflict
    (res,) = json.loads(proc.stdout)
    assert [c["path"] for c in res["conflicts"]] == ["results/y.csv"]
    assert (bucket / "results/x.csv").read_bytes() == b"LOCAL results/x.csv"  # the chosen one is resolved
    assert (bucket / "results/y.csv").read_bytes() == b"REMOTE results/y.csv!"  # the other is left alone
    assert (local / "results/y.csv").read_bytes() == b"LOCAL results/y.csv"
    # a path as typed from inside the storage folder
    run(local / "results", "git", "data", "storage", "sync", "lab", "--prefer", "remote", "y.csv")
    assert (local / "results/y.csv").read_bytes() == b"REMOTE results/y.csv!"
    run(root, "git", "data", "storage", "sync", "lab")  # now all is quiet
    assert (bucket / "results/x.csv").read_bytes() == b"LOCAL results/x.csv"
    kept = sorted(p.name for p in (local / "results").iterdir() if ".conflict-" in p.name)
    # the losing versions are kept: the remote x (unversioned folder) and the local y
    assert [k.split(".conflict-")[0] for k in kept] == ["x.csv", "y.csv"]
    assert (local / "results" / kept[0]).read_bytes() == b"REMOTE results/x.csv!"
    assert (local / "results" / kept[1]).read_bytes() == b"LOCAL results/y.csv"


def test_a_path_outside_the_storage_is_refused(tmp_path):
    root, bucket, local = setup(tmp_path)
    proc = run(root, "git", "data", "storage", "sync", "lab", "--prefer", "local", "README.md", check=False)
    assert proc.returncode == 2 and b"is not in storage 'lab'" in proc.stderr
    assert (bucket / "results/x.csv").read_bytes() == b"REMOTE results/x.csv!"
