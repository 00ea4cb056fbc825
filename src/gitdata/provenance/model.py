"""Run records and staleness decisions. Pure: no I/O.

A run record is tracked JSON at ``.gitdata-runs/NAME.json`` (format
``gitdata-run/1``, see docs/spec.md). It arrives with a clone, so
:func:`parse` is strict: known keys only, every type checked, paths that
could leave the project or enter ``.git`` refused, secret-looking variables
refused, one reason per failure. :meth:`Record.encode` is the one canonical
encoding (sorted keys, two-space indent, LF at the end).

Identities (the ``identity`` of an input or output) are strings compared
for equality:

==============================  ==================================================
what                            identity
==============================  ==================================================
a file whose bytes are local    its oid (``xxh128:…`` / ``sha256:…``)
a registered file (no oid)      ``fp:`` + source, size and remote fingerprint
a folder                        ``tree:`` + xxh128 of its sorted (path, identity) lines
one object at a URL             ``fp:`` + its fingerprint (also kept as ``fingerprint``)
a prefix at a URL               ``tree:`` + xxh128 of its sorted (key, fingerprint) lines
==============================  ==================================================

:func:`judge` decides, for every run, whether it is stale and why:

===============================================  ===================================  ======
what is seen now                                 reason                               kind
===============================================  ===================================  ======
an input is gone                                 ``input P is missing``               local
an input's identity differs from the record      ``input P changed``                  local
an input's objects changed in the bucket         ``input P changed in the bucket: …`` remote
an output is gone                                ``output P is missing``              local
an output's identity differs from the record     ``output P was edited by hand``      local
an input overlaps the output of a stale run R    ``depends on stale run R``           R's
none of these                                    (up to date)
===============================================  ===================================  ======

Remote reasons come only from listings (the caller passes them in); a run is
stale through a dependency transitively, with the kind of the run it
depends on, so a change seen only in the bucket stays a remote reason down
the whole pipeline.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import GitDataError
from ..hashing import oid_of_bytes
from ..safepath import UnsafePath, check_relpath

FORMAT = "gitdata-run/1"
FORMAT_PREFIX = "gitdata-run/"
RUNS_DIR = ".gitdata-runs"
#: A record larger than this is refused before it is parsed.
MAX_RECORD_BYTES = 1 << 20

FILE, FOLDER, URL = "file", "folder", "url"
LOCAL, REMOTE = "local", "remote"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_IDENTITY_RE = re.compile(r"^(xxh128:[0-9a-f]{32}|sha256:[0-9a-f]{64}|tree:[0-9a-f]{32}|fp:[^\n\r\0]{1,2000})$")
_URL_RE = re.compile(r"^[a-z][a-z0-9+.-]*://[^\s\0]+$")
_SECRET_EXACT = frozenset({"AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                           "GOOGLE_APPLICATION_CREDENTIALS", "AWS_ACCESS_KEY_ID"})  # fmt: skip
_SECRET_WORDS = ("SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "PRIVATE_KEY", "API_KEY")
_SECRET_SUFFIXES = ("_TOKEN", "_KEY", "_PASS", "_PWD", "_AUTH")


class RecordError(GitDataError):
    """A run record that is not one this version can read, with the reason."""


class SecretVariable(GitDataError):
    """``--env`` of a variable that looks like a credential."""


class CycleError(GitDataError):
    pass


# -- the record ------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One input or output: a project path (``file``/``folder``) or a URL (``url``)."""

    path: str
    kind: str
    identity: str
    #: files in a folder, objects under a URL prefix (None for one file or object)
    count: int | None = None
    #: the dataset a path belongs to, when it does
    dataset: str | None = None
    #: one object at a URL: its fingerprint fields (size, etag, md5, version-id, mtime)
    fingerprint: tuple[tuple[str, str], ...] = ()

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {"path": self.path, "kind": self.kind, "identity": self.identity}
        if self.count is not None:
            out["count"] = self.count
        if self.dataset is not None:
            out["dataset"] = self.dataset
        if self.fingerprint:
            out["fingerprint"] = dict(self.fingerprint)
        return out

    def covers(self, path: str) -> bool:
        """Whether ``path`` is this entry's path or lies under it (or above it: a folder of it)."""
        if self.kind == URL:
            return False
        return path == self.path or path.startswith(self.path + "/") or self.path.startswith(path + "/")


@dataclass(frozen=True)
class Record:
    name: str
    command: tuple[str, ...]
    cwd: str  # project-relative ("" = the project root)
    env: tuple[tuple[str, str], ...]
    inputs: tuple[Entry, ...]
    outputs: tuple[Entry, ...]
    started: str
    ended: str
    commit: str | None
    tool: str
    exit: int = 0

    @property
    def path(self) -> str:
        return record_path(self.name)

    def as_json(self) -> dict[str, object]:
        return {
            "format": FORMAT, "name": self.name, "command": list(self.command), "cwd": self.cwd,
            "env": dict(self.env), "inputs": [e.as_json() for e in self.inputs],
            "outputs": [e.as_json() for e in self.outputs], "started": self.started,
            "ended": self.ended, "commit": self.commit, "tool": self.tool, "exit": self.exit,
        }  # fmt: skip

    def encode(self) -> bytes:
        return (json.dumps(self.as_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def record_path(name: str) -> str:
    return f"{RUNS_DIR}/{name}.json"


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name) or name.endswith(".json"):
        raise RecordError(
            f"bad run name {name!r}: use letters, digits, '.', '_' and '-' (at most 100, "
            "starting with a letter or digit)"
        )
    return name


def is_secret_name(name: str) -> bool:
    up = name.upper()
    return up in _SECRET_EXACT or any(w in up for w in _SECRET_WORDS) or up.endswith(_SECRET_SUFFIXES)


def check_env(names: Iterable[str], environ: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The ``--env`` variables to record, as ``(name, value)``; credentials refused.

    A name that looks like a secret is refused, and so is any value equal to
    the value of a secret-looking variable of ``environ`` (``--env X`` where
    ``X=$AWS_SECRET_ACCESS_KEY``). A variable that is not set is an error.
    """
    secrets = {v for k, v in environ.items() if is_secret_name(k) and len(v) >= 4}
    out = []
    for name in names:
        if not _ENV_RE.match(name):
            raise SecretVariable(f"--env {name!r} is not a variable name")
        if is_secret_name(name):
            raise SecretVariable(
                f"--env {name} looks like a credential: run records are tracked by git and never hold "
                "credentials. Leave it out: the command still sees your environment"
            )
        if name not in environ:
            raise SecretVariable(f"--env {name}: the variable is not set; set it or leave --env {name} out")
        if environ[name] in secrets:
            raise SecretVariable(
                f"--env {name} holds the value of a credential variable; run records never hold "
                "credentials. Leave it out"
            )
        out.append((name, environ[name]))
    return tuple(sorted(dict(out).items()))


# -- strict parsing ------------------------------------------------------------------------

_RECORD_KEYS = {"format", "name", "command", "cwd", "env", "inputs", "outputs", "started", "ended",
                "commit", "tool", "exit"}  # fmt: skip
_ENTRY_KEYS = {"path", "kind", "identity", "count", "dataset", "fingerprint"}
_FP_KEYS = {"size", "etag", "md5", "version-id", "mtime"}


def _text(obj: Mapping, key: str, where: str, *, optional: bool = False, limit: int = 4096) -> str | None:
    value = obj.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or len(value) > limit or "\0" in value:
        raise RecordError(f"{where}: {key!r} must be text (at most {limit} characters)")
    return value


def _entry(obj: object, where: str, *, output: bool) -> Entry:
    if not isinstance(obj, dict):
        raise RecordError(f"{where}: expected an object")
    unknown = set(obj) - _ENTRY_KEYS
    if unknown:
        raise RecordError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    kind = _text(obj, "kind", where)
    path = _text(obj, "path", where)
    assert kind is not None and path is not None
    if kind not in (FILE, FOLDER, URL) or (output and kind == URL):
        allowed = "file or folder" if output else "file, folder or url"
        raise RecordError(f"{where}: kind {kind!r} is not one of {allowed}")
    if kind == URL:
        if not _URL_RE.match(path):
            raise RecordError(f"{where}: {path!r} is not a URL")
    else:
        try:
            check_relpath(path, f"{where} path")
        except UnsafePath as err:
            raise RecordError(f"{err}; the record was not used") from err
    identity = _text(obj, "identity", where)
    assert identity is not None
    if not _IDENTITY_RE.match(identity):
        raise RecordError(f"{where}: bad identity {identity[:80]!r}")
    count = obj.get("count")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 0):
        raise RecordError(f"{where}: 'count' must be a number of files")
    dataset = _text(obj, "dataset", where, optional=True, limit=200)
    fp = obj.get("fingerprint", {})
    if not isinstance(fp, dict) or set(fp) - _FP_KEYS or not all(isinstance(v, str) for v in fp.values()):
        raise RecordError(f"{where}: 'fingerprint' must map {sorted(_FP_KEYS)} to text")
    return Entry(path, kind, identity, count, dataset, tuple(sorted(fp.items())))


def parse(data: bytes, where: str = "run record") -> Record:
    """Parse a record strictly; :class:`RecordError` names what is wrong and where."""
    if len(data) > MAX_RECORD_BYTES:
        raise RecordError(f"{where} is {len(data)} bytes, over the {MAX_RECORD_BYTES}-byte limit")
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise RecordError(f"{where} is not valid JSON ({err}); restore it with `git checkout -- FILE`") from err
    if not isinstance(obj, dict):
        raise RecordError(f"{where}: expected a JSON object")
    fmt = obj.get("format")
    if fmt != FORMAT:
        if isinstance(fmt, str) and fmt.startswith(FORMAT_PREFIX):
            raise RecordError(f"{where} has format {fmt!r}; this git data reads {FORMAT}: upgrade git data")
        raise RecordError(f"{where} has no 'format': {FORMAT!r} expected")
    unknown = set(obj) - _RECORD_KEYS
    if unknown:
        raise RecordError(f"{where}: unknown key {sorted(unknown)[0]!r} (format {FORMAT})")
    name = check_name(obj.get("name"))  # type: ignore[arg-type]
    command = obj.get("command")
    if not isinstance(command, list) or not command or not all(isinstance(c, str) and "\0" not in c for c in command):
        raise RecordError(f"{where}: 'command' must be a non-empty list of arguments")
    cwd = _text(obj, "cwd", where)
    assert cwd is not None
    if cwd:
        try:
            check_relpath(cwd, f"{where} cwd")
        except UnsafePath as err:
            raise RecordError(f"{err}; the record was not used") from err
    env = obj.get("env")
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        raise RecordError(f"{where}: 'env' must map names to text")
    for var in env:
        if not _ENV_RE.match(var) or is_secret_name(var):
            raise RecordError(f"{where}: env {var!r} is not a variable a record may hold")
    lists = {}
    for key in ("inputs", "outputs"):
        items = obj.get(key)
        if not isinstance(items, list):
            raise RecordError(f"{where}: {key!r} must be a list")
        lists[key] = tuple(_entry(e, f"{where} {key}[{i}]", output=key == "outputs") for i, e in enumerate(items))
    if not lists["outputs"]:
        raise RecordError(f"{where}: a run has at least one output")
    exit_ = obj.get("exit")
    if exit_ != 0 or isinstance(exit_, bool):
        raise RecordError(f"{where}: 'exit' must be 0 (failed runs are never recorded)")
    rec = Record(
        name=name, command=tuple(command), cwd=cwd, env=tuple(sorted(env.items())),
        inputs=lists["inputs"], outputs=lists["outputs"],
        started=_text(obj, "started", where, limit=64) or "", ended=_text(obj, "ended", where, limit=64) or "",
        commit=_text(obj, "commit", where, optional=True, limit=64),
        tool=_text(obj, "tool", where, limit=200) or "",
    )  # fmt: skip
    check_entries(rec.inputs, rec.outputs)
    return rec


def check_entries(inputs: Sequence[Entry], outputs: Sequence[Entry]) -> None:
    """Outputs never overlap each other or an input of the same run."""
    for i, out in enumerate(outputs):
        for other in outputs[i + 1 :]:
            if out.covers(other.path):
                raise RecordError(f"outputs {out.path} and {other.path} overlap")
        for inp in inputs:
            if inp.covers(out.path):
                raise RecordError(f"{out.path} is both an input and an output of the run")


# -- digests -------------------------------------------------------------------------------


def tree_lines(items: Iterable[tuple[str, str]]) -> bytes:
    """The bytes a ``tree:`` identity hashes: sorted ``path NUL identity LF`` lines."""
    return b"".join(f"{p}\0{i}\n".encode("utf-8", "surrogateescape") for p, i in sorted(items))


def tree_identity(items: Iterable[tuple[str, str]]) -> str:
    """``tree:`` identity of a folder or URL prefix from its ``(path, identity)`` items."""
    return "tree:" + oid_of_bytes(tree_lines(items), "xxh128").split(":", 1)[1]


def fingerprint_identity(source: str | None, fields: Mapping[str, object]) -> str:
    """``fp:`` identity of a registered file or a URL object: source + fingerprint, canonical."""
    parts = [f"source={source}"] if source else []
    parts += [f"{k}={fields[k]}" for k in sorted(fields) if fields[k] is not None and fields[k] != ""]
    return "fp:" + ";".join(parts)


# -- decisions -----------------------------------------------------------------------------


@dataclass
class Verdict:
    name: str
    reasons: list[tuple[str, str]] = field(default_factory=list)  # (kind, text)
    upstream: list[str] = field(default_factory=list)

    @property
    def stale(self) -> bool:
        return bool(self.reasons)

    def kinds(self) -> set[str]:
        return {k for k, _ in self.reasons}


def dependencies(records: Mapping[str, Record]) -> dict[str, set[str]]:
    """Run name -> the runs whose outputs it reads (an input overlapping their output)."""
    outs = sorted((o.path, name) for name, rec in records.items() for o in rec.outputs)
    paths = [p for p, _ in outs]
    by_path: dict[str, set[str]] = {}
    for p, name in outs:
        by_path.setdefault(p, set()).add(name)
    deps: dict[str, set[str]] = {name: set() for name in records}
    for name, rec in records.items():
        for inp in rec.inputs:
            if inp.kind == URL:
                continue
            parts = inp.path.split("/")
            found = set().union(*(by_path.get("/".join(parts[:i]), set()) for i in range(1, len(parts) + 1)))
            lo = bisect.bisect_left(paths, inp.path + "/")
            hi = bisect.bisect_left(paths, inp.path + "/\U0010ffff")
            found |= {outs[j][1] for j in range(lo, hi)}  # outputs inside a folder input
            deps[name] |= found - {name}
    return deps


def order(records: Mapping[str, Record], names: Iterable[str] | None = None,
          deps: Mapping[str, set[str]] | None = None) -> list[str]:  # fmt: skip
    """Runs in dependency order (producers first, ties by name): ``names`` and every run they depend on."""
    deps = dependencies(records) if deps is None else deps
    wanted = set(records) if names is None else set()
    todo = list(names or [])
    while todo:
        n = todo.pop()
        if n not in wanted:
            wanted.add(n)
            todo += deps[n]
    out: list[str] = []
    done: set[str] = set()
    while len(out) < len(wanted):
        ready = sorted(n for n in wanted - done if deps[n] & wanted <= done)
        if not ready:
            cyc = sorted(wanted - done)
            raise CycleError(f"runs {', '.join(cyc)} read each other's outputs; a pipeline cannot loop")
        out.append(ready[0])
        done.add(ready[0])
    return out


def judge(
    records: Mapping[str, Record],
    current: Mapping[str, str | None],
    remote: Mapping[str, str] | None = None,
) -> dict[str, Verdict]:
    """Which runs are stale and why (the table in the module docstring).

    ``current`` maps each input and output path (project paths and URLs) to
    its identity now, ``None`` when it is gone; a path missing from
    ``current`` was not looked at (a URL with no listing) and counts as
    unchanged. ``remote`` maps an input path or URL to what the bucket
    listing says changed under it.
    """
    remote = remote or {}
    verdicts = {name: Verdict(name) for name in records}
    for name, rec in records.items():
        v = verdicts[name]
        for e in rec.inputs:
            if e.path in current:
                now = current[e.path]
                if now is None:
                    v.reasons.append((LOCAL, f"input {e.path} is missing"))
                    continue
                if now != e.identity:
                    where = REMOTE if e.kind == URL else LOCAL
                    v.reasons.append((where, f"input {e.path} changed" + (" in the bucket" if where == REMOTE else "")))
                    continue
            if e.path in remote:
                v.reasons.append((REMOTE, f"input {e.path} changed in the bucket: {remote[e.path]}"))
        for e in rec.outputs:
            if e.path not in current:
                continue
            now = current[e.path]
            if now is None:
                v.reasons.append((LOCAL, f"output {e.path} is missing"))
            elif now != e.identity:
                v.reasons.append((LOCAL, f"output {e.path} was edited by hand"))
    deps = dependencies(records)
    try:
        ordered = order(records, deps=deps)
    except CycleError:
        ordered = sorted(records)
    for name in ordered:  # producers first: a dependency's verdict is final when it is read
        v = verdicts[name]
        for dep in sorted(deps[name]):
            d = verdicts[dep]
            if d.stale:
                v.upstream.append(dep)
                for kind in sorted(d.kinds()):
                    v.reasons.append((kind, f"depends on stale run {dep}"))
    return verdicts
