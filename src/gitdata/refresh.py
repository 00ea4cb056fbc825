"""Telling git that files git data wrote are unchanged (``git update-index``), without
re-reading them into the cache: the oid just written goes to the clean filter in a
file named by :data:`EXPECT_ENV`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .project import Project

#: the environment variable naming the file of ``oid<TAB>path`` records the clean filter trusts
EXPECT_ENV = "GITDATA_EXPECT"


def refresh_index(project: Project, paths: list[str] | Mapping[str, str]) -> None:
    """Record the stat data of files we wrote, whose cleaned content is unchanged.

    ``update-index --refresh`` is not enough: git treats a size change as a
    modification without reading the file, so the entries are re-added (the
    clean filter gives back the same pointer blob). When ``paths`` maps each
    path to the oid just written, that clean only hashes the bytes and writes
    nothing to the cache. Waits briefly for a concurrent ``index.lock`` to go
    away; failing that, the next ``git status`` shows the files as modified
    until ``git add`` (content is still right).
    """
    import tempfile
    import time

    from .git.repo import GitError, run_git

    data = "".join(p + "\0" for p in paths).encode("utf-8", "surrogateescape")
    env = None
    expect_file = None
    if isinstance(paths, Mapping) and paths:
        os.makedirs(project.repo.data_dir, exist_ok=True)
        fd, expect_file = tempfile.mkstemp(dir=project.repo.data_dir, prefix="expect-")
        with os.fdopen(fd, "wb") as f:
            f.write(encode_expected(paths))
        env = {**os.environ, EXPECT_ENV: expect_file}
    try:
        for attempt in range(20):
            if not os.path.exists(os.path.join(project.repo.git_dir, "index.lock")):
                try:
                    # the filter named on the command line: even where it is not configured,
                    # git cleans the files into pointers, never stages their raw bytes
                    run_git([*FILTER_ARGS, "update-index", "-q", "-z", "--stdin"], cwd=project.repo.root, input=data, env=env)
                    return
                except GitError:
                    pass
            time.sleep(0.05 * (attempt + 1))
    finally:
        if expect_file is not None:
            os.unlink(expect_file)


#: ``git -c`` arguments that make git run our filter for this one command.
FILTER_ARGS = ("-c", "filter.s3data.process=git-data filter-process", "-c", "filter.s3data.required=true")


def encode_expected(paths: Mapping[str, str]) -> bytes:
    """``path -> oid`` as the records :func:`read_expected` reads (``oid<TAB>path``, NUL-ended)."""
    return "".join(f"{oid}\t{p}\0" for p, oid in paths.items()).encode("utf-8", "surrogateescape")


def read_expected(path: str | None) -> dict[str, str]:
    if not path:
        return {}
    try:
        with open(path, "rb") as f:
            records = f.read().decode("utf-8", "surrogateescape").split("\0")
    except OSError:
        return {}
    out = {}
    for rec in records:
        oid, sep, p = rec.partition("\t")
        if sep:
            out[p] = oid
    return out


