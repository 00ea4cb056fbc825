"""One-request GETs and PUTs of S3 objects, signed by botocore, sent with ``http.client``.

Many small objects are where the time of a push, a clone or a staging goes:
one ``GetObject`` of 4 KiB through botocore's request pipeline (aiobotocore
under s3fs, or botocore's own client) costs 3.5-6 ms of CPU here, most of it
in its event hooks, serializers and response parsing; the same object fetched
with a URL botocore presigned and ``http.client`` costs 0.7 ms, which is what
rclone's Go client takes per file (docs/benchmarks.md, "Many small objects").
So the S3 adapter sends whole-object reads and single-part uploads this way.

What stays botocore's: the endpoint, the addressing style, the region, the
credentials chain and the signature (``generate_presigned_url`` of a sync
client made from the same options), so the request is the one s3fs would
send. What is ours is only sending it: a keep-alive connection per thread and
process, the status code, and the error code read from the body.

Only storages whose options are all on :data:`_OPTIONS` go this way (anything
that changes a request, such as ``requester_pays`` or extra headers, keeps
s3fs); a 301/307/400 answer (a bucket in another region than the client
signs for) turns the direct path off for that storage and the request goes
through s3fs again, so botocore's own handling decides.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import io
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO
from urllib.parse import quote, urlsplit

#: Options that leave GetObject/PutObject requests as s3fs sends them.
_OPTIONS = frozenset({
    "endpoint_url", "key", "secret", "token", "anon", "version_aware", "client_kwargs", "config_kwargs",
    "retries", "skip_instance_cache", "use_listings_cache", "listings_expiry_time", "default_block_size",
    "cache_regions", "use_ssl",
})  # fmt: skip
_CLIENT_KWARGS = frozenset({"region_name", "endpoint_url", "verify"})
_CONFIG_KWARGS = frozenset({"signature_version", "s3", "connect_timeout", "read_timeout", "retries",
                            "max_pool_connections"})  # fmt: skip
#: answers that may mean "ask botocore": a redirect to the bucket's region, a malformed-authorization
#: complaint about the region; the request goes through s3fs then
_ASK_BOTOCORE = frozenset({301, 307, 400})
_CODE = re.compile(rb"<Code>([A-Za-z0-9.\-_]{1,64})</Code>")
_BLOCK = 1 << 20
#: a listing page of 1,000 keys is about 300 KB; one far larger is not a page
_MAX_PAGE = 64 << 20
#: a presigned URL's lifetime: it is used at once
_EXPIRES = 900


class Unsupported(Exception):
    """The direct path cannot send this request; the caller sends it through s3fs."""


class Unreachable(ConnectionError):
    """No connection to the server (``errors.translate``: the storage is unreachable)."""


class DirectError(Exception):
    """An S3 error answer, shaped as botocore's (``response["Error"]["Code"]``) for
    :func:`gitdata.storage.errors.translate`."""

    def __init__(self, message: str, code: str, status: int) -> None:
        super().__init__(message)
        self.response = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}


class NotFound(FileNotFoundError):
    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.response = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 404}}


class Denied(PermissionError):
    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.response = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 403}}


def usable(options: Mapping[str, Any]) -> bool:
    """Whether requests of a storage with these options can go the direct way."""
    if set(options) - _OPTIONS:
        return False
    ck = options.get("client_kwargs") or {}
    cfg = options.get("config_kwargs") or {}
    if not isinstance(ck, Mapping) or not isinstance(cfg, Mapping):
        return False
    if set(ck) - _CLIENT_KWARGS or set(cfg) - _CONFIG_KWARGS:
        return False
    return ck.get("verify") is None or isinstance(ck.get("verify"), bool | str)


class DirectS3:
    """The direct request path of one S3 filesystem (thread-safe; fork-safe: a
    forked process opens its own connections)."""

    def __init__(self, options: Mapping[str, Any], timeout: float | None = None) -> None:
        self._options = dict(options)
        self._timeout = timeout
        self._client: Any = None
        self._session: Any = None
        self._lock = threading.RLock()  # the signer's probe makes the client under it
        self._local = threading.local()
        self._signers: dict[str, _Signer | None] = {}
        self._ca_bundle: str | None = None
        self._proxies: dict[tuple[str, str], bool] = {}
        self.enabled = True

    # -- signing: botocore's ------------------------------------------------------------

    def _make_client(self) -> Any:
        import botocore.session
        from botocore import UNSIGNED
        from botocore.config import Config

        opts = self._options
        ck = dict(opts.get("client_kwargs") or {})
        cfg = {k: v for k, v in dict(opts.get("config_kwargs") or {}).items() if k in ("signature_version", "s3")}
        cfg.setdefault("signature_version", "s3v4")  # what requests use; presigned URLs would get SigV2
        if str(opts.get("anon")).lower() == "true":
            cfg["signature_version"] = UNSIGNED
        use_ssl = opts.get("use_ssl", True)
        session = self._session = botocore.session.get_session()
        self._ca_bundle = session.get_config_variable("ca_bundle")  # AWS_CA_BUNDLE, or the config file's
        return session.create_client(
            "s3",
            endpoint_url=opts.get("endpoint_url") or ck.get("endpoint_url"),
            region_name=ck.get("region_name"),
            aws_access_key_id=opts.get("key") or None,
            aws_secret_access_key=opts.get("secret") or None,
            aws_session_token=opts.get("token") or None,
            use_ssl=str(use_ssl).lower() != "false",
            verify=ck.get("verify"),
            config=Config(**cfg),
        )

    def _client_once(self) -> Any:
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._make_client()
                client = self._client
        return client

    def _presign(self, method: str, params: dict[str, Any]) -> str:
        """A URL botocore presigned for this request, or one signed the same way per bucket
        (:class:`_Signer`: the same URL, a twentieth of the CPU)."""
        bucket = params["Bucket"]
        signer = self._signers.get(bucket, False)
        if signer is False:
            with self._lock:
                signer = self._signers.get(bucket, False)
                if signer is False:
                    signer = self._signers[bucket] = _Signer.probe(self._client_once(), self._credentials(), bucket)
        if signer is not None:
            return signer.url("GET" if method == "get_object" else "PUT", params)
        return str(self._client_once().generate_presigned_url(method, Params=params, ExpiresIn=_EXPIRES))

    def _credentials(self) -> Any:
        """What botocore signs with: the storage's keys, else the default chain (None: unsigned)."""
        from botocore.credentials import Credentials

        opts = self._options
        if str(opts.get("anon")).lower() == "true":
            return None
        if opts.get("key") and opts.get("secret"):
            return Credentials(opts["key"], opts["secret"], opts.get("token") or None)
        self._client_once()
        return self._session.get_credentials()  # the default chain, as the client resolved it

    # -- connections: one per thread, process and server -----------------------------------

    def _pool(self) -> dict[tuple[str, str], http.client.HTTPConnection]:
        pid = os.getpid()
        if getattr(self._local, "pid", None) != pid:  # new thread, or a forked child: its own sockets
            self._local.pid = pid
            self._local.conns = {}
        return self._local.conns  # type: ignore[no-any-return]

    def _proxied(self, scheme: str, netloc: str) -> bool:
        """Whether botocore would send requests to ``scheme://netloc`` through a proxy (the
        environment's ``HTTPS_PROXY`` and ``NO_PROXY``, as botocore reads them): then the direct
        path hands every request back, rather than connecting around the proxy."""
        proxied = self._proxies.get((scheme, netloc))
        if proxied is None:
            from botocore.utils import get_environ_proxies

            proxied = self._proxies[(scheme, netloc)] = bool(get_environ_proxies(f"{scheme}://{netloc}").get(scheme))
        return proxied

    def _connection(self, scheme: str, netloc: str) -> tuple[http.client.HTTPConnection, bool]:
        conn = self._pool().pop((scheme, netloc), None)
        if conn is not None:
            return conn, True
        if self._proxied(scheme, netloc):
            raise Unsupported(f"a proxy for {scheme}://{netloc}")  # botocore goes through it
        if scheme == "https":
            verify = (self._options.get("client_kwargs") or {}).get("verify")
            self._client_once()  # botocore's view of the CA bundle comes with the client
            ctx = ssl.create_default_context(cafile=verify if isinstance(verify, str) else self._ca_bundle or None)
            if verify is False:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                netloc, timeout=self._timeout, context=ctx, blocksize=_BLOCK
            )
        elif scheme == "http":
            conn = http.client.HTTPConnection(netloc, timeout=self._timeout, blocksize=_BLOCK)
        else:
            raise Unsupported(scheme)
        try:
            conn.connect()
        except OSError as err:  # a name that does not resolve, a refused or timed-out connection
            raise Unreachable(f"cannot connect to {netloc}: {err}") from err
        # headers and body leave in separate writes: without this, Nagle's algorithm holds the body
        # back until the server acknowledges the headers, which it delays (40 ms a request)
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.response_class = _Response
        return conn, False

    def _release(self, scheme: str, netloc: str, conn: http.client.HTTPConnection) -> None:
        self._pool()[(scheme, netloc)] = conn

    def _send(
        self, verb: str, url: str, body: BinaryIO | bytes | None, headers: dict[str, str]
    ) -> tuple[http.client.HTTPResponse, http.client.HTTPConnection, str, str]:
        parts = urlsplit(url)
        target = parts.path + ("?" + parts.query if parts.query else "")
        start = body.tell() if body is not None and not isinstance(body, bytes) else 0
        for attempt in (1, 2):
            conn, reused = self._connection(parts.scheme, parts.netloc)
            try:
                conn.request(verb, target, body=body, headers=headers)
                return conn.getresponse(), conn, parts.scheme, parts.netloc
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                conn.close()
                if not reused or attempt == 2:  # a fresh connection failed: the server's answer
                    raise
                if body is not None and not isinstance(body, bytes):  # a kept-alive connection the server
                    body.seek(start)  # had closed: once more
            except BaseException:
                conn.close()
                raise
        raise AssertionError("unreachable")

    def _fail(self, resp: http.client.HTTPResponse, conn: http.client.HTTPConnection, what: str) -> Exception:
        try:
            text = resp.read(64 << 10)
        except (OSError, http.client.HTTPException):
            text = b""
        conn.close()
        found = _CODE.search(text)
        code = found.group(1).decode() if found else str(resp.status)
        message = f"{what}: HTTP {resp.status} {code}"
        if resp.status in _ASK_BOTOCORE:
            self.enabled = False
            return Unsupported(message)
        if resp.status == 404:
            return NotFound(message, code)
        if resp.status == 403:
            return Denied(message, code)
        return DirectError(message, code, resp.status)

    # -- the requests ----------------------------------------------------------------------

    def get(self, bucket: str, key: str, version_id: str | None = None) -> BinaryIO:
        """The whole object (that version) as a file read as it arrives."""
        params: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id:
            params["VersionId"] = version_id
        resp, conn, scheme, netloc = self._send("GET", self._presign("get_object", params), None, {})
        if resp.status != 200:
            raise self._fail(resp, conn, f"GET {bucket}/{key}")
        return _Body(self, resp, conn, scheme, netloc)  # type: ignore[return-value]

    def list_page(self, bucket: str, prefix: str, token: str | None) -> tuple[list[dict[str, Any]], str | None]:
        """One ``ListObjectsV2`` page under ``prefix``: info dicts as the S3 adapter's
        listing gives them (``name`` is ``bucket/key``) and the next page's token (None: the
        last). Keys come URL-encoded (``encoding-type=url``, as botocore asks) and are
        decoded as botocore does; the page is parsed by the standard library's expat, and a
        page with a DTD (the only way to entity expansion) is refused."""
        parse, following = self.list_page_deferred(bucket, prefix, token)
        return parse(), following

    def list_page_deferred(
        self, bucket: str, prefix: str, token: str | None
    ) -> tuple[Callable[[], list[dict[str, Any]]], str | None]:
        """:meth:`list_page`, with the parsing handed back: ``(parse, next token)``. The token
        is read from the page's text by a scan (:func:`scan_next_token`), so the next page can
        be asked for before this one is parsed; ``parse()`` gives the entries and refuses the
        page if its parsed token is not the scanned one. A page the scan cannot read is parsed
        here (``parse`` then only returns the entries)."""
        params: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "EncodingType": "url"}
        if token:
            params["ContinuationToken"] = token
        url = str(self._client_once().generate_presigned_url("list_objects_v2", Params=params, ExpiresIn=_EXPIRES))
        resp, conn, scheme, netloc = self._send("GET", url, None, {})
        if resp.status != 200:
            raise self._fail(resp, conn, f"list {bucket}/{prefix}")
        body = resp.read(_MAX_PAGE + 1)
        if len(body) > _MAX_PAGE or not resp.isclosed():
            conn.close()
            raise DirectError(f"list {bucket}/{prefix}: a listing page over {_MAX_PAGE} bytes", "PageTooLarge", 200)
        self._release(scheme, netloc, conn)
        scanned, following = scan_next_token(body)
        if not scanned:
            items, following = parse_list_page(bucket, body)
            return lambda: items, following

        def parse() -> list[dict[str, Any]]:
            items, parsed = parse_list_page(bucket, body)
            if parsed != following:
                raise DirectError(f"list {bucket}/{prefix}: the page's continuation token is not the one its text "
                                  "names", "MalformedXML", 200)  # fmt: skip
            return items

        return parse, following

    def put_file(self, bucket: str, key: str, lpath: str, progress: Callable[[int], None] | None = None) -> None:
        """``lpath`` as the object, in one PUT with its Content-MD5 (the server checks it)."""
        md5 = hashlib.md5(usedforsecurity=False)
        with open(lpath, "rb") as f:
            while chunk := f.read(_BLOCK):
                md5.update(chunk)
            size = f.tell()
            f.seek(0)
            self._put(bucket, key, _Counted(f, progress), size, md5.digest())  # type: ignore[arg-type]

    def put_bytes(self, bucket: str, key: str, data: bytes) -> None:
        self._put(bucket, key, data, len(data), hashlib.md5(data, usedforsecurity=False).digest())

    def _put(self, bucket: str, key: str, body: BinaryIO | bytes, size: int, md5: bytes) -> None:
        digest = base64.b64encode(md5).decode()
        url = self._presign("put_object", {"Bucket": bucket, "Key": key, "ContentMD5": digest})
        headers = {"Content-MD5": digest, "Content-Length": str(size)}
        resp, conn, scheme, netloc = self._send("PUT", url, body, headers)
        if resp.status != 200:
            raise self._fail(resp, conn, f"PUT {bucket}/{key}")
        resp.read()
        self._release(scheme, netloc, conn)


_TRUNCATED = re.compile(rb"<IsTruncated>([^<&]*)</IsTruncated>")
_NEXT_TOKEN = re.compile(rb"<NextContinuationToken>([^<&]*)</NextContinuationToken>")


def scan_next_token(body: bytes) -> tuple[bool, str | None]:
    """``(True, the next page's token or None)`` read from a listing page's text without
    parsing it, or ``(False, None)`` where the text is not plain enough to tell (no single
    ``IsTruncated``; a truncated page without one plain ASCII ``NextContinuationToken``:
    an entity, a CDATA section, a prefixed tag). :func:`parse_list_page` has the last word."""
    truncated = _TRUNCATED.findall(body)
    if len(truncated) != 1:
        return False, None
    if truncated[0].lower() != b"true":
        return True, None
    tokens = _NEXT_TOKEN.findall(body)
    if len(tokens) != 1 or not tokens[0] or not tokens[0].isascii():
        return False, None
    return True, tokens[0].decode("ascii")


def parse_list_page(bucket: str, body: bytes) -> tuple[list[dict[str, Any]], str | None]:
    """A ``ListObjectsV2`` answer (``encoding-type=url``) as info dicts and the next token.

    Read by the standard library's expat as a stream of events, with the meaning
    ElementTree's ``findtext`` gives: the root is the namespace's ``ListBucketResult``;
    ``EncodingType``, ``IsTruncated`` and ``NextContinuationToken`` are the root's first
    children of those names; an entry is a ``Contents`` element and its ``Key``, ``Size``,
    ``ETag`` and ``LastModified`` its first children of those names, each the text before any
    element inside it. No tree is built: a page of 1,000 keys costs 7 ms instead of 17.
    """
    import xml.parsers.expat
    from urllib.parse import unquote_plus

    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise DirectError(f"list {bucket}: the listing has a DTD; refused", "MalformedXML", 200)
    parser = xml.parsers.expat.ParserCreate(namespace_separator="}")
    parser.buffer_text = True
    page = _PageReader(parser)
    parser.StartElementHandler = page.start
    parser.EndElementHandler = page.end
    try:
        parser.Parse(body, True)
    except xml.parsers.expat.ExpatError as err:
        raise DirectError(f"list {bucket}: the listing is not well-formed XML ({err})", "MalformedXML", 200) from err
    finally:
        # the parser and the reader refer to each other (its handlers are the reader's methods):
        # left to the cycle collector, whole pages of entries wait for a full collection, and
        # a listing's memory grew with its length (130 bytes a key)
        parser.StartElementHandler = parser.EndElementHandler = parser.CharacterDataHandler = None
        page.parser = None
    if page.refused:
        raise DirectError(f"list {bucket}: {page.refused}", "MalformedXML", 200)
    encoded = page.top.get("EncodingType", "").lower() == "url"
    items = []
    for c in page.entries:
        key = c.get("Key")
        if key is None:
            raise DirectError(f"list {bucket}: an entry without a key", "MalformedXML", 200)
        if encoded and ("%" in key or "+" in key):
            key = unquote_plus(key)
        items.append({"name": f"{bucket}/{key}", "size": int(c.get("Size") or 0),
                      "ETag": c.get("ETag"), "LastModified": c.get("LastModified"), "VersionId": None})  # fmt: skip
    truncated = page.top.get("IsTruncated", "").lower() == "true"
    token = page.top.get("NextContinuationToken") if truncated else None
    if truncated and not token:
        raise DirectError(f"list {bucket}: a truncated listing without a continuation token", "MalformedXML", 200)
    return items, token


_TOP = frozenset({"EncodingType", "IsTruncated", "NextContinuationToken"})
_ENTRY = frozenset({"Key", "Size", "ETag", "LastModified"})


class _PageReader:
    """expat's events of one listing page, kept as :func:`parse_list_page` reads them: the
    root's fields (``top``) and each entry's (``entries``), by local name; a name counts only
    in the root's namespace. Depth 1 is the root's children; an entry's fields are at its
    depth + 1 (a ``Contents`` at any depth below the root is an entry, as ``iter`` finds it)."""

    __slots__ = ("parser", "ns", "names", "depth", "top", "entries", "stack", "field", "chunks", "refused")

    def __init__(self, parser: Any) -> None:
        self.parser = parser
        self.ns: str | None = None  # "uri}" or "" once the root is read
        self.names: dict[str, str | None] = {}  # expat's name -> local name in the root's namespace
        self.depth = 0
        self.top: dict[str, str] = {}
        self.entries: list[dict[str, str]] = []
        self.stack: list[tuple[int, dict[str, str]]] = []  # (depth, fields) of the open entries
        self.field: tuple[dict[str, str], str] | None = None  # where the text now read goes
        self.chunks: list[str] = []
        self.refused = ""

    def _local(self, name: str) -> str | None:
        try:
            return self.names[name]
        except KeyError:
            ns, _, local = name.rpartition("}")
            got = self.names[name] = local if (ns + "}" if ns else "") == self.ns else None
            return got

    def start(self, name: str, _attrs: Any) -> None:
        self._flush()  # a field's text is what comes before any element inside it
        depth = self.depth = self.depth + 1
        if depth == 1:
            ns, _, local = name.rpartition("}")
            self.ns = ns + "}" if ns else ""
            if local != "ListBucketResult":
                self.refused = self.refused or f"not a listing ({'{' + name if ns else name})"
            return
        local = self._local(name)
        if local == "Contents":  # an entry, in the order entries begin (as ``iter`` finds them)
            fields: dict[str, str] = {}
            self.entries.append(fields)
            self.stack.append((depth, fields))
        elif self.stack and self.stack[-1][0] == depth - 1 and local in _ENTRY:
            entry = self.stack[-1][1]
            if local not in entry:
                self._read((entry, local))
        elif depth == 2 and local in _TOP and local not in self.top:
            self._read((self.top, local))

    def end(self, name: str) -> None:
        if self.field is not None:
            self._flush()
        depth, self.depth = self.depth, self.depth - 1
        if self.stack and self.stack[-1][0] == depth:  # an entry's end
            self.stack.pop()

    def _read(self, field: tuple[dict[str, str], str]) -> None:
        """Collect the text from here on into ``field`` (text is handed over only then)."""
        self.field = field
        self.parser.CharacterDataHandler = self.chunks.append

    def _flush(self) -> None:
        if self.field is not None:
            fields, local = self.field
            fields[local] = "".join(self.chunks)
            self.field = None
            self.chunks.clear()
            self.parser.CharacterDataHandler = None


class _Signer:
    """SigV4 query signatures for one bucket's GetObject/PutObject, computed here
    (about 20 µs) instead of by botocore's pipeline (endpoint rules, events,
    serializers, its signer: 0.5-0.9 ms a request). Trust stays botocore's: the
    base URL, region and scope come from URLs botocore presigned for the bucket
    (:meth:`probe`), and this signer must reproduce each of them exactly, signature
    included, for the same time, or it is not used and botocore signs every request."""

    _PROBE = "gitdata-probe/~a b+c"

    def __init__(self, base: str, region: str, credentials: Any) -> None:
        self._base = base  # scheme://host[/bucket]: the key's path goes after it
        self._path = urlsplit(base).path
        self._host = _host_header(base)
        self._region = region
        self._credentials = credentials
        self._keys: dict[tuple[str, str], bytes] = {}  # (secret, day) -> signing key
        #: (access key, scope, signed headers, token) -> the query's fields before and after the date
        self._fixed: dict[tuple[Any, ...], tuple[list[str], list[str]]] = {}

    @classmethod
    def probe(cls, client: Any, credentials: Any, bucket: str) -> _Signer | None:
        from urllib.parse import parse_qs

        if credentials is None:
            return None
        md5 = base64.b64encode(hashlib.md5(b"", usedforsecurity=False).digest()).decode()
        probes = [
            ("get_object", "GET", {"Bucket": bucket, "Key": cls._PROBE}),
            ("get_object", "GET", {"Bucket": bucket, "Key": cls._PROBE, "VersionId": "v 1/+="}),
            ("put_object", "PUT", {"Bucket": bucket, "Key": cls._PROBE, "ContentMD5": md5}),
        ]
        signer: _Signer | None = None
        for method, verb, params in probes:
            theirs = urlsplit(str(client.generate_presigned_url(method, Params=params, ExpiresIn=_EXPIRES)))
            query = parse_qs(theirs.query, keep_blank_values=True)
            if signer is None:
                tail = "/" + quote(cls._PROBE, safe="/~")
                scope = (query.get("X-Amz-Credential") or [""])[0].split("/")
                if not theirs.path.endswith(tail) or len(scope) != 5:
                    return None
                signer = cls(f"{theirs.scheme}://{theirs.netloc}{theirs.path[: -len(tail)]}", scope[2], credentials)
            stamp = (query.get("X-Amz-Date") or [""])[0]
            if not re.fullmatch(r"\d{8}T\d{6}Z", stamp):
                return None
            mine = urlsplit(signer.url(verb, params, stamp=stamp))
            if (mine.scheme, mine.netloc, mine.path) != (theirs.scheme, theirs.netloc, theirs.path):
                return None
            if parse_qs(mine.query, keep_blank_values=True) != query:
                return None
        return signer

    def _signing_key(self, secret: str, day: str) -> bytes:
        key = self._keys.get((secret, day))
        if key is None:
            key = ("AWS4" + secret).encode()
            for part in (day, self._region, "s3", "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            self._keys = {(secret, day): key}  # one day's key at a time
        return key

    def url(self, verb: str, params: dict[str, Any], stamp: str | None = None) -> str:
        """The presigned URL of ``verb`` (GET/PUT) with ``params`` (Key, VersionId,
        ContentMD5), signed at ``stamp`` (``%Y%m%dT%H%M%SZ``; default now)."""
        frozen = self._credentials.get_frozen_credentials()
        stamp = stamp or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        scope = f"{stamp[:8]}/{self._region}/s3/aws4_request"
        key = params["Key"]
        path = f"{self._path}/{key if _UNRESERVED.match(key) else quote(key, safe='/~')}"
        md5 = params.get("ContentMD5")
        signed = "content-md5;host" if md5 else "host"
        fixed = self._fixed.get((frozen.access_key, scope, signed, frozen.token))
        if fixed is None:  # the fields that change once a day at most, encoded once
            before = [("X-Amz-Algorithm", "AWS4-HMAC-SHA256"), ("X-Amz-Credential", f"{frozen.access_key}/{scope}")]
            after = [("X-Amz-Expires", str(_EXPIRES)), ("X-Amz-SignedHeaders", signed)]
            if frozen.token is not None:
                after.append(("X-Amz-Security-Token", frozen.token))
            fixed = ([_query_field(k, v) for k, v in before], [_query_field(k, v) for k, v in after])
            if len(self._fixed) > 8:
                self._fixed.clear()
            self._fixed[(frozen.access_key, scope, signed, frozen.token)] = fixed
        encoded = [*fixed[0], _query_field("X-Amz-Date", stamp), *fixed[1]]
        if params.get("VersionId"):
            encoded.insert(0, _query_field("versionId", params["VersionId"]))
        headers = (f"content-md5:{' '.join(md5.split())}\n" if md5 else "") + f"host:{self._host}\n"
        canonical = "\n".join([verb, path, "&".join(sorted(encoded)), headers, signed, "UNSIGNED-PAYLOAD"])
        to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.digest(self._signing_key(frozen.secret_key, stamp[:8]), to_sign.encode(), "sha256").hex()
        return f"{self._base}{path[len(self._path):]}?{'&'.join(encoded)}&X-Amz-Signature={signature}"


#: a key (or query value) that SigV4's encoding leaves as it is: ASCII letters, digits, ``-_.~/``
_UNRESERVED = re.compile(r"[A-Za-z0-9\-_.~/]*\Z", re.ASCII)


def _query_field(name: str, value: str) -> str:
    """``name=value`` of a presigned URL's query, both encoded as SigV4 asks."""
    v = str(value)
    return f"{quote(name, safe='-_.~')}={v if _UNRESERVED.match(v) and '/' not in v else quote(v, safe='-_.~')}"


def _host_header(url: str) -> str:
    """The Host a request to ``url`` carries, as SigV4 signs it (a default port left out)."""
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return host if parts.port is None or parts.port == default else f"{host}:{parts.port}"


class _Counted:
    """A file handed to ``http.client`` as a body: reports each block sent."""

    def __init__(self, f: BinaryIO, progress: Callable[[int], None] | None) -> None:
        self._f = f
        self._progress = progress

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        if data and self._progress is not None:
            self._progress(len(data))
        return data

    def tell(self) -> int:
        return self._f.tell()

    def seek(self, pos: int) -> int:
        return self._f.seek(pos)


#: what a response may bring, as http.client bounds it: header lines, and bytes in one line
_MAX_FIELDS = 100
_MAX_LINE = 65536
#: a field's name as the email parser behind http.client knows one: printable ASCII, no colon
_FIELD_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]*\Z")


class _Fields:
    """A response's header fields, with the lookups :class:`http.client.HTTPResponse` makes
    of them (case-insensitive ``get``, ``get_all``, ``items``). http.client hands the
    header block to the email package's parser, which costs about 50 us a response; a
    GET of a 4 KiB object costs about 700 us in all (docs/design.md, "staging many small
    objects")."""

    __slots__ = ("_by_name", "_items")

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = items
        self._by_name: dict[str, list[str]] = {}
        for name, value in items:
            self._by_name.setdefault(name.lower(), []).append(value)

    def get(self, name: str, default: Any = None) -> Any:
        values = self._by_name.get(name.lower())
        return values[0] if values else default

    def get_all(self, name: str, failobj: Any = None) -> Any:
        values = self._by_name.get(name.lower())
        return list(values) if values else failobj

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def __getitem__(self, name: str) -> str | None:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._by_name

    def __len__(self) -> int:
        return len(self._items)


def read_fields(fp: BinaryIO) -> _Fields:
    """The header fields of a response from ``fp``, up to and with the empty line: at most
    :data:`_MAX_FIELDS` lines of :data:`_MAX_LINE` bytes (else http.client's own errors).
    The fields are what http.client's parser makes of them: a value loses the spaces and
    tabs before it (not str.strip's white space, which takes NEL and NBSP too) and the line
    break after it, not the spaces after it; a folded line (one that starts with a space or
    tab) continues the field before it, line break and all; the first line
    that is no field (no colon, or a name with a space or control character in it) ends
    the fields, though the block is still read to its empty line."""
    raw: list[list[str]] = []  # [name, its value's lines as they came]
    fields = True
    for _count in range(_MAX_FIELDS + 1):
        line = fp.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            raise http.client.LineTooLong("header line")
        if line in (b"\r\n", b"\n", b""):
            return _Fields([(name, value.rstrip("\r\n")) for name, value in raw])
        if not fields:
            continue
        text = line.decode("iso-8859-1")
        if text[0] in " \t":
            if raw:
                raw[-1][1] += text  # a folded line: http.client keeps its line break too
            continue
        name, colon, value = text.partition(":")
        if not colon or not _FIELD_NAME.match(name):
            fields = False
            continue
        raw.append([name, value.lstrip(" \t")])
    raise http.client.HTTPException(f"got more than {_MAX_FIELDS} headers")


class _Response(http.client.HTTPResponse):
    """:class:`http.client.HTTPResponse` with its header block read by :func:`read_fields`;
    the status line is read, and the body framed, as http.client does."""

    def begin(self) -> None:
        if self.headers is not None:
            return
        while True:
            version, status, reason = self._read_status()  # type: ignore[attr-defined]
            if status != http.client.CONTINUE:
                break
            read_fields(self.fp)  # an interim answer's own fields
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http.client.UnknownProtocol(version)
        self.code = self.status = status
        self.reason = reason.strip()
        self.headers = self.msg = read_fields(self.fp)  # type: ignore[assignment]
        self.chunked = (self.headers.get("transfer-encoding") or "").lower() == "chunked"
        self.chunk_left = None
        self.will_close = self._check_close()  # type: ignore[attr-defined]
        self.length = None
        declared = self.headers.get("content-length")
        if declared and not self.chunked:
            try:
                length = int(declared)
            except ValueError:
                length = -1
            self.length = length if length >= 0 else None
        if status in (http.client.NO_CONTENT, http.client.NOT_MODIFIED) or 100 <= status < 200 or self._method == "HEAD":  # type: ignore[attr-defined]
            self.length = 0
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True  # nothing frames the body: it ends with the connection


_PLAIN_VALUE = re.compile(r"[\x21-\x7e]([\x20-\x7e]{0,1022}[\x21-\x7e])?", re.ASCII)


def object_details(fields: Mapping[str, str]) -> dict[str, Any]:
    """What a GET's answer states of its object, in the names of an fsspec file's ``details``
    (``size``, ``ETag``, ``LastModified``, ``VersionId``), from the server's header fields: a
    value that is not one plain line of printable ASCII (at most 1,024 characters), a length
    that is not a number, or a date that is not an HTTP date is left out."""
    from email.utils import parsedate_to_datetime

    def plain(name: str) -> str | None:
        value = fields.get(name)
        return value if value is not None and _PLAIN_VALUE.fullmatch(value) else None

    out: dict[str, Any] = {}
    size = plain("content-length")
    if size is not None and size.isdigit() and len(size) <= 20:
        out["size"] = int(size)
    for name, key in (("etag", "ETag"), ("x-amz-version-id", "VersionId")):
        if (value := plain(name)) is not None:
            out[key] = value
    stamp = plain("last-modified")
    if stamp is not None:
        try:
            out["LastModified"] = parsedate_to_datetime(stamp)
        except (TypeError, ValueError, IndexError, OverflowError):
            pass
    return out


class _Body(io.RawIOBase):
    """A GET's body; its connection goes back to the thread's pool once read to the end.
    ``details``: what the answer's header fields state of the object (:func:`object_details`)."""

    def __init__(self, owner: DirectS3, resp: http.client.HTTPResponse, conn: http.client.HTTPConnection,
                 scheme: str, netloc: str) -> None:  # fmt: skip
        self._owner = owner
        self._resp = resp
        self._conn: http.client.HTTPConnection | None = conn
        self._where = (scheme, netloc)

    @property
    def details(self) -> dict[str, Any]:
        return object_details(self._resp.headers)

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        return self._resp.readinto(b)

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self._resp.read()
        return self._resp.read(size)

    def close(self) -> None:
        if self.closed:
            return
        try:
            conn, self._conn = self._conn, None
            if conn is not None:
                if self._resp.isclosed():  # read to its end: the connection can carry the next request
                    self._owner._release(*self._where, conn)
                else:
                    conn.close()
        finally:
            super().close()
