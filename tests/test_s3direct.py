"""The direct S3 request path (``gitdata.storage.s3direct``): whole-object GETs and
single-part PUTs signed by botocore and sent with ``http.client``, on moto and
``rclone serve s3`` (127.0.0.1). What it must keep: the same objects under the
same keys as s3fs, versions, errors translated as before, and connections that survive a server closing them or a fork."""

from __future__ import annotations

import http.client
import http.server
import os
import threading

import pytest

from gitdata.storage import AccessDenied, ObjectNotFound, Storage, StorageError, s3direct
from helpers import write


def _storage(server, bucket: str, **extra) -> Storage:
    opts = {"endpoint_url": server.endpoint, "key": server.key, "secret": server.secret, **extra}
    return Storage(f"s3://{bucket}/p", opts)


def _direct(st: Storage) -> s3direct.DirectS3:
    direct = st.fs._gitdata_direct
    assert isinstance(direct, s3direct.DirectS3) and direct.enabled
    return direct


KEYS = ["plain.bin", "dir/a b+c~d.bin", "ünï/çødé €.txt", "q?x#y%20z&w=1.bin", "semi;colon/(paren)'q'.bin"]


@pytest.mark.parametrize("which", ["moto", "rclone"])
def test_keys_round_trip_direct_as_s3fs_names_them(which, request, tmp_path):
    server = request.getfixturevalue(f"{which}_server")
    bucket = request.getfixturevalue(f"{which}_bucket")
    st = _storage(server, bucket)
    for i, key in enumerate(KEYS):
        if i % 2:
            st.put_bytes(key.encode() * 3, key)
        else:
            st.put_file(str(write(tmp_path / f"f{i}", key.encode() * 3)), key)
    direct = _direct(st)
    assert isinstance(direct._signers[bucket], s3direct._Signer)  # the fast signer was checked and taken
    listed = {k for k, _fp in st.list("")}
    assert listed == set(KEYS)  # the keys s3fs lists are the keys the direct PUTs wrote
    for key in KEYS:
        with st.open_read(key, whole=True) as f:
            assert f.read() == key.encode() * 3
        assert st.fs.cat_file(f"{bucket}/p/{key}") == key.encode() * 3  # s3fs reads them too


def test_direct_requests_are_one_each(moto_server, moto_bucket):
    st = _storage(moto_server, moto_bucket)
    moto_server.reset_counts()
    st.put_bytes(b"x" * 1000, "k")
    with st.open_read("k", whole=True) as f:
        assert f.read() == b"x" * 1000
    api = moto_server.counts(moto_bucket, by_api=True)
    assert api.get("PutObject") == 1 and api.get("GetObject") == 1, api
    assert not api.get("HeadObject"), api


def test_a_recorded_version_is_read_directly(moto_server, versioned_moto_bucket):
    st = _storage(moto_server, versioned_moto_bucket, version_aware=True)
    st.put_bytes(b"first", "k")
    first = moto_server.client().head_object(Bucket=versioned_moto_bucket, Key="p/k")["VersionId"]
    st.put_bytes(b"second", "k")
    assert _direct(st)
    with st.open_read("k", whole=True, version_id=first) as f:
        assert f.read() == b"first"
    with st.open_read("k", whole=True) as f:
        assert f.read() == b"second"


def test_errors_are_translated_as_before(rclone_server, rclone_bucket):
    st = _storage(rclone_server, rclone_bucket)
    st.put_bytes(b"there", "here")
    with pytest.raises(ObjectNotFound, match="not found"):
        with st.open_read("missing", whole=True) as f:
            f.read()
    wrong = Storage(f"s3://{rclone_bucket}/p", {"endpoint_url": rclone_server.endpoint,
                                                  "key": rclone_server.key, "secret": "wrong"})  # fmt: skip
    with pytest.raises(AccessDenied, match="access denied"):
        with wrong.open_read("here", whole=True) as f:
            f.read()
    with pytest.raises(AccessDenied):
        wrong.put_bytes(b"no", "nope")
    assert "nope" not in {k for k, _ in st.list("")}


def test_options_that_change_requests_keep_s3fs(moto_server, moto_bucket):
    st = _storage(moto_server, moto_bucket, requester_pays=True)
    assert getattr(st.fs, "_gitdata_direct", None) is None
    st.put_bytes(b"via s3fs", "k")
    with st.open_read("k", whole=True) as f:
        assert f.read() == b"via s3fs"
    assert not s3direct.usable({"s3_additional_kwargs": {"ACL": "public-read"}})
    assert not s3direct.usable({"client_kwargs": {"region_name": "x", "proxies": {}}})
    assert not s3direct.usable({"config_kwargs": {"s3": {"addressing_style": "path"}, "proxies": {}}})
    assert s3direct.usable({"endpoint_url": "http://127.0.0.1:1", "key": "k", "secret": "s",
                            "client_kwargs": {"region_name": "eu-west-1"}})  # fmt: skip


def test_a_connection_the_server_closed_is_replaced(rclone_server, rclone_bucket):
    st = _storage(rclone_server, rclone_bucket)
    st.put_bytes(b"one", "a")
    with st.open_read("a", whole=True) as f:
        assert f.read() == b"one"
    pool = _direct(st)._pool()
    assert len(pool) == 1  # the kept-alive connection, back in this thread's pool
    for conn in pool.values():
        conn.sock.shutdown(2)  # as a server that closed an idle connection leaves it
    with st.open_read("a", whole=True) as f:
        assert f.read() == b"one"
    st.put_bytes(b"two", "b")  # and an upload after it
    with st.open_read("b", whole=True) as f:
        assert f.read() == b"two"


def test_a_read_left_half_way_does_not_reuse_its_connection(rclone_server, rclone_bucket):
    st = _storage(rclone_server, rclone_bucket)
    st.put_bytes(os.urandom(1 << 20), "big")
    st.put_bytes(b"small", "s")
    with st.open_read("big", whole=True) as f:
        f.read(10)
    assert not _direct(st)._pool()  # its connection still had a body in flight: closed
    with st.open_read("s", whole=True) as f:
        assert f.read() == b"small"


def test_a_forked_child_opens_its_own_connection(rclone_server, rclone_bucket):
    st = _storage(rclone_server, rclone_bucket)
    st.put_bytes(b"parent", "k")
    with st.open_read("k", whole=True) as f:
        assert f.read() == b"parent"
    parent_conn = next(iter(_direct(st)._pool().values()))
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a fresh pool, the parent's socket untouched
        try:
            ok = not _direct(st)._pool()
            with st.open_read("k", whole=True) as f:
                ok = ok and f.read() == b"parent"
            os.write(w, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    assert os.read(r, 1) == b"1" and status == 0
    assert next(iter(_direct(st)._pool().values())) is parent_conn
    with st.open_read("k", whole=True) as f:  # the parent's connection still works
        assert f.read() == b"parent"


class _Hostile(http.server.BaseHTTPRequestHandler):
    """An S3 endpoint that answers every request 500 with a large body full of fake codes."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = b"<Error><Code>SlowDown</Code>" + b"<Code>" + b"A" * 1000 + b"</Code>" * 20000 + b"</Error>"
        self.send_response(500)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_an_error_body_is_read_only_so_far_and_its_code_checked():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        st = Storage("s3://bkt/p", {"endpoint_url": f"http://127.0.0.1:{server.server_port}",
                                    "key": "k", "secret": "s", "retries": 0})  # fmt: skip
        direct = _direct(st)
        with pytest.raises(s3direct.DirectError) as caught:
            direct.get("bkt", "p/x")
        assert caught.value.response["Error"]["Code"] == "SlowDown"  # the first well-formed code
        with pytest.raises(StorageError) as err:
            with st.open_read("x", whole=True) as f:
                f.read()
        assert err.value.transient  # a 500 SlowDown is worth retrying
    finally:
        server.shutdown()


def test_a_hostile_key_cannot_reach_the_request_line_or_headers(rclone_server, rclone_bucket):
    """Keys come from listings and clones: CR, LF, spaces and '#' are encoded into the path,
    never sent raw (http.client would refuse a control character; nothing is injected)."""
    st = _storage(rclone_server, rclone_bucket)
    st.put_bytes(b"seed", "seed")  # the signer is probed on first use
    signer = _direct(st)._signers[rclone_bucket]
    for key in ("p/a\r\nX-Injected: 1", "p/a b#c?d", "p/\x00nul", "p/../../other-bucket/x"):
        url = signer.url("GET", {"Bucket": rclone_bucket, "Key": key})
        assert not any(c in url for c in "\r\n \x00#"), url
        assert url.split("?", 1)[0].startswith(f"{rclone_server.endpoint}/{rclone_bucket}/p/")


@pytest.mark.parametrize("which", ["moto", "rclone"])
def test_a_direct_listing_equals_botocore_s(which, request):
    server = request.getfixturevalue(f"{which}_server")
    bucket = request.getfixturevalue(f"{which}_bucket")
    st = _storage(server, bucket)
    keys = [f"d{i // 400}/f{i:05d}" for i in range(1100)] + KEYS  # more than one page of 1,000
    for key in keys:
        st.put_bytes(key.encode(), key)
    direct = _direct(st)
    seen = []
    real = direct.list_page_deferred

    def counted(*args):
        seen.append(args)
        return real(*args)

    direct.list_page_deferred = counted
    mine = list(st.list(""))
    assert len(seen) == 2  # two pages, both read the direct way (each parsed by the caller)
    plain = _storage(server, bucket)
    plain.fs._gitdata_direct = None
    theirs = list(plain.list(""))
    assert mine == theirs and len(mine) == len(keys)


_PAGE = (b'<?xml version="1.0" encoding="UTF-8"?>'
         b'<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name>'
         b'<EncodingType>url</EncodingType><IsTruncated>{t}</IsTruncated>{tok}'
         b'<Contents><Key>a%20b%2Bc/%C3%BC+x</Key><LastModified>2026-01-02T03:04:05.000Z</LastModified>'
         b'<ETag>&quot;0123&quot;</ETag><Size>7</Size></Contents></ListBucketResult>')  # fmt: skip


def _page(truncated: bool, token: bytes = b"") -> bytes:
    return _PAGE.replace(b"{t}", b"true" if truncated else b"false").replace(b"{tok}", token)


def test_a_listing_page_is_parsed_as_botocore_decodes_it():
    items, token = s3direct.parse_list_page("b", _page(False))
    assert token is None
    assert items == [{"name": "b/a b+c/ü x", "size": 7, "ETag": '"0123"',
                      "LastModified": "2026-01-02T03:04:05.000Z", "VersionId": None}]  # fmt: skip
    _, token = s3direct.parse_list_page("b", _page(True, b"<NextContinuationToken>t1</NextContinuationToken>"))
    assert token == "t1"


def test_a_parsed_page_leaves_nothing_for_the_cycle_collector():
    """A page's parser and its reader referred to each other; left to the cycle collector,
    whole pages of entries waited for a full collection and a listing's memory grew with its
    length. Parsed pages (good or refused) must be freed by reference counting alone."""
    import gc

    pages = [_page(False), _page(True, b"<NextContinuationToken>t1</NextContinuationToken>"), b"<Error/>"]
    gc.collect()
    gc.disable()
    try:
        for _ in range(50):
            for body in pages:
                try:
                    s3direct.parse_list_page("b", body)
                except s3direct.DirectError:
                    pass
        # left over, waiting for the collector (before the fix: all 150 of each); counted by
        # type, as other threads of the test process make garbage of their own meanwhile
        readers = sum(isinstance(o, s3direct._PageReader) for o in gc.get_objects())
        parsers = sum(type(o).__name__ == "xmlparser" for o in gc.get_objects())
        assert (readers, parsers) == (0, 0)
    finally:
        gc.enable()


@pytest.mark.parametrize("body", [
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><ListBucketResult/>',
    b"<ListBucketResult><Contents><Key>a</Key>",  # cut off
    b"<Error><Code>InternalError</Code></Error>",  # not a listing
    _page(True),  # truncated, but no token: would list the same page forever
    _PAGE.replace(b"<Key>a%20b%2Bc/%C3%BC+x</Key>", b"").replace(b"{t}", b"false").replace(b"{tok}", b""),
])
def test_a_hostile_listing_page_is_refused(body):
    with pytest.raises(s3direct.DirectError) as caught:
        s3direct.parse_list_page("b", body)
    assert caught.value.response["Error"]["Code"] == "MalformedXML"


def test_a_server_that_is_not_there_is_unreachable():
    from gitdata.storage import StorageUnreachable

    with socket_closed_port() as port:
        st = Storage("s3://bkt/p", {"endpoint_url": f"http://127.0.0.1:{port}", "key": "k", "secret": "s"})
        assert _direct(st)
        with pytest.raises(StorageUnreachable, match="cannot reach"):
            with st.open_read("x", whole=True) as f:
                f.read()


def socket_closed_port():
    """A loopback port nothing listens on (bound, then closed)."""
    import contextlib
    import socket

    @contextlib.contextmanager
    def port():
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        n = s.getsockname()[1]
        s.close()
        yield n

    return port()


def _client(endpoint: str, token: str | None = None, **config):
    import botocore.session
    from botocore.config import Config

    return botocore.session.get_session().create_client(
        "s3", endpoint_url=endpoint, region_name="eu-west-3", aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", aws_session_token=token,
        config=Config(signature_version="s3v4", **config),
    )  # fmt: skip


@pytest.mark.parametrize(("endpoint", "token", "style"), [
    ("http://127.0.0.1:9000", None, "path"),
    ("http://127.0.0.1:80", "FQoGZXIvYXdz/+==", "path"),  # a default port is not in the signed Host
    ("https://s3.example.test", None, "virtual"),
])  # fmt: skip
def test_the_signer_reproduces_botocore_s_urls_exactly(endpoint, token, style):
    """Offline: every URL the fast signer makes for GET, a version's GET and a PUT with its
    Content-MD5 equals botocore's, signature included, for the same time."""
    from urllib.parse import parse_qs, urlsplit

    client = _client(endpoint, token, s3={"addressing_style": style})
    from botocore.credentials import Credentials

    creds = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    signer = s3direct._Signer.probe(client, creds, "bkt")
    assert isinstance(signer, s3direct._Signer)
    for key in [*KEYS, "a\r\nb", "x/\u00e9\u20ac/\U0001f600", "~/+=&?#%2F"]:
        for method, verb, extra in [("get_object", "GET", {}), ("get_object", "GET", {"VersionId": "3/L4kqtJl+cZ=="}),
                                    ("put_object", "PUT", {"ContentMD5": "1B2M2Y8AsgTpgAmY7PhCfg=="})]:  # fmt: skip
            params = {"Bucket": "bkt", "Key": key, **extra}
            theirs = urlsplit(client.generate_presigned_url(method, Params=params, ExpiresIn=900))
            stamp = parse_qs(theirs.query)["X-Amz-Date"][0]
            mine = urlsplit(signer.url(verb, params, stamp=stamp))
            assert (mine.scheme, mine.netloc, mine.path) == (theirs.scheme, theirs.netloc, theirs.path)
            assert parse_qs(mine.query, keep_blank_values=True) == parse_qs(theirs.query, keep_blank_values=True)


def test_a_signer_botocore_disagrees_with_is_not_used(monkeypatch):
    """The fast signer is taken only if it reproduces botocore's probes; otherwise (another
    signature, SigV2, a URL of another shape) botocore signs every request."""
    from botocore.credentials import Credentials

    creds = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    client = _client("http://127.0.0.1:9000")
    assert s3direct._Signer.probe(client, creds, "bkt") is not None
    assert s3direct._Signer.probe(client, Credentials("AKIDEXAMPLE", "another secret"), "bkt") is None
    assert s3direct._Signer.probe(client, None, "bkt") is None  # unsigned: botocore's URLs
    import botocore.session
    from botocore.config import Config

    v2 = botocore.session.get_session().create_client(
        "s3", endpoint_url="http://127.0.0.1:9000", region_name="us-east-1", aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="x", config=Config(signature_version="s3"))  # fmt: skip
    assert s3direct._Signer.probe(v2, Credentials("AKIDEXAMPLE", "x"), "bkt") is None
    real = client.generate_presigned_url
    for tamper in (lambda u: u.replace("X-Amz-Expires=900", "X-Amz-Expires=901"),
                   lambda u: u + "&x-id=GetObject",
                   lambda u: u.replace("/bkt/", "/bkt/extra/")):  # fmt: skip
        monkeypatch.setattr(client, "generate_presigned_url", lambda *a, t=tamper, **k: t(real(*a, **k)))
        assert s3direct._Signer.probe(client, creds, "bkt") is None


def test_a_proxy_in_the_environment_is_not_bypassed(moto_server, moto_bucket, monkeypatch):
    """With ``HTTP_PROXY`` set (and the endpoint not in ``NO_PROXY``), botocore sends through the
    proxy; the direct path must not connect around it: every request moto sees came through."""
    from flaky_proxy import FlakyProxy

    proxy = FlakyProxy(moto_server.endpoint).start()
    try:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("http_proxy", proxy.url)
        monkeypatch.delenv("NO_PROXY")
        monkeypatch.delenv("no_proxy")
        st = _storage(moto_server, moto_bucket)
        moto_server.reset_counts()
        st.put_bytes(b"p" * 1000, "k")
        with st.open_read("k", whole=True) as f:
            assert f.read() == b"p" * 1000
        assert [k for k, _fp in st.list("")] == ["k"]
        seen = sum(moto_server.counts(moto_bucket, by_api=True).values())
        assert seen >= 3 and proxy.requests == seen  # put, get, list: all by way of the proxy
    finally:
        proxy.stop()


def _parse_with_elementtree(bucket: str, body: bytes):
    """The reference: a listing page read through ElementTree, as the direct path read it
    before it streamed expat's events (``parse_list_page`` must mean the same)."""
    from urllib.parse import unquote_plus
    from xml.etree import ElementTree

    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise s3direct.DirectError("dtd", "MalformedXML", 200)
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as err:
        raise s3direct.DirectError("bad", "MalformedXML", 200) from err
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    if root.tag != f"{ns}ListBucketResult":
        raise s3direct.DirectError("not a listing", "MalformedXML", 200)
    encoded = (root.findtext(f"{ns}EncodingType") or "").lower() == "url"
    items = []
    for c in root.iter(f"{ns}Contents"):
        key = c.findtext(f"{ns}Key")
        if key is None:
            raise s3direct.DirectError("no key", "MalformedXML", 200)
        if encoded:
            key = unquote_plus(key)
        items.append({"name": f"{bucket}/{key}", "size": int(c.findtext(f"{ns}Size") or 0),
                      "ETag": c.findtext(f"{ns}ETag"), "LastModified": c.findtext(f"{ns}LastModified"),
                      "VersionId": None})  # fmt: skip
    truncated = (root.findtext(f"{ns}IsTruncated") or "").lower() == "true"
    token = root.findtext(f"{ns}NextContinuationToken") if truncated else None
    if truncated and not token:
        raise s3direct.DirectError("no token", "MalformedXML", 200)
    return items, token


def _outcome(parse, body: bytes):
    try:
        return "ok", parse("b", body)
    except s3direct.DirectError as err:
        return "refused", err.response["Error"]["Code"]
    except ValueError:  # a Size that is not a number: both raise it
        return "ValueError", None


def _listing_pages():
    from hypothesis import strategies as st

    text = st.lists(st.sampled_from(["a", "Z", "0", "7", "%20", "%2B", "+", " ", "/", "é", "&amp;", "&lt;", "&quot;",
                                     "&#x41;", "\n", "\r\n", "true", "TRUE", "url"]), max_size=6).map("".join)  # fmt: skip
    ns_uri = st.sampled_from(["http://s3.amazonaws.com/doc/2006-03-01/", "urn:other", ""])
    names = st.sampled_from(["Key", "Size", "ETag", "LastModified", "StorageClass", "Owner", "Contents",
                             "IsTruncated", "NextContinuationToken", "EncodingType", "Name"])  # fmt: skip

    def element(children):
        return st.tuples(names, st.sampled_from(["", "o:"]), text, children, text)

    tree = st.recursive(st.tuples(names, st.sampled_from(["", "", "o:"]), text, st.just([]), text),
                        lambda kids: element(st.lists(kids, max_size=4)), max_leaves=25)  # fmt: skip

    def render(node) -> str:
        name, prefix, before, kids, after = node
        inner = "".join(render(k) for k in kids)
        return f"<{prefix}{name}>{before}{inner}</{prefix}{name}>{after}"

    size = st.sampled_from(["1", "42", "", " 7 "])
    entry = st.tuples(st.permutations(["Key", "Size", "ETag", "LastModified"]), text, size, st.lists(tree, max_size=2))

    def render_entry(e) -> str:
        order, key, sz, extra = e
        values = {"Key": key, "Size": sz, "ETag": "&quot;abc&quot;", "LastModified": "2026-01-02T03:04:05.000Z"}
        return "<Contents>" + "".join(f"<{n}>{values[n]}</{n}>" for n in order) + "".join(map(render, extra)) + "</Contents>"

    def page(parts) -> bytes:
        uri, root, top, entries, extra = parts
        xmlns = f' xmlns="{uri}"' if uri else ""
        body = "".join(map(render, top)) + "".join(map(render_entry, entries)) + "".join(map(render, extra))
        return (f'<?xml version="1.0" encoding="UTF-8"?><{root}{xmlns} xmlns:o="urn:o">{body}</{root}>').encode()

    return st.tuples(ns_uri, st.sampled_from(["ListBucketResult", "ListBucketResult", "Error"]),
                     st.lists(tree, max_size=4), st.lists(entry, max_size=4), st.lists(tree, max_size=2)).map(page)  # fmt: skip


from hypothesis import HealthCheck, given, settings  # noqa: E402


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_listing_pages())
def test_a_listing_page_means_what_elementtree_reads_in_it(body):
    """Generated pages (namespaces, fields nested, repeated, out of order, text around child
    elements, entities, entries inside other elements): the streamed reading gives the same
    entries and token as ElementTree's tree, or refuses where it refuses."""
    assert _outcome(s3direct.parse_list_page, body) == _outcome(_parse_with_elementtree, body)


class _TwoPages(http.server.BaseHTTPRequestHandler):
    """A listing whose second page shows a scan of its text one token (in a comment) and its
    parse another (in a CDATA section); any other token gets a last page. ``pages`` counts the
    listing requests."""

    pages = 0

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        type(self).pages += 1
        if "continuation-token" not in self.path:
            rest, key, more = b"<NextContinuationToken>t1</NextContinuationToken>", b"p/first", b"true"
        elif "continuation-token=t1" in self.path:
            rest = (b"<!-- <NextContinuationToken>t9</NextContinuationToken> -->"
                    b"<NextContinuationToken><![CDATA[t2]]></NextContinuationToken>")  # fmt: skip
            key, more = b"p/second", b"true"
        else:
            rest, key, more = b"", b"p/third", b"false"
        body = _PAGE.replace(b"{t}", more).replace(b"{tok}", rest).replace(b"a%20b%2Bc/%C3%BC+x", key)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_a_page_whose_text_and_parse_disagree_is_refused_where_it_comes():
    """The next page is asked for by the token scanned from this page's text, before the page
    is parsed; the parse must then find that same token, or the listing stops there, with the
    entries before it already given and no third page asked for."""
    from gitdata.storage import StorageError

    assert s3direct.scan_next_token(_page(True, b"<NextContinuationToken>t1</NextContinuationToken>")) == (True, "t1")
    assert s3direct.scan_next_token(_page(False)) == (True, None)
    for unclear in (b"<NextContinuationToken>a&amp;b</NextContinuationToken>",  # an entity: only a parse can tell
                    b"<NextContinuationToken>a</NextContinuationToken><NextContinuationToken>b</NextContinuationToken>",
                    b"<NextContinuationToken><![CDATA[t]]></NextContinuationToken>", b""):  # fmt: skip
        assert s3direct.scan_next_token(_page(True, unclear)) == (False, None)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TwoPages)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        st = Storage("s3://b/p", {"endpoint_url": f"http://127.0.0.1:{server.server_port}", "key": "k", "secret": "s"})
        got = []
        with pytest.raises(StorageError, match="continuation token is not the one its text names"):
            for key, _fp in st.list(""):
                got.append(key)
        assert got == ["first"]
        assert _TwoPages.pages <= 3  # the first, the second, and at most the one the scanned token asked for
    finally:
        server.shutdown()


def test_a_listing_left_early_stops_asking_for_pages(rclone_server, rclone_bucket):
    """Pages are fetched ahead of the caller, a few at most; a caller that stops (a generator
    closed) stops the fetching thread."""
    import time

    from gitdata.storage import fsspec as storage_fsspec

    folder = rclone_server.bucket_path(rclone_bucket) / "p"
    folder.mkdir(parents=True)
    for i in range(7 * 1000 + 1):  # 8 pages, written where the server reads them
        (folder / f"k{i:05d}").write_bytes(b"")
    rclone_server.flush_dir_cache()
    st = _storage(rclone_server, rclone_bucket)
    direct = _direct(st)
    asked = []
    real = direct.list_page_deferred

    def counted(*args):
        asked.append(args)
        return real(*args)

    direct.list_page_deferred = counted
    listing = st.list("")
    first = next(listing)
    time.sleep(1.0)  # the fetching thread runs ahead as far as it may
    listing.close()
    deadline = time.monotonic() + 10
    while any(t.name == "gitdata-list" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first[0] == "k00000"
    assert not any(t.name == "gitdata-list" for t in threading.enumerate())
    assert 2 <= len(asked) <= 2 + storage_fsspec._LIST_AHEAD, len(asked)  # never the whole listing
    assert [k for k, _fp in st.list("")][-1] == "k07000"  # and a new listing has every page


from hypothesis import strategies as hst  # noqa: E402

_NAME = hst.text(alphabet=hst.sampled_from("abcXYZ-09_ \x01"), min_size=1, max_size=12)
_VALUE = hst.text(alphabet=hst.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"),
                 max_size=40)


@settings(max_examples=1000, deadline=None)
@given(fields=hst.lists(hst.tuples(_NAME, _VALUE), max_size=20), folded=hst.booleans(),
       stray=hst.none() | hst.integers(0, 20))
def test_response_fields_read_as_http_client_reads_them(fields, folded, stray):
    """read_fields replaces the email parser http.client uses for a response's header block:
    every lookup http.client (and we) make of the fields must give the same answer."""
    import io

    lines = [f"{n}: {v}\r\n".encode("latin-1") for n, v in fields]
    if folded and lines:
        lines.insert(1, b"  continued\r\n")
    if stray is not None:  # a line that is no field: the fields end there, for both
        lines.insert(stray, b"no field here\r\n")
    raw = b"".join(lines) + b"\r\n" + b"body"
    ours, theirs = io.BytesIO(raw), io.BytesIO(raw)
    got, want = s3direct.read_fields(ours), http.client.parse_headers(theirs)
    assert ours.tell() == theirs.tell()  # both stop right after the empty line: the body is left
    for name in {n for n, _v in fields} | {"missing"}:
        for spelled in (name, name.upper(), name.lower()):
            assert got.get_all(spelled) == want.get_all(spelled)
            assert got.get(spelled) == want.get(spelled)
            assert (spelled in got) == (spelled in want)


def test_a_response_with_too_many_or_too_long_fields_is_refused():
    import io

    with pytest.raises(http.client.HTTPException, match="more than 100 headers"):
        s3direct.read_fields(io.BytesIO(b"a: b\r\n" * 101 + b"\r\n"))
    with pytest.raises(http.client.LineTooLong):
        s3direct.read_fields(io.BytesIO(b"a: " + b"x" * 70000 + b"\r\n\r\n"))
    assert s3direct.read_fields(io.BytesIO(b"a: b\r\n" * 100 + b"\r\n")).get("A") == "b"


class _Framed(http.server.BaseHTTPRequestHandler):
    """GETs answered in the ways HTTP/1.1 frames a body: a length, chunks (after an interim
    100 Continue), or the end of the connection."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = b"framed body " + self.path.encode()
        if "chunked" in self.path:
            self.wfile.write(b"HTTP/1.1 100 Continue\r\nX-Interim: yes\r\n\r\n")
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (body[:5], body[5:]):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        elif "close" in self.path:
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True
        else:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_bodies_are_framed_as_http_client_frames_them():
    """The direct path's responses (their own header reader) read a body by its length, in
    chunks, or to the end of a closed connection; a kept-alive connection carries the next."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Framed)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=10)
        conn.response_class = s3direct._Response
        for path in ("/b/length", "/b/chunked", "/b/length-again", "/b/close"):
            conn.request("GET", path)
            resp = conn.getresponse()
            assert resp.status == 200
            assert resp.read() == b"framed body " + path.encode()
            assert resp.will_close == (path == "/b/close")
            assert resp.getheader("x-interim") is None  # the interim answer's fields are not the answer's
        conn.close()
    finally:
        server.shutdown()


@settings(max_examples=500, deadline=None)
@given(path=hst.text(alphabet=hst.sampled_from("ab/:?=~ .-_üversionIdarn3"), max_size=30), aware=hst.booleans())
def test_our_split_of_a_path_is_s3fs_split(path, aware):
    """The direct path splits ``bucket/key`` itself (s3fs tries four patterns a call): the
    same answer as s3fs for any path, version ids and access-point names included."""
    import s3fs

    from gitdata.storage.backends import split_s3_path

    fs = s3fs.S3FileSystem(anon=True, version_aware=aware, skip_instance_cache=True)
    for p in (path, f"b/{path}", f"b/k{path}?versionId=v1", f"arn:aws:s3:us-east-1:123456789012:accesspoint/ap/{path}"):
        assert split_s3_path(fs, p) == tuple(fs.split_path(p))


# -- what a GET's answer states of its object (s3direct.object_details) ------------------


def _fields(block: bytes) -> s3direct._Fields:
    import io

    return s3direct.read_fields(io.BytesIO(block + b"\r\n"))


def test_object_details_from_a_plain_answer():
    got = s3direct.object_details(_fields(
        b'Content-Length: 4096\r\nETag: "0123456789abcdef0123456789abcdef"\r\n'
        b"Last-Modified: Wed, 02 Dec 2026 14:23:00 GMT\r\nx-amz-version-id: 3/L4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY\r\n"
    ))  # fmt: skip
    import datetime as dt

    assert got == {
        "size": 4096, "ETag": '"0123456789abcdef0123456789abcdef"',
        "LastModified": dt.datetime(2026, 12, 2, 14, 23, tzinfo=dt.timezone.utc),
        "VersionId": "3/L4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY",
    }  # fmt: skip


@pytest.mark.parametrize("block", [
    b'ETag: "abc"\r\n \r\n\tinjected\r\n',  # folded: the value holds line breaks
    b'ETag: "a\x00b"\r\n',  # a control character
    b'ETag: "caf\xe9"\r\n',  # not ASCII
    b"ETag: " + b"a" * 1025 + b"\r\n",  # too long
    b"ETag:    \r\n",  # empty
])  # fmt: skip
def test_object_details_leave_out_an_etag_that_is_no_plain_line(block):
    assert "ETag" not in s3direct.object_details(_fields(block))


@pytest.mark.parametrize("block, left_out", [
    (b"Content-Length: -5\r\n", "size"),
    (b"Content-Length: 12abc\r\n", "size"),
    (b"Content-Length: " + b"9" * 21 + b"\r\n", "size"),
    (b"Last-Modified: yesterday\r\n", "LastModified"),
    (b"Last-Modified: Wed, 99 Foo 2026 99:99:99 GMT\r\n", "LastModified"),
    (b"x-amz-version-id: a\x7fb\r\n", "VersionId"),
])  # fmt: skip
def test_object_details_leave_out_what_does_not_parse(block, left_out):
    got = s3direct.object_details(_fields(block))
    assert left_out not in got and not got


def test_a_direct_get_states_its_object(moto_server, moto_bucket):
    """The body of a direct GET carries what its own answer said of the object it delivers."""
    st = _storage(moto_server, moto_bucket)
    st.put_bytes(b"x" * 1234, "k.bin")
    listed = st.info("k.bin")
    moto_server.reset_counts()
    with st.open_read("k.bin", whole=True) as f:
        details = f.details
        assert f.read() == b"x" * 1234
    assert moto_server.counts(bucket=moto_bucket)["HEAD"] == 0
    assert details["size"] == 1234 and details["ETag"] == listed.etag


def test_a_get_through_s3fs_states_its_object_too(moto_server, moto_bucket):
    """Options the direct path does not take send the GET through s3fs (one GetObject, its
    body streamed): its answer's facts come with the body in the same names."""
    st = _storage(moto_server, moto_bucket, s3_additional_kwargs={"RequestPayer": "requester"})
    assert not s3direct.usable(st.options)
    st.put_bytes(b"y" * 321, "s.bin")
    listed = st.info("s.bin")
    moto_server.reset_counts()
    with st.open_read("s.bin", whole=True) as f:
        details = f.details
        assert f.read() == b"y" * 321
    assert moto_server.counts(bucket=moto_bucket)["HEAD"] == 0
    assert details["size"] == 321 and details["ETag"] == listed.etag and details["LastModified"] is not None
