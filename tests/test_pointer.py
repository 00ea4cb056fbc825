"""Pointer parsing and encoding: tables of valid, non-canonical and invalid input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitdata.pointer import MAX_SIZE, Pointer, PointerError, is_pointer_like, parse, parse_or_none

OID = "xxh128:" + "0123456789abcdef" * 2
SHA = "sha256:" + "ab" * 32


def test_encode_is_canonical_and_sorted():
    p = Pointer.make(OID, 12, {"source": "s3://b/k", "etag": '"abc"'})
    assert p.encode() == (
        b"version gitdata/1\n"
        b'etag "abc"\n'
        b"oid " + OID.encode() + b"\n"
        b"size 12\n"
        b"source s3://b/k\n"
    )


VALID = [
    b"version gitdata/1\noid " + OID.encode() + b"\nsize 0\n",
    b"version gitdata/1\noid " + SHA.encode() + b"\nsize 123456789\n",
    b"version gitdata/1\nsize 5\nsource s3://bucket/raw/a.tif\n",
    b"version gitdata/1\nfuture-key kept as is\noid " + OID.encode() + b"\nsize 1\n",
    b'version gitdata/1\netag "9b2cf535f27731c974343645a3985328-2"\nmtime 2026-01-01T00:00:00.000000Z\n'
    b"size 9\nsource gs://b/x\nversion-id 17\n",
]


@pytest.mark.parametrize("data", VALID)
def test_valid_pointers_round_trip(data):
    assert parse(data).encode() == data


INVALID = {
    "bad oid": b"version gitdata/1\noid xxh128:XYZ\nsize 1\n",
    "short oid": b"version gitdata/1\noid xxh128:abcd\nsize 1\n",
    "uppercase oid": b"version gitdata/1\noid " + OID.upper().encode() + b"\nsize 1\n",
    "unknown algo": b"version gitdata/1\noid md5:" + b"a" * 32 + b"\nsize 1\n",
    "wrong key order": b"version gitdata/1\nsize 1\noid " + OID.encode() + b"\n",
    "crlf": b"version gitdata/1\r\noid " + OID.encode() + b"\r\nsize 1\r\n",
    "no final newline": b"version gitdata/1\noid " + OID.encode() + b"\nsize 1",
    "trailing space": b"version gitdata/1\noid " + OID.encode() + b" \nsize 1\n",
    "duplicate key": b"version gitdata/1\noid " + OID.encode() + b"\nsize 1\nsize 1\n",
    "negative size": b"version gitdata/1\noid " + OID.encode() + b"\nsize -1\n",
    "leading zero size": b"version gitdata/1\noid " + OID.encode() + b"\nsize 01\n",
    "oid without size": b"version gitdata/1\noid " + OID.encode() + b"\n",
    "neither oid nor source": b"version gitdata/1\nsize 1\n",
    "future version": b"version gitdata/2\noid " + OID.encode() + b"\nsize 1\n",
    "bad key": b"version gitdata/1\nOid " + OID.encode() + b"\nsize 1\n",
    "empty value": b"version gitdata/1\noid \nsize 1\n",
    "oversize": b"version gitdata/1\noid " + OID.encode() + b"\nsize 1\nz " + b"x" * MAX_SIZE + b"\n",
    "not utf8": b"version gitdata/1\noid " + OID.encode() + b"\nsize 1\nx \xff\n",
}


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_pointers_are_rejected_with_a_reason(name):
    with pytest.raises(PointerError) as info:
        parse(INVALID[name])
    assert str(info.value)


def test_parse_or_none_is_parse_for_valid_pointers_and_none_for_anything_else():
    assert [parse_or_none(d) for d in VALID] == [parse(d) for d in VALID]
    assert all(parse_or_none(INVALID[name]) is None for name in INVALID)
    assert parse_or_none(b"hello world\n") is None and parse_or_none(b"") is None


def test_non_pointer_is_not_pointer_like():
    assert not is_pointer_like(b"hello world\n")
    assert not is_pointer_like(b"")
    assert is_pointer_like(b"version gitdata/1\n")


def test_replace_changes_fields_and_keeps_unknown_keys():
    p = parse(VALID[3])
    q = p.replace(oid=SHA, size=7, etag='"x"')
    assert q.oid == SHA and q.size == 7 and q.get("etag") == '"x"'
    assert q.get("future-key") == "kept as is"
    assert q.replace(etag=None).get("etag") is None


def test_pointer_over_limit_refuses_to_encode():
    with pytest.raises(PointerError):
        Pointer.make(OID, 1, {"source": "s3://b/" + "k" * 2000}).encode()


_keys = st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True).filter(lambda k: k not in ("oid", "size", "version"))
_values = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FFF, blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")), min_size=1, max_size=30)


@given(
    hexd=st.from_regex(r"[0-9a-f]{32}", fullmatch=True),
    size=st.integers(min_value=0, max_value=2**62),
    extra=st.dictionaries(_keys, _values, max_size=5),
)
def test_round_trip_property(hexd, size, extra):
    p = Pointer.make("xxh128:" + hexd, size, extra)
    data = p.encode()
    assert parse(data) == p
    assert parse(data).encode() == data
