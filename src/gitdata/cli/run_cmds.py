"""``git data run``, ``rerun``, ``log`` and ``crate``: recorded runs (provenance)."""

from __future__ import annotations

import json
import os
import shlex

import click

from ..provenance import export as export_mod
from ..provenance import lineage, model, observe, runner
from ..writer import write_small
from . import cli
from .base import emit_json, open_project


def _say(message: str) -> None:
    click.echo(f"git data: {message}", err=True)


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("-n", "--name", help="The run's name (default: the first output's name without extension).")
@click.option("-i", "--input", "inputs", multiple=True, metavar="INPUT",
              help="A file or folder of the project, a dataset name, or a URL under a registered source (repeat).")
@click.option("-o", "--output", "outputs", multiple=True, metavar="OUTPUT",
              help="A file or folder the command writes, in the project (repeat; a folder ends with /).")
@click.option("--env", "env", multiple=True, metavar="VAR",
              help="Record this environment variable's value (repeat). Credentials are refused.")
@click.option("--json", "as_json", is_flag=True, help="Print the record.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(name, inputs, outputs, env, as_json, command) -> None:
    """Run COMMAND and record which inputs made which outputs.

    Inputs in datasets are staged first, in their dataset's mode. The
    record (.gitdata-runs/NAME.json) holds the command, working folder, the
    --env values, each input's identity (oid of project files; source and
    fingerprint of registered files; a digest of a folder's listing; the
    listing of a URL), each output's oid, the times, the commit and the
    tool's version. Outputs become tracked data. A failing command records
    nothing and leaves earlier outputs as they were. Put -- before COMMAND
    when it has options of its own:

    \b
        git data run -n table -i data/raw -o results/table.csv -- python make_table.py
    """
    project = open_project()
    rec = runner.run(project, list(command), name=name, inputs=inputs, outputs=outputs, env_names=env, say=_say)
    if as_json:
        emit_json(rec.as_json())
    else:
        click.echo(f"recorded run {rec.name} in {rec.path}: {len(rec.inputs)} input(s), {len(rec.outputs)} "
                   "output(s); review with `git status`, then commit")  # fmt: skip


@cli.command()
@click.argument("names", nargs=-1)
@click.option("--all", "all_runs", is_flag=True, help="Every stale run (the default when no NAME is given).")
@click.option("--dry-run", is_flag=True, help="Print the plan (runs, reasons, commands); change nothing.")
@click.option("--force", is_flag=True, help="Rerun even runs that are up to date.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable plan or result.")
def rerun(names, all_runs, dry_run, force, as_json) -> None:
    """Rerun stale runs in dependency order, re-recording their identities.

    NAMES and the runs they read outputs of (or --all). Stale inputs in the
    bucket are re-recorded first (as `git data update` does) and staged;
    a run whose inputs turn out unchanged when its turn comes is skipped.
    Each command is printed before it runs: it is the command the record
    says, which came with the repository (see docs/security.md).
    """
    if names and all_runs:
        raise click.UsageError("give run NAMES or --all, not both")
    project = open_project()
    if dry_run:
        steps, _remote = runner.plan(project, names, force=force)
    else:
        steps = runner.rerun(project, names, force=force, say=_say)
    if as_json:
        emit_json([{"name": s.name, "command": list(s.command), "reasons": s.reasons, "done": s.done} for s in steps])
        return
    if not steps:
        click.echo("nothing to rerun: every run is up to date")
        return
    for s in steps:
        if dry_run:
            env = " ".join(f"{k}={shlex.quote(v)}" for k, v in s.env)
            click.echo(f"would rerun {s.name}: {'; '.join(s.reasons)}")
            click.echo(f"  $ {env + ' ' if env else ''}{shlex.join(s.command)}")
        else:
            click.echo(f"{s.name}: {s.done}")
    if not dry_run and any(s.done == "rerun" for s in steps):
        click.echo("review with `git status`, then commit")


def _short(entry: dict) -> str:
    ident = str(entry.get("identity", ""))
    if ident.startswith("fp:"):
        fields = dict(p.split("=", 1) for p in ident[3:].split(";") if "=" in p)
        ver = fields.get("version-id") or fields.get("md5") or fields.get("etag") or ""
        return f"version {ver}" if fields.get("version-id") else (ver or "fingerprint")
    if ident:
        return ident[:20] + ("…" if len(ident) > 20 else "")
    return ""


def _tree(node: dict, depth: int = 0) -> None:
    pad = "  " * depth
    run = node.get("run")
    what = _short(node)
    line = f"{pad}{node['path']}" + (f"  ({what})" if what else "")
    if isinstance(run, dict):
        commit = (run.get("commit") or "")[:10]
        line += f"  <- run {run['name']} at {run['ended']}" + (f", code {commit}" if commit else "")
        click.echo(line)
        click.echo(f"{pad}    $ {shlex.join(run['command'])}")
        for child in node.get("inputs", []):
            _tree(child, depth + 1)
    else:
        click.echo(line)


@cli.command()
@click.argument("path")
@click.option("--json", "as_json", is_flag=True, help="The lineage as nested JSON.")
@click.option("--dot", "as_dot", is_flag=True, help="The lineage as a Graphviz digraph.")
def log(path, as_json, as_dot) -> None:
    """Show which run produced PATH, from which inputs at which versions, recursively."""
    project = open_project()
    rel = runner.project_rel(project, os.getcwd(), path, "path").rstrip("/")
    records, bad = observe.load_records(project)
    for _p, why in sorted(bad.items()):
        click.echo(f"warning: {why}", err=True)
    if lineage.producer(records, rel) is None:
        raise model.RecordError(f"{rel} was not made by a recorded run (known runs: "
                                f"{', '.join(sorted(records)) or 'none yet'}); see `git data run --help`")  # fmt: skip
    tree = lineage.lineage(records, rel)
    if as_json:
        emit_json(tree)
    elif as_dot:
        click.echo(lineage.dot(tree), nl=False)
    else:
        _tree(tree)


@cli.command()
@click.option("-o", "--output", default=export_mod.METADATA, show_default=True,
              help="Where to write it (relative to the project root; - for stdout).")
@click.option("--license", "license_", metavar="URL|TEXT",
              help="The data's license (an SPDX URL such as https://spdx.org/licenses/CC-BY-4.0); default: not stated.")
def crate(output, license_) -> None:
    """Export datasets and runs as an RO-Crate (ro-crate-metadata.json).

    Datasets with their metadata (title, description, keywords, creators,
    sources), runs as Process Run Crate actions (command, inputs, outputs,
    times, environment). The project root is the crate root.
    """
    project = open_project()
    data = json.dumps(export_mod.build(project, license=license_), indent=2, sort_keys=True) + "\n"
    if output == "-":
        click.echo(data, nl=False)
        return
    full = output if os.path.isabs(output) else os.path.join(project.root, output)
    write_small(full, data.encode())
    click.echo(f"wrote {os.path.relpath(full, project.root)}")
