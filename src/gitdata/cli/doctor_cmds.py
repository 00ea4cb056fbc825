"""``git data doctor``: check the set-up and say how to fix what is wrong."""

from __future__ import annotations

import click

from .. import doctor as doctor_mod
from ..credentials import Session, use_session
from ..git.repo import NotARepository
from ..project import Project
from . import cli
from .base import emit_json

_LABEL = {doctor_mod.OK: "ok", doctor_mod.WARN: "warn", doctor_mod.FAIL: "FAIL", doctor_mod.SKIP: "skip"}


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output: {ok, checks: [{name, status, detail, fix}]}.")
def doctor(as_json: bool) -> None:
    """Check the set-up: git, PATH, filter, hooks, storages, FUSE.

    Every data remote, storage and dataset storage of .gitdata is asked one
    small request with the credentials that would be used (their source is
    named, never their value); its bucket must exist. Nothing is written and
    nothing is asked. Each failing check says how to fix it; exits 1 when a
    check fails (warnings do not count).
    """
    use_session(Session(interactive=False))
    project, why = None, None
    try:
        project = Project.open()
    except NotARepository as err:
        why = f"not in a git repository ({err}): repository checks skipped"
    checks = doctor_mod.run_checks(project, why)
    failed = [c for c in checks if c.status == doctor_mod.FAIL]
    if as_json:
        emit_json({"ok": not failed, "checks": [c.as_dict() for c in checks]})
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            click.echo(f"{_LABEL[c.status]:<5} {c.name:<{width}}  {c.detail}")
            if c.fix and c.status in (doctor_mod.FAIL, doctor_mod.WARN):
                click.echo(f"{'':<5} {'':<{width}}  fix: {c.fix}")
        click.echo(f"{len(failed)} check(s) failed" if failed else "everything looks right")
    if failed:
        raise SystemExit(1)
