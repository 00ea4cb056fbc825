"""Many files sync with one listing: LIST requests grow as files/1000, not per file."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from helpers import git, run

N = 1200  # more than one page of 1,000 keys: LISTs per page, not per file


def test_sync_of_many_files_lists_once_per_thousand(tmp_path, moto_server, moto_bucket):
    client = moto_server.client()  # uncounted set-up traffic

    def put(i: int) -> None:
        client.put_object(Bucket=moto_bucket, Key=f"raw/d{i % 25:02d}/f{i:05d}.txt", Body=b"x%d" % i)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(N)))
    proj = tmp_path / "p"
    proj.mkdir()
    git(proj, "init", "-q")
    env = moto_server.env
    run("git", "data", "storage", "add", "raw", f"s3://{moto_bucket}/raw", "--to", "raw",
        "-o", f"endpoint_url={moto_server.endpoint}", cwd=proj, env=env)
    run("git", "data", "storage", "stage", "raw", cwd=proj, env=env, timeout=300)
    assert (proj / "raw" / "d07" / "f00007.txt").read_bytes() == b"x7"
    # a change on each side, then a sync: count the requests it makes
    (proj / "raw" / "d01" / "f00001.txt").write_bytes(b"local change")
    client.put_object(Bucket=moto_bucket, Key="raw/d02/f00002.txt", Body=b"remote change")
    moto_server.reset_counts()
    r = run("git", "data", "storage", "sync", "raw", "--json", cwd=proj, env=env, timeout=300)
    counts = moto_server.counts(bucket=moto_bucket)
    assert counts["LIST"] <= N // 1000 + 2, counts
    assert counts["GET_OBJECT"] <= 5, counts  # only the changed file, not every file
    assert counts["PUT"] <= 2, counts
    assert (proj / "raw" / "d02" / "f00002.txt").read_bytes() == b"remote change"
    body = client.get_object(Bucket=moto_bucket, Key="raw/d01/f00001.txt")["Body"].read()
    assert body == b"local change"
    assert json.loads(r.stdout)  # machine-readable summary
