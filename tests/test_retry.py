"""One retry policy: pure rules with a fake clock, then real transfers through
a loopback proxy in front of moto that answers 503 or dies."""

from __future__ import annotations

import os
import random
import time

import pytest

from flaky_proxy import FlakyProxy
from gitdata.errors import GitDataError
from gitdata.retry import Retrier, RetryPolicy
from gitdata.storage import Storage
from gitdata.storage.errors import (
    StorageError,
    StorageUnreachable,
    TransientStorageError,
    translate,
)
from gitdata.transfer import run_parallel
from helpers import gd, git, new_project, run, status_short, use_server_env, write

# -- the policy, with a fake clock -------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s


def _retrier(policy: RetryPolicy, t: FakeTime, draw: float = 1.0) -> Retrier:
    return Retrier(policy, clock=t.clock, sleep=t.sleep, draw=lambda: draw)


def _failing(n: int, err: GitDataError, cost: float = 0.0, t: FakeTime | None = None):
    calls = []

    def fn():
        calls.append(1)
        if t is not None:
            t.now += cost
        if len(calls) <= n:
            raise err
        return "ok"

    return fn, calls


def test_full_jitter_backoff_is_capped():
    p = RetryPolicy(base_delay=0.2, max_delay=1.0)
    assert [p.delay(n, 1.0) for n in (1, 2, 3, 4, 5)] == [0.2, 0.4, 0.8, 1.0, 1.0]
    assert p.delay(3, 0.5) == 0.4 and p.delay(3, 0.0) == 0.0


def test_transient_errors_are_retried_until_success():
    t = FakeTime()
    fn, calls = _failing(3, TransientStorageError("busy"))
    assert _retrier(RetryPolicy(attempts=6), t).call(fn) == "ok"
    assert len(calls) == 4 and t.sleeps == [0.2, 0.4, 0.8]


def test_other_errors_are_not_retried():
    t = FakeTime()
    fn, calls = _failing(3, StorageError("access denied"))
    with pytest.raises(StorageError):
        _retrier(RetryPolicy(), t).call(fn)
    assert len(calls) == 1 and t.sleeps == []


def test_attempts_are_bounded():
    t = FakeTime()
    fn, calls = _failing(100, TransientStorageError("busy"))
    with pytest.raises(TransientStorageError, match=r"busy \(gave up after 3 attempt"):
        _retrier(RetryPolicy(attempts=3, max_time=1000), t).call(fn)
    assert len(calls) == 3


def test_total_time_is_bounded_even_with_many_attempts():
    t = FakeTime()
    fn, calls = _failing(1000, StorageUnreachable("cannot reach"), cost=1.0, t=t)
    with pytest.raises(StorageUnreachable, match="cannot reach .*gitdata.retryMaxTime"):
        _retrier(RetryPolicy(attempts=1000, max_time=10, max_delay=1.0), t).call(fn)
    assert t.now <= 10 + 1.0 + 1.0  # the bound, plus the last attempt


def test_a_run_against_a_dead_server_fails_fast_after_the_bound():
    """2,000 items: the first ones use the time budget, the rest are not tried."""
    t = FakeTime()
    r = _retrier(RetryPolicy(attempts=6, max_time=5, max_delay=1.0), t)
    tried = []

    def upload(i):
        tried.append(i)
        t.now += 0.1
        raise StorageUnreachable("cannot reach 127.0.0.1")

    out = run_parallel(range(2000), upload, jobs=1, retry=r, progress=False)
    assert len(out.failed) == 2000 and not out.done
    assert t.now < 5 + 1.5
    assert len(tried) < 40
    assert "not tried" in str(out.failed[1999]) and "cannot reach" in str(out.failed[1999])


def test_a_success_resets_the_clock():
    """A server failing a fraction of requests: every item completes."""
    t = FakeTime()
    r = _retrier(RetryPolicy(attempts=10, max_time=30.0), t, draw=0.5)
    rng = random.Random(7)

    def flaky(i):
        t.now += 0.15
        if rng.random() < 0.3:
            raise TransientStorageError("503")
        return i

    out = run_parallel(range(300), flaky, jobs=1, retry=r, progress=False)
    assert out.ok and len(out.done) == 300
    assert t.now > 30 + 10  # far longer than max_time overall: it only bounds failing stretches


def test_translate_marks_transient_by_type_and_code():
    class ClientError(Exception):
        def __init__(self, code):
            super().__init__("An error occurred")
            self.response = {"Error": {"Code": code}}

    assert translate(ClientError("SlowDown"), "upload x", "s3://b").transient
    assert translate(ClientError("503"), "upload x", "s3://b").transient
    assert translate(ConnectionRefusedError(), "upload x", "s3://b").transient
    assert not translate(ClientError("NoSuchBucket"), "upload x", "s3://b").transient
    assert not translate(ClientError("AccessDenied"), "upload x", "s3://b").transient

    class Weird(Exception):
        pass

    # the message says 503 and "timeout": text is never what decides
    assert not translate(Weird("503 Service Unavailable, timeout, SlowDown"), "upload x", "s3://b").transient


def test_s3_storage_caps_the_sdk_retries(moto_server, moto_bucket, monkeypatch):
    use_server_env(monkeypatch, moto_server)
    st = Storage(f"s3://{moto_bucket}/p", {"endpoint_url": moto_server.endpoint}, retry=RetryPolicy(max_time=6))
    assert st.fs.retries == 1
    cfg = st.fs.config_kwargs
    assert cfg["retries"] == {"total_max_attempts": 1, "mode": "standard"}
    assert cfg["connect_timeout"] == 2.0 and cfg["read_timeout"] == 2.0
    mine = Storage(f"s3://{moto_bucket}/p", {"endpoint_url": moto_server.endpoint, "retries": 3,
                                             "config_kwargs": {"connect_timeout": 9}})
    assert mine.fs.retries == 3 and mine.fs.config_kwargs["connect_timeout"] == 9  # the user's own win


# -- real transfers through the proxy -------------------------------------------------


def _project_on(tmp_path, proxy, bucket, moto_server, monkeypatch, n=24):
    use_server_env(monkeypatch, moto_server)
    proj = new_project(tmp_path / "p", f"s3://{bucket}/proj", {"endpoint_url": proxy.url})
    rng = random.Random(11)
    files = {f"data/f{i}.bin": rng.randbytes(1000 + 997 * i) for i in range(n)}
    files["data/big.bin"] = rng.randbytes(400_000)  # a file of its own in the cache
    for path, data in files.items():
        write(proj / path, data)
    git(proj, "add", "-A")
    git(proj, "commit", "-qm", "data")
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(proj, "remote", "add", "origin", str(origin))
    return proj, origin, files


def test_push_and_clone_complete_through_a_server_that_answers_503(
    tmp_path, moto_server, moto_bucket, monkeypatch
):
    proxy = FlakyProxy(moto_server.endpoint, fail_every=4).start()  # 25% of requests
    try:
        git(tmp_path, "config", "--global", "gitdata.retryAttempts", "10")
        proj, origin, files = _project_on(tmp_path, proxy, moto_bucket, moto_server, monkeypatch)
        run("git", "push", "-q", "origin", "HEAD:refs/heads/main", cwd=proj, timeout=120)
        assert git(origin, "for-each-ref").strip()
        pushed = proxy.failed
        assert pushed > 3  # the proxy did fail requests during the push
        clone = tmp_path / "clone"
        run("git", "clone", "-q", str(origin), str(clone), cwd=tmp_path, timeout=120)
        assert proxy.failed > pushed  # ... and during the clone's downloads
        for path, data in files.items():
            assert (clone / path).read_bytes() == data, path
        assert status_short(clone) == ""
        # git data fetch into a fresh cache goes through the same policy
        git(clone, "config", "gitdata.cacheDir", str(tmp_path / "other-cache"))
        before = proxy.failed
        gd(clone, "fetch")
        assert proxy.failed > before
    finally:
        proxy.stop()
    assert [p for p in (tmp_path / "other-cache").rglob("*.pack")]


def test_a_server_that_dies_mid_push_fails_it_within_the_bound(tmp_path, moto_server, moto_bucket, monkeypatch):
    proxy = FlakyProxy(moto_server.endpoint, die_after=6).start()
    try:
        git(tmp_path, "config", "--global", "gitdata.retryMaxTime", "5")
        proj, origin, _files = _project_on(tmp_path, proxy, moto_bucket, moto_server, monkeypatch, n=60)
        start = time.monotonic()
        r = run("git", "push", "origin", "HEAD:refs/heads/main", cwd=proj, check=False, timeout=300)
        elapsed = time.monotonic() - start
    finally:
        proxy.stop()
    err = r.stderr.decode()
    assert r.returncode != 0
    assert proxy.stopped.is_set() and proxy.requests > 6  # it did die mid-way
    assert "cannot reach" in err and "data/" in err and "Traceback" not in err
    assert "gitdata.retryMaxTime" in err  # says how to wait longer
    assert git(origin, "for-each-ref").strip() == ""  # no ref moved
    assert elapsed < 5 + 20, f"push took {elapsed:.1f} s with gitdata.retryMaxTime=5"


def test_a_checkout_from_a_dead_server_fails_within_the_bound(tmp_path, moto_server, moto_bucket, monkeypatch):
    proxy = FlakyProxy(moto_server.endpoint).start()
    try:
        proj, origin, files = _project_on(tmp_path, proxy, moto_bucket, moto_server, monkeypatch, n=30)
        run("git", "push", "-q", "origin", "HEAD:refs/heads/main", cwd=proj, timeout=120)
    finally:
        proxy.stop()
    git(tmp_path, "config", "--global", "gitdata.retryMaxTime", "4")
    start = time.monotonic()
    r = run("git", "clone", "-q", str(origin), str(tmp_path / "clone"), cwd=tmp_path, check=False, timeout=300)
    elapsed = time.monotonic() - start
    err = r.stderr.decode()
    assert "cannot reach" in err and "git data pull" in err
    assert elapsed < 4 + 20, f"clone took {elapsed:.1f} s with gitdata.retryMaxTime=4"
    assert (tmp_path / "clone" / "data" / "f0.bin").read_bytes().startswith(b"version gitdata/1")


def test_downloads_that_break_off_are_retried(tmp_path, moto_server, moto_bucket, monkeypatch):
    """Every 3rd GET is cut in half: small objects (one request) and a 9 MiB
    one (streamed into the cache) still arrive whole through a clone."""
    proxy = FlakyProxy(moto_server.endpoint).start()
    try:
        proj, origin, files = _project_on(tmp_path, proxy, moto_bucket, moto_server, monkeypatch, n=12)
        files["data/huge.bin"] = random.Random(5).randbytes(9 << 20)
        write(proj / "data" / "huge.bin", files["data/huge.bin"])
        git(proj, "add", "-A")
        git(proj, "commit", "-qm", "huge")
        run("git", "push", "-q", "origin", "HEAD:refs/heads/main", cwd=proj, timeout=120)
        proxy.cut_every = 3
        git(tmp_path, "config", "--global", "gitdata.retryAttempts", "10")
        clone = tmp_path / "clone"
        r = run("git", "clone", "-q", str(origin), str(clone), cwd=tmp_path, timeout=180)
    finally:
        proxy.stop()
    # nothing but the once-per-clone note of where .gitdata sends data (trust.notice_once)
    notice = ("git data: this project's .gitdata", "git data:   ", "git data: if you did not expect this")
    said = [line for line in r.stderr.decode().splitlines() if not line.startswith(notice)]
    assert said == [], r.stderr.decode()
    assert "says where data goes" in r.stderr.decode()
    assert proxy.cut > 2
    for path, data in files.items():
        assert (clone / path).read_bytes() == data, path
    assert status_short(clone) == ""


def test_a_short_download_is_a_transient_error_and_nothing_is_cached(tmp_path):
    """A server (or a reader) that ends a response early without an error:
    the length is checked against the pointer's size before the hash."""
    from gitdata.cache import Cache
    from gitdata.fetch import DownloadBrokeOff, fetch_object
    from gitdata.hashing import oid_of_bytes
    from gitdata.storage import ObjectStore, oid_to_key

    data = random.Random(2).randbytes(9 << 20)  # above SMALL_OBJECT: the streamed path
    small = b"s" * 5000
    store = ObjectStore(Storage(str(tmp_path / "remote"), retry=RetryPolicy(attempts=2, base_delay=0.01)))
    for blob in (data, small):
        path = tmp_path / "remote" / oid_to_key(oid_of_bytes(blob))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blob[: len(blob) // 2])  # what arrives is cut
    cache = Cache(str(tmp_path / "cache"))
    for blob in (data, small):
        with pytest.raises(DownloadBrokeOff, match="broke off.*gave up after 2 attempt") as exc:
            fetch_object(store, cache, oid_of_bytes(blob), len(blob))
        assert exc.value.transient
        assert not cache.has(oid_of_bytes(blob))
    assert not os.listdir(cache.tmp_dir)


def test_prune_remote_aborts_incomplete_multipart_uploads(tmp_path, moto_server, moto_bucket, monkeypatch):
    """A push killed during a multipart upload leaves it open on the bucket."""
    use_server_env(monkeypatch, moto_server)
    proj = new_project(tmp_path / "p", f"s3://{moto_bucket}/proj", {"endpoint_url": moto_server.endpoint})
    s3 = moto_server.client()
    key = "proj/objects/ab/cd/abcd" + "0" * 28
    up = s3.create_multipart_upload(Bucket=moto_bucket, Key=key)
    s3.upload_part(Bucket=moto_bucket, Key=key, UploadId=up["UploadId"], PartNumber=1, Body=b"x" * (5 << 20))
    other = s3.create_multipart_upload(Bucket=moto_bucket, Key="elsewhere/x")  # not under the remote

    def open_uploads():
        return sorted(u["Key"] for u in s3.list_multipart_uploads(Bucket=moto_bucket).get("Uploads", []))

    # younger than gitdata.tempMaxAge: may be a push still running -> listed, kept
    # (moto dates every upload 2010-11-10, so "young" takes a long max age here)
    git(proj, "config", "gitdata.tempMaxAge", str(60 * 365 * 24 * 3600))
    out = gd(proj, "prune", "--remote")
    assert "kept incomplete upload" in out and "objects/ab/cd/" in out
    assert open_uploads() == ["elsewhere/x", key]
    git(proj, "config", "--unset", "gitdata.tempMaxAge")  # the default, 24 h
    assert "would abort incomplete upload: objects/ab/cd/" in gd(proj, "prune", "--remote", "--dry-run")
    assert open_uploads() == ["elsewhere/x", key]
    assert "aborted incomplete upload: objects/ab/cd/" in gd(proj, "prune", "--remote")
    assert open_uploads() == ["elsewhere/x"]
    s3.abort_multipart_upload(Bucket=moto_bucket, Key="elsewhere/x", UploadId=other["UploadId"])


def test_retries_do_not_stack(moto_server, moto_bucket, monkeypatch):
    """Against a server that answers 503 to everything, N attempts are N
    requests: the SDKs make one attempt each, a storage call inside a retried
    transfer is not retried again, and one on its own is retried by itself."""
    use_server_env(monkeypatch, moto_server)
    proxy = FlakyProxy(moto_server.endpoint, fail_every=1).start()
    try:
        policy = RetryPolicy(attempts=3, base_delay=0.01)
        st = Storage(f"s3://{moto_bucket}/p", {"endpoint_url": proxy.url}, retry=policy)
        with pytest.raises(TransientStorageError, match="answered .* retry later .gave up after 3 attempt"):
            st.cat("k")  # on its own: the storage retries it
        assert proxy.requests == 3
        out = run_parallel(["k"], lambda key: st.cat(key), jobs=1, retry=Retrier(policy), progress=False)
        assert not out.ok and proxy.requests == 6  # retried once, as a whole: not 3 x 3
        proxy.fail_every = 3  # every third request fails: each call still succeeds
        st2 = Storage(f"s3://{moto_bucket}/p", {"endpoint_url": proxy.url}, retry=policy)
        st2.put_bytes(b"hello", "k")
        assert [st2.cat("k") for _ in range(5)] == [b"hello"] * 5
        assert proxy.failed > 3
    finally:
        proxy.stop()


def test_a_server_that_accepts_and_never_answers_fails_a_push_within_the_bound(tmp_path, monkeypatch):
    """A black hole: TCP connections are accepted (by the kernel, into the
    backlog) but no byte ever comes back. Each attempt costs the read
    timeout, and the run stops after gitdata.retryMaxTime."""
    import socket

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(128)
    try:
        port = hole.getsockname()[1]
        proj = new_project(tmp_path / "p", "s3://bucket/proj", {"endpoint_url": f"http://127.0.0.1:{port}"})
        for i in range(20):
            write(proj / "data" / f"{i}.bin", bytes([i]) * 1000)
        git(proj, "add", "-A")
        git(proj, "commit", "-qm", "data")
        git(proj, "config", "gitdata.retryMaxTime", "3")
        origin = tmp_path / "origin.git"
        git(tmp_path, "init", "-q", "--bare", str(origin))
        git(proj, "remote", "add", "origin", str(origin))
        start = time.monotonic()
        r = run("git", "push", "origin", "HEAD:refs/heads/main", cwd=proj, check=False, timeout=300)
        elapsed = time.monotonic() - start
    finally:
        hole.close()
    err = r.stderr.decode()
    assert r.returncode != 0 and "Traceback" not in err
    assert "data/" in err and "gitdata.retryMaxTime" in err
    assert git(origin, "for-each-ref").strip() == ""
    assert elapsed < 3 + 3 * 2 + 20, f"push took {elapsed:.1f} s with gitdata.retryMaxTime=3"


def test_after_failing_fast_a_later_call_probes_and_recovers():
    t = FakeTime()
    r = _retrier(RetryPolicy(attempts=100, max_time=5, max_delay=1.0), t)
    down = {"v": True}

    def op():
        t.now += 0.1
        if down["v"]:
            raise StorageUnreachable("cannot reach")
        return "ok"

    with pytest.raises(StorageUnreachable, match="gave up"):
        r.call(op)
    with pytest.raises(StorageUnreachable, match="not tried"):
        r.call(op)  # right after: not even tried
    down["v"] = False
    t.now += 2
    with pytest.raises(StorageUnreachable, match="not tried"):
        r.call(op)  # still within max_time of the last failure
    t.now += 5
    assert r.call(op) == "ok"  # a probe gets through, and the server is back
    assert r.call(op) == "ok"


def test_run_parallel_keeps_only_a_window_of_items_in_flight():
    """A run of 2,000 items on 2 threads hands out a few items per thread at a time:
    when one fails with a bug (not a GitDataError), the run stops there instead of
    running every item queued behind it (it used to queue all 2,000 at once)."""
    import threading

    from gitdata.transfer import run_parallel

    ran = []
    lock = threading.Lock()

    def fn(i: int) -> int:
        with lock:
            ran.append(i)
        if i == 5:
            raise RuntimeError("a bug")
        return i

    with pytest.raises(RuntimeError, match="a bug"):
        run_parallel(range(2000), fn, jobs=2)
    assert len(ran) < 100, len(ran)
    done = run_parallel(range(2000), lambda i: i * 2, jobs=2)
    assert done.done == {i: i * 2 for i in range(2000)} and not done.failed
