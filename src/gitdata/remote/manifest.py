"""The bucket-hosted repository's data: manifests, names, and the decisions a push makes.

Pure (no I/O): everything here is checked as untrusted input, since a manifest
comes from whoever can write to the bucket. :mod:`gitdata.remote.bucket` does
the reading and writing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from ..errors import GitDataError

MANIFESTS = "git/manifests"
PACKS = "git/packs"
LOCKS = "git/locks"
FORMAT = "gitdata-bucketrepo/1"

#: A lock older than this is reported as stale (a push holds it for a few requests).
LOCK_STALE_SECONDS = 60.0
#: How long a push waits for another push's lock.
LOCK_WAIT_SECONDS = 30.0
#: Attempts to commit a manifest when other pushes keep winning.
MAX_ATTEMPTS = 20
#: Unreferenced packs younger than this may belong to a push in progress.
ORPHAN_GRACE_SECONDS = 3600.0


class BucketRepoError(GitDataError):
    pass


class CorruptManifest(BucketRepoError):
    pass


class RemoteLocked(BucketRepoError):
    pass


class ForgedPack(BucketRepoError):
    """A pack from the bucket that git does not verify, or that is not the pack its name says."""


# --------------------------------------------------------------------------
# Pure data and decisions (no I/O)


@dataclass
class PackEntry:
    name: str  # "pack-<sha>"
    tips: list[str]  # the objects the pack was built for (all local => pack not needed)
    size: int = 0
    objects: int = 0


@dataclass
class RefUpdate:
    ref: str
    old: str | None
    new: str | None  # None: deleted
    forced: bool = False


@dataclass
class Manifest:
    seq: int = 0
    refs: dict[str, str] = field(default_factory=dict)
    head: str | None = None
    packs: list[PackEntry] = field(default_factory=list)
    updates: list[RefUpdate] = field(default_factory=list)
    time: float = 0.0
    by: str = ""
    compacted: bool = False

    def to_bytes(self) -> bytes:
        d = asdict(self)
        d["format"] = FORMAT
        return json.dumps(d, indent=1, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "manifest") -> Manifest:
        try:
            d = json.loads(data)
            if d.get("format") != FORMAT:
                raise ValueError(f"unknown format {d.get('format')!r}")
            m = cls(
                seq=int(d["seq"]),
                refs={str(k): str(v) for k, v in d["refs"].items()},
                head=d.get("head"),
                packs=[PackEntry(**p) for p in d["packs"]],
                updates=[RefUpdate(**u) for u in d.get("updates", [])],
                time=float(d.get("time", 0)),
                by=str(d.get("by", "")),
                compacted=bool(d.get("compacted", False)),
            )
            m.check()
            return m
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise CorruptManifest(
                f"{where} is not a valid git data manifest ({err}); the newest intact state is "
                "in the previous git/manifests/ entry"
            ) from err

    @property
    def pack_names(self) -> set[str]:
        return {p.name for p in self.packs}

    def check(self) -> None:
        """Every name and id in the manifest is of the form git data writes (``ValueError`` if not).

        A manifest comes from whoever can write to the bucket: a pack name
        becomes a local file name, a ref name and an object id go to git on
        the helper's stdout (a line break there would be a protocol line).
        """
        if self.seq < 0:
            raise ValueError(f"negative seq {self.seq}")
        for ref, sha in self.refs.items():
            check_ref_name(ref)
            check_object_id(sha, ref)
        if self.head is not None:
            check_ref_name(str(self.head))
        for p in self.packs:
            check_pack_name(p.name)
            if not isinstance(p.tips, list):
                raise ValueError(f"pack {p.name}: tips is not a list")
            for t in p.tips:
                check_object_id(t, p.name)
            if (
                not isinstance(p.size, int)
                or not isinstance(p.objects, int)
                or p.size < 0
                or p.objects < 0
            ):
                raise ValueError(f"pack {p.name}: bad size or object count")
        for u in self.updates:
            check_ref_name(u.ref)
            for v in (u.old, u.new):
                if v is not None:
                    check_object_id(v, u.ref)


_SHA_RE = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")
_PACK_RE = re.compile(r"pack-[0-9a-f]{40}(?:[0-9a-f]{24})?")
_REF_BAD = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//")


def check_object_id(value: object, where: str = "") -> str:
    if not isinstance(value, str) or not _SHA_RE.fullmatch(value):
        raise ValueError(f"{where}: {value!r} is not an object id")
    return value


def check_pack_name(name: object) -> str:
    """``pack-<hex>``, nothing else: it becomes a file name in ``.git/objects/pack``."""
    if not isinstance(name, str) or not _PACK_RE.fullmatch(name):
        raise ValueError(f"pack name {name!r} is not of the form pack-<object id>")
    return name


def check_ref_name(ref: object) -> str:
    """A ref name as ``git check-ref-format`` accepts it (``HEAD`` or under ``refs/``)."""
    if not isinstance(ref, str) or ref != "HEAD" and not ref.startswith("refs/"):
        raise ValueError(f"ref name {ref!r} is not HEAD or under refs/")
    if _REF_BAD.search(ref) or ref.endswith(("/", ".", ".lock")) or "/." in ref:
        raise ValueError(f"ref name {ref!r} is not a valid git ref name")
    return ref


def manifest_key(seq: int) -> str:
    return f"{MANIFESTS}/{seq:012d}.json"


def manifest_seq(key: str) -> int | None:
    name = key.rsplit("/", 1)[-1]
    stem = name[:-5] if name.endswith(".json") else ""
    return int(stem) if stem.isdigit() else None


@dataclass(frozen=True)
class PushSpec:
    """One ref update a push asks for: ``new`` None deletes ``dst``."""

    dst: str
    new: str | None
    force: bool = False


def check_update(
    old: str | None,
    new: str | None,
    *,
    force: bool,
    old_known: bool,
    fast_forward: bool,
    both_commits: bool,
) -> str | None:
    """``None`` if the update may go, else git's reason (``fetch first`` ...).

    ``old_known``: the remote's current object exists locally;
    ``fast_forward``: ``old`` is an ancestor of ``new`` (only asked when
    both are commits and ``old_known``).
    """
    if old == new or old is None or new is None or force:
        return None
    if not old_known:
        return "fetch first"
    if not both_commits:
        return "already exists"
    if not fast_forward:
        return "non-fast-forward"
    return None


def choose_head(current: str | None, refs: dict[str, str]) -> str | None:
    if current and current in refs:
        return current
    for cand in ("refs/heads/main", "refs/heads/master"):
        if cand in refs:
            return cand
    branches = sorted(r for r in refs if r.startswith("refs/heads/"))
    return branches[0] if branches else current


def next_manifest(
    base: Manifest, updates: Sequence[RefUpdate], pack: PackEntry | None, *, by: str, now: float
) -> Manifest:
    refs = dict(base.refs)
    for u in updates:
        if u.new is None:
            refs.pop(u.ref, None)
        else:
            refs[u.ref] = u.new
    packs = list(base.packs) + ([pack] if pack else [])
    return Manifest(
        seq=base.seq + 1, refs=refs, head=choose_head(base.head, refs), packs=packs,
        updates=list(updates), time=now, by=by,
    )  # fmt: skip


@dataclass
class LockInfo:
    key: str
    age: float
    holder: str


@dataclass
class CompactReport:
    packs_before: int
    packs_after: int
    deleted: list[str]
    seq: int
