"""`git data dataset stage --all`: every dataset in its tracked mode; one failing dataset does not stop the rest."""

from __future__ import annotations

import json

from helpers import gd, git, new_project, run, use_server_env


def _project(tmp_path, moto_server, bucket, monkeypatch):
    use_server_env(monkeypatch, moto_server)
    client = moto_server.client()
    client.put_object(Bucket=bucket, Key="raw/a.txt", Body=b"raw a")
    client.put_object(Bucket=bucket, Key="raw/b.txt", Body=b"raw b")
    client.put_object(Bucket=bucket, Key="ref/c.txt", Body=b"ref c")
    client.put_object(Bucket=bucket, Key="gone/d.txt", Body=b"soon gone")
    proj = new_project(tmp_path / "proj")
    endpoint = f"endpoint_url={moto_server.endpoint}"
    for name in ("raw", "ref", "gone"):
        gd(proj, "dataset", "create", name)
        gd(proj, "dataset", "add", name, f"s3://{bucket}/{name}/", "-o", endpoint)
    git(proj, "config", "-f", ".gitdata", "dataset.ref.mode", "reference")
    git(proj, "add", ".gitdata")
    git(proj, "commit", "-qm", "three datasets")
    return proj, client


def test_stage_all_stages_every_dataset_in_its_mode(tmp_path, moto_server, moto_bucket, monkeypatch):
    proj, client = _project(tmp_path, moto_server, moto_bucket, monkeypatch)
    reports = json.loads(gd(proj, "dataset", "stage", "--all", "--json"))
    by_name = {r["dataset"]: r for r in reports}
    assert set(by_name) == {"raw", "ref", "gone"}
    assert by_name["raw"]["mode"] == "copy" and by_name["raw"]["staged"] == 2
    assert by_name["ref"]["mode"] == "reference"
    assert (proj / "data" / "raw" / "a.txt").read_bytes() == b"raw a"
    assert (proj / "data" / "gone" / "d.txt").read_bytes() == b"soon gone"
    assert (proj / "data" / "ref" / "c.txt").read_bytes().startswith(b"version gitdata/1\n")
    assert git(proj, "status", "--porcelain") == ""
    # a second run has nothing left to do
    out = gd(proj, "dataset", "stage", "--all")
    assert "raw: 0 file(s) staged (0 B), 2 already there, mode copy" in out


def test_stage_all_keeps_going_past_a_failing_dataset(tmp_path, moto_server, moto_bucket, monkeypatch):
    proj, client = _project(tmp_path, moto_server, moto_bucket, monkeypatch)
    client.delete_object(Bucket=moto_bucket, Key="gone/d.txt")
    proc = run("git", "data", "dataset", "stage", "--all", cwd=proj, check=False)
    out, err = proc.stdout.decode(), proc.stderr.decode()
    assert proc.returncode == 1 and "Traceback" not in err
    assert "raw: 2 file(s) staged" in out
    assert "error: data/gone/d.txt:" in err
    assert err.rstrip().splitlines()[-1].startswith("error: staging was incomplete (gone); the other datasets are staged")  # fmt: skip
    assert (proj / "data" / "raw" / "b.txt").read_bytes() == b"raw b"


def test_stage_all_usage_errors(tmp_path):
    proj = new_project(tmp_path / "proj")
    for argv, says in ((["--all", "raw"], "give a dataset NAME, or --all"), ([], "give a dataset NAME, or --all"),
                       (["--all", "--location", str(tmp_path)], "--all stages each dataset in its mode")):  # fmt: skip
        proc = run("git", "data", "dataset", "stage", *argv, cwd=proj, check=False)
        assert proc.returncode == 2 and says in proc.stderr.decode()
    assert "no datasets in .gitdata" in gd(proj, "dataset", "stage", "--all")
