"""``dataset verify --dask ADDRESS``: the hashing of :mod:`.verify` on an existing Dask cluster.

The client splits each storage's items into one piece per worker (largest
first, onto the least loaded piece), submits :func:`.verify.hash_share`
for each piece under a random task name (``gitdata-verify-<random>-<n>``:
no path, URL or option in it), gathers every result, and only then
returns them to :func:`.verify.verify`, which writes the pointers here,
through the guarded writer. A task that fails or a worker that dies fails
the whole run before anything is written.

Credentials: each piece carries its storage's resolved options (tracked
options, per-clone options, stored credentials, and the credentials this
process found in its environment or profile:
:func:`gitdata.credentials.portable_options`) inside a
:class:`.verify.Sealed`, whose repr is redacted; they travel to the
workers in the pickled task, as any Dask task's arguments do (use a
``tls://`` scheduler address off this machine).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ..credentials import portable_options
from ..storage.errors import BackendMissing, redact_url
from .verify import Item, Result, Sealed, Share, VerifyFailed, hash_share, token

#: Seconds to wait for the scheduler to answer; None: Dask's own setting
#: (``distributed.comm.timeouts.connect``, 30 s unless configured, e.g. by
#: ``DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT``)
CONNECT_TIMEOUT: float | None = None


def split(shares: list[Share], pieces: int) -> list[Share]:
    """Each share cut into at most ``pieces`` shares of about equal bytes. Pure."""
    out = []
    for share in shares:
        n = max(1, min(pieces, len(share.items)))
        bins: list[list[Item]] = [[] for _ in range(n)]
        loads = [0] * n
        for it in sorted(share.items, key=lambda i: (-i.size, i.path)):
            k = loads.index(min(loads))
            bins[k].append(it)
            loads[k] += it.size
        out += [replace(share, items=tuple(b)) for b in bins if b]
    return out


def runner(address: str, *, timeout: float | None = CONNECT_TIMEOUT) -> Callable[[list[Share]], list[Result]]:
    """A ``run`` for :func:`.verify.verify` that hashes on the cluster at ``address``."""

    def run(shares: list[Share]) -> list[Result]:
        try:
            from distributed import Client
        except ImportError as err:
            raise BackendMissing(
                "`--dask` needs the distributed package: pip install 'gitdata[dask]'"
            ) from err
        if not shares:
            return []
        try:
            wait = {} if timeout is None else {"timeout": timeout}  # none given: Dask's own setting
            client = Client(address, set_as_default=False, **wait)
        except (OSError, TimeoutError, ValueError) as err:
            raise VerifyFailed(
                f"cannot reach the Dask scheduler at {redact_url(address)} ({type(err).__name__}); "
                "check the address (for example tcp://HOST:8786) and that the scheduler runs; "
                "nothing was recorded"
            ) from err
        try:
            workers = max(1, len(client.scheduler_info().get("workers", {})))
            portable = [replace(s, options=Sealed(portable_options(s.url, s.options.open()))) for s in shares]
            pieces = split(portable, workers)
            prefix = f"gitdata-verify-{token()}"
            futures = [
                client.submit(hash_share, piece, key=f"{prefix}-{i}", pure=False, retries=0)
                for i, piece in enumerate(pieces)
            ]
            try:
                parts = client.gather(futures)
            except Exception as err:  # noqa: BLE001 - whatever a task or the cluster raised
                raise VerifyFailed(
                    f"a Dask task failed while verifying ({type(err).__name__}: "
                    f"{redact_url(str(err))[:300]}); nothing was recorded. Check the workers' logs "
                    "(gitdata must be installed on every worker), then run verify again"
                ) from None
        finally:
            client.close()
        return [r for part in parts for r in part]

    return run
