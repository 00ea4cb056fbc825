"""Parallel transfers with retries, their progress counted by :class:`Progress`
(drawn, if at all, by the renderer the entry point installed: :mod:`gitdata.progress`).

Failures are per item: a run returns what succeeded and what failed; only a
non-:class:`GitDataError` bug escapes. Retries follow the one policy of
:mod:`gitdata.retry`, shared by every item of a run.
"""

from __future__ import annotations

import os
import pickle
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Generic, TypeVar

from .errors import GitDataError
from .progress import Progress
from .retry import Retrier, RetryPolicy

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Outcome(Generic[T, R]):
    done: dict[T, R] = field(default_factory=dict)
    failed: dict[T, GitDataError] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


def _call_once(fn: Callable[[], R]) -> R:
    return fn()


#: the byte counter of the item this thread works on (see :func:`report_bytes`)
_item = threading.local()


def report_bytes(n: int) -> None:
    """Called by streaming code with each chunk it moves: the bar of the run
    this item belongs to advances by bytes as they arrive, so one large
    object moves the bar steadily instead of in one jump at its end. A
    no-op outside :func:`run_parallel` (or in a run counted by files)."""
    counter = getattr(_item, "counter", None)
    if counter is not None:
        counter(n)


def byte_reporter() -> Callable[[int], None] | None:
    """:func:`report_bytes` of the item this thread works on, for code whose bytes move
    on another thread (an SDK's event loop uploading parts); None outside a run."""
    return getattr(_item, "counter", None)


def run_parallel(
    items: Iterable[T],
    fn: Callable[[T], R],
    *,
    jobs: int,
    label: str = "transfer",
    weight: Callable[[T], int] | None = None,
    retry: RetryPolicy | Retrier | None = None,
    progress: bool | None = None,
    processes: int = 1,
    on_done: Callable[[T, R], None] | None = None,
) -> Outcome[T, R]:
    """Run ``fn`` over ``items`` on ``jobs`` threads, retrying each item as a
    whole on transient errors as ``retry`` says (a policy gets one
    :class:`Retrier` for this run). ``None``: items are not retried as a
    whole; the storage operations they make retry their own requests, under
    their storage's policy (the project's settings).

    ``processes`` > 1 (a caller whose ``fn`` only writes files and returns a
    picklable result, see :func:`_run_forked`): a run of at least
    :data:`FORK_MIN` items is shared out to that many forked worker processes,
    ``jobs`` threads in all.

    ``on_done``: each result is handed to it (in the calling thread, as it
    arrives) instead of being kept in the outcome's ``done``, so a long run
    holds none of them (its failures are still kept)."""
    if retry is None:
        call: Callable[[Callable[[], R]], R] = _call_once
    else:
        call = (retry if isinstance(retry, Retrier) else Retrier(retry)).call
    todo = list(dict.fromkeys(items))
    outcome: Outcome[T, R] = Outcome()
    if not todo:
        return outcome
    total = sum(weight(i) for i in todo) if weight else len(todo)
    bar = Progress(label, total, unit_bytes=weight is not None, enabled=progress)
    reported: dict[T, int] = {}  # bytes an item reported while it streamed
    lock = threading.Lock()

    def counted(item: T) -> R:
        """``fn(item)`` with its streamed bytes advancing the bar, never beyond its weight."""
        if weight is None:
            return fn(item)
        cap = weight(item)

        def count(n: int) -> None:
            with lock:
                before = reported.get(item, 0)
                now = min(cap, before + n)
                reported[item] = now
            bar.advance(now - before)

        _item.counter = count
        try:
            return fn(item)
        finally:
            _item.counter = None

    def settle(item: T, result: Callable[[], R]) -> None:
        try:
            value = result()
        except GitDataError as err:
            outcome.failed[item] = err
        else:
            if on_done is None:
                outcome.done[item] = value
            else:
                on_done(item, value)
        if weight is None:
            bar.advance(1)
            return
        with lock:
            rest = weight(item) - reported.pop(item, 0)
        bar.advance(rest)  # the rest at the end (all of it for code that does not report)

    try:
        if processes > 1 and len(todo) >= FORK_MIN and hasattr(os, "fork"):
            # what failed in a worker other than as a storage error: once more, here
            todo = _run_forked(todo, lambda item: call(lambda: fn(item)), processes, jobs, settle)
        if jobs <= 1:  # in this thread: no pool, no futures (10,000 small local copies: 3 s -> 1.6 s)
            for item in todo:
                settle(item, lambda i=item: call(lambda: counted(i)))
            return outcome
        # imported here: not on the filter's start-up path
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        # a few items per thread in flight, not one future per item: 100,000 small objects
        # held 100,000 futures and their closures for the whole run
        window = max(16, 4 * jobs)
        waiting = iter(todo)
        pending: dict[Any, T] = {}
        with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(todo)))) as pool:
            while True:
                for item in islice(waiting, window - len(pending)):
                    pending[pool.submit(call, (lambda i=item: counted(i)))] = item
                if not pending:
                    break
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    settle(pending.pop(fut), fut.result)
    finally:
        bar.close()
    return outcome


#: the smallest run worth forking worker processes for (a fork and its pool cost ~30 ms)
FORK_MIN = 1000

#: what a forked worker runs: the run's items and its call for one item (inherited, not pickled)
_FORKED: tuple[list[Any], Callable[[Any], Any]] | None = None
_FORKED_POOL: Any = None


class WorkerDied(GitDataError):
    """A worker process of a run ended before it reported (killed, out of memory)."""


def _adopt(todo: list[Any], one: Callable[[Any], Any]) -> None:
    global _FORKED, _FORKED_POOL
    _FORKED, _FORKED_POOL = (todo, one), None


def _portable(err: GitDataError) -> GitDataError:
    """``err`` as it can cross to the parent (its class kept where it pickles)."""
    try:
        pickle.loads(pickle.dumps(err))
    except Exception:  # an attribute that does not pickle: the message is what matters
        return GitDataError(str(err))
    return err


def _run_chunk(lo: int, hi: int, threads: int) -> list[tuple[int, bool | None, Any]]:
    """In a forked worker: items ``lo``..``hi`` of the run, on ``threads`` threads."""
    global _FORKED_POOL
    assert _FORKED is not None, "not a forked worker of run_parallel"
    todo, one = _FORKED

    def run(i: int) -> tuple[int, bool | None, Any]:
        try:
            return i, True, one(todo[i])
        except GitDataError as err:
            return i, False, _portable(err)
        except Exception:  # noqa: BLE001 - not ours to judge here: the parent runs the item itself
            return i, None, None  # (a library that refuses to work after a fork; a bug shows there)

    if threads <= 1:
        return [run(i) for i in range(lo, hi)]
    if _FORKED_POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        _FORKED_POOL = ThreadPoolExecutor(max_workers=threads)
    return list(_FORKED_POOL.map(run, range(lo, hi)))


def _run_forked(
    todo: list[T], one: Callable[[T], R], processes: int, jobs: int,
    settle: Callable[[T, Callable[[], R]], None],
) -> list[T]:  # fmt: skip
    """Many small items on several cores: per-item Python work holds one interpreter's
    lock, so one process with 8 threads is no faster than one thread (docs/design.md,
    "staging many objects on worker processes"). The workers are forked (``fn`` and the items are
    inherited, never pickled); each takes chunks of item indices and sends back
    ``(index, ok, result or error)``; the parent settles them as they come, so the
    bar, the outcome and everything recorded afterwards stay the parent's. An item that
    failed in a worker with anything but a :class:`GitDataError` (s3fs and gcsfs refuse
    to be used after a fork; a bug) is run again in the parent, where a bug escapes as
    from a thread; those items are returned."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    processes = max(1, min(processes, len(todo) // (FORK_MIN // 2)))
    threads = max(1, -(-jobs // processes))
    chunk = max(8, min(256, len(todo) // (processes * 16)))
    ctx = multiprocessing.get_context("fork")
    again: list[int] = []
    with ProcessPoolExecutor(processes, mp_context=ctx, initializer=_adopt, initargs=(todo, one)) as pool:
        futures = {pool.submit(_run_chunk, lo, min(lo + chunk, len(todo)), threads): lo
                   for lo in range(0, len(todo), chunk)}  # fmt: skip
        for fut in as_completed(futures):
            # a settled chunk's future is dropped: it holds the chunk's results, and keeping
            # every one of them until the pool closes grew the parent with the item count
            lo = futures.pop(fut)
            try:
                results = fut.result()
            except BrokenProcessPool:
                died = WorkerDied("a worker process ended before it finished (killed, or out of memory); run the command again")
                results = [(i, False, died) for i in range(lo, min(lo + chunk, len(todo)))]
            del fut
            for i, ok, value in results:
                if ok is None:
                    again.append(i)
                else:
                    settle(todo[i], (lambda v=value: v) if ok else _raiser(value))
            del results
    return [todo[i] for i in again]


def _raiser(err: BaseException) -> Callable[[], Any]:
    def fail() -> Any:
        raise err

    return fail
