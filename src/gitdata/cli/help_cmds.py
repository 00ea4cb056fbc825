"""``git data help``: a command's help, and man pages for ``git help data``.

git answers ``git data --help`` with ``git help data``, that is ``man
git-data``. The pages are generated from the click commands themselves by
click-man (one page per command: ``git-data.1``, ``git-data-remote-add.1``,
...), so they cannot drift from ``--help``. They go to ``share/man/man1``
under the installation's data prefix (the folder above the one that holds
``git-data``): man-db searches ``../share/man`` of every ``PATH`` entry, so
once ``git-data`` is on ``PATH`` its pages are found; other ``man``
programs need ``MANPATH`` (docs/commands.md).
"""

from __future__ import annotations

import os
import re
import sysconfig
from collections.abc import Iterator

import click

from ..errors import GitDataError
from . import cli

#: What click-man writes at the start of a line; any other line of help text
#: that starts with "." or "'" would be read by roff as a request and vanish.
_ROFF_MACROS = (".TH ", ".SH ", ".PP", ".B ", ".TP")


def default_man_dir() -> str:
    """``<prefix>/share/man/man1`` of this installation (the venv's, for a venv)."""
    return os.path.join(sysconfig.get_path("data"), "share", "man", "man1")


def walk(group: click.Command, ctx: click.Context) -> Iterator[click.Context]:
    """A context per visible command, parents first, subcommands sorted."""
    yield ctx
    if isinstance(group, click.Group):
        for name in group.list_commands(ctx):
            cmd = group.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                yield from walk(cmd, click.Context(cmd, info_name=name, parent=ctx))


def page_name(ctx: click.Context) -> str:
    return ctx.command_path.replace(" ", "-") + ".1"


def _escape_line_starts(page: str) -> str:
    out = []
    for line in page.split("\n"):
        if line.startswith((".", "'")) and not line.startswith(_ROFF_MACROS):
            line = "\\&" + line
        out.append(line)
    return "\n".join(out)


def man_pages(root: click.Command) -> dict[str, str]:
    """``{file name: roff text}`` for ``git-data`` and every visible subcommand."""
    try:
        from click_man.core import generate_man_page
    except ImportError as err:
        raise GitDataError("man pages need click-man: pip install click-man") from err
    from importlib.metadata import version

    pages, release = {}, version("gitdata")
    for ctx in walk(root, click.Context(root, info_name="git data", **root.context_settings)):
        text = generate_man_page(ctx, version=release)
        # click-man names a subcommand's page "git data-add(1)"; the page is git-data-add(1)
        text = text.replace(f"\\fB{ctx.command_path}-", f"\\fB{ctx.command_path.replace(' ', '-')}-")
        pages[page_name(ctx)] = _escape_line_starts(text)
    return pages


def write_man_pages(root: click.Command, directory: str) -> tuple[int, int]:
    """Write the pages (atomically, only those that changed); ``(written, unchanged)``."""
    os.makedirs(directory, exist_ok=True)
    written = same = 0
    for name, text in man_pages(root).items():
        path = os.path.join(directory, name)
        try:
            with open(path, encoding="utf-8") as f:
                old = f.read()
        except FileNotFoundError:
            old = None
        if old is not None and _without_date(old) == _without_date(text):
            same += 1
            continue
        tmp = f"{path}.gitdata-tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
        written += 1
    return written, same


def _without_date(page: str) -> str:
    """The page without the date of its ``.TH "NAME" "1" "DATE" ...`` line."""
    return re.sub(r'\A(\.TH "[^"]*" "1" )"[^"]*"', r'\1""', page)


def install_man_pages(root: click.Command) -> str:
    """For `git data install`: write the pages where man finds them; one line saying so."""
    directory = default_man_dir()
    try:
        written, same = write_man_pages(root, directory)
    except (OSError, GitDataError) as err:
        return f"man pages not installed ({err}); `git data help CMD` shows the same text"
    return f"man pages for `git help data` in {directory} ({written} written, {same} up to date)"


@cli.command("help")
@click.argument("command", nargs=-1)
@click.option("--write-man", is_flag=True, help="Write man pages for git-data and every subcommand, for `git help data`.")
@click.option("--man-dir", metavar="DIR", type=click.Path(file_okay=False),
              help="Where --write-man writes them (default: share/man/man1 of this installation).")  # fmt: skip
@click.pass_context
def help_cmd(ctx: click.Context, command: tuple[str, ...], write_man: bool, man_dir: str | None) -> None:
    """Show the help of COMMAND (e.g. `git data help remote add`), or of git data.

    git turns `git data --help` into `git help data`, which reads the man
    page git-data(1); --write-man writes those pages (`git data install`
    does too).
    """
    root = ctx.find_root().command
    if write_man or man_dir:
        directory = man_dir or default_man_dir()
        written, same = write_man_pages(root, directory)
        click.echo(f"{written + same} man page(s) in {directory} ({written} written, {same} up to date)")
        return
    target = click.Context(root, info_name="git data", **root.context_settings)
    for i, word in enumerate(command):
        group = target.command
        sub = group.get_command(target, word) if isinstance(group, click.Group) else None
        if sub is None or sub.hidden:
            parent = " ".join(("git data help", *command[:i]))
            raise GitDataError(f"no command `{target.command_path} {word}`; see `{parent}` for the commands")
        target = click.Context(sub, info_name=word, parent=target)
    click.echo(target.get_help())
