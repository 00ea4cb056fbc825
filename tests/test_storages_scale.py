"""Many files sync with one listing: LIST requests grow as files/1000, not per file."""

from __future__ import annotations

import contextlib
import json
import os
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
    moto_server.reset_counts()
    # 1,200 downloads: worker processes (transfer.FORK_MIN), one GET each and no HEAD first
    run("git", "data", "storage", "stage", "raw", cwd=proj, env=env, timeout=300)
    counts = moto_server.counts(bucket=moto_bucket)
    assert counts["GET_OBJECT"] == N and counts["HEAD"] <= 2, counts
    assert counts["LIST"] <= N // 1000 + 2, counts
    assert (proj / "raw" / "d07" / "f00007.txt").read_bytes() == b"x7"
    staged = sorted(p.relative_to(proj / "raw").as_posix() for p in (proj / "raw").rglob("*") if p.is_file())
    assert staged == sorted(f"d{i % 25:02d}/f{i:05d}.txt" for i in range(N))
    assert all((proj / "raw" / f"d{i % 25:02d}" / f"f{i:05d}.txt").read_bytes() == b"x%d" % i for i in range(N))
    # the base records every object as listed: a sync right after plans nothing
    r0 = run("git", "data", "storage", "sync", "raw", "--dry-run", "--json", cwd=proj, env=env, timeout=300)
    [plan] = json.loads(r0.stdout)
    assert not plan.get("actions") and not plan.get("conflicts"), plan
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


def _local_bucket(tmp_path, n: int):
    src = tmp_path / "bucket"
    for i in range(n):
        (src / f"d{i % 7}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 7}" / f"f{i:04d}.txt").write_bytes(b"object %d" % i)
    proj = tmp_path / "p"
    proj.mkdir()
    git(proj, "init", "-q")
    run("git", "data", "storage", "add", "raw", src.as_uri(), "--to", "raw", cwd=proj)
    return src, proj


def test_a_long_sync_writes_its_base_as_it_goes(tmp_path, monkeypatch):
    """The base of a sync is written every WRITE_EVERY steps, not once at the end: a run killed
    half-way keeps the base of what it did (and holds none of its results meanwhile)."""
    import sqlite3

    from gitdata import syncplan as sp
    from gitdata.project import Project
    from gitdata.storages import engine
    from gitdata.storages.manifest import manifest_for

    _src, proj = _local_bucket(tmp_path, 700)
    monkeypatch.setattr(engine, "WRITE_EVERY", 100)
    project = Project.open(str(proj))
    prep = engine.prepare(project, "raw", scope=sp.Scope())
    path = manifest_for(project, "raw").path
    seen: list[tuple[int, int]] = []  # (steps done, rows in the base on the disk)

    def rows() -> int:
        if not os.path.exists(path):
            return 0
        db = sqlite3.connect(path)
        try:
            return db.execute("SELECT COUNT(*) FROM files").fetchone()[0]
        finally:
            db.close()

    def on_item(_a) -> None:
        if len(seen) < 700 and (len(seen) + 1) % 50 == 0:
            seen.append((len(seen) + 1, rows()))
        else:
            seen.append((len(seen) + 1, -1))

    result = engine.execute(prep, jobs=1, progress=False, on_item=on_item)
    checked = [(n, r) for n, r in seen if r >= 0]
    assert len(result.done) == 700 and result.ok
    # at step n the base on the disk holds every hundred finished before it
    assert all(r == ((n - 1) // 100) * 100 for n, r in checked), checked
    assert rows() == 700
    assert (proj / "raw" / "d3" / "f0003.txt").read_bytes() == b"object 3"


def test_a_sync_carries_out_its_plan_one_batch_at_a_time(tmp_path, monkeypatch):
    """The plan lives in the spool, not in memory: a sync hands the workers BATCH transfers
    at a time (uploads and downloads alike), and every one of them is done and recorded."""
    from gitdata import syncplan as sp
    from gitdata import transfer
    from gitdata.project import Project
    from gitdata.storages import engine, spool
    from gitdata.storages.manifest import manifest_for

    src, proj = _local_bucket(tmp_path, 1300)
    monkeypatch.setattr(engine, "BATCH", 300)
    # rows written in chunks of 70: actions are stored while the join is still being read
    monkeypatch.setattr(spool, "_CHUNK", 70)
    sizes: list[int] = []
    real = transfer.run_parallel

    def counted(items, fn, **kw):
        items = list(items)
        sizes.append(len(items))
        return real(items, fn, **kw)

    monkeypatch.setattr(engine, "run_parallel", counted)
    project = Project.open(str(proj))
    staged = engine.execute(engine.prepare(project, "raw", scope=sp.Scope()), jobs=2, progress=False)
    assert staged.ok and staged.done_counts[sp.DOWNLOAD] == 1300
    assert sizes == [300, 300, 300, 300, 100]
    assert len(manifest_for(project, "raw").load()) == 1300
    # a change on each side of 400 files each: uploads and downloads in the same batches
    for i in range(0, 800, 2):
        (proj / "raw" / f"d{i % 7}" / f"f{i:04d}.txt").write_bytes(b"local %d" % i)
        (src / f"d{(i + 1) % 7}" / f"f{i + 1:04d}.txt").write_bytes(b"remote %d" % (i + 1))
    sizes.clear()
    synced = engine.execute(engine.prepare(project, "raw"), jobs=2, progress=False)
    assert synced.ok and synced.done_counts == {sp.UPLOAD: 400, sp.DOWNLOAD: 400}
    assert sizes == [300, 300, 200]
    assert (src / "d0" / "f0000.txt").read_bytes() == b"local 0"
    assert (proj / "raw" / "d1" / "f0001.txt").read_bytes() == b"remote 1"
    assert [a.path for a in synced.done] == sorted(a.path for a in synced.done) and len(synced.done) == 800
    again = engine.prepare(project, "raw")
    assert not again.plan.actions and not again.plan.conflicts and again.plan.unchanged == 1300


def test_files_on_both_sides_are_compared_in_batches(tmp_path, monkeypatch):
    """Staging onto files already there compares their bytes PROBE_BATCH paths at a time:
    equal ones are adopted without a download, different ones are conflicts, nothing is
    overwritten."""
    from gitdata import syncplan as sp
    from gitdata.project import Project
    from gitdata.storages import engine

    _src, proj = _local_bucket(tmp_path, 40)
    monkeypatch.setattr(engine, "PROBE_BATCH", 4)
    asked: list[int] = []
    real = engine._probe

    def probe(storage, root, paths, *args):
        asked.append(len(paths))
        return real(storage, root, paths, *args)

    monkeypatch.setattr(engine, "_probe", probe)
    for i in range(30):
        f = proj / "raw" / f"d{i % 7}" / f"f{i:04d}.txt"
        f.parent.mkdir(parents=True, exist_ok=True)
        body = b"object %d" % i
        # 0-19 the same bytes; 20-24 other bytes of the same size; 25-29 another size
        f.write_bytes(body if i < 20 else bytes(reversed(body)) if i < 25 else body + b"!")
    project = Project.open(str(proj))
    prep = engine.prepare(project, "raw", scope=sp.Scope())
    assert sum(asked) == 25 and max(asked) <= 4
    decided = {a.path: a.kind for a in prep.plan.decided()}
    assert {p for p, k in decided.items() if k == sp.ADOPT} == {f"d{i % 7}/f{i:04d}.txt" for i in range(20)}
    assert {p for p, k in decided.items() if k == sp.DOWNLOAD} == {f"d{i % 7}/f{i:04d}.txt" for i in range(30, 40)}
    assert {c.path for c in prep.plan.conflicts} == {f"d{i % 7}/f{i:04d}.txt" for i in range(20, 30)}
    # the conflicts are in every folder, so they hold back every other action there
    assert len(prep.plan.held) == 30 and not prep.plan.actions
    res = engine.execute(prep, jobs=2, progress=False)
    assert not res.ok and not res.done_counts and not res.done
    assert (proj / "raw" / "d6" / "f0027.txt").read_bytes() == b"object 27!"  # nothing overwritten
    assert (proj / "raw" / "d6" / "f0020.txt").read_bytes() == bytes(reversed(b"object 20"))
    assert not (proj / "raw" / "d2" / "f0030.txt").exists()


@contextlib.contextmanager
def _tmpfs(where, options: str):
    """A real tmpfs mounted at ``where`` for the block (skips the test where mounting is not
    allowed; CI runs as root)."""
    import subprocess

    import pytest

    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode(errors='replace').strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", str(where)], check=True)


def test_a_full_spool_is_an_error_that_says_where_and_what_to_do(tmp_path):
    """SQLite's 'database or disk is full' in the spool becomes SpoolFull: the folder, the
    paths so far, the fix. (max_page_count makes SQLite report SQLITE_FULL as a full disk does.)"""
    import sqlite3

    import pytest

    from gitdata.storage import Fingerprint
    from gitdata.storages.spool import Spool, SpoolFull

    folder = tmp_path / "tmp"
    spool = Spool(None, str(folder))
    spool.db.execute("PRAGMA main.max_page_count=20")
    with pytest.raises(SpoolFull) as err:
        spool.add_listing((f"k/{i:06d}", Fingerprint(i, etag=f'"{i}"')) for i in range(20_000))
    text = str(err.value)
    assert f"no space left in {folder}" in text and "gitdata.cacheDir" in text and "run the command again" in text
    assert isinstance(err.value.__cause__, sqlite3.OperationalError)
    spool.close()
    assert os.listdir(folder) == []  # nothing left behind either way


def test_a_sync_whose_spool_folder_is_full_stops_before_changing_anything(tmp_path):
    """A real full disk (a 128 KiB tmpfs as gitdata.cacheDir): the sync names the folder and
    exits 1 before it writes a file; with room, the same sync then stages everything."""
    _src, proj = _local_bucket(tmp_path, 3000)
    small = tmp_path / "small"
    with _tmpfs(small, "size=128k"):
        git(proj, "config", "gitdata.cacheDir", str(small))
        proc = run("git", "data", "storage", "stage", "raw", cwd=proj, check=False, timeout=300)
        assert proc.returncode == 1, proc
        err = proc.stderr.decode()
        assert f"error: no space left in {small}" in err and "Traceback" not in err, err
        assert not (proj / "raw").exists() or not any((proj / "raw").rglob("*.txt"))
        assert os.listdir(small / "tmp") == []  # the spool's file went with its process
    run("git", "data", "storage", "stage", "raw", cwd=proj, timeout=300)  # cacheDir now on the disk below
    assert len(list((proj / "raw").rglob("*.txt"))) == 3000


def test_a_stage_that_fails_in_part_names_what_failed_not_every_file(tmp_path, capsys):
    """An object gone from the bucket between the listing and its GET fails alone; the stage's
    report lists that one, not a line for each file that was staged."""
    from gitdata import syncplan as sp
    from gitdata.cli.storage_cmds import _print_plan
    from gitdata.project import Project
    from gitdata.storages import engine

    src, proj = _local_bucket(tmp_path, 40)
    project = Project.open(str(proj))
    prep = engine.prepare(project, "raw", scope=sp.Scope())
    (src / "d3" / "f0010.txt").unlink()  # listed, then gone
    res = engine.execute(prep, jobs=2, progress=False)
    assert not res.ok and list(res.failed) == ["d3/f0010.txt"] and res.done_counts[sp.DOWNLOAD] == 39
    _print_plan(res, False, problems_only=True)
    out, err = capsys.readouterr()
    assert [line.split()[1] for line in err.splitlines()] == ["raw:d3/f0010.txt"] and "FAILED" in err
    assert "39 downloaded" in out and "raw:d0/" not in out + err
    _print_plan(res, False)  # a sync's report: every action
    out, err = capsys.readouterr()
    assert len([line for line in out.splitlines() if line.startswith("download")]) == 39


def test_a_cache_this_user_cannot_write_to_puts_the_spool_in_the_system_temp_folder(tmp_path):
    """A shared, read-only cache (gitdata.cacheDir on a read-only mount) does not stop a sync:
    the spool goes to the system's temporary folder instead."""
    _src, proj = _local_bucket(tmp_path, 30)
    ro = tmp_path / "ro"
    with _tmpfs(ro, "ro,size=64k"):
        git(proj, "config", "gitdata.cacheDir", str(ro))
        run("git", "data", "storage", "stage", "raw", cwd=proj, timeout=300)
        assert len(list((proj / "raw").rglob("*.txt"))) == 30
        assert os.listdir(ro) == []
