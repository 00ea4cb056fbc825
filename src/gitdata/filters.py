"""Clean and smudge: what to store in git, and what to put in the work tree.

No protocol code here (see :mod:`gitdata.git.filter_process`).
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import GitDataError
from .fetch import WorktreeFile, describe, fetch_object, materialize, verify_file
from .hashing import new_hasher, oid_of_bytes
from .pointer import MAX_SIZE, Pointer, PointerError, is_pointer_like, parse
from .project import Project
from .refresh import EXPECT_ENV, read_expected, refresh_index
from .storage import normalize_url, oid_to_key
from .writer import WriteFailed

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

#: Content up to this size is hashed in memory before anything is written.
SMALL_CLEAN = 1 << 20
#: Environment variable naming a file of ``oid<TAB>path`` lines: paths git data
#: has just written from the cache, for the clean filter run by refresh_index.


@dataclass
class SmudgeResult:
    """What git writes: bytes, or a cache file streamed out."""

    data: bytes | None = None
    file: str | None = None
    error: str | None = None


#: objects smaller than this are not worth a free-space check before git writes them
ROOM_CHECK_MIN = 256 << 10
#: free space kept on the work tree's disk beyond an object git writes
ROOM_RESERVE = 1 << 20


class FilterHandler:
    """Clean/smudge for one long-running filter process (one git command)."""

    def __init__(
        self, project: Project, *, skip_smudge: bool = False, log=None, expected: dict[str, str] | None = None,
        settle_index: str | None = None,
    ) -> None:
        self.project = project
        self.skip_smudge = skip_smudge
        #: path -> oid of files git data just wrote (see :func:`refresh_index`)
        self.expected = expected or {}
        self._log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._downloads: dict[str, Future[str]] = {}
        self._delayed: dict[str, tuple[Pointer, Future[str]]] = {}
        self._deferred: list[WorktreeFile] = []
        self._ready: list[str] = []  # delayed paths whose download finished, not yet reported
        self._reported: set[str] = set()
        self._ready_cond = threading.Condition()
        self._inflight = 0  # downloads writing into the cache now
        self._inflight_cond = threading.Condition()
        self._space_retry = threading.Lock()  # retries after a full disk run one at a time
        self.failures: list[str] = []
        self._clean_buf: bytearray | None = None
        self._dataset_stores: dict[str, tuple[object, GitDataError | None]] = {}
        #: path -> oid of what git was given to write there (see :mod:`gitdata.settle`)
        self.written: dict[str, str] = {}
        #: the index file to settle when git is done (None: not this run's business)
        self.settle_index = settle_index

    # -- clean -------------------------------------------------------------
    def clean(self, path: str, chunks: Iterator[bytes]) -> bytes:
        # Content up to SMALL_CLEAN is gathered in one buffer kept for the
        # whole process: fresh multi-MiB buffers per file cost page faults
        # (200 x 5 MiB add: 2.6 s -> 5.5 s of mostly system time).
        if self._clean_buf is None:
            self._clean_buf = bytearray(SMALL_CLEAN)
        buf = self._clean_buf
        n = 0
        it = iter(chunks)
        overflow: bytes | None = None
        for chunk in it:
            end = n + len(chunk)
            if end > SMALL_CLEAN:
                overflow = chunk
                break
            buf[n:end] = chunk
            n = end
        if n == 0 and overflow is None:
            return b""
        head = memoryview(buf)[:n]
        if overflow is None and n < MAX_SIZE:
            text = bytes(head)
            if is_pointer_like(text):
                # already a pointer: pass through unchanged; a malformed one too (a
                # checkout left it as it is): never hashed into the cache as data;
                # the pre-commit hook and fsck name it
                return text
        complete = overflow is None
        if overflow is not None:
            it = itertools.chain((overflow,), it)
        cache = self.project.cache
        algo = self.project.algorithm
        if complete:
            # small: hashed in memory; written only if neither the cache nor a
            # local data remote has it (a re-clean after a checkout writes nothing)
            oid, size = oid_of_bytes(head, algo), n
            if not cache.has(oid) and self._local_object(oid) is None:
                cache.put_bytes(head, algo, expected_oid=oid)
        elif (expected := self.expected.get(path) or self._indexed_object_if_short_of_space(path)) is not None and (
            cache.has(expected) or self._local_object(expected) is not None
        ):
            # most likely the bytes git data wrote for this path: hashed, nothing written
            # (so a plain `git status` re-cleaning a checked-out file on a full disk works)
            oid, size = self._clean_expected(path, expected, head, it)
        else:
            with cache.writer(algo) as w:
                w.write(head)
                for chunk in it:
                    w.write(chunk)
                if self._local_object(w.oid) is not None:
                    oid, size = w.oid, w.size  # already in the local data remote: keep no copy
                    w.abort()
                else:
                    oid, size = w.commit()
        staged = self.project.state.staged_pointer(path, oid)
        if staged is not None:
            return staged
        return Pointer(oid=oid, size=size).encode()

    def _indexed_object_if_short_of_space(self, path: str) -> str | None:
        """:meth:`_indexed_object` where the cache's disk could not take another copy of the
        file; elsewhere a re-clean writes while it hashes, as a new file's clean does (two git
        processes per file would cost more than the write)."""
        try:
            size = os.stat(os.path.join(self.project.root, path)).st_size
            st = os.statvfs(self.project.cache.root if os.path.isdir(self.project.cache.root) else self.project.root)
        except OSError:
            return None
        if st.f_bavail * st.f_frsize >= size + ROOM_RESERVE:
            return None
        return self._indexed_object(path)

    def _indexed_object(self, path: str) -> str | None:
        """The oid of the pointer git's index holds for ``path``, if it holds one and the
        work-tree file has the size it records (two git processes, for files over 1 MiB)."""
        repo = self.project.repo
        try:
            size = int(repo.git("cat-file", "-s", f":{path}", check=True) or b"-1")
            if not 0 < size < MAX_SIZE:
                return None
            pointer = parse(repo.git("cat-file", "blob", f":{path}"))
            here = os.stat(os.path.join(self.project.root, path)).st_size
        except (GitDataError, PointerError, ValueError, OSError):
            return None  # not in the index (a new file), or not a pointer there
        # another size: an edit, which is written to the cache as it is read (one pass)
        return pointer.oid if pointer.size == here else None

    def _clean_expected(
        self, path: str, expected: str, head: bytes | memoryview, it: Iterator[bytes]
    ) -> tuple[str, int]:
        """Content git data itself just wrote from the cache: hash it, write nothing.

        If the bytes are not the expected object after all (changed in the
        meantime), the file is added to the cache from the work tree and must
        hash to what git sent.
        """
        algo = expected.split(":", 1)[0]
        hasher = new_hasher(algo)
        hasher.update(head)
        size = len(head)
        for chunk in it:
            hasher.update(chunk)
            size += len(chunk)
        oid = f"{algo}:{hasher.hexdigest()}"
        if oid != expected and not self.project.cache.has(oid):  # (then it is on no remote either)
            full = os.path.join(self.project.root, path)
            with open(full, "rb") as f:
                self.project.cache.put_stream(f, algo, expected_oid=oid)
        return oid, size

    # -- smudge ------------------------------------------------------------
    def smudge(self, path: str, blob: bytes, can_delay: bool) -> SmudgeResult | None:
        """``None`` means delayed: the result comes from :meth:`available`."""
        result = self._smudge(path, blob, can_delay)
        if result is not None:
            self._note(path, result, blob)
        return result

    def _note(self, path: str, result: SmudgeResult, blob: bytes | None = None, pointer: Pointer | None = None) -> None:
        """Remember what git writes at ``path``: bytes by their sha256, a cache file by its oid."""
        if result.data is not None:
            import hashlib

            self.written[path] = f"sha256:{hashlib.sha256(result.data).hexdigest()}"
        elif result.file is not None:
            if pointer is None and blob is not None:
                pointer = parse(blob)
            if pointer is not None and pointer.oid is not None:
                self.written[path] = pointer.oid

    def _smudge(self, path: str, blob: bytes, can_delay: bool) -> SmudgeResult | None:
        if self.skip_smudge or not is_pointer_like(blob):
            return SmudgeResult(data=blob)
        try:
            pointer = parse(blob)
        except PointerError as err:
            # this file only: left as it is, named; the rest of the checkout proceeds
            self._log(
                f"error: {path}: malformed gitdata pointer ({err}); left as it is. Restore a "
                "good pointer (or the content) and commit it; `git data fsck` lists such files."
            )
            self.failures.append(path)
            return SmudgeResult(data=blob)
        if pointer.oid is None or pointer.is_manifest:
            # registered data (and a dataset's manifest of it): staged by `git data dataset stage`
            return SmudgeResult(data=blob)
        cache = self.project.cache
        if cache.has(pointer.oid, pointer.size):  # size-checked (packed: hash-checked too)
            return self._from_cache(path, pointer)
        if not self.project.fetch_filter.wants(path):
            return SmudgeResult(data=blob)  # gitdata.fetchExclude / fetchInclude: stays a pointer
        owned = self._owner(path) is not None  # a dataset with its own storage
        local = None if owned else self._local_object(pointer.oid)
        if local is not None and pointer.size is not None and os.path.getsize(local) != pointer.size:
            local = None  # not what the pointer says: the download path refuses it with the reason
        if local is not None and self._write_later(pointer.size or 0):
            # written after git is done, verified while it is copied
            self._deferred.append(WorktreeFile(path, pointer, source=local))
            return SmudgeResult(data=pointer.encode())
        fut = self._start_download(pointer, local, path)
        if can_delay:
            self._delayed[path] = (pointer, fut)
            fut.add_done_callback(lambda _f, p=path: self._mark_ready(p))
            return None
        return self._finish(path, pointer, fut)

    def _start_download(self, pointer: Pointer, local: str | None = None, path: str = "") -> Future[str]:
        """Fetch into the cache from where ``path``'s data lives, or (``local``:
        the object's file on a local data remote) only verify that file, in
        the pool either way."""
        assert pointer.oid is not None
        with self._lock:
            fut = self._downloads.get(pointer.oid)
            if fut is None:
                store, error = self._store_for(path)
                if self._pool is None:
                    jobs = self.project.jobs
                    # the first object's size stands for the rest (small ones: one thread)
                    workers = store.storage.workers(jobs, mean_size=pointer.size) if store is not None else 1
                    from concurrent.futures import ThreadPoolExecutor  # only when downloading

                    self._pool = ThreadPoolExecutor(max_workers=workers)
                if store is None:
                    fut = _failed_future(error)
                elif local is not None:
                    fut = self._pool.submit(verify_file, local, pointer.oid, describe(store))
                else:
                    fut = self._pool.submit(self._fetch, store, pointer.oid, pointer.size)
                self._downloads[pointer.oid] = fut
            return fut

    def _fetch(self, store: object, oid: str, size: int | None) -> str:
        """One download into the cache. On a full disk while other downloads
        were writing, it is tried once more after they have settled (a large
        object's temporary file, removed when it failed, had taken the space a
        small one needed); such second tries run one at a time."""
        with self._inflight_cond:
            self._inflight += 1
        try:
            return fetch_object(store, self.project.cache, oid, size)  # type: ignore[arg-type]
        except WriteFailed as err:
            if not err.no_space:
                raise
            with self._inflight_cond:
                if self._inflight == 1:
                    raise  # nothing else is writing: the disk is simply full
                self._inflight -= 1  # not writing while it waits
                self._inflight_cond.notify_all()
                self._inflight_cond.wait_for(lambda: self._inflight == 0)
                self._inflight += 1
            with self._space_retry:
                return fetch_object(store, self.project.cache, oid, size)  # type: ignore[arg-type]
        finally:
            with self._inflight_cond:
                self._inflight -= 1
                self._inflight_cond.notify_all()

    _no_remote_error: GitDataError | None = None
    _store_cache: object = None
    _owners: list | None = None

    def _owner(self, path: str):
        """The dataset with its own storage that holds ``path``, if any."""
        if self._owners is None:
            from .datasets import load_all

            try:
                self._owners = [d for d in load_all(self.project).values() if d.storage]
            except GitDataError:
                self._owners = []
        return next((d for d in self._owners if d.contains(path)), None)

    def _store_for(self, path: str):
        """``(store, None)`` where ``path``'s objects live (its dataset's own
        storage, else the data remote), or ``(None, error)``."""
        owner = self._owner(path) if path else None
        if owner is None:
            store = self._store()
            return store, (None if store is not None else self._no_remote_error)
        if owner.name not in self._dataset_stores:
            from .datasets import object_store_for

            try:
                self._dataset_stores[owner.name] = (object_store_for(self.project, owner), None)
            except GitDataError as err:
                self._dataset_stores[owner.name] = (None, err)
        return self._dataset_stores[owner.name]

    def _store(self):
        if self._store_cache is None and self._no_remote_error is None:
            try:
                self._store_cache = self.project.object_store()
            except GitDataError as err:
                self._no_remote_error = err
        return self._store_cache

    def _local_object(self, oid: str) -> str | None:
        """The file holding ``oid`` on a data remote that is a local folder
        (read directly instead of copied into the cache), or None."""
        if self._local_store is None:
            self._local_store = False
            try:
                remote = self.project.remotes[self.project.remote_name()]
            except GitDataError:
                return None
            # only a file:// remote: never open (import) a cloud backend here
            if normalize_url(remote.url).startswith("file://") and not self.project.cache_local_remote:
                store = self._store()
                if store is not None and store.storage.local_root is not None:
                    self._local_store = store
        if self._local_store is False:
            return None
        candidate = self._local_store.storage.path(oid_to_key(oid))
        return candidate if os.path.isfile(candidate) else None

    _local_store: object = None

    def _from_cache(self, path: str, pointer: Pointer) -> SmudgeResult:
        assert pointer.oid is not None
        size = pointer.size or 0
        if self._write_later(size):
            # git would hold the whole output in memory (or could not write all of it to a
            # disk this full, leaving half a file): write the pointer now, and the content
            # ourselves, streaming and through the guarded writer, when git is done.
            self._deferred.append(WorktreeFile(path, pointer))
            return SmudgeResult(data=pointer.encode())
        cache = self.project.cache
        loose = cache.loose_path(pointer.oid)
        # packs hold only small objects, so read_bytes is bounded; a loose one is checked first
        actual = os.path.getsize(loose) if loose else None
        data = None if loose else cache.read_bytes(pointer.oid)
        actual = len(data) if data is not None else actual
        if pointer.size is not None and actual != pointer.size:
            # a pointer whose size lies would make git buffer an object of any size
            self._log(
                f"error: could not check out {path}: its pointer records {pointer.size} bytes but "
                f"object {pointer.oid} has {actual}; the file was left as a pointer (the pointer "
                "is wrong: ask who committed it)"
            )
            self.failures.append(path)
            return SmudgeResult(data=pointer.encode())
        return SmudgeResult(file=loose) if loose else SmudgeResult(data=data)

    def _finish(self, path: str, pointer: Pointer, fut: Future[str]) -> SmudgeResult:
        try:
            fut.result()
        except GitDataError as err:
            msg = (
                f"error: could not check out {path}: {err}. The file was left as a pointer; "
                "run `git data pull` once the object is available."
            )
            self._log(msg)
            self.failures.append(path)
            return SmudgeResult(data=pointer.encode())
        assert pointer.oid is not None
        if not self.project.cache.has(pointer.oid):
            local = self._local_object(pointer.oid)
            if local is not None and not self._write_later(pointer.size or 0):
                return SmudgeResult(file=local)  # verified by the job that just finished
            if local is not None:
                self._deferred.append(WorktreeFile(path, pointer, source=local))
                return SmudgeResult(data=pointer.encode())
        return self._from_cache(path, pointer)

    def _write_later(self, size: int) -> bool:
        """Whether git data writes this object itself after git is done: it is over
        ``gitdata.smudgeMax``, or the work tree's disk has no room for it (git would
        write part of it, then fail every file after it)."""
        if size > self.project.smudge_max:
            return True
        if size < ROOM_CHECK_MIN:
            return False
        try:
            st = os.statvfs(self.project.root)
        except OSError:
            return False
        return st.f_bavail * st.f_frsize < size + ROOM_RESERVE

    def _mark_ready(self, path: str) -> None:
        with self._ready_cond:
            self._ready.append(path)
            self._ready_cond.notify()

    def available(self) -> list[str]:
        """Delayed paths whose downloads finished since the last call (blocks until one has).

        Each path is reported once; git then asks for each of them.
        """
        with self._ready_cond:
            while not self._ready:
                if not any(p not in self._reported for p in self._delayed):
                    return []
                self._ready_cond.wait()
            ready, self._ready = self._ready, []
        out = [p for p in ready if p in self._delayed and p not in self._reported]
        self._reported.update(out)
        return out

    def is_delayed(self, path: str) -> bool:
        return path in self._delayed

    def delayed_result(self, path: str) -> SmudgeResult:
        entry = self._delayed.pop(path, None)
        self._reported.discard(path)
        if entry is None:
            return SmudgeResult(error=f"{path}: was not delayed")
        pointer, fut = entry
        result = self._finish(path, pointer, fut)
        self._note(path, result, pointer=pointer)
        return result

    # -- end of the git command ---------------------------------------------
    def finish(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        if self._deferred:
            root = self.project.root
            outcome = materialize(self.project.cache, root, self._deferred)
            for path, err in outcome.failed.items():
                self._log(f"error: could not write {path}: {err}")
            if outcome.done:
                refresh_index(self.project, outcome.done)
                self.written.update(outcome.done)  # the content now, where git wrote the pointer
        if self.written and self.settle_index and self.project.setting("gitdata.settleIndex"):
            from . import settle

            settle.start(self.project.root, self.settle_index, self.written)


def serve_filter_process() -> None:
    """Serve git's long-running filter protocol on stdin/stdout, in the current repository."""
    from .git.filter_process import FilterServer
    from .git.pktline import PktReader, PktWriter
    from .install import install_hooks

    project = Project.open()
    try:
        install_hooks(project.repo, quiet=True)
    except OSError:
        pass
    stdin = os.fdopen(sys.stdin.fileno(), "rb", buffering=1 << 20, closefd=False)
    stdout = os.fdopen(sys.stdout.fileno(), "wb", buffering=1 << 20, closefd=False)
    skip = os.environ.get("GIT_DATA_SKIP_SMUDGE", "") not in ("", "0", "false")
    # a checkout's index is settled when git is done; not a temporary index (commit -a, stash)
    index = None if os.environ.get("GIT_INDEX_FILE") else os.path.join(project.repo.git_dir, "index")
    handler = FilterHandler(project, skip_smudge=skip, expected=read_expected(os.environ.get(EXPECT_ENV)),
                            settle_index=index)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    if os.path.exists(os.path.join(project.root, ".gitdata")):
        from .trust import notice_once

        notice_once(project, log)
    server = FilterServer(PktReader(stdin.read), PktWriter(stdout.write, stdout.flush), handler, log=log)
    server.serve()
    stdout.flush()


def _failed_future(err: GitDataError | None) -> Future[str]:
    from concurrent.futures import Future

    fut: Future[str] = Future()
    fut.set_exception(err or GitDataError("no data remote"))
    return fut

