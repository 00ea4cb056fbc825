"""Fuzzing the parsers of untrusted input (bounded: a few seconds each in CI).

Everything here reads what a clone or a bucket can craft: pointers, bucket
keys, the ``.gitdata`` sections of datasets and storages, storage options,
bucket-hosted manifests and ref names. Each parser must either accept a
value that is safe by construction or refuse it with its own error type;
nothing else may escape.
"""

from __future__ import annotations

import json
import posixpath
import subprocess
from types import SimpleNamespace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitdata import safepath
from gitdata.config import ConfigError, ProjectConfig, check_tracked_options, parse_options
from gitdata.datasets import model as ds_mod
from gitdata.pointer import PointerError, parse
from gitdata.remote.manifest import CorruptManifest, Manifest, check_ref_name
from gitdata.storages import spec as storages_mod

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# path-ish text: the characters that make paths interesting, and some others
_path_chars = st.sampled_from(list("ab./\\~:-_ GgIiTt\0\n\r") + [".git", "..", "/", "\u00e9", "\u202e"])
path_text = st.lists(_path_chars, max_size=24).map("".join) | st.text(max_size=40)


@FUZZ
@given(path_text)
def test_check_relpath_accepts_only_paths_that_stay_inside(rel):
    try:
        out = safepath.check_relpath(rel, "key")
    except safepath.UnsafePath:
        return
    assert out == rel
    joined = posixpath.normpath(posixpath.join("/place", rel))
    assert joined.startswith("/place/"), rel
    parts = joined.split("/")
    assert not any(p.lower().rstrip(". ") in (".git", "git~1") for p in parts), rel
    assert "\0" not in rel and "\n" not in rel


@FUZZ
@given(path_text)
def test_dataset_and_storage_folders_from_gitdata(to):
    """A crafted ``path``/``to`` in .gitdata is refused where it is read, or is a safe folder."""
    values = {
        "storage.lab.url": ["s3://b/p"], "storage.lab.to": [to],
        "dataset.d.path": [to],
    }  # fmt: skip
    project = SimpleNamespace(config=ProjectConfig(values=values))
    specs, refused = storages_mod._load_checked(project)  # noqa: SLF001 - the function under test
    if "lab" in specs:
        safepath.check_relpath(specs["lab"].to)
        assert not posixpath.isabs(specs["lab"].to)
    else:
        assert "lab" in refused
    datasets, bad = ds_mod._load_checked(project)  # noqa: SLF001
    if "d" in datasets:
        safepath.check_relpath(datasets["d"].path)
    else:
        assert "d" in bad


@FUZZ
@given(st.binary(max_size=600) | st.text(max_size=300).map(lambda t: ("version gitdata/1\n" + t).encode()))
def test_pointer_parser_raises_only_its_own_error(data):
    try:
        p = parse(data)
    except PointerError:
        return
    assert p.encode() == data  # accepted means canonical


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
_ids = st.sampled_from(["a" * 40, "0" * 64, "x", "", "A" * 40, "a" * 41])
_names = st.sampled_from(["pack-" + "b" * 40, "../../x", "pack-1", "pack-" + "c" * 64, "pack-" + "b" * 40 + "/../y"])
_refs = st.sampled_from(["refs/heads/main", "HEAD", "refs/heads/a..b", "refs/x\n", "refs/heads/.x", "main", "refs/t/a.lock"])
_manifests = st.fixed_dictionaries({
    "format": st.just("gitdata-bucketrepo/1"),
    "seq": st.integers(-2, 5),
    "refs": st.dictionaries(_refs, _ids, max_size=3),
    "head": st.none() | _refs,
    "packs": st.lists(st.fixed_dictionaries({"name": _names, "tips": st.lists(_ids, max_size=2),
                                             "size": st.integers(-1, 9), "objects": st.integers(0, 3)}), max_size=3),
})  # fmt: skip


@FUZZ
@given(st.binary(max_size=300) | _json.map(lambda v: json.dumps(v).encode()) | _manifests.map(lambda v: json.dumps(v).encode()))
def test_manifest_parser_raises_only_corrupt_manifest(data):
    try:
        m = Manifest.from_bytes(data)
    except CorruptManifest:
        return
    m.check()  # accepted means every name and id is of the form git data writes
    for p in m.packs:
        assert "/" not in p.name and p.name.startswith("pack-")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(list("refs/headmain.-_~^:?*[\\@{} \x7f") + ["..", "//", ".lock", "refs/"]), max_size=20).map("".join))
def test_accepted_ref_names_are_ones_git_accepts(ref):
    try:
        check_ref_name(ref)
    except ValueError:
        return
    if ref == "HEAD":
        return
    proc = subprocess.run(["git", "check-ref-format", ref], capture_output=True)
    assert proc.returncode == 0, ref


@FUZZ
@given(st.lists(st.text(max_size=30), max_size=4), st.sampled_from(["s3://b/p", "gs://b", "file:///d", "https://h/x", "zz://q"]))
def test_tracked_options_raise_only_config_errors(lines, url):
    try:
        opts = parse_options(lines)
        check_tracked_options(url, opts, "fuzz")
    except ConfigError:
        return
    for key in opts:
        assert key in {"endpoint_url", "anon", "requester_pays", "version_aware", "use_ssl", "client_kwargs",
                       "config_kwargs", "default_block_size", "cache_regions", "project", "token",
                       "default_location", "block_size", "auto_mkdir", "simple_links", "same_scheme"}  # fmt: skip


_ds_paths = st.sampled_from(["a.csv", "b/c.csv", "b/d", "\u00e9/x", "x/../y", ".git/x", "b/.GIT/c", "/abs",
                             "", "a//b", ".gitdata-manifest", "n/.gitdata-manifest"]) | path_text
_ds_good = st.fixed_dictionaries(
    {"path": st.sampled_from(["a.csv", "b/c.csv", "b/d", "\u00e9/x", "z"]), "size": st.integers(0, 10),
     "source": st.just("s3://b/raw/a")}, optional={"etag": st.text("0123456789abcdef\"", min_size=1, max_size=8)},
)  # fmt: skip
_ds_messy = st.fixed_dictionaries(
    {"path": _ds_paths, "size": st.integers(-1, 10) | st.sampled_from(["3", None, True])},
    optional={"source": st.sampled_from(["s3://b/raw/a", "s3://b/raw/a"]) | st.text(max_size=12),
              "etag": st.text(max_size=8) | st.integers(), "Bad Key": st.just("v")},
)  # fmt: skip


def _ds_manifest_lines(records: list[dict], in_order: bool, junk: bytes | None) -> list[bytes]:
    if in_order:  # most real manifests come sorted: let the fuzzer get past the order check
        records = sorted(records, key=lambda r: str(r["path"]).encode("utf-8", "surrogatepass"))
    lines = [json.dumps(r).encode() + b"\n" for r in records]
    if junk is not None:  # one line of bytes that are not a record
        lines.insert(len(lines) // 2, junk)
    return lines


_ds_lines = st.builds(
    _ds_manifest_lines,
    st.lists(_ds_good, min_size=2, max_size=5, unique_by=lambda r: r["path"])
    | st.lists(_ds_good | _ds_messy, max_size=6, unique_by=lambda r: str(r["path"])),
    st.booleans(),
    st.none() | st.none() | st.binary(max_size=40),
)


@FUZZ
@given(st.sampled_from([b'{"format": "gitdata-manifest/1"}\n', b'{"format": "gitdata-manifest/2"}\n', b"[]\n"]),
       _ds_lines)  # fmt: skip
def test_dataset_manifest_parser_raises_only_manifest_errors(header, lines):
    """A dataset manifest (from a clone or a bucket): refused as a whole with ManifestError, or every
    entry's path stays inside the dataset folder, comes sorted and once, and makes a valid pointer."""
    from gitdata.datasets import manifest as ds_manifest

    try:
        entries = list(ds_manifest.parse([header, *lines]))
    except ds_manifest.ManifestError:
        return
    keys = [e.path.encode() for e in entries]
    assert keys == sorted(set(keys))
    for e in entries:
        safepath.check_relpath(e.path, "manifest path")
        assert e.path != ds_manifest.NAME
        assert parse(e.pointer.encode()) == e.pointer and e.pointer.size is not None and e.pointer.oid is None
    assert list(ds_manifest.parse(ds_manifest.encode(entries))) == entries  # what is read is what is written
