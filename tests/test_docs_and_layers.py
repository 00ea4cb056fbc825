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
        "mount/protocol.py", "mount/tree.py"]  # fmt: skip
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
        if not path.exists():
            continue
        bad = _imports(path) & FORBIDDEN_IN_PURE
        assert not bad, f"{rel} imports {bad}: keep I/O out of pure modules"
        text = path.read_text()
        assert "os.environ" not in text and "open(" not in text, f"{rel} does I/O"


def test_click_only_in_the_cli():
    offenders = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith("cli/") or rel == "remote_helper.py":
            continue
        if "click" in _imports(path):
            offenders.append(rel)
    assert not offenders, f"click imported outside the CLI: {offenders}"


def test_hook_files_match_what_install_writes():
    from gitdata.install import HOOKS

    for name, text in HOOKS.items():
        assert (ROOT / "hooks" / name).read_text() == text, f"hooks/{name} is stale"
