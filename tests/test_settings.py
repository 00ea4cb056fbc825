"""The settings table: git's value syntax, errors naming the key, docs in step."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from gitdata import settings
from gitdata.project import Project
from gitdata.settings import BadSetting, parse, parse_bool, parse_int
from helpers import gd, git, new_project, run, write

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("text", "value"),
    [("0", 0), ("42", 42), ("-3", -3), ("+7", 7), ("1k", 1024), ("1K", 1024), ("64m", 64 << 20),
     ("64M", 64 << 20), ("1g", 1 << 30), (" 8 ", 8)],
)  # fmt: skip
def test_integers_parse_as_git_parses_them(text, value):
    assert parse_int(text) == value


@pytest.mark.parametrize("text", ["", "m", "1.5", "1 k", "1kb", "0x10", "ten", "1t", "--1"])
def test_bad_integers_are_refused(text):
    with pytest.raises(ValueError):
        parse_int(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("YES", True), ("On", True), ("1", True),
     ("false", False), ("no", False), ("OFF", False), ("0", False), ("", False)],
)  # fmt: skip
def test_booleans_parse_as_git_parses_them(text, value):
    assert parse_bool(text) is value


@pytest.mark.parametrize("text", ["maybe", "2", "t", "nope"])
def test_bad_booleans_are_refused(text):
    with pytest.raises(ValueError):
        parse_bool(text)


def test_unset_or_empty_gives_the_default():
    assert parse("gitdata.smudgeMax", None) == 32 << 20
    assert parse("gitdata.smudgemax", "   ") == 32 << 20  # keys compare case-insensitively
    assert parse("gitdata.cacheLocalRemote", None) is False
    assert parse("s3data.locking", None) == "auto"


def test_a_bad_value_is_an_error_naming_the_key_and_the_form():
    with pytest.raises(BadSetting) as exc:
        parse("gitdata.smudgeMax", "lots")
    msg = str(exc.value)
    assert "gitdata.smudgeMax" in msg and "'lots'" in msg and "64m" in msg and "git config" in msg
    with pytest.raises(BadSetting, match=r"gitdata\.cacheLocalRemote.*true/yes/on/1"):
        parse("gitdata.cacheLocalRemote", "sometimes")
    with pytest.raises(BadSetting, match=r"s3data\.locking.*one of auto, lock"):
        parse("s3data.locking", "never")


def test_every_fixed_key_the_code_reads_is_in_the_table():
    """Scan the sources for ``"gitdata.x"`` / ``"s3data.x"`` literals passed to
    a config read: each must be a row of the table."""
    known = {s.key.lower() for s in settings.SETTINGS}
    found = set()
    for path in (ROOT / "src" / "gitdata").rglob("*.py"):
        for m in re.finditer(r"""(?:config_get(?:_all)?|setting|read)\([^)]*?["']((?:gitdata|s3data)\.[A-Za-z]+)["']""",
                             path.read_text()):
            found.add(m.group(1).lower())
    assert found, "the scan found nothing: the pattern is broken"
    assert found <= known, f"keys read but not in gitdata.settings.SETTINGS: {sorted(found - known)}"


def test_docs_config_md_is_generated_from_the_table():
    text = (ROOT / "docs" / "config.md").read_text()
    m = re.search(r"<!-- settings:begin -->\n(.*?)<!-- settings:end -->", text, re.S)
    assert m, "docs/config.md lacks the settings:begin/end markers"
    assert m.group(1) == settings.render_markdown(), (
        "docs/config.md is out of date: paste gitdata.settings.render_markdown() between the markers"
    )


def test_render_lists_every_row_with_its_default():
    md = settings.render_markdown()
    for s in settings.SETTINGS:
        assert f"| `{s.key}` |" in md
    assert "| `gitdata.smudgeMax` | int | `32m` |" in md


def test_smudge_max_with_a_suffix_works_end_to_end(tmp_path):
    """``gitdata.smudgeMax=1k``: a 5 KB object is written by git data itself,
    not through smudge output; the clone has the right bytes."""
    proj = new_project(tmp_path / "p", str(tmp_path / "store"))
    data = random.Random(1).randbytes(5000)
    write(proj / "data" / "a.bin", data)
    git(proj, "add", "-A")
    git(proj, "commit", "-qm", "data")
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(proj, "remote", "add", "origin", str(origin))
    git(proj, "push", "-q", "origin", "HEAD:refs/heads/main")
    git(tmp_path, "config", "--global", "gitdata.smudgeMax", "1k")
    assert Project.open(str(proj)).smudge_max == 1024
    clone = tmp_path / "clone"
    run("git", "clone", "-q", str(origin), str(clone), cwd=tmp_path)
    assert (clone / "data" / "a.bin").read_bytes() == data
    assert git(clone, "status", "--short") == ""


def test_a_bad_value_fails_a_command_with_one_error_line(tmp_path):
    proj = new_project(tmp_path / "p", str(tmp_path / "store"))
    write(proj / "data" / "a.bin", b"a" * 100)
    git(proj, "add", "-A")
    git(proj, "commit", "-qm", "data")
    git(proj, "config", "gitdata.jobs", "many")
    r = run("git", "data", "push", cwd=proj, check=False)
    err = r.stderr.decode()
    assert r.returncode != 0
    assert "gitdata.jobs" in err and "'many'" in err and "Traceback" not in err
    git(proj, "config", "gitdata.jobs", "2")
    gd(proj, "push")
    assert list((tmp_path / "store").rglob("*"))


def test_retry_settings_become_the_policy_and_bad_ones_are_refused(tmp_path):
    proj = new_project(tmp_path / "p")
    git(proj, "config", "gitdata.retryAttempts", "3")
    git(proj, "config", "gitdata.retryMaxTime", "7")
    policy = Project.open(str(proj)).retry_policy
    assert (policy.attempts, policy.max_time) == (3, 7.0)
    git(proj, "config", "gitdata.retryAttempts", "0")
    with pytest.raises(BadSetting, match="gitdata.retryAttempts"):
        _ = Project.open(str(proj)).retry_policy
