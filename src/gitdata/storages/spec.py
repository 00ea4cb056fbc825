"""Mapped storages: a bucket prefix (or any fsspec URL) mapped to a project path.

A storage is a ``[storage "NAME"]`` section of the tracked ``.gitdata``::

    [storage "lab"]
        url = s3://lab-bucket/projects/x
        to = storages/lab
        mode = copy
        option = endpoint_url=http://127.0.0.1:9000

The project path is gitignored: its bytes are never tracked by git. Where the
bytes are on this machine is per clone: the project path itself, or a
directory given with ``--location`` (kept in ``.git/config`` as
``gitdata.storage.NAME.location``) that the project path links to.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import config as config_mod
from .. import safepath, trust
from ..errors import GitDataError
from ..storage import normalize_url, open_filesystem, redact_url

if TYPE_CHECKING:
    from .project import Project
    from .storage import Storage

DEFAULT_ROOT = "storages"
MODES = ("copy", "mount", "reference")
SECTION = "storage"


class StorageConfigError(GitDataError):
    pass


class UnknownStorage(StorageConfigError):
    pass


class UnsafeStorage(StorageConfigError, safepath.UnsafePath):
    """A storage whose folder (from ``.gitdata``) would leave the project or pass through a foreign link."""


@dataclass
class StorageSpec:
    name: str
    url: str
    to: str  # project-relative path, "/"-separated
    mode: str = "copy"
    options: dict[str, Any] = field(default_factory=dict)
    option_lines: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "url": self.url,
            "to": self.to,
            "mode": self.mode,
            "options": dict(self.options),
        }


def _load_checked(project: Project) -> tuple[dict[str, StorageSpec], dict[str, safepath.UnsafePath]]:
    """Every storage of ``.gitdata``; those whose project folder is unsafe apart.

    ``.gitdata`` arrives with a clone: a ``to`` that climbs out of the
    project, is absolute or enters ``.git`` is refused here, where it is read.
    """
    out: dict[str, StorageSpec] = {}
    refused: dict[str, safepath.UnsafePath] = {}
    for name, keys in sorted(project.config.sections(SECTION).items()):
        url = (keys.get("url") or [""])[-1]
        if not url:
            continue
        to = (keys.get("to") or [posixpath.join(DEFAULT_ROOT, name)])[-1]
        try:
            to = safepath.check_place(to, f"storage {name!r} folder (to in .gitdata)")
        except safepath.UnsafePath as err:
            refused[name] = UnsafeStorage(f"{err}; fix or remove [storage \"{name}\"] in .gitdata")
            continue
        lines = keys.get("option", [])
        out[name] = StorageSpec(
            name=name,
            url=url,
            to=to,
            mode=(keys.get("mode") or ["copy"])[-1],
            options=config_mod.parse_options(lines),
            option_lines=list(lines),
        )
    return out, refused


def load_all(project: Project) -> dict[str, StorageSpec]:
    """The storages of ``.gitdata`` whose folder is safe (see :func:`refused`)."""
    return _load_checked(project)[0]


def refused(project: Project) -> dict[str, safepath.UnsafePath]:
    """Storages of ``.gitdata`` that are ignored because their folder is unsafe."""
    return _load_checked(project)[1]


def get(project: Project, name: str) -> StorageSpec:
    specs, bad = _load_checked(project)
    if name in bad:
        raise bad[name]
    if name not in specs:
        known = ", ".join(sorted(specs)) or "none"
        raise UnknownStorage(
            f"no storage named {name!r} (known: {known}); map one with `git data storage add {name} URL`"
        )
    return specs[name]


def _clean_project_path(project: Project, to: str) -> str:
    if os.path.isabs(to):
        rel = os.path.relpath(os.path.abspath(to), project.root)
    else:
        rel = os.path.normpath(to)
    rel = rel.replace(os.sep, "/").strip("/")
    if not rel or rel == "." or rel.startswith("../") or rel == "..":
        raise StorageConfigError(
            f"--to {to!r} must be a folder inside the project (for example storages/NAME)"
        )
    try:
        safepath.check_place(rel, "--to")
    except safepath.UnsafePath as err:
        raise StorageConfigError(f"{err}; choose another folder") from err
    return rel


def _overlaps(a: str, b: str) -> bool:
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def add(
    project: Project,
    name: str,
    url: str,
    *,
    to: str | None = None,
    mode: str = "copy",
    option_pairs: list[str] | None = None,
) -> StorageSpec:
    """Record a mapping in ``.gitdata`` and gitignore its project path. Transfers nothing."""
    config_mod.check_name("storage", name)
    if mode not in MODES:
        raise StorageConfigError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    specs = load_all(project)
    if name in specs:
        raise StorageConfigError(
            f"a storage named {name!r} already exists ({specs[name].url}); "
            f"remove it first with `git data storage rm {name}`"
        )
    option_pairs = list(option_pairs or [])
    options = config_mod.parse_options(option_pairs)
    for key, value in options.items():
        config_mod.check_not_secret(key, str(value))
    config_mod.check_tracked_options(url, options, f"storage {name!r}", name)
    if "@" in url.split("://", 1)[-1].split("/", 1)[0]:
        raise StorageConfigError(
            f"URL {redact_url(url)} carries user info; credentials never go in .gitdata "
            f"(use `git data credentials set {name}` or the environment)"
        )
    url = normalize_url(url)
    open_filesystem(url, options)  # unknown schemes and missing backends fail here, clearly
    rel = _clean_project_path(project, to or posixpath.join(DEFAULT_ROOT, name))
    for other in specs.values():
        if _overlaps(rel, other.to):
            raise StorageConfigError(
                f"--to {rel} overlaps storage {other.name!r} at {other.to}; choose another folder"
            )
    tracked = project.repo.git("ls-files", "-z", "--", rel).split(b"\0")
    if any(tracked):
        raise StorageConfigError(
            f"{rel} holds files tracked by git; a storage maps to an untracked folder "
            "(choose another --to, or `git rm -r --cached` them first)"
        )
    cf = config_mod.ConfigFile(project.repo)
    section = f'{SECTION}.{name}'
    cf.set(f"{section}.url", url)
    cf.set(f"{section}.to", rel)
    cf.set(f"{section}.mode", mode)
    for line in option_pairs:
        cf.add(f"{section}.option", line)
    ignore_path(project, rel)
    project.reload()
    trust.acknowledge(project)
    return get(project, name)


def remove(project: Project, name: str) -> StorageSpec:
    """Forget the mapping (tracked config, .gitignore line, per-clone location). Never touches data."""
    spec = get(project, name)
    config_mod.ConfigFile(project.repo).remove_section(f'{SECTION}.{name}')
    unignore_path(project, spec.to)
    set_location(project, name, None)
    project.reload()
    trust.acknowledge(project)
    return spec


# -- per clone ---------------------------------------------------------------


def location(project: Project, name: str) -> str | None:
    """The ``--location`` directory of this clone, if the bytes live elsewhere."""
    return project.repo.config_get(f"gitdata.storage.{name}.location")


def set_location(project: Project, name: str, path: str | None) -> None:
    key = f"gitdata.storage.{name}.location"
    if path is None:
        project.repo.git("config", "--local", "--unset-all", key, check=False)
    else:
        project.repo.config_set(key, os.path.abspath(os.path.expanduser(path)))


def project_path(project: Project, spec: StorageSpec) -> str:
    return os.path.join(project.root, *spec.to.split("/"))


def local_dir(project: Project, spec: StorageSpec) -> str:
    """Where this clone keeps the storage's bytes (the project path, or --location)."""
    return location(project, spec.name) or project_path(project, spec)


def checked_local_dir(project: Project, spec: StorageSpec, *, create: bool = True) -> str:
    """:func:`local_dir`, checked on the real filesystem right before it is read or written.

    No component of the project path may be a symlink, except the
    ``--location`` link git data made (its target recorded in ``.git/config``);
    a tracked symlink standing in a storage path is refused, so a clone can
    never make a stage write (or a sync upload) outside the storage folder.
    """
    loc = location(project, spec.name)
    links = {spec.to: loc} if loc else {}
    what = f"storage {spec.name!r}"
    if loc:
        parent, _, _last = spec.to.rpartition("/")
        safepath.checked_dir(project.root, parent, create=create, what=what)
        link = project_path(project, spec)
        if not os.path.islink(link) or os.path.realpath(link) != os.path.realpath(loc):
            raise UnsafeStorage(
                f"{what}: {spec.to} should link to its --location {loc}, but does not; run "
                f"`git data storage stage {spec.name} --location {loc}` to link it again"
            )
        if create:
            os.makedirs(loc, exist_ok=True)
        return loc
    try:
        return safepath.checked_dir(project.root, spec.to, create=create, links=links, what=what)
    except FileNotFoundError:
        return project_path(project, spec)


def open_remote(project: Project, spec: StorageSpec) -> Storage:
    return project.open_storage(spec.url, spec.options, name=spec.name)


# -- .gitignore --------------------------------------------------------------


def _ignore_line(rel: str) -> str:
    return "/" + rel.strip("/")


def ignore_path(project: Project, rel: str) -> None:
    path = os.path.join(project.root, ".gitignore")
    line = _ignore_line(rel)
    lines: list[str] = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    if line in lines or line + "/" in lines:
        return
    with open(path, "a", encoding="utf-8") as f:
        if lines and os.path.getsize(path) and not _ends_with_newline(path):
            f.write("\n")
        f.write(line + "\n")


def _ends_with_newline(path: str) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def unignore_path(project: Project, rel: str) -> None:
    path = os.path.join(project.root, ".gitignore")
    if not os.path.exists(path):
        return
    line = _ignore_line(rel)
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    kept = [x for x in lines if x not in (line, line + "/")]
    if kept != lines:
        with open(path, "w", encoding="utf-8") as f:
            f.write("".join(x + "\n" for x in kept))
