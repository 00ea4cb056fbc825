"""A git repository kept in a bucket: packs plus a refs manifest.

Layout under the storage URL (``s3://bucket/prefix``, ``gs://...``, ``file://...``)::

    git/manifests/<seq:012d>.json   one per push: refs, HEAD, packs, what changed
    git/packs/pack-<sha>.pack|.idx  self-contained (non-thin) packs, one per push
    git/locks/<ns>-<token>.json     only on backends without conditional writes
    objects/ab/cd/<hex>             data objects (ObjectStore), by default

The newest manifest is the repository's state. A push writes manifest
``seq + 1`` *create-only*: of two pushes that started from the same state,
exactly one creates it; the other re-reads, re-checks its updates against the
winner's refs and is rejected the way git rejects (``fetch first`` /
``non-fast-forward``), or retries when the winner touched other refs only.
Where the server ignores create-only (detected by a probe; rclone's S3 server
does), the manifest write happens under a lock (write a unique lock object,
list the lock folder, hold only if alone), with the same re-validation.

Manifests are never rewritten, so they are also the log of every push,
force push and deletion. :meth:`BucketRepo.compact` replaces many small packs
by one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

from ..errors import GitDataError
from ..git.repo import GitError, Repo
from ..storage import ObjectNotFound, PreconditionFailed, Storage
from .manifest import (
    LOCK_STALE_SECONDS,
    LOCK_WAIT_SECONDS,
    LOCKS,
    MANIFESTS,
    MAX_ATTEMPTS,
    ORPHAN_GRACE_SECONDS,
    PACKS,
    BucketRepoError,
    CompactReport,
    CorruptManifest,
    ForgedPack,
    LockInfo,
    Manifest,
    PackEntry,
    PushSpec,
    RefUpdate,
    RemoteLocked,
    check_pack_name,
    check_update,
    choose_head,
    manifest_key,
    manifest_seq,
    next_manifest,
)


class _Lost(Exception):
    """Another push committed first."""


class BucketRepo:
    """Pushes to and fetches from a git repository stored in ``storage``.

    ``repo`` is the local repository (objects are read from and written to
    it). ``log`` receives progress lines for the user (stderr).
    """

    def __init__(
        self,
        storage: Storage,
        repo: Repo,
        *,
        log: Callable[[str], None] | None = None,
        lock_stale: float = LOCK_STALE_SECONDS,
        lock_wait: float = LOCK_WAIT_SECONDS,
        clear_lock_hint: str = "git remote-s3data unlock REMOTE",
        conditional: bool | None = None,
    ) -> None:
        self.storage = storage
        self.repo = repo
        self.log = log or (lambda msg: None)
        self.lock_stale = lock_stale
        self.lock_wait = lock_wait
        self.clear_lock_hint = clear_lock_hint
        #: None: probe the server; False: always use the lock (``s3data.locking=lock``)
        self._conditional: bool | None = conditional

    # -- reading state ----------------------------------------------------
    def _forget_listings(self) -> None:
        """Drop fsspec's cached listings: the state must come from the server."""
        invalidate = getattr(self.storage.fs, "invalidate_cache", None)
        if invalidate is not None:
            invalidate()

    def manifest_seqs(self) -> list[int]:
        self._forget_listings()
        seqs = [
            s for key, _fp in self.storage.list(MANIFESTS) if (s := manifest_seq(key)) is not None
        ]
        return sorted(seqs)

    def read_manifest(self, seq: int) -> Manifest:
        key = manifest_key(seq)
        return Manifest.from_bytes(self.storage.cat(key), f"{self.storage.display}/{key}")

    def latest(self) -> Manifest:
        """The current state (an empty repository if nothing was pushed)."""
        seqs = self.manifest_seqs()
        return self.read_manifest(seqs[-1]) if seqs else Manifest()

    def history(self) -> list[Manifest]:
        return [self.read_manifest(s) for s in self.manifest_seqs()]

    # -- local git helpers -------------------------------------------------
    def _present(self, shas: Iterable[str]) -> dict[str, str]:
        """``sha -> type`` for the objects the local repository has."""
        return {s: t for s, (t, _n) in self.repo.blob_sizes(list(dict.fromkeys(shas))).items()}

    def _is_ancestor(self, old: str, new: str) -> bool:
        out = self.repo.git("merge-base", old, new, check=False).decode().strip()
        return out == old

    def _pack_dir(self) -> str:
        out = self.repo.git("rev-parse", "--git-path", "objects/pack").decode().strip()
        return out if os.path.isabs(out) else os.path.join(self.repo.root, out)

    def check(self, base: Manifest, spec: PushSpec) -> str | None:
        old = base.refs.get(spec.dst)
        if old is None or spec.new is None or old == spec.new or spec.force:
            return check_update(
                old,
                spec.new,
                force=spec.force,
                old_known=True,
                fast_forward=True,
                both_commits=True,
            )
        present = self._present([old, spec.new])
        both = present.get(old) == "commit" and present.get(spec.new) == "commit"
        ff = both and self._is_ancestor(old, spec.new)
        if spec.dst.startswith("refs/tags/"):
            both = False  # git never fast-forwards tags without force
        return check_update(
            old, spec.new, force=False, old_known=old in present, fast_forward=ff, both_commits=both
        )

    def make_pack(
        self, include: Sequence[str], exclude: Sequence[str], workdir: str
    ) -> tuple[str, int] | None:
        """Pack the objects reachable from ``include`` and not ``exclude``.

        Returns ``(local path stem, object count)``, or None if there is nothing to pack.
        """
        if not include:
            return None
        lines = [*include, *("^" + s for s in exclude)]
        stem = os.path.join(workdir, "pack")
        out = self.repo.git(
            "pack-objects", "--revs", "-q", "--delta-base-offset", stem,
            input=("\n".join(lines) + "\n").encode(),
        )  # fmt: skip
        sha = out.decode().strip().splitlines()[-1]
        path = f"{stem}-{sha}"
        with open(path + ".idx", "rb") as f:
            f.seek(8 + 255 * 4)
            count = int.from_bytes(f.read(4), "big")
        if count == 0:
            return None
        return path, count

    # -- conditional writes or a lock ---------------------------------------
    def conditional_writes(self) -> bool:
        """Whether create-only writes are atomic here (probed once per process).

        The backend must claim atomic create-only, and the server must refuse
        a second conditional create of the same key. The probe sends the
        conditional request itself (fsspec's ``put_file(mode="create")``), as
        the storage layer may check existence first, which hides a server
        that ignores the condition.
        """
        if self._conditional is None:
            self._conditional = self.storage.atomic_create and self._probe_create_only()
        return self._conditional

    def _probe_create_only(self) -> bool:
        key = f"git/probe-{uuid.uuid4().hex}"
        path = self.storage.path(key)
        fs = self.storage.fs
        with tempfile.NamedTemporaryFile() as tmp:
            tmp.write(b"probe\n")
            tmp.flush()
            self.storage.put_file(tmp.name, key, create_only=True)
            try:
                fs.put_file(tmp.name, path, mode="create")
                honoured = False  # the server ignored If-None-Match
            except FileExistsError:
                honoured = True
            except TypeError:
                honoured = True  # no such kwarg: the storage layer's own create-only (local link)
            except Exception:  # noqa: BLE001 - any other answer: do not rely on it
                honoured = False
            finally:
                try:
                    self.storage.delete(key)
                except ObjectNotFound:
                    pass
        return honoured

    def locks(self) -> list[LockInfo]:
        self._forget_listings()
        out = []
        now = time.time()
        for key, _fp in self.storage.list(LOCKS):
            name = key.rsplit("/", 1)[-1]
            stamp = name.split("-", 1)[0]
            if not stamp.isdigit():
                continue  # not a lock object (another tool's file)
            age = now - int(stamp) / 1e9
            holder = name.split("-", 2)[-1].removesuffix(".json")
            try:
                holder = json.loads(self.storage.cat(key)).get("holder", holder)
            except (GitDataError, ValueError):
                pass
            out.append(LockInfo(key=key, age=age, holder=holder))
        return out

    def clear_locks(self, *, stale_only: bool = True) -> list[LockInfo]:
        cleared = []
        for lock in self.locks():
            if stale_only and lock.age < self.lock_stale:
                continue
            try:
                self.storage.delete(lock.key)
            except ObjectNotFound:
                pass
            cleared.append(lock)
        return cleared

    def _acquire(self, holder: str) -> str:
        """Hold the repository's lock: write a unique lock object, hold only if alone.

        Sound on any store whose listings see every completed write: of two
        pushes that wrote a lock, at least the later lister sees both.
        """
        deadline = time.monotonic() + self.lock_wait
        body = json.dumps({"holder": holder, "time": time.time()}).encode()
        while True:
            key = f"{LOCKS}/{time.time_ns():020d}-{uuid.uuid4().hex}.json"
            with tempfile.NamedTemporaryFile() as tmp:
                tmp.write(body)
                tmp.flush()
                self.storage.put_file(tmp.name, key)
            self._forget_listings()
            others = [k for k, _fp in self.storage.list(LOCKS) if k != key]
            if not others:
                return key
            self.storage.delete(key)
            stale = [lk for lk in self.locks() if lk.age >= self.lock_stale]
            if stale:
                lk = stale[0]
                raise RemoteLocked(
                    f"{self.storage.display} is locked by {lk.holder} since {lk.age:.0f} s ago; "
                    f"no push holds a lock that long, so it is stale (a crashed push). If no push "
                    f"is running, clear it with `{self.clear_lock_hint}`"
                )
            if time.monotonic() > deadline:
                raise RemoteLocked(
                    f"{self.storage.display} stayed locked by another push for {self.lock_wait:.0f} s; "
                    "retry, or see the locks with `git remote-s3data unlock --dry-run REMOTE`"
                )
            time.sleep(random.uniform(0.05, 0.3))

    def _commit(self, base: Manifest, new: Manifest, holder: str) -> None:
        """Write ``new`` as the state after ``base``; :class:`_Lost` if someone was first."""
        with tempfile.NamedTemporaryFile() as tmp:
            tmp.write(new.to_bytes())
            tmp.flush()
            if self.conditional_writes():
                try:
                    self.storage.put_file(tmp.name, manifest_key(new.seq), create_only=True)
                except PreconditionFailed as err:
                    raise _Lost() from err
                return
            lock = self._acquire(holder)
            try:
                seqs = self.manifest_seqs()  # re-validate under the lock
                if (seqs[-1] if seqs else 0) != base.seq:
                    raise _Lost()
                self.storage.put_file(tmp.name, manifest_key(new.seq), create_only=True)
            finally:
                try:
                    self.storage.delete(lock)
                except ObjectNotFound:
                    pass

    def _upload_pack(self, path: str) -> PackEntry:
        name = os.path.basename(path)
        size = os.path.getsize(path + ".pack")
        self.storage.put_file(path + ".pack", f"{PACKS}/{name}.pack")
        self.storage.put_file(path + ".idx", f"{PACKS}/{name}.idx")
        return PackEntry(name=name, tips=[], size=size)

    def _who(self) -> str:
        email = self.repo.config_get("user.email") or "unknown"
        return f"{email} on {os.uname().nodename} (pid {os.getpid()})"

    # -- push ---------------------------------------------------------------
    def push(
        self,
        specs: Sequence[PushSpec],
        *,
        upload_data: Callable[[list[str], list[str]], None] | None = None,
        dry_run: bool = False,
    ) -> dict[str, str | None]:
        """Update refs; returns ``dst -> None`` (ok) or git's reason for rejecting.

        Order: check every update, upload data (``upload_data(include,
        exclude)``, which raises to stop the push), upload one pack of the new
        objects, then commit the manifest. Nothing a reader can see changes
        before that last step.
        """
        base = self.latest()
        results: dict[str, str | None] = {}
        accepted: list[PushSpec] = []
        for spec in specs:
            results[spec.dst] = self.check(base, spec)
            if results[spec.dst] is None and base.refs.get(spec.dst) != spec.new:
                accepted.append(spec)
        if not accepted or dry_run:
            return results
        include = list(dict.fromkeys(s.new for s in accepted if s.new))
        if include and upload_data is not None:
            exclude = list(self._present(base.refs.values()))
            upload_data(include, exclude)
        who = self._who()
        with tempfile.TemporaryDirectory(prefix="s3data-") as workdir:
            pack: PackEntry | None = None
            packed_against: set[str] | None = None
            for _attempt in range(MAX_ATTEMPTS):
                if packed_against is None or not packed_against <= base.pack_names:
                    # first time, or a compaction removed packs we relied on
                    exclude = list(self._present(base.refs.values()))
                    made = self.make_pack(include, exclude, workdir)
                    pack = None
                    if made:
                        pack = self._upload_pack(made[0])
                        pack.objects = made[1]
                    packed_against = base.pack_names
                updates = [
                    RefUpdate(
                        s.dst, base.refs.get(s.dst), s.new, forced=s.force and not self._ff(base, s)
                    )
                    for s in accepted
                ]
                entry = None
                if pack is not None:
                    tips = [s.new for s in accepted if s.new]
                    entry = PackEntry(pack.name, tips, pack.size, pack.objects)
                new = next_manifest(base, updates, entry, by=who, now=time.time())
                try:
                    self._commit(base, new, who)
                    return results
                except _Lost:
                    fresh = self.latest()
                    self.log(f"another push updated {self.storage.display} first; re-checking")
                    still = []
                    for s in accepted:
                        if fresh.refs.get(s.dst) != base.refs.get(s.dst):
                            reason = self.check(fresh, s)
                            if reason is not None:
                                results[s.dst] = reason
                                continue
                        still.append(s)
                    accepted = [s for s in still if fresh.refs.get(s.dst) != s.new]
                    base = fresh
                    if not accepted:
                        return results
        raise BucketRepoError(
            f"could not update {self.storage.display}: other pushes kept winning; retry the push"
        )

    def _ff(self, base: Manifest, spec: PushSpec) -> bool:
        old = base.refs.get(spec.dst)
        if old is None or spec.new is None:
            return spec.new is not None
        present = self._present([old, spec.new])
        return old in present and self._is_ancestor(old, spec.new)

    # -- fetch --------------------------------------------------------------
    def fetch(self, wanted: Sequence[str] = (), *, jobs: int = 8) -> list[str]:
        """Bring the packs the local repository lacks; returns their names."""
        for attempt in range(3):
            m = self.latest()
            try:
                got = self._fetch_packs(m, jobs)
            except ObjectNotFound:
                if attempt == 2:
                    raise
                continue  # a compaction replaced the packs meanwhile
            missing = [s for s in wanted if s not in self._present(wanted)]
            if missing:
                raise BucketRepoError(
                    f"{self.storage.display} does not hold {missing[0]} (refs moved meanwhile?); "
                    "fetch again"
                )
            return got
        return []

    def _fetch_packs(self, m: Manifest, jobs: int) -> list[str]:
        all_tips = [t for p in m.packs for t in p.tips]
        present = self._present(all_tips)
        pack_dir = self._pack_dir()
        need = [
            p for p in m.packs
            if any(t not in present for t in p.tips)
            and not os.path.exists(os.path.join(pack_dir, p.name + ".idx"))
        ]  # fmt: skip
        if not need:
            return []
        os.makedirs(pack_dir, exist_ok=True)
        total = sum(p.size for p in need)
        self.log(f"Fetching {len(need)} pack(s), {total / 1e6:.1f} MB from {self.storage.display}")

        # Downloads in parallel; verification and installation one at a time, oldest pack
        # first: git's fsck of a pack reads the .gitattributes blobs its trees name, which may
        # be in an older pack of the same fetch (verified in parallel, that failed at random).
        tag = uuid.uuid4().hex
        temps = {p.name: os.path.join(pack_dir, f".tmp-s3data-{tag}-{i}.pack") for i, p in enumerate(need)}
        try:
            with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(need)))) as pool:
                list(pool.map(lambda p: self._download_pack(p, temps[p.name]), need))
            return [self._install_pack(p, temps[p.name], pack_dir) for p in need]
        finally:
            for tmp in temps.values():
                if os.path.exists(tmp):
                    os.unlink(tmp)

    def _download_pack(self, p: PackEntry, tmp_pack: str) -> None:
        check_pack_name(p.name)
        with self.storage.open_read(f"{PACKS}/{p.name}.pack") as src, open(tmp_pack, "wb") as dst:
            shutil.copyfileobj(src, dst, 4 << 20)

    def _install_pack(self, p: PackEntry, tmp_pack: str, pack_dir: str) -> str:
        """Verify one downloaded pack as git verifies fetched packs, then put it in place.

        The bucket's ``.idx`` is not trusted: ``git index-pack --fsck-objects``
        reads every object of the pack, computes its id from its content,
        checks it is well formed, and writes our own index; the pack's
        checksum must be the name the manifest gives it. Only then are the
        pack and its index renamed into place (git sees a pack only once its
        ``.idx`` exists); on any failure nothing is left behind.
        """
        check_pack_name(p.name)
        tmp_idx = tmp_pack[: -len(".pack")] + ".idx"
        try:
            try:
                # --fsck-objects: every object well formed (links to objects of other packs are
                # checked by git itself after the fetch, as for any fetch)
                out = (
                    self.repo.git("index-pack", "--fsck-objects", "-o", tmp_idx, tmp_pack)
                    .decode()
                    .strip()
                )
            except GitError as err:
                raise ForgedPack(
                    f"pack {p.name} from {self.storage.display} does not verify ({err}); nothing was "
                    "fetched. Someone with write access to the bucket changed it: ask them, or "
                    "restore the bucket's git/ folder from a good copy"
                ) from err
            if out.split()[:1] != [p.name[len("pack-") :]]:
                raise ForgedPack(
                    f"pack {p.name} from {self.storage.display} holds a different pack (checksum "
                    f"{out}); nothing was fetched. Someone with write access to the bucket changed "
                    "it: ask them, or restore the bucket's git/ folder from a good copy"
                )
            for tmp in (tmp_pack, tmp_idx):
                os.chmod(tmp, 0o444)
            os.replace(tmp_pack, os.path.join(pack_dir, p.name + ".pack"))
            os.replace(tmp_idx, os.path.join(pack_dir, p.name + ".idx"))
        finally:
            for tmp in (tmp_pack, tmp_idx):
                if os.path.exists(tmp):
                    os.unlink(tmp)
        return p.name

    # -- maintenance ----------------------------------------------------------
    def compact(self) -> CompactReport:
        """Replace every pack by one holding exactly what the refs reach."""
        for _attempt in range(5):
            self.fetch()
            base = self.latest()
            tips = sorted(set(base.refs.values()))
            with tempfile.TemporaryDirectory(prefix="s3data-") as workdir:
                made = self.make_pack(tips, [], workdir)
                entry = None
                if made:
                    uploaded = self._upload_pack(made[0])
                    entry = PackEntry(uploaded.name, tips, uploaded.size, made[1])
            new = Manifest(
                seq=base.seq + 1, refs=dict(base.refs), head=base.head,
                packs=[entry] if entry else [], updates=[], time=time.time(),
                by=self._who(), compacted=True,
            )  # fmt: skip
            try:
                self._commit(base, new, self._who())
            except _Lost:
                continue
            keep = new.pack_names
            deleted = []
            now = time.time()
            known = base.pack_names
            for key, fp in self.storage.list(PACKS):
                name = key.rsplit("/", 1)[-1].rsplit(".", 1)[0]
                if name in keep:
                    continue
                if name not in known and not _older_than(fp.mtime, now, ORPHAN_GRACE_SECONDS):
                    continue  # maybe a push in progress
                try:
                    self.storage.delete(key)
                except ObjectNotFound:
                    pass
                if key.endswith(".pack"):
                    deleted.append(name)
            return CompactReport(len(base.packs), len(new.packs), sorted(deleted), new.seq)
        raise BucketRepoError(
            f"could not compact {self.storage.display}: pushes kept winning; retry"
        )


def _older_than(mtime: str | None, now: float, seconds: float) -> bool:
    if not mtime:
        return False
    from datetime import datetime

    try:
        t = datetime.fromisoformat(mtime.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return False
    return now - t > seconds


__all__ = [
    "BucketRepo",
    "BucketRepoError",
    "CompactReport",
    "CorruptManifest",
    "GitError",
    "LockInfo",
    "Manifest",
    "PackEntry",
    "PushSpec",
    "RefUpdate",
    "RemoteLocked",
    "check_update",
    "choose_head",
    "next_manifest",
]
