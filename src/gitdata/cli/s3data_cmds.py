"""``git remote-s3data compact|unlock|log REMOTE``: maintenance of bucket-hosted remotes, run by hand."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import GitDataError
from ..project import Project
from ..remote.helper import BucketRemote, HelperError, is_bucket_url, local_project, log

# --------------------------------------------------------------------------
# Maintenance commands (run by hand: `git remote-s3data compact origin`)


def _bucket_for(target: str) -> tuple[Project, BucketRemote]:
    project = local_project()
    name, url = target, target
    if "://" not in target and not target.startswith("s3data::"):
        url = project.repo.config_get(f"remote.{target}.url") or ""
        if not url:
            raise HelperError(f"no git remote named {target!r}; give its name or its s3data:: URL")
    else:
        name = url
    if url.startswith("s3data::"):
        url = url[len("s3data::") :]
    if not is_bucket_url(url):
        raise HelperError(f"{target} is not a bucket-hosted remote (its URL is {url})")
    return project, BucketRemote(project, name, url, log)


def maintenance_cli() -> Any:
    import json
    import time as _time

    import click

    def emit(obj: Any) -> None:
        click.echo(json.dumps(obj, indent=2, sort_keys=True))

    def run(fn: Callable[[], None]) -> None:
        try:
            fn()
        except GitDataError as err:
            click.echo(f"error: {err}", err=True)
            raise SystemExit(err.exit_code) from None

    @click.group(help="Maintenance of bucket-hosted s3data:: remotes (git runs the helper itself).")
    def cli() -> None:
        pass

    @cli.command("log")
    @click.argument("remote")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    def log_cmd(remote: str, as_json: bool) -> None:
        """Every recorded push to REMOTE: refs created, updated, forced, deleted."""

        def go() -> None:
            _p, br = _bucket_for(remote)
            hist = br.bucket.history()
            if as_json:
                emit([
                    {"seq": m.seq, "time": m.time, "by": m.by, "compacted": m.compacted,
                     "updates": [u.__dict__ for u in m.updates], "packs": len(m.packs)}
                    for m in hist
                ])  # fmt: skip
                return
            for m in hist:
                when = _time.strftime("%Y-%m-%d %H:%M:%S", _time.localtime(m.time))
                if m.compacted:
                    click.echo(f"#{m.seq} {when} {m.by}: compacted to {len(m.packs)} pack(s)")
                for u in m.updates:
                    if u.new is None:
                        what = f"deleted (was {u.old[:12] if u.old else '?'})"
                    elif u.old is None:
                        what = f"created at {u.new[:12]}"
                    else:
                        what = f"{u.old[:12]}..{u.new[:12]}" + (" (forced)" if u.forced else "")
                    click.echo(f"#{m.seq} {when} {m.by}: {u.ref} {what}")

        run(go)

    @cli.command("unlock")
    @click.argument("remote")
    @click.option("--force", is_flag=True, help="Also clear locks that are not stale yet.")
    @click.option("--dry-run", is_flag=True, help="Only show the locks.")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    def unlock_cmd(remote: str, force: bool, dry_run: bool, as_json: bool) -> None:
        """Clear stale locks a crashed push left on REMOTE (lock-based backends)."""

        def go() -> None:
            _p, br = _bucket_for(remote)
            if dry_run:
                locks = br.bucket.locks()
            else:
                locks = br.bucket.clear_locks(stale_only=not force)
            rows = [
                {"key": lk.key, "age_seconds": round(lk.age, 1), "holder": lk.holder}
                for lk in locks
            ]
            if as_json:
                emit({"cleared": [] if dry_run else rows, "locks": rows if dry_run else []})
                return
            verb = "lock" if dry_run else "cleared"
            for r in rows:
                click.echo(f"{verb} {r['key']} ({r['age_seconds']:.0f} s old, {r['holder']})")
            if not rows:
                click.echo("no locks" if dry_run or force else "no stale locks")

        run(go)

    @cli.command("compact")
    @click.argument("remote")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    def compact_cmd(remote: str, as_json: bool) -> None:
        """Replace REMOTE's packs by one (run in a clone; fetches what it lacks)."""

        def go() -> None:
            _p, br = _bucket_for(remote)
            rep = br.bucket.compact()
            if as_json:
                emit(rep.__dict__)
                return
            click.echo(
                f"compacted {rep.packs_before} pack(s) into {rep.packs_after}; "
                f"deleted {len(rep.deleted)} (state #{rep.seq})"
            )

        run(go)

    return cli
