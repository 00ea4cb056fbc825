"""Anonymous access (`-o anon=true`) to a public bucket whose objects deny reads.

The bucket lists (it is public), but every object answers 403: each command
that reads says so in one line, naming the object and what to do, and never
ends in a traceback. A real moto server behind a loopback proxy that denies
the object reads (tests/flaky_proxy.py); git data runs as a subprocess.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from flaky_proxy import FlakyProxy
from servers import unique_name


def run(cwd, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(args), cwd=cwd, capture_output=True, timeout=180)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} exited {proc.returncode}: {proc.stderr.decode(errors='replace')}")
    return proc


@pytest.fixture
def public_bucket(moto_server):
    bucket = unique_name("public")
    moto_server.make_bucket(bucket)
    client = moto_server.client()
    client.put_object(Bucket=bucket, Key="raw/a.txt", Body=b"alpha\n")
    client.put_object(Bucket=bucket, Key="raw/b.txt", Body=b"bravo\n" * 1000)
    proxy = FlakyProxy(moto_server.endpoint).start()
    proxy.deny_paths.add(f"/{bucket}/raw/")
    try:
        yield bucket, proxy
    finally:
        proxy.stop()
        moto_server.delete_bucket(bucket)


def _project(tmp_path: Path, bucket: str, proxy: FlakyProxy) -> Path:
    from gitdata.install import install

    root = tmp_path / "p"
    root.mkdir()
    run(root, "git", "init", "-q")
    install("global", None)
    run(root, "git", "config", "gitdata.retryAttempts", "1")
    run(root, "git", "commit", "-q", "--allow-empty", "-m", "init")
    run(root, "git", "data", "dataset", "create", "ds", "-o", "anon=true", "-o", f"endpoint_url={proxy.url}")
    run(root, "git", "data", "dataset", "add", "ds", f"s3://{bucket}/raw")
    run(root, "git", "commit", "-q", "-m", "register")
    return root


def _one_clear_line(proc: subprocess.CompletedProcess, *needles: str) -> str:
    err = proc.stderr.decode()
    assert proc.returncode != 0, err
    assert "Traceback" not in err and "PermissionError" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.mark.parametrize("where", ["copy", "location", "cat"])
def test_denied_objects_of_an_anonymous_bucket_are_a_clear_error(public_bucket, tmp_path, where):
    bucket, proxy = public_bucket
    root = _project(tmp_path, bucket, proxy)
    if where == "cat":
        proc = run(root, "git", "data", "cat", "data/ds/a.txt", check=False)
    elif where == "location":
        proc = run(root, "git", "data", "dataset", "stage", "ds", "--location", str(tmp_path / "big"), check=False)
    else:
        proc = run(root, "git", "data", "dataset", "stage", "ds", check=False)
    err = _one_clear_line(proc, "access denied", "anon")
    print(err)
    assert f"{bucket}" in err
    assert len([line for line in err.splitlines() if "a.txt" in line]) == 1  # one line per file
    if where == "location":
        assert not (tmp_path / "big" / "ds" / "a.txt").exists()  # nothing half-written there
    else:
        assert (root / "data/ds/a.txt").read_text().startswith("version gitdata/1")  # still a pointer


def test_dataset_edit_takes_options(public_bucket, tmp_path):
    bucket, proxy = public_bucket
    root = _project(tmp_path, bucket, proxy)
    proc = run(root, "git", "data", "dataset", "edit", "ds", "-o", "anon=false", "-o", f"endpoint_url={proxy.url}")
    assert b"updated dataset ds" in proc.stdout
    lines = run(root, "git", "config", "-f", ".gitdata", "--get-all", "dataset.ds.option").stdout.decode().split()
    assert lines == ["anon=false", f"endpoint_url={proxy.url}"]
    proc = run(root, "git", "data", "dataset", "edit", "ds", "-o", "secret=abc", check=False)
    assert proc.returncode != 0 and b"Traceback" not in proc.stderr
    assert run(root, "git", "config", "-f", ".gitdata", "--get-all", "dataset.ds.option").stdout.decode().split() == lines
