"""Fingerprints: one shape from every backend's info, and like-with-like comparison."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitdata.storage import fingerprint
from gitdata.storage.fingerprint import Fingerprint, compare, from_info, is_plain_md5_etag

MD5 = "9b2cf535f27731c974343645a3985328"


def test_from_s3_info():
    fp = from_info({"size": 3, "ETag": f'"{MD5}"', "VersionId": "v1",
                    "LastModified": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)})
    assert fp == Fingerprint(size=3, etag=f'"{MD5}"', version_id="v1", mtime="2026-01-02T03:04:05.000000Z")


def test_from_gcs_info_decodes_md5():
    fp = from_info({"size": 3, "md5Hash": "myz1NfJ3Mcl0NDZFo5hTKA==", "generation": "123", "etag": "CJjq"})
    assert fp.md5 == MD5 and fp.version_id == "123"


def test_unversioned_s3_null_version_is_none():
    assert from_info({"size": 1, "VersionId": "null"}).version_id is None


@pytest.mark.parametrize(
    "recorded,current,expected",
    [
        (Fingerprint(3, etag=f'"{MD5}"'), Fingerprint(3, etag=f'"{MD5}"'), "unchanged"),
        (Fingerprint(3, etag=f'"{MD5}"'), Fingerprint(4, etag=f'"{MD5}"'), "changed"),
        (Fingerprint(3, etag=f'"{MD5}"'), Fingerprint(3, etag='"' + "0" * 32 + '"'), "changed"),
        # multipart ETag vs a plain md5 recorded elsewhere: not a change by itself
        (Fingerprint(3, etag=f'"{MD5}"'), Fingerprint(3, etag='"abcdef-2"'), "unchanged"),
        # two multipart ETags of the same form are compared
        (Fingerprint(3, etag='"aaaa-2"'), Fingerprint(3, etag='"bbbb-2"'), "changed"),
        # md5 from GCS against a plain md5 ETag
        (Fingerprint(3, md5=MD5), Fingerprint(3, etag=f'"{MD5}"'), "unchanged"),
        # version ids decide when both sides have one
        (Fingerprint(3, etag='"x-1"', version_id="a"), Fingerprint(3, etag='"x-1"', version_id="b"), "changed"),
        # nothing but mtime: mtime decides
        (Fingerprint(3, mtime="2026-01-01T00:00:00.000000Z"), Fingerprint(3, mtime="2026-01-02T00:00:00.000000Z"), "changed"),
    ],
)
def test_compare(recorded, current, expected):
    assert compare(recorded, current) == expected


def test_plain_md5_etag():
    assert is_plain_md5_etag(f'"{MD5}"')
    assert not is_plain_md5_etag('"abc-3"')
    assert not is_plain_md5_etag(None)


def _iso_by_parsing(text: str) -> str:
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@given(st.datetimes(min_value=dt.datetime(1000, 1, 1), max_value=dt.datetime(9999, 12, 31)), st.sampled_from([0, 3, 6]))
def test_a_listing_s_utc_time_is_read_without_parsing_as_by_parsing(when, digits):
    """The fast path for ``...:SS[.fff|.ffffff]Z`` gives what parsing and formatting give."""
    text = when.strftime("%Y-%m-%dT%H:%M:%S") + ("." + f"{when.microsecond:06d}"[:digits] if digits else "") + "Z"
    assert fingerprint._iso(text) == _iso_by_parsing(text)


@given(st.text(alphabet='0123456789abcdefABCDEFg"-\u212a\u0130 ', min_size=28, max_size=38))
def test_plain_md5_etag_is_32_hex_digits_between_quotes(etag):
    core = etag.strip('"')
    expected = len(core) == 32 and all(c in "0123456789abcdef" for c in core.lower())
    assert fingerprint.is_plain_md5_etag(etag) == expected


@pytest.mark.parametrize(
    "fp",
    [
        Fingerprint(0),
        Fingerprint(12, etag='"abc"', mtime="2026-01-01T00:00:00Z"),
        Fingerprint(7, etag='"e"', md5="0" * 32, version_id="v1", mtime="2026-01-01T00:00:00.123Z"),
    ],
)
def test_stated_is_every_field_that_says_something(fp):
    from dataclasses import asdict

    assert fp.stated() == {k: v for k, v in asdict(fp).items() if v is not None}
    assert Fingerprint(**fp.stated()) == fp
