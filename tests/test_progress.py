"""Progress bars: by bytes while a large object streams, by count when registering; only on a terminal.

In-process: a run's bar advances with each chunk an item streams (before
the item finishes), never past the item's size, and ends exact. On a real
pty (pexpect): `git data dataset stage` draws its bar; without a terminal
nothing is drawn.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pexpect

from gitdata.progress import use_renderer
from gitdata.transfer import Progress, report_bytes, run_parallel


def test_the_bar_advances_by_bytes_while_an_item_streams():
    from rich.console import Console

    seen: list[int] = []
    bars: list[Progress] = []
    import gitdata.transfer as transfer_mod
    from gitdata.cli.progress import rich_bar

    real = transfer_mod.Progress

    def keep(*a, **kw):  # the real bar, kept to look at
        bar = real(*a, **kw)
        bars.append(bar)
        return bar

    def draw(*a, **kw):  # the CLI's renderer, drawing to a terminal-like buffer
        return rich_bar(*a, console=Console(file=io.StringIO(), force_terminal=True), **kw)

    transfer_mod.Progress = keep
    previous = use_renderer(draw)
    try:
        def stream(item: str) -> str:
            for _ in range(4):
                report_bytes(1 << 20)
                seen.append(bars[0].completed)  # what the bar shows while the item is still running
            report_bytes(5 << 20)  # more than the item weighs: capped
            return item

        out = run_parallel(["big", "small"], stream, jobs=1, weight=lambda i: (6 << 20) if i == "big" else 10,
                           label="Downloading", progress=True)
    finally:
        transfer_mod.Progress = real
        use_renderer(previous)
    assert out.ok
    assert seen[:4] == [1 << 20, 2 << 20, 3 << 20, 4 << 20]  # steady, not one jump at the end
    assert bars[0].completed == (6 << 20) + 10  # exact at the end: each item capped at its size


def test_report_bytes_outside_a_run_is_harmless():
    report_bytes(123)
    bar = Progress("x", 10, unit_bytes=False, enabled=False)
    bar.advance(3)
    assert bar.completed == 3
    bar.close()


def _dataset(tmp_path: Path) -> Path:
    from gitdata.install import install

    src = tmp_path / "src"
    src.mkdir()
    with open(src / "big.bin", "wb") as f:
        f.truncate(48 << 20)
    root = tmp_path / "p"
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    install("global", None)
    subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "i"], cwd=root, check=True)
    subprocess.run(["git", "data", "dataset", "create", "ds"], cwd=root, check=True, capture_output=True)
    subprocess.run(["git", "data", "dataset", "add", "ds", src.as_uri()], cwd=root, check=True, capture_output=True)
    return root


def test_stage_draws_a_bar_on_a_terminal_only(tmp_path):
    root = _dataset(tmp_path)
    gitdata = str(Path(sys.executable).parent / "git-data")
    child = pexpect.spawn(gitdata, ["dataset", "stage", "ds", "--location", str(tmp_path / "loc")],
                          cwd=str(root), env=dict(os.environ), timeout=60)
    child.expect(pexpect.EOF)
    child.close()
    transcript = child.before.decode(errors="replace")
    assert child.exitstatus == 0, transcript
    assert "Staging ds" in transcript and "MB" in transcript  # the bar, in bytes
    subprocess.run([gitdata, "dataset", "unstage", "ds"], cwd=root, check=True, capture_output=True)
    proc = subprocess.run([gitdata, "dataset", "stage", "ds", "--location", str(tmp_path / "loc")],
                          cwd=root, capture_output=True)
    assert proc.returncode == 0 and b"Staging" not in proc.stderr and b"\x1b[" not in proc.stderr


def test_listing_and_registering_many_objects_count_them_on_a_terminal_only(tmp_path):
    """The listing counts objects as they come, registration advances by count (``N/M``), not bytes;
    nothing is drawn without a terminal."""
    from gitdata.install import install

    src = tmp_path / "src"
    for i in range(1200):
        (src / f"d{i % 7}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 7}" / f"f{i:05d}.txt").write_bytes(b"x")
    root = tmp_path / "p"
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    install("global", None)
    subprocess.run(["git", "data", "dataset", "create", "ds"], cwd=root, check=True, capture_output=True)
    gitdata = str(Path(sys.executable).parent / "git-data")
    env = {**os.environ, "COLUMNS": "120", "GIT_CONFIG_COUNT": "1",
           "GIT_CONFIG_KEY_0": "gitdata.manifestThreshold", "GIT_CONFIG_VALUE_0": "0"}  # fmt: skip
    child = pexpect.spawn(gitdata, ["dataset", "add", "ds", src.as_uri()], cwd=str(root), env=env, timeout=120)
    child.expect(pexpect.EOF)
    child.close()
    transcript = child.before.decode(errors="replace")
    assert child.exitstatus == 0, transcript
    assert "Registering ds" in transcript and "/1200" in transcript, transcript  # a count of objects
    assert "Listing " in transcript and " listed" in transcript, transcript  # the listing counts as it comes
    assert "MB" not in transcript.split("Registering ds", 1)[1].split("\n", 1)[0]
    proc = subprocess.run([gitdata, "dataset", "add", "ds", src.as_uri()], cwd=root, capture_output=True, env=env)
    assert proc.returncode == 0 and b"Registering" not in proc.stderr and b"\x1b[" not in proc.stderr


def test_an_upload_advances_the_bar_part_by_part(moto_server, moto_bucket, tmp_path):
    """An S3 upload of 12 MiB in 5 MiB parts, inside a run: the run's bar moves as each part
    is sent (on the SDK's event loop thread), not in one jump when the object is done."""
    import gitdata.transfer as transfer_mod
    from gitdata.storage import ObjectStore, Storage

    opts = {"endpoint_url": moto_server.endpoint, "key": moto_server.key, "secret": moto_server.secret}
    store = ObjectStore(Storage(f"s3://{moto_bucket}/up", opts, part_size=5 << 20))
    data = os.urandom(12 << 20)
    (tmp_path / "big").write_bytes(data)
    oid = "xxh128:" + "ab" * 16
    reports: list[int] = []
    real = transfer_mod.report_bytes

    def upload(item: str) -> str:
        counter = transfer_mod.byte_reporter()
        assert counter is not None

        def seen(n: int) -> None:
            reports.append(n)
            counter(n)

        transfer_mod._item.counter = seen  # what this item's uploads report, looked at
        store.upload(oid, str(tmp_path / "big"))
        return item

    out = run_parallel(["big"], upload, jobs=1, weight=lambda _i: len(data), progress=False)
    assert out.ok and real is transfer_mod.report_bytes
    assert len(reports) >= 3 and sum(reports) == len(data), reports  # three parts, each reported
    assert store.storage.cat("objects/ab/ab/" + "ab" * 16) == data
