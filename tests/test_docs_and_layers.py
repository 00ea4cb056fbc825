"""Every command has help text and docs; the layers stay clean."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import click

from gitdata.cli import cli

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "gitdata"


def _commands(group: click.Group, prefix: tuple[str, ...] = ()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if cmd is None or cmd.hidden:
            continue
        yield (*prefix, name), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*prefix, name))


def test_every_command_has_help_and_a_docs_entry():
    docs = "\n".join(p.read_text() for p in (ROOT / "docs").glob("*.md"))
    headings = set(re.findall(r"^### (git data [a-z -]+?)\s*$", docs, re.M))
    missing_help, missing_docs = [], []
    for words, cmd in _commands(cli):
        if not (cmd.help or "").strip():
            missing_help.append(" ".join(words))
        if "git data " + " ".join(words) not in headings:
            missing_docs.append(" ".join(words))
    assert not missing_help, f"commands without --help text: {missing_help}"
    assert not missing_docs, f"commands without a '### git data ...' docs heading: {missing_docs}"


def test_readme_gives_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "bash scripts/demo.sh" in readme and "bash scripts/test.sh" in readme
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text()


PURE = ["pointer.py", "units.py", "storage/fingerprint.py", "git/pktline.py", "syncplan.py", "settings.py", "retry.py",
        "statusrows.py", "provenance/model.py", "provenance/lineage.py", "mount/protocol.py", "mount/tree.py",
        "remote/protocol.py", "remote/manifest.py"]
FORBIDDEN_IN_PURE = {"subprocess", "click", "fsspec", "s3fs", "gcsfs", "requests", "socket"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_pure_modules_do_no_io():
    for rel in PURE:
        path = SRC / rel
        assert path.exists(), f"{rel} is listed as pure but does not exist: update PURE"
        bad = _imports(path) & FORBIDDEN_IN_PURE
        assert not bad, f"{rel} imports {bad}: keep I/O out of pure modules"
        text = path.read_text()
        assert "os.environ" not in text and "open(" not in text, f"{rel} does I/O"


def test_click_only_in_the_cli():
    offenders = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith("cli/"):
            continue
        if "click" in _imports(path):
            offenders.append(rel)
    assert not offenders, f"click imported outside the CLI: {offenders}"


def test_progress_is_drawn_only_in_the_cli():
    offenders = [path.relative_to(SRC).as_posix() for path in SRC.rglob("*.py")
                 if not path.relative_to(SRC).as_posix().startswith("cli/") and "rich" in _imports(path)]
    assert not offenders, f"rich imported outside the CLI (report through gitdata.progress): {offenders}"


def test_hook_files_match_what_install_writes():
    from gitdata.install import HOOKS

    for name, text in HOOKS.items():
        assert (ROOT / "hooks" / name).read_text() == text, f"hooks/{name} is stale"


def _module_graph() -> dict[str, set[str]]:
    """Every gitdata module and the gitdata modules it imports, anywhere in it (imports
    inside functions hide cycles, they do not remove them); `if TYPE_CHECKING:` too."""
    mods: dict[str, Path] = {}
    for path in SRC.rglob("*.py"):
        name = ".".join(("gitdata", *path.relative_to(SRC).with_suffix("").parts))
        mods[name.removesuffix(".__init__")] = path
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            else:
                continue
            graph[mod] |= {t for t in targets if t in mods and t != mod}
    return graph


def test_no_import_cycles_between_gitdata_modules():
    graph = _module_graph()
    assert "gitdata.datasets.staging" in graph and graph["gitdata.cli"], "the scan found no modules"

    def path_back(start: str) -> list[str] | None:
        stack, seen = [(start, [start])], set()
        while stack:
            node, trail = stack.pop()
            for nxt in sorted(graph[node]):
                if nxt == start:
                    return [*trail, start]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*trail, nxt]))
        return None

    cycles = [c for m in sorted(graph) if (c := path_back(m))]
    assert not cycles, "import cycle: " + " -> ".join(cycles[0])


def test_feature_packages_export_what_docs_api_md_names():
    import gitdata.credentials
    import gitdata.datasets
    import gitdata.remote
    import gitdata.storages

    api = (ROOT / "docs" / "api.md").read_text()
    for pkg in (gitdata.datasets, gitdata.storages, gitdata.remote, gitdata.credentials):
        assert pkg.__all__, pkg.__name__
        missing = [n for n in pkg.__all__ if not hasattr(pkg, n)]
        assert not missing, f"{pkg.__name__}.__all__ names what it lacks: {missing}"
        row = next((line for line in api.splitlines() if line.startswith(f"| `{pkg.__name__}` |")), None)
        assert row, f"docs/api.md has no row for {pkg.__name__}"
        named = re.findall(r"`(\w+)`", row.split("|")[2])
        assert named and set(named) - {"model", "register", "modes", "download", "staging", "unstage", "read",
                                       "spec", "manifest", "listing", "engine", "status", "__all__",
                                       "protocol", "bucket", "helper", "entry",
                                       "target", "gitcred", "store", "session", "resolve"} <= set(pkg.__all__), (
            f"docs/api.md names {pkg.__name__} functions it does not export")  # fmt: skip


def test_git_helpers_launch_the_entry_points_of_project_scripts(tmp_path):
    import os
    import shutil
    import subprocess
    import sys

    text = (ROOT / "pyproject.toml").read_text()
    section = text.split("[project.scripts]\n", 1)[1].split("\n[", 1)[0]
    scripts = dict(re.findall(r'^([\w-]+) = "([\w.:]+)"$', section, re.M))
    assert set(scripts) == {"git-data", "git-remote-s3data"}
    for name, target in scripts.items():
        launcher = ROOT / "git-helpers" / name
        assert launcher.is_file() and os.access(launcher, os.X_OK), f"git-helpers/{name} is missing"
        module, func = target.split(":")
        assert f"from {module} import {func}" in launcher.read_text(), f"git-helpers/{name} runs something else"
    # git finds the launcher on PATH and it runs this checkout's code
    path = os.pathsep.join([str(ROOT / "git-helpers"), os.path.dirname(sys.executable), "/usr/bin", "/bin"])
    assert shutil.which("git-data", path=path) == str(ROOT / "git-helpers" / "git-data")
    env = {**os.environ, "PATH": path}
    proc = subprocess.run(["git", "data", "--version"], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0 and "git data" in proc.stdout + proc.stderr, proc.stderr


#: the modules that may start processes, and why (git plumbing goes through git/repo.py)
SUBPROCESS_ALLOWED = {
    "git/repo.py": "git itself",
    "mount/runner.py": "the mount processes (rclone, the FUSE server), fusermount3, mountpoint",
    "mount/service.py": "the mount service's view processes, started as the calling user",
    "provenance/runner.py": "the user's own command, `git data run`",
    "settle.py": "itself, detached, when a checkout's filter ends (its git commands go through git/repo.py)",
}


def test_processes_are_started_only_where_that_is_the_job():
    offenders = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        tree = ast.parse(path.read_text())
        runtime = {n.lineno for n in ast.walk(tree) if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test)
                   for n in ast.walk(n) if hasattr(n, "lineno")}  # fmt: skip
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])  # fmt: skip
            if any(n.split(".")[0] in ("subprocess", "pty") for n in names) and node.lineno not in runtime:
                offenders.append(rel)
        if "os.system(" in path.read_text() or "os.popen(" in path.read_text():
            offenders.append(rel)
    stray = sorted(set(offenders) - set(SUBPROCESS_ALLOWED))
    assert not stray, f"processes started outside {sorted(SUBPROCESS_ALLOWED)}: {stray} (use gitdata.git.repo)"
    unused = sorted(set(SUBPROCESS_ALLOWED) - set(offenders))
    assert not unused, f"SUBPROCESS_ALLOWED lists modules that start no process: {unused}"


#: Where the process environment may be read: entry points, and the modules
#: whose job is the environment (the credential chain's providers, the
#: processes we start). Everything else takes values as arguments.
ENVIRON_ALLOWED = {
    "credentials/target.py": "the provider chain reads AWS_*/GOOGLE_* as the SDKs do",
    "credentials/gitcred.py": "the environment of `git credential`, without cloud secrets",
    "credentials/store.py": "XDG_CONFIG_HOME, where the credentials file lives",
    "credentials/resolve.py": "the provider chain's defaults (the process's own credentials)",
    "filters.py": "the filter process's entry (GIT_DATA_SKIP_SMUDGE, the expected-index file)",
    "refresh.py": "hands the expected-index file to git's filter in the child's environment",
    "remote/entry.py": "git-remote-s3data's entry point",
    "remote/helper.py": "git passes GIT_DIR to the remote helper",
    "mount/dataset.py": "the mount process's environment (credentials for rclone)",
    "mount/service.py": "the service's entry point",
    "mount/declared.py": "mount-declared's entry point, and the owner's child's minimal environment",
    "provenance/runner.py": "`git data run` passes the environment to the recorded command",
}
#: Where text may be printed directly: entry points that run without click.
PRINT_ALLOWED = {
    "credentials/session.py": "the terminal prompt (stderr)",
    "filters.py": "the filter process logs to stderr (git shows it)",
    "mount/serve.py": "the mount process's entry point",
    "mount/declared.py": "the owner's child process reports to the service on stdout",
    "remote/entry.py": "git-remote-s3data's entry point",
    "remote/helper.py": "the remote helper's log lines (stderr)",
}


def _uses(path: Path) -> tuple[bool, bool]:
    tree = ast.parse(path.read_text())
    environ = printed = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "environ" and isinstance(node.value, ast.Name) and node.value.id == "os":
            environ = True
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
            printed = True
    return environ, printed


def test_environment_and_print_only_in_named_entry_points():
    env_offenders, print_offenders = [], []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith("cli/"):
            continue  # the command line is the entry point
        environ, printed = _uses(path)
        if environ and rel not in ENVIRON_ALLOWED:
            env_offenders.append(rel)
        if printed and rel not in PRINT_ALLOWED:
            print_offenders.append(rel)
    assert not env_offenders, f"os.environ outside the named entry points (take it as an argument): {env_offenders}"
    assert not print_offenders, f"print() outside the named entry points (take a `say` callback): {print_offenders}"
    for which, table in ((0, ENVIRON_ALLOWED), (1, PRINT_ALLOWED)):
        stale = [rel for rel in table if not (SRC / rel).exists() or not _uses(SRC / rel)[which]]
        assert not stale, f"allow-list names files that no longer need it: {stale}"
