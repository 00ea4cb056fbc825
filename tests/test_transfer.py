"""``transfer.run_parallel`` with forked worker processes (``processes`` > 1): the same
outcome as threads, errors that keep their class, a worker that dies failing only its
own items, and a bug that escapes as it would from a thread."""

from __future__ import annotations

import os

import pytest

from gitdata import transfer
from gitdata.errors import GitDataError
from gitdata.transfer import WorkerDied, run_parallel
from gitdata.writer import TargetChanged, WriteFailed


class NoSpace(WriteFailed):
    pass


def _work(i: int) -> tuple[int, int]:
    if i % 97 == 5:
        raise TargetChanged(f"item {i} changed")
    if i % 101 == 7:
        err = NoSpace(f"item {i}: disk full")
        err.no_space = True
        raise err
    return i * i, os.getpid()


def test_forked_runs_give_the_threaded_outcome():
    threaded = run_parallel(range(3000), _work, jobs=4, progress=False)
    forked = run_parallel(range(3000), _work, jobs=4, progress=False, processes=2)
    assert {k: v[0] for k, v in forked.done.items()} == {k: v[0] for k, v in threaded.done.items()}
    assert len(forked.done) == 3000 - len(threaded.failed) and forked.failed.keys() == threaded.failed.keys()
    for i, err in forked.failed.items():
        assert type(err) is type(threaded.failed[i]) and str(err) == str(threaded.failed[i])
        assert getattr(err, "no_space", False) == (i % 101 == 7 and i % 97 != 5)
    pids = {pid for _sq, pid in forked.done.values()}
    assert len(pids) == 2 and os.getpid() not in pids  # the work ran in two other processes


@pytest.mark.parametrize("processes, jobs", [(1, 1), (1, 4), (2, 4)])
def test_on_done_gets_every_result_and_the_outcome_keeps_none(processes, jobs):
    """A run with ``on_done`` hands each result over in the calling thread (threads, one
    thread, forked workers alike) and keeps only the failures."""
    import threading

    got: dict[int, tuple[int, int]] = {}
    threads = set()

    def done(item: int, value: tuple[int, int]) -> None:
        assert item not in got
        got[item] = value
        threads.add(threading.get_ident())

    plain = run_parallel(range(3000), _work, jobs=jobs, progress=False, processes=processes)
    out = run_parallel(range(3000), _work, jobs=jobs, progress=False, processes=processes, on_done=done)
    assert out.done == {} and out.failed.keys() == plain.failed.keys() and out.failed
    assert {k: v[0] for k, v in got.items()} == {k: v[0] for k, v in plain.done.items()}
    assert threads == {threading.get_ident()}


class _Result:
    """A result a weak reference can follow (a forked worker's arrives unpickled, new)."""

    def __init__(self, i: int) -> None:
        self.i = i


def test_forked_results_are_let_go_once_handed_over():
    """The parent holds no settled chunk: by the last result, those handed over long before
    are freed (the pool's futures kept every chunk's results until the run ended)."""
    import gc
    import weakref

    refs: list[weakref.ref[_Result]] = []
    alive_at_end: list[int] = []

    def done(item: int, value: _Result) -> None:
        assert value.i == item
        refs.append(weakref.ref(value))
        if len(refs) == 4000:
            gc.collect()
            alive_at_end.append(sum(r() is not None for r in refs[:3000]))

    out = run_parallel(range(4000), _Result, jobs=2, progress=False, processes=2, on_done=done)
    assert out.failed == {} and len(refs) == 4000
    assert alive_at_end == [0]


def test_short_runs_stay_in_this_process():
    out = run_parallel(range(transfer.FORK_MIN - 1), lambda i: os.getpid(), jobs=2, progress=False, processes=4)
    assert set(out.done.values()) == {os.getpid()}


class Unpicklable(GitDataError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.handle = lambda: None  # a lambda does not pickle


def test_an_error_that_does_not_pickle_keeps_its_message():
    def fn(i: int) -> int:
        if i == 1234:
            raise Unpicklable("item 1234 could not be staged: the reason")
        return i

    out = run_parallel(range(2000), fn, jobs=2, progress=False, processes=2)
    assert list(out.failed) == [1234] and len(out.done) == 1999
    assert isinstance(out.failed[1234], GitDataError) and "the reason" in str(out.failed[1234])


def test_a_worker_that_dies_fails_its_items_not_the_run():
    def fn(i: int) -> int:
        if i == 1500:
            os._exit(9)  # killed in the middle of a chunk (out of memory, kill -9)
        return i

    out = run_parallel(range(3000), fn, jobs=2, progress=False, processes=2)
    assert 1500 in out.failed and isinstance(out.failed[1500], WorkerDied)
    assert "run the command again" in str(out.failed[1500])
    assert set(out.done) | set(out.failed) == set(range(3000))  # every item has an answer
    assert all(out.done[i] == i for i in out.done)


def test_a_bug_escapes_as_from_a_thread():
    def fn(i: int) -> int:
        if i == 10:
            raise KeyError("a bug, not a storage error")
        return i

    with pytest.raises(KeyError, match="a bug"):
        run_parallel(range(2000), fn, jobs=2, progress=False, processes=2)


def test_what_only_fails_in_a_worker_is_done_here():
    """s3fs and gcsfs refuse to work in a forked child ("not fork-safe"): such items are run
    again in this process, and the run succeeds."""
    parent = os.getpid()

    def fn(i: int) -> int:
        if os.getpid() != parent and i % 3 == 0:
            raise RuntimeError("This class is not fork-safe")
        return os.getpid()

    out = run_parallel(range(3000), fn, jobs=4, progress=False, processes=2)
    assert out.ok and len(out.done) == 3000
    assert {out.done[i] for i in range(0, 3000, 3)} == {parent}
    assert parent not in {out.done[i] for i in range(1, 3000, 3)}
