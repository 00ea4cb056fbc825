"""Entry point of a dataset mount process: ``python -m gitdata.mount.serve ROOT NAME MOUNTPOINT``.

Started detached by ``git data dataset stage NAME --mount``; logs to its
stderr (the mount's log file) and serves until unmounted.
"""

from __future__ import annotations

import logging
import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        print("usage: python -m gitdata.mount.serve PROJECT_ROOT DATASET MOUNTPOINT", file=sys.stderr)
        return 2
    root, name, mountpoint = args
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    from .. import datasets as ds_mod
    from ..credentials import Session, use_session
    from ..errors import GitDataError
    from ..project import Project

    use_session(Session(interactive=False))  # no terminal: a missing credential is an error, never a prompt
    try:
        project = Project.open(root)
        ds = ds_mod.get(project, name)
        from .view import serve

        serve(project, ds.path, mountpoint, name=name)
    except GitDataError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 1
    except (ImportError, OSError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
