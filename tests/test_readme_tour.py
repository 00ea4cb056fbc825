"""README's five-minute tour runs as written, in a fresh HOME, against moto and git daemon.

The shell blocks are taken from README.md as they are; only the placeholders
the README itself names are replaced (buckets, the S3 endpoint, the git URL,
the big disk). Nothing else is added to the commands: no identity, no branch
name, no options. Credentials come from the environment, as the README says.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import git
from servers import unique_name

ROOT = Path(__file__).resolve().parents[1]


def tour() -> tuple[str, list[str]]:
    """(the paragraph naming the placeholders, the tour's bash blocks)."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## A five-minute tour", 1)[1].split("\n## ", 1)[0]
    intro = section.split("```", 1)[0]
    return intro, re.findall(r"```bash\n(.*?)```", section, re.S)


def fresh_env(home: Path, moto) -> dict[str, str]:
    """A user's environment on a fresh machine: no git config at all, S3 keys exported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_AUTHOR", "GIT_COMMITTER"))}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), **moto.env)
    return env


def run_block(script: str, cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-x", "-c", script], cwd=cwd, env=env,
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, f"tour block failed ({proc.returncode}):\n{script}\n--- output:\n{proc.stdout}{proc.stderr}"
    return proc.stdout + proc.stderr


@pytest.fixture
def buckets(moto_server):
    moto_server.ensure_running()
    names = {ph: moto_server.make_bucket(unique_name(ph.split("-")[0])) for ph in ("my-bucket", "lab-bucket", "public-bucket")}  # fmt: skip
    try:
        yield names
    finally:
        for name in names.values():
            moto_server.delete_bucket(name)


@pytest.fixture
def host_repo(git_daemon):
    """An empty repository called project.git on git daemon (as the README's URL is)."""
    git_daemon.ensure_running()
    name = f"{unique_name('me')}/project.git"
    path = git_daemon.make_bare(name)
    try:
        yield git_daemon.url(name), path
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)


def test_the_tour_runs_as_written(tmp_path, moto_server, buckets, host_repo):
    intro, blocks = tour()
    host_url, host_path = host_repo
    assert len(blocks) == 5, "the tour has five shell blocks; update this test with the README"
    client = moto_server.client()
    client.put_object(Bucket=buckets["public-bucket"], Key="scans/2026/scan-001.tif", Body=b"scan bytes")
    client.put_object(Bucket=buckets["lab-bucket"], Key="results/summary.csv", Body=b"a,b\n1,2\n")
    big_disk = tmp_path / "big-disk"
    big_disk.mkdir()
    subs = {
        "https://s3.example.org": moto_server.endpoint,
        "git@host:me/project.git": host_url,
        "/mnt/big-disk": str(big_disk),
        **buckets,
    }
    for placeholder in subs:
        assert f"`{placeholder}`" in intro, f"the README does not name the placeholder {placeholder}"

    def fill(block: str) -> str:
        for placeholder, value in subs.items():
            block = block.replace(placeholder, value)
        return block

    ada_home, bea_home = tmp_path / "ada", tmp_path / "bea"
    for home in (ada_home, bea_home):
        home.mkdir()
    assert not (ada_home / ".gitconfig").exists()
    (ada_home / "measurements").mkdir()
    (ada_home / "measurements" / "run1.csv").write_bytes(b"t,v\n0,1.5\n")
    (ada_home / "measurements" / "scan.h5").write_bytes(os.urandom(3000))
    ada, bea = fresh_env(ada_home, moto_server), fresh_env(bea_home, moto_server)
    project = ada_home / "project"

    # 1. the first user: project, data remote, commit, push
    run_block(fill(blocks[0]), ada_home, ada)
    assert git(host_path, "log", "--format=%s", "main").split("\n")[0] == "raw data"
    pointer = git(project, "show", "HEAD:data/run1.csv")
    assert pointer.startswith("version gitdata/1\n")
    oid = re.search(r"^oid xxh128:([0-9a-f]{32})$", pointer, re.M).group(1)
    key = f"project/objects/{oid[:2]}/{oid[2:4]}/{oid}"
    assert client.get_object(Bucket=buckets["my-bucket"], Key=key)["Body"].read() == b"t,v\n0,1.5\n"

    # 2. the colleague, in her own fresh HOME: the files arrive with the clone
    out = run_block(fill(blocks[1]), bea_home, bea)
    clone = bea_home / "project"
    assert (clone / "data" / "run1.csv").read_bytes() == b"t,v\n0,1.5\n"
    assert (clone / "data" / "scan.h5").read_bytes() == (ada_home / "measurements" / "scan.h5").read_bytes()
    assert git(clone, "status", "--porcelain", env=bea) == ""
    assert "data/run1.csv" in out

    # 3. registered data: nothing downloaded until staged at the big disk
    out = run_block(fill(blocks[2]), project, ada)
    assert git(project, "log", "-1", "--format=%s") == "register scans\n"
    link = project / "data" / "scans"
    assert link.is_symlink() and Path(os.path.realpath(link)).is_relative_to(big_disk)
    assert (link / "scan-001.tif").read_bytes() == b"scan bytes"
    assert "1 unchanged on remote" in out

    # 4. a mapped storage: committed, staged, synced
    run_block(fill(blocks[3]), project, ada)
    assert (project / "results" / "summary.csv").read_bytes() == b"a,b\n1,2\n"
    assert git(project, "status", "--porcelain", env=ada) == ""
    assert "results" in git(project, "show", "HEAD:.gitdata")

    # 5. the project in a bucket, cloned back from there
    run_block(fill(blocks[4]), project, ada)
    copy = ada_home / "project-copy"
    assert (copy / "data" / "run1.csv").read_bytes() == b"t,v\n0,1.5\n"
    assert git(copy, "log", "-1", "--format=%s") == "map results\n"


def test_a_clone_without_install_says_why_it_holds_pointers(tmp_path, daemon_repo):
    from helpers import gd, new_project, run, write

    proj = new_project(tmp_path / "proj", str(tmp_path / "store"))
    write(proj / "data" / "a.csv", b"1,2,3\n")
    git(proj, "add", ".")
    git(proj, "commit", "-qm", "data")
    git(proj, "push", "-q", daemon_repo.url, "HEAD:main")
    home = tmp_path / "newcomer"
    home.mkdir()
    env = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
    git(tmp_path, "clone", "-q", daemon_repo.url, "clone", env=env)
    clone = tmp_path / "clone"
    assert (clone / "data" / "a.csv").read_bytes().startswith(b"version gitdata/1\n")
    proc = run("git", "data", "status", cwd=clone, env=env)
    assert "run `git data install` (once per user), then `git data pull`" in proc.stderr.decode()
    # once installed, the warning is gone and pull brings the data
    gd(clone, "install", env=env)
    gd(clone, "pull", env=env)
    assert (clone / "data" / "a.csv").read_bytes() == b"1,2,3\n"
    assert "warning" not in run("git", "data", "status", cwd=clone, env=env).stderr.decode()


def test_clone_of_a_bucket_with_no_endpoint_says_how_to_give_one(tmp_path):
    """No endpoint anywhere: the helper asks AWS. A proxy on a closed loopback port
    stands in for the unreachable internet, so nothing leaves 127.0.0.1."""
    from helpers import run
    from servers import free_port

    proxy = f"http://127.0.0.1:{free_port()}"
    env = {"HTTPS_PROXY": proxy, "HTTP_PROXY": proxy, "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s",
           "GIT_CONFIG_PARAMETERS": "'gitdata.retryMaxTime'='1'"}  # fmt: skip
    proc = run("git", "clone", "s3data::s3://lab-data/project", "c", cwd=tmp_path, env=env, check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 128
    assert "Traceback" not in err
    assert "no endpoint is set for this bucket" in err
    assert "git clone -c remote.origin.s3dataOption=endpoint_url=URL s3data::s3://lab-data/project" in err
