"""``git data run`` and ``git data rerun``: stage inputs, run, keep outputs safe, record.

A run, in order:

1. resolve inputs (project paths, dataset names, URLs under a declared
   place) and outputs (project paths: never outside, in ``.git``, or
   through a symlink), refuse ``--env`` credentials;
2. stage the datasets the inputs are in, in their mode (copy, unless the
   clone or ``.gitdata`` says reference, a location or a mount);
3. record every input's identity, then set the existing outputs aside
   (renamed into ``<git-dir>/gitdata/run-aside/``), run the command;
4. on failure (non-zero exit, an output not written, a signal) remove what
   the command wrote at the outputs and put the earlier outputs back:
   nothing is recorded;
5. on success track the outputs with the filter, ``git add`` them and write
   the record (temporary file, then ``os.replace``) and ``git add`` it.
"""

from __future__ import annotations

import datetime as _dt
import os
import shlex
import shutil
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from .. import __version__, safepath, writer
from .. import datasets as ds_mod
from .. import install as install_mod
from .. import status as status_mod
from ..errors import GitDataError
from ..lock import clone_lock
from ..project import Project
from . import model
from .observe import Observer, evaluate, load_records, url_identity, url_storage

Say = Callable[[str], None]


class RunError(GitDataError):
    pass


class CommandFailed(RunError):
    pass


@dataclass(frozen=True)
class Spec:
    """An input or output before its identity is known."""

    path: str
    kind: str
    dataset: str | None = None


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def project_rel(project: Project, cwd: str, given: str, what: str) -> str:
    """``given`` (relative to ``cwd``) as a project-relative POSIX path, refused outside the project or in .git."""
    full = os.path.normpath(os.path.join(cwd, given))
    rel = os.path.relpath(full, project.root).replace(os.sep, "/")
    if rel == "." or rel == ".." or rel.startswith("../") or os.path.isabs(rel):
        raise safepath.UnsafePath(f"{what} {given!r} is outside the project ({project.root})")
    try:
        return safepath.check_relpath(rel, f"{what} {given!r}")
    except safepath.UnsafePath as err:
        raise safepath.UnsafePath(f"{err}; {what}s are paths in the project") from err


def resolve_inputs(project: Project, given: Iterable[str], cwd: str) -> list[Spec]:
    observer = Observer(project)
    out: list[Spec] = []
    for g in given:
        if "://" in g:
            url_storage(project, g)  # refused unless under a declared place
            out.append(Spec(g.rstrip("/"), model.URL))
            continue
        ds = observer.datasets.get(g)
        if ds is not None and not os.path.lexists(os.path.join(cwd, g)):
            out.append(Spec(ds.path, model.FOLDER, ds.name))
            continue
        rel = project_rel(project, cwd, g, "input")
        owner = observer.dataset_of(rel)
        if observer.is_folder(rel):
            out.append(Spec(rel, model.FOLDER, owner.name if owner else None))
        elif rel in observer.index or os.path.lexists(os.path.join(project.root, rel)):
            out.append(Spec(rel, model.FILE, owner.name if owner else None))
        else:
            raise RunError(f"input {g!r} is not a file or folder of the project, a dataset name or a URL")
    return out


def resolve_outputs(project: Project, given: Iterable[str], cwd: str) -> list[Spec]:
    out = []
    for g in given:
        rel = project_rel(project, cwd, g, "output").rstrip("/")
        safepath.check_place(rel, f"output {g!r}")
        if rel == model.RUNS_DIR or rel.startswith(model.RUNS_DIR + "/"):
            raise safepath.UnsafePath(f"output {g!r} is in {model.RUNS_DIR}/, where git data keeps run records")
        full = os.path.join(project.root, rel)
        kind = model.FOLDER if (g.endswith("/") or (os.path.isdir(full) and not os.path.islink(full))) else model.FILE
        out.append(Spec(rel, kind))
    if not out:
        raise RunError("a run needs at least one output (-o PATH): the files the command writes")
    return out


# -- staging the inputs -------------------------------------------------------------------------


def stage_inputs(project: Project, inputs: Sequence[Spec], say: Say) -> None:
    """Stage every dataset an input lies in, in its mode; refuse to run if a file fails."""
    from .. import datasets as stage_mod

    wanted: dict[str, set[str] | None] = {}
    datasets = ds_mod.load_all(project)
    for spec in inputs:
        if spec.kind == model.URL:
            continue
        for ds in datasets.values():
            if spec.path == ds.path or ds.path.startswith(spec.path + "/"):
                wanted[ds.name] = None  # the whole dataset
            elif ds.contains(spec.path) and wanted.get(ds.name, set()) is not None:
                rel = ds.rel(spec.path)
                wanted.setdefault(ds.name, set()).add(rel if spec.kind == model.FILE else rel + "/*")  # type: ignore[union-attr]
    for name, include in sorted(wanted.items()):
        mode, _loc = stage_mod.current_mode(project, name)
        tracked = (project.config.sections("dataset").get(name, {}).get("mode") or ["copy"])[-1]
        if mode in ("reference", "location", "existing", "mount") or (mode is None and tracked == "reference"):
            continue  # read in place (a mount, a link, the API): nothing to copy
        if mode is None and tracked == "mount":
            stage_mod.stage(project, name, mode="mount")
            continue
        report = stage_mod.stage(project, name, mode="copy", include=tuple(sorted(include or ())))
        if report.staged:
            say(f"staged {report.staged} file(s) of dataset {name}")
        if report.failed:
            path, why = sorted(report.failed.items())[0]
            raise RunError(f"input {path} could not be staged ({why}); nothing was run")


# -- identities -----------------------------------------------------------------------------------


def entries(project: Project, specs: Sequence[Spec]) -> tuple[model.Entry, ...]:
    observer = Observer(project)
    out = []
    for s in specs:
        if s.kind == model.URL:
            ident, count, fields = url_identity(project, s.path)
            out.append(model.Entry(s.path, s.kind, ident, count, None, tuple(sorted(fields.items()))))
        else:
            now, n = observer.folder_identity(s.path) if s.kind == model.FOLDER else (observer.file_identity(s.path), None)
            if now is None:
                raise RunError(f"{s.path} is missing")
            out.append(model.Entry(s.path, s.kind, now, n, s.dataset))
    return tuple(out)


# -- running, with earlier outputs set aside ------------------------------------------------------


@dataclass
class _Aside:
    project: Project
    outputs: Sequence[Spec]
    moved: dict[str, str] = field(default_factory=dict)  # output path -> where it waits
    base: str = ""

    def __enter__(self) -> _Aside:
        self.base = base = os.path.join(self.project.repo.data_dir, "run-aside", f"{os.getpid()}-{_now()}")
        for i, out in enumerate(self.outputs):
            full = safepath.checked_target(self.project.root, out.path, what=f"output {out.path}") \
                if out.kind == model.FILE else self._folder(out.path)  # fmt: skip
            if os.path.lexists(full):
                os.makedirs(base, exist_ok=True)
                dest = os.path.join(base, str(i))
                shutil.move(full, dest)
                self.moved[out.path] = dest
            if out.kind == model.FOLDER:
                os.makedirs(full, exist_ok=True)  # the command writes into it
        return self

    def _folder(self, rel: str) -> str:
        parent, _, name = rel.rpartition("/")
        where = safepath.checked_dir(self.project.root, parent, what=f"output {rel}")
        full = os.path.join(where, name)
        if os.path.islink(full):
            raise safepath.UnsafePath(f"output {rel}: {full} is a symlink; git data does not write through it")
        return full

    def restore(self) -> None:
        """Remove what the command wrote at the outputs; put the earlier outputs back."""
        for out in self.outputs:
            parent, _, name = out.path.rpartition("/")
            full = os.path.join(safepath.checked_dir(self.project.root, parent, what=f"output {out.path}"), name)
            if os.path.isdir(full) and not os.path.islink(full):
                shutil.rmtree(full)
            elif os.path.lexists(full):
                os.unlink(full)
            if out.path in self.moved:
                shutil.move(self.moved[out.path], full)
        self.drop()

    def drop(self) -> None:
        for dest in self.moved.values():
            if os.path.isdir(dest) and not os.path.islink(dest):
                shutil.rmtree(dest, ignore_errors=True)
            elif os.path.lexists(dest):
                os.unlink(dest)
        self.moved.clear()
        if self.base and os.path.isdir(self.base):
            os.rmdir(self.base)

    def __exit__(self, *exc: object) -> None:
        pass


def execute(project: Project, command: Sequence[str], cwd: str, env: Mapping[str, str],
            outputs: Sequence[Spec]) -> None:  # fmt: skip
    """Run ``command``; on any failure the outputs are as they were before, and this raises."""
    where = safepath.checked_dir(project.root, cwd, create=False, what="working directory") if cwd else project.root
    aside = _Aside(project, outputs).__enter__()
    try:
        try:
            proc = subprocess.run(list(command), cwd=where, env={**os.environ, **env})
        except OSError as err:
            raise CommandFailed(f"cannot run {command[0]!r}: {err.strerror}; nothing was recorded") from err
        if proc.returncode != 0:
            raise CommandFailed(
                f"the command exited with status {proc.returncode}; nothing was recorded and the "
                "outputs are as they were before it ran"
            )
        missing = [o.path for o in outputs if not os.path.lexists(os.path.join(project.root, o.path))]
        if missing:
            raise CommandFailed(f"the command did not write output {missing[0]}; nothing was recorded")
        for o in outputs:
            if o.kind == model.FILE:
                safepath.checked_target(project.root, o.path, create=False, what=f"output {o.path}")
            else:
                aside._folder(o.path)
    except BaseException:
        aside.restore()
        raise
    aside.drop()


def _track(project: Project, outputs: Sequence[Spec]) -> None:
    """Route outputs through the filter (they become data, pushed like any other)."""
    paths = [o.path if o.kind == model.FILE else f"{o.path}/x" for o in outputs]
    out = project.repo.git("check-attr", "-z", "filter", "--", *paths).split(b"\0")
    untracked = []
    for i in range(0, len(out) - 2, 3):
        if out[i + 2].decode() != install_mod.DRIVER:
            o = outputs[i // 3]
            untracked.append(o.path if o.kind == model.FILE else f"{o.path}/**")
    if untracked:
        install_mod.track(project.root, untracked)


def write_record(project: Project, record: model.Record) -> None:
    data = record.encode()
    model.parse(data, record.path)  # what we write, we can read back
    full = safepath.checked_target(project.root, record.path, what="run record")
    writer.write_small(full, data)  # a temporary file beside it, then a rename


def default_name(outputs: Sequence[Spec]) -> str:
    base = outputs[0].path.rsplit("/", 1)[-1].split(".", 1)[0] or "run"
    name = "".join(c if c.isalnum() or c in "._-" else "-" for c in base).lstrip("._-")
    return name[:100] or "run"


def run(project: Project, command: Sequence[str], *, name: str | None = None, inputs: Iterable[str] = (),
        outputs: Iterable[str] = (), env_names: Iterable[str] = (), cwd: str | None = None,
        environ: Mapping[str, str] | None = None, say: Say = lambda _m: None) -> model.Record:  # fmt: skip
    """``git data run``: see the module docstring."""
    if not command:
        raise RunError("no command given: `git data run -o OUT -- COMMAND ARGS…`")
    cwd = os.path.abspath(cwd or os.getcwd())
    in_specs = resolve_inputs(project, inputs, cwd)
    out_specs = resolve_outputs(project, outputs, cwd)
    name = model.check_name(name or default_name(out_specs))
    env = model.check_env(env_names, os.environ if environ is None else environ)
    cwd_rel = "" if cwd == project.root else project_rel(project, cwd, ".", "working directory")
    probe = [model.Entry(s.path, s.kind, "tree:" + "0" * 32) for s in in_specs]
    model.check_entries(probe, [model.Entry(s.path, s.kind, "tree:" + "0" * 32) for s in out_specs])
    others, _bad = load_records(project)
    for other in others.values():
        if other.name != name:
            for o in other.outputs:
                hit = next((s for s in out_specs if o.covers(s.path)), None)
                if hit:
                    raise RunError(f"{hit.path} is an output of run {other.name!r} already; re-record that "
                                   f"run with `git data run -n {other.name} …`, or choose another output")  # fmt: skip
    with clone_lock(project.repo.data_dir, "runs", f"run {name}"):
        return record_and_run(project, name, tuple(command), cwd_rel, env, in_specs, out_specs, say)


def record_and_run(project: Project, name: str, command: tuple[str, ...], cwd_rel: str,
                   env: tuple[tuple[str, str], ...], in_specs: Sequence[Spec], out_specs: Sequence[Spec],
                   say: Say) -> model.Record:  # fmt: skip
    stage_inputs(project, in_specs, say)
    input_entries = entries(project, in_specs)
    started = _now()
    execute(project, command, cwd_rel, dict(env), out_specs)
    ended = _now()
    _track(project, out_specs)
    ds_mod.git_add(project, [".gitattributes", *(o.path for o in out_specs)])
    record = model.Record(
        name=name, command=command, cwd=cwd_rel, env=env, inputs=input_entries,
        outputs=entries(project, out_specs), started=started, ended=ended,
        commit=project.repo.rev_parse("HEAD"), tool=f"gitdata {__version__}",
    )  # fmt: skip
    write_record(project, record)
    ds_mod.git_add(project, [record.path])
    return record


# -- rerun ---------------------------------------------------------------------------------------


@dataclass
class Step:
    name: str
    command: tuple[str, ...]
    reasons: list[str]
    env: tuple[tuple[str, str], ...] = ()
    done: str = "planned"  # planned | rerun | skipped (up to date now)


def plan(project: Project, names: Sequence[str] = (), *, force: bool = False) -> tuple[list[Step], dict[str, str]]:
    """The reruns, in dependency order, with their reasons; and bucket changes per input."""
    records, bad = load_records(project)
    for path, why in bad.items():
        if not names or path in {model.record_path(n) for n in names}:
            raise model.RecordError(why)
    unknown = [n for n in names if n not in records]
    if unknown:
        raise model.RecordError(f"no run named {unknown[0]!r} (known: {', '.join(sorted(records)) or 'none yet'})")
    chosen = model.order(records, names or None)
    verdicts, _unchecked, changes = evaluate(project, records, remote=True, dataset_rows=status_mod.dataset_rows)
    remote = {path: f"input {path} changed in the bucket: {what}" for path, what in changes.items()}
    steps = []
    for n in chosen:
        v = verdicts[n]
        if v.stale or force:
            steps.append(Step(n, records[n].command, [t for _k, t in v.reasons] or ["--force"], records[n].env))
    return steps, remote


def _update_inputs(project: Project, rec: model.Record, changed: Iterable[str], say: Say) -> None:
    """Re-record the pointers of inputs that changed in the bucket, in the index too."""
    datasets = ds_mod.load_all(project)
    for path in changed:
        for ds in datasets.values():
            if not (ds.contains(path) or path == ds.path or ds.path.startswith(path + "/")):
                continue
            sub = () if path == ds.path or ds.path.startswith(path + "/") else (path,)
            report = ds_mod.update(project, ds.name, sub)
            if report.kept:
                p, why = sorted(report.kept.items())[0]
                raise RunError(f"{p}: {why}; commit or discard your change, then rerun {rec.name}")
            ds_mod.git_add(project, report.changed + report.added, pointers=True)
            if report.deleted:
                project.repo.git("rm", "-q", "--cached", "--ignore-unmatch", "--", *report.deleted)
            say(f"{ds.name}: {len(report.changed)} changed, {len(report.added)} new, "
                f"{len(report.deleted)} deleted object(s) re-recorded")  # fmt: skip


def rerun(project: Project, names: Sequence[str] = (), *, force: bool = False, say: Say = lambda _m: None) -> list[Step]:
    """Rerun stale runs in dependency order; a run no longer stale when its turn comes is skipped.

    One ``run`` or ``rerun`` at a time per clone (:mod:`gitdata.lock`).
    """
    with clone_lock(project.repo.data_dir, "runs", "rerun"):
        return _rerun(project, names, force=force, say=say)


def _rerun(project: Project, names: Sequence[str], *, force: bool, say: Say) -> list[Step]:
    steps, remote = plan(project, names, force=force)
    pending = dict(remote)
    for step in steps:
        records, _bad = load_records(project)
        rec = records[step.name]
        verdicts, _u, _c = evaluate(project, records, remote=False, dataset_rows=status_mod.dataset_rows)
        mine = {e.path: pending[e.path] for e in rec.inputs if e.path in pending}
        reasons = [t for _k, t in verdicts[step.name].reasons] + list(mine.values())
        if not reasons and not force:
            step.done = "skipped"
            say(f"{step.name}: up to date now (its inputs did not change); skipped")
            continue
        say(f"rerun {step.name}: {'; '.join(reasons or ['--force'])}")
        say("$ " + " ".join(f"{k}={shlex.quote(v)}" for k, v in rec.env) + (" " if rec.env else "") + shlex.join(rec.command))
        _update_inputs(project, rec, [p for p in mine if "://" not in p], say)
        for p in mine:
            pending.pop(p, None)
        in_specs = [Spec(e.path, e.kind, e.dataset) for e in rec.inputs]
        out_specs = [Spec(e.path, e.kind) for e in rec.outputs]
        record_and_run(project, rec.name, rec.command, rec.cwd, rec.env, in_specs, out_specs, say)
        step.done = "rerun"
    return steps
