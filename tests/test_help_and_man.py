"""`git data help CMD`, and man pages that `git help data` / `git data --help` find."""

from __future__ import annotations

import os
import shutil

import click
import pytest

from gitdata.cli import cli
from gitdata.cli.help_cmds import default_man_dir
from helpers import gd, git, run

needs_man = pytest.mark.skipif(shutil.which("man") is None, reason="no man program (Debian package man-db)")


def visible_commands(group: click.Group, prefix: tuple[str, ...] = ()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if cmd is None or cmd.hidden:
            continue
        yield (*prefix, name)
        if isinstance(cmd, click.Group):
            yield from visible_commands(cmd, (*prefix, name))


def pager_env(**extra: str) -> dict[str, str]:
    return {"MANPAGER": "cat", "PAGER": "cat", "GIT_PAGER": "cat", "MANWIDTH": "100", **extra}


def test_every_command_has_a_page(tmp_path):
    man1 = tmp_path / "man" / "man1"
    out = gd(tmp_path, "help", "--man-dir", str(man1))
    pages = {p.name for p in man1.iterdir()}
    wanted = {"git-data.1"} | {"-".join(("git-data", *words)) + ".1" for words in visible_commands(cli)}
    assert wanted - pages == set(), "commands without a man page"
    assert pages - wanted == set(), "man pages of no (visible) command"
    assert f"{len(wanted)} man page(s)" in out
    add = (man1 / "git-data-remote-add.1").read_text()
    assert add.startswith('.TH "GIT DATA REMOTE ADD" "1"')
    assert r"\fB\-o,\fP \-\-option KEY=VALUE" in add and "(repeatable)" in add
    # a help line starting with "..." is kept as text, not read as a roff request
    assert "\\&...); then git's credential helpers" in (man1 / "git-data-credentials.1").read_text()
    # the page list of a group names the pages by their real names
    assert r"See \fBgit-data-remote-add(1)\fP" in (man1 / "git-data-remote.1").read_text()
    # a second run writes nothing
    assert f"(0 written, {len(wanted)} up to date)" in gd(tmp_path, "help", "--man-dir", str(man1))


@needs_man
def test_git_help_data_finds_the_pages_with_manpath(tmp_path):
    man = tmp_path / "man"
    gd(tmp_path, "help", "--man-dir", str(man / "man1"))
    env = pager_env(MANPATH=f"{man}:")  # as docs/commands.md says: the trailing ":" keeps the system's pages
    for argv in (["git", "help", "data"], ["git", "data", "--help"]):
        proc = run(*argv, cwd=tmp_path, env=env)
        text = proc.stdout.decode()
        assert "git data [OPTIONS] COMMAND [ARGS]" in text, argv
        assert "git-data-install(1)" in text
    text = run("man", "git-data-remote-add", cwd=tmp_path, env=env).stdout.decode()
    assert "git data remote add [OPTIONS] NAME URL" in text and "--git-remote" in text
    # without the pages, git says so (this is what a user saw before)
    proc = run("git", "help", "data", cwd=tmp_path, env=pager_env(MANPATH=str(tmp_path / "empty")), check=False)
    assert proc.returncode != 0 and "No manual entry for git-data" in proc.stderr.decode()


@needs_man
def test_install_puts_the_pages_where_man_finds_them_from_path(tmp_path):
    repo = tmp_path / "scratch"
    repo.mkdir()
    git(repo, "init", "-q")
    out = gd(repo, "install")
    assert f"man pages for `git help data` in {default_man_dir()}" in out
    env = {k: v for k, v in os.environ.items() if k != "MANPATH"}
    env.update(pager_env())
    # man-db looks in ../share/man of each PATH entry: the venv's bin is on PATH (as the README says)
    proc = run("git", "help", "data", cwd=repo, env=env)
    assert "git data [OPTIONS] COMMAND [ARGS]" in proc.stdout.decode()


def test_help_prints_a_commands_help(tmp_path):
    assert gd(tmp_path, "help", "remote", "add") == gd(tmp_path, "remote", "add", "--help")
    assert gd(tmp_path, "help", "doctor") == gd(tmp_path, "doctor", "--help")
    assert gd(tmp_path, "help").startswith("Usage: git data [OPTIONS] COMMAND [ARGS]...")
    for argv, parent in ((["nope"], "git data help"), (["remote", "nope"], "git data help remote"),
                         (["push", "x"], "git data help push")):  # fmt: skip
        proc = run("git", "data", "help", *argv, cwd=tmp_path, check=False)
        err = proc.stderr.decode()
        assert proc.returncode == 1
        assert err.splitlines() == [f"error: no command `{' '.join(('git data', *argv))}`; see `{parent}` for the commands"]  # fmt: skip
