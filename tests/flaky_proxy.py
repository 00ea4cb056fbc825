"""A loopback HTTP proxy in front of a real server that fails on purpose.

``FlakyProxy(upstream).start()`` listens on 127.0.0.1 and forwards every
request to ``upstream`` (moto's S3), except:

- ``fail_every=N``: every N-th request (counted over all connections) is
  answered ``503 ServiceUnavailable`` with an S3 error body, as a loaded S3
  endpoint does;
- ``die_after=N``: after N forwarded requests the proxy stops, closing its
  port and every open connection: a server that goes away mid-transfer;
- ``cut_every=N``: every N-th GET with a body of more than 1 KiB announces
  its full length but sends only half of it, then closes the connection (a
  transfer that breaks off).
- ``fail_paths``: a PUT whose path contains one of these strings is
  answered ``503`` (a target that fails for some objects only); the set may
  be changed while the proxy runs.
- ``deny_paths``: a GET or HEAD whose path contains one of these strings is
  answered ``403 AccessDenied`` (a public bucket whose objects are not).

Threads and ``http.server`` only; no mocks: the client and the upstream are
real.
"""

from __future__ import annotations

import http.client
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}
_BUSY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>ServiceUnavailable</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)

_DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>Access Denied</Message></Error>"
)


class FlakyProxy:
    def __init__(
        self, upstream: str, *, fail_every: int = 0, die_after: int | None = None, cut_every: int = 0
    ) -> None:
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname or "127.0.0.1", parts.port or 80
        self.fail_every = fail_every
        self.die_after = die_after
        self.cut_every = cut_every
        self.fail_paths: set[str] = set()
        self.deny_paths: set[str] = set()
        self.requests = 0
        self.failed = 0
        self.gets = 0
        self.cut = 0
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.stopped = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FlakyProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with proxy._lock:
                    proxy._conns.add(self.connection)

            def finish(self) -> None:
                with proxy._lock:
                    proxy._conns.discard(self.connection)
                try:
                    super().finish()
                except OSError:
                    pass

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _handle(self) -> None:
                body = self._body()
                with proxy._lock:
                    proxy.requests += 1
                    n = proxy.requests
                    die = proxy.die_after is not None and n > proxy.die_after
                    fail = bool(proxy.fail_every) and n % proxy.fail_every == 0
                    fail = fail or (self.command == "PUT" and any(p in self.path for p in proxy.fail_paths))
                    if fail:
                        proxy.failed += 1
                if die or proxy.stopped.is_set():
                    threading.Thread(target=proxy.stop, daemon=True).start()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if self.command in ("GET", "HEAD") and any(p in self.path for p in proxy.deny_paths):
                    self.send_response(403)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(_DENIED)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(_DENIED)
                    return
                if fail:
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(_BUSY)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(_BUSY)
                    return
                up = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                    if body or self.command in ("PUT", "POST"):
                        headers["Content-Length"] = str(len(body))
                    up.request(self.command, self.path, body=body, headers=headers)
                    resp = up.getresponse()
                    data = resp.read()
                    self.send_response(resp.status, resp.reason)
                    for k, v in resp.getheaders():
                        if k.lower() not in _HOP and k.lower() != "content-length":
                            self.send_header(k, v)
                    length = resp.getheader("Content-Length") if self.command == "HEAD" else None
                    self.send_header("Content-Length", length or str(len(data)))
                    self.end_headers()
                    cut = False
                    if self.command == "GET" and len(data) > 1024 and resp.status < 300:
                        with proxy._lock:
                            proxy.gets += 1
                            cut = bool(proxy.cut_every) and proxy.gets % proxy.cut_every == 0
                            proxy.cut += cut
                    if cut:
                        self.wfile.write(data[: len(data) // 2])
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                    elif self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    up.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle  # noqa: N815

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the port and every open connection (idempotent)."""
        with self._lock:
            if self._server is None:
                return
            server, self._server = self._server, None
            conns = list(self._conns)
        self.stopped.set()
        server.shutdown()
        server.server_close()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
