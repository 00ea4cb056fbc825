"""The tracked project configuration, ``.gitdata`` (git-config syntax).

Example::

    [data]
        hash = xxh128
        remote = origin
    [remote "origin"]
        url = s3://bucket/project
        option = endpoint_url=http://127.0.0.1:9000

Secrets never go here; see :func:`check_not_secret`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import GitDataError
from .git.repo import Repo, run_git
from .hashing import ALGORITHMS, DEFAULT_ALGORITHM

FILENAME = ".gitdata"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SECRET_WORDS = ("secret", "password", "passwd", "session_token", "private_key", "credentials")
_SECRET_KEYS = frozenset({"key", "aws_access_key_id", "access_key", "token", "client_secret"})


class ConfigError(GitDataError):
    pass


def check_name(kind: str, name: str) -> None:
    if not _NAME_RE.match(name):
        raise ConfigError(
            f"invalid {kind} name {name!r}: use letters, digits, '.', '_' or '-' (at most 64)"
        )


def check_not_secret(key: str, value: str) -> None:
    low = key.lower()
    if low == "token" and value in ("anon", "false", "None"):
        return
    if low in _SECRET_KEYS or any(w in low for w in _SECRET_WORDS):
        raise ConfigError(
            f"option {key!r} looks like a secret and is never stored in .gitdata (it is tracked "
            "by git); put it in the environment, your provider's profile, or run "
            "`git data credentials set NAME`"
        )


def parse_option_value(value: str) -> Any:
    if value in ("true", "false"):
        return value == "true"
    if re.fullmatch(r"-?[0-9]+", value):
        return int(value)
    if value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def parse_options(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"bad option {pair!r}: expected key=value")
        out[key] = parse_option_value(value)
    return out


class UntrustedOption(ConfigError):
    """A storage option in a tracked file that is not on the allow-list for its protocol."""


#: Storage options a tracked file (``.gitdata``, which arrives with a clone)
#: may set, per protocol: where the data is and how to reach it, nothing
#: that changes what is written (ACLs, headers, encryption), reads local
#: files (credential paths) or names code. The user's own configuration
#: (``gitdata.remote.NAME.option`` in ``.git/config`` or ``~/.gitconfig``)
#: may set any option. docs/security.md lists these.
TRACKED_OPTIONS: dict[str, frozenset[str]] = {
    "s3": frozenset({
        "endpoint_url", "anon", "requester_pays", "version_aware", "use_ssl",
        "client_kwargs", "config_kwargs", "default_block_size", "cache_regions",
    }),
    "gcs": frozenset({
        "project", "endpoint_url", "token", "requester_pays", "version_aware",
        "default_location", "block_size",
    }),
    "file": frozenset({"auto_mkdir"}),
    "http": frozenset({"simple_links", "same_scheme", "block_size"}),
    "memory": frozenset(),
}  # fmt: skip
_PROTOCOL_FAMILY = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "file": "file", "local": "file",
                    "http": "http", "https": "http", "memory": "memory"}  # fmt: skip
#: Nested options: which keys of a dict-valued option are allowed.
_TRACKED_NESTED: dict[tuple[str, str], frozenset[str]] = {
    ("s3", "client_kwargs"): frozenset({"region_name", "endpoint_url"}),
    ("s3", "config_kwargs"): frozenset({"signature_version", "s3", "connect_timeout", "read_timeout", "retries"}),
}
_TRACKED_VALUES: dict[tuple[str, str], tuple[Any, ...]] = {
    ("gcs", "token"): ("anon", None, False),  # a path or a dict would read or carry credentials
}


def protocol_family(url: str) -> str:
    scheme = url.split("://", 1)[0].lower() if "://" in url else "file"
    return _PROTOCOL_FAMILY.get(scheme, scheme)


def check_tracked_options(url: str, options: Mapping[str, Any], where: str, name: str | None = None) -> None:
    """Refuse options from a tracked file that are not on :data:`TRACKED_OPTIONS` for ``url``."""
    family = protocol_family(url)
    allowed = TRACKED_OPTIONS.get(family, frozenset())
    for key, value in options.items():
        bad = key not in allowed
        if not bad and (family, key) in _TRACKED_NESTED:
            sub = _TRACKED_NESTED[(family, key)]
            bad = not isinstance(value, Mapping) or any(k not in sub for k in value)
            if not bad and key == "config_kwargs" and "s3" in value:
                bad = not isinstance(value["s3"], Mapping) or set(value["s3"]) - {"addressing_style"}
        if not bad and (family, key) in _TRACKED_VALUES:
            bad = value not in _TRACKED_VALUES[(family, key)]
        if bad:
            target = name or "NAME"
            raise UntrustedOption(
                f"{where}: option {key!r} is not one a tracked .gitdata may set for {family} storage "
                f"(allowed: {', '.join(sorted(allowed)) or 'none'}); if you trust it, set it for this "
                f"clone with `git config --add gitdata.remote.{target}.option {key}=VALUE` "
                "(or in ~/.gitconfig), and remove it from .gitdata"
            )


@dataclass
class RemoteConfig:
    name: str
    url: str
    options: dict[str, Any] = field(default_factory=dict)
    option_lines: list[str] = field(default_factory=list)


@dataclass
class ProjectConfig:
    hash_algorithm: str = DEFAULT_ALGORITHM
    default_remote: str | None = None
    remotes: dict[str, RemoteConfig] = field(default_factory=dict)
    values: dict[str, list[str]] = field(default_factory=dict)

    def get(self, key: str, default: str | None = None) -> str | None:
        vals = self.values.get(key.lower())
        return vals[-1] if vals else default

    def sections(self, kind: str) -> dict[str, dict[str, list[str]]]:
        """``{name: {key: [values]}}`` for every ``[kind "name"]`` section."""
        out: dict[str, dict[str, list[str]]] = {}
        prefix = kind.lower() + "."
        for key, vals in self.values.items():
            if not key.startswith(prefix):
                continue
            rest = key[len(prefix) :]
            name, dot, var = rest.rpartition(".")
            if not dot or not name:
                continue
            out.setdefault(name, {})[var] = vals
        return out


def _read_values(path: str) -> dict[str, list[str]]:
    if not os.path.exists(path):
        return {}
    out = run_git(["config", "-f", path, "--list", "-z"], check=False)
    values: dict[str, list[str]] = {}
    for rec in out.decode("utf-8", "surrogateescape").split("\0"):
        if not rec:
            continue
        key, _, value = rec.partition("\n")
        # section and variable names are case-insensitive; subsection names are not
        head, _, var = key.rpartition(".")
        sect, dot, sub = head.partition(".")
        norm = f"{sect.lower()}.{sub}.{var.lower()}" if dot else f"{head.lower()}.{var.lower()}"
        values.setdefault(norm, []).append(value)
    return values


def load(root: str) -> ProjectConfig:
    values = _read_values(os.path.join(root, FILENAME))
    cfg = ProjectConfig(values=values)
    algo = cfg.get("data.hash", DEFAULT_ALGORITHM) or DEFAULT_ALGORITHM
    if algo not in ALGORITHMS:
        raise ConfigError(
            f"{FILENAME}: data.hash is {algo!r}; choose one of {', '.join(ALGORITHMS)}"
        )
    cfg.hash_algorithm = algo
    cfg.default_remote = cfg.get("data.remote")
    for name, keys in cfg.sections("remote").items():
        url = (keys.get("url") or [""])[-1]
        if not url:
            continue
        lines = keys.get("option", [])
        cfg.remotes[name] = RemoteConfig(name=name, url=url, options=parse_options(lines), option_lines=lines)
    if cfg.default_remote is None and len(cfg.remotes) == 1:
        cfg.default_remote = next(iter(cfg.remotes))
    return cfg


class ConfigFile:
    """Edits ``.gitdata`` through ``git config -f`` so its syntax stays git's."""

    def __init__(self, repo: Repo) -> None:
        self.repo = repo
        self.path = os.path.join(repo.root, FILENAME)

    def _git(self, *args: str, check: bool = True) -> bytes:
        return run_git(["config", "-f", self.path, *args], cwd=self.repo.root, check=check)

    def set(self, key: str, value: str) -> None:
        self._git(key, value)

    def add(self, key: str, value: str) -> None:
        self._git("--add", key, value)

    def unset_all(self, key: str) -> None:
        self._git("--unset-all", key, check=False)

    def remove_section(self, section: str) -> None:
        self._git("--remove-section", section, check=False)

    def set_many(self, section: str, items: Mapping[str, str | list[str]]) -> None:
        for key, value in items.items():
            full = f"{section}.{key}"
            self.unset_all(full)
            for v in value if isinstance(value, list) else [value]:
                self.add(full, v)
