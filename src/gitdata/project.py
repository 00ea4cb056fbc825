"""A project: a git repository with its ``.gitdata`` config, cache and state."""

from __future__ import annotations

import os
from functools import cached_property
from typing import Any

from . import config as config_mod
from . import settings
from .cache import Cache
from .errors import GitDataError
from .fetchfilter import FetchFilter
from .git.repo import Repo
from .retry import RetryPolicy
from .state import State
from .storage import ObjectStore, Storage

DEFAULT_JOBS = settings.setting("gitdata.jobs").default
#: Objects larger than this are written to the work tree by git data itself,
#: streaming, instead of through git's smudge output (which git buffers whole).
DEFAULT_SMUDGE_MAX = settings.setting("gitdata.smudgeMax").default


class NoDataRemote(GitDataError):
    pass


class Project:
    def __init__(self, repo: Repo) -> None:
        self.repo = repo

    @classmethod
    def open(cls, path: str | None = None) -> Project:
        return cls(Repo.discover(path))

    @property
    def root(self) -> str:
        return self.repo.root

    @cached_property
    def config(self) -> config_mod.ProjectConfig:
        return config_mod.load(self.repo.root)

    def reload(self) -> None:
        self.__dict__.pop("config", None)

    def setting(self, key: str) -> Any:
        """Git config ``key`` parsed as :mod:`gitdata.settings` says (its default when unset)."""
        return settings.read(self.repo.config_get, key)

    @cached_property
    def cache(self) -> Cache:
        root = self.setting("gitdata.cacheDir")
        if root:
            root = os.path.expanduser(root)
            if not os.path.isabs(root):
                root = os.path.join(self.repo.root, root)
        return Cache(root or self.repo.data_dir, temp_max_age=self.setting("gitdata.tempMaxAge"))

    @cached_property
    def state(self) -> State:
        return State(self.repo.data_dir)

    @cached_property
    def part_size(self) -> int:
        """Multipart part size of large uploads (``gitdata.partSize``)."""
        size = self.setting("gitdata.partSize")
        if size < (5 << 20):
            raise settings.BadSetting(
                "gitdata.partSize must be at least 5m (S3's smallest part); fix it with "
                "`git config gitdata.partSize 16m`"
            )
        return int(size)

    @cached_property
    def jobs(self) -> int:
        return max(1, self.setting("gitdata.jobs"))

    @cached_property
    def processes(self) -> int:
        """Worker processes for long runs of small objects (``gitdata.processes``; 0: the CPUs, at most 4)."""
        n = self.setting("gitdata.processes")
        return max(1, n) if n > 0 else max(1, min(4, os.cpu_count() or 1))

    @cached_property
    def smudge_max(self) -> int:
        return self.setting("gitdata.smudgeMax")

    @cached_property
    def cache_local_remote(self) -> bool:
        """Whether checkouts copy objects from a data remote on a local
        filesystem into the cache too (``gitdata.cacheLocalRemote``, default
        false: such a remote is read directly)."""
        return self.setting("gitdata.cacheLocalRemote")

    @cached_property
    def fetch_filter(self) -> FetchFilter:
        """Which files are fetched (``gitdata.fetchInclude`` / ``gitdata.fetchExclude``)."""
        return FetchFilter.from_settings(self.setting("gitdata.fetchInclude"), self.setting("gitdata.fetchExclude"))

    @cached_property
    def retry_policy(self) -> RetryPolicy:
        """How transfers are retried (``gitdata.retryAttempts``, ``gitdata.retryMaxTime``)."""
        attempts = self.setting("gitdata.retryAttempts")
        max_time = self.setting("gitdata.retryMaxTime")
        if attempts < 1 or max_time < 0:
            raise settings.BadSetting(
                "gitdata.retryAttempts must be at least 1 and gitdata.retryMaxTime at least 0; "
                "fix them with `git config`"
            )
        return RetryPolicy(attempts=attempts, max_time=float(max_time))

    @property
    def algorithm(self) -> str:
        return self.config.hash_algorithm

    @property
    def remotes(self) -> dict[str, config_mod.RemoteConfig]:
        """Data remotes: those in ``.gitdata``, plus per-clone ones.

        A per-clone data remote is git config ``gitdata.remote.<name>.url``
        (the remote helper records one for a bucket-hosted git remote); a
        name in ``.gitdata`` wins.
        """
        out = dict(self.config.remotes)
        for key, values in self.repo.config_items():
            if not (key.startswith("gitdata.remote.") and key.endswith(".url")):
                continue
            name, url = key[len("gitdata.remote.") : -len(".url")], values[-1].strip()
            if name and url and name not in out:
                out[name] = config_mod.RemoteConfig(name=name, url=url)
        return out

    def data_remote_for(self, git_remote: str | None) -> str | None:
        """The data remote that pushes to git remote ``git_remote`` upload to
        (``None``: a push to a URL, which names no git remote).

        Per clone ``remote.<git_remote>.gitdataRemote`` first, then the
        default data remote (per-clone ``gitdata.remote`` or ``.gitdata``
        ``[data] remote``); ``None`` when neither is set.
        """
        name = self.repo.config_get(f"remote.{git_remote}.gitdataRemote") if git_remote else None
        if name:
            return self.remote_name(name)
        chosen = self.repo.config_get("gitdata.remote") or self.config.default_remote
        return chosen if chosen and chosen in self.remotes else None

    def remote_name(self, name: str | None = None) -> str:
        remotes = self.remotes
        if name:
            if name not in remotes:
                known = ", ".join(sorted(remotes)) or "none"
                raise NoDataRemote(
                    f"no data remote named {name!r} (known: {known}); add it with "
                    f"`git data remote add {name} URL`"
                )
            return name
        local = self.repo.config_get("gitdata.remote")
        chosen = local or self.config.default_remote
        if not chosen and len(remotes) == 1:
            chosen = next(iter(remotes))
        if not chosen or chosen not in remotes:
            raise NoDataRemote(
                "no default data remote is configured; add one with "
                "`git data remote add NAME URL --default`"
            )
        return chosen

    def storage(self, name: str | None = None) -> Storage:
        name = self.remote_name(name)
        remote = self.remotes[name]
        return self.open_storage(remote.url, remote.options, name=name)

    def open_storage(
        self, url: str, options: dict[str, Any] | None = None, *, name: str | None = None, tracked: bool = True
    ) -> Storage:
        """A :class:`Storage` for any URL (data remote, dataset source, mapped storage).

        ``options`` are the tracked, non-secret options (checked against
        the allow-list of :func:`gitdata.config.check_tracked_options`
        unless ``tracked=False``: options of a storage already opened, or
        from the user's own git config); per-clone options and credentials
        are added by :func:`gitdata.credentials.resolve_options`. Every part
        of git data opens storage through here.
        """
        from .credentials import resolve_options

        options = dict(options or {})
        if tracked and options:
            own = {line.partition("=")[0] for line in self.repo.config_get_all(f"gitdata.remote.{name}.option")} if name else set()
            config_mod.check_tracked_options(
                url, {k: v for k, v in options.items() if k not in own}, f"{config_mod.FILENAME} ({name or url})", name
            )
        opts = resolve_options(self, name, url, options)
        return Storage(url, opts, name=name, retry=self.retry_policy, part_size=self.part_size)

    def object_store(self, name: str | None = None) -> ObjectStore:
        return ObjectStore(self.storage(name), jobs=self.jobs)
