"""The one retry policy for every transfer: what to retry, how long to wait.

Pure logic: the clock, the sleep and the random source are passed in, so
every rule is tested without a network or a real wait.

- Only errors marked ``transient`` are retried (the storage layer decides
  that by exception type and service error code, in
  :mod:`gitdata.storage.errors`; never by message text).
- Waits are exponential backoff with full jitter: before retry ``n`` (1, 2,
  ...) a uniform draw in ``[0, min(max_delay, base_delay * 2**(n-1))]``.
- Bounded twice: at most ``attempts`` tries per operation, and retries stop
  once the run has been failing without a single success for ``max_time``
  seconds. One :class:`Retrier` is shared by a whole run (a push of 2,000
  objects, a checkout's downloads), so a dead server fails the run in about
  ``max_time``, not ``max_time`` per object: once that bound is reached,
  operations not yet tried fail at once with the last error (one probe is
  let through when nothing was tried for another ``max_time``, so a long-lived
  process recovers). A success anywhere resets the clock, so a server that
  drops a fraction of requests only costs retries.

The storage layer caps the SDKs' own retries (s3fs and botocore make one
attempt each), so these are the only ones; see docs/design.md. Retries happen
at the outermost level only: :func:`active` tells a storage operation that
it runs inside a :meth:`Retrier.call` (an upload, a download), which retries
it as part of the whole; called on its own (a listing, a manifest read) the
storage retries that one request itself.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TypeVar

from .errors import GitDataError

R = TypeVar("R")

_ACTIVE: ContextVar[bool] = ContextVar("gitdata_retry_active", default=False)


def active() -> bool:
    """Whether this thread is inside a :meth:`Retrier.call` (which will retry)."""
    return _ACTIVE.get()


@dataclass(frozen=True)
class RetryPolicy:
    #: tries per operation (1: no retry)
    attempts: int = 6
    #: seconds of failing without any success after which the run gives up
    max_time: float = 30.0
    base_delay: float = 0.2
    max_delay: float = 5.0

    def delay(self, retry: int, draw: float) -> float:
        """The wait before retry number ``retry`` (1-based); ``draw`` in [0, 1)."""
        return draw * min(self.max_delay, self.base_delay * (2 ** (retry - 1)))

    @property
    def connect_timeout(self) -> float:
        """Per-request connect timeout the SDKs get: one dead connection
        attempt must not use the whole budget."""
        return max(1.0, min(5.0, self.max_time / 3))

    @property
    def read_timeout(self) -> float:
        """Per-request wait for the next bytes of a response: a server that
        accepts and then says nothing costs this per attempt (default 10 s,
        so a hung server fails a run in well under a minute)."""
        return max(2.0, min(15.0, self.max_time / 3))


class GaveUp(GitDataError):
    """A transient error that outlasted the retry policy (when the error's
    own class cannot be rebuilt from a message)."""

    def __init__(self, message: str, cause: GitDataError) -> None:
        super().__init__(message)
        self.exit_code = cause.exit_code


def gave_up(err: GitDataError, message: str) -> GitDataError:
    """``err`` again, of the same class (callers catch ``StorageUnreachable``
    and the like), with ``message``, which says the policy was exhausted."""
    try:
        out = type(err)(message)
    except TypeError:
        return GaveUp(message, err)
    out.exit_code = err.exit_code
    return out


def is_transient(err: BaseException) -> bool:
    return isinstance(err, GitDataError) and bool(getattr(err, "transient", False))


class Retrier:
    """A :class:`RetryPolicy` applied to one run; thread-safe."""

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.policy = policy
        self._clock, self._sleep, self._draw = clock, sleep, draw
        self._lock = threading.Lock()
        self._failing_since: float | None = None  # first transient failure with no success since
        self._failed_at = 0.0  # the latest transient failure
        self._last: GitDataError | None = None

    def _hint(self) -> str:
        return "raise gitdata.retryAttempts or gitdata.retryMaxTime to wait longer"

    def call(self, fn: Callable[[], R]) -> R:
        """``fn()``, retried on transient errors as the policy says."""
        p = self.policy
        tries = 0
        while True:
            with self._lock:
                since, failed_at, last = self._failing_since, self._failed_at, self._last
            now = self._clock()
            # failing for max_time already: fail at once, unless nothing has
            # been tried for max_time either (then this call probes the server)
            if tries == 0 and since is not None and last is not None and now - since >= p.max_time > now - failed_at:
                raise gave_up(
                    last, f"{last} (not tried: every request failed for {p.max_time:g} s; {self._hint()})"
                ) from last
            tries += 1
            token = _ACTIVE.set(True)
            try:
                result = fn()
            except GitDataError as err:
                if not is_transient(err):
                    raise
                now = self._clock()
                with self._lock:
                    if self._failing_since is None:
                        self._failing_since = now
                    self._failed_at = now
                    self._last = err
                    elapsed = now - self._failing_since
                wait = p.delay(tries, self._draw())
                if tries >= p.attempts or elapsed + wait > p.max_time:
                    raise gave_up(
                        err, f"{err} (gave up after {tries} attempt(s), failing for {elapsed:.1f} s; {self._hint()})"
                    ) from err
                self._sleep(wait)
                continue
            finally:
                _ACTIVE.reset(token)
            with self._lock:
                self._failing_since = None
                self._last = None
            return result
