"""git's long-running filter protocol (``filter.<driver>.process``), version 2.

The server speaks pkt-line and calls a handler for the work; see
``gitattributes(5)``, "Long Running Filter Process" and "Delay".
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from .pktline import PktReader, PktWriter, ProtocolError

CHUNK_OUT = 65516


class Result(Protocol):
    data: bytes | None
    file: str | None
    error: str | None


class Handler(Protocol):
    def clean(self, path: str, chunks: Iterator[bytes]) -> bytes: ...
    def smudge(self, path: str, blob: bytes, can_delay: bool) -> Result | None: ...
    def available(self) -> list[str]: ...
    def delayed_result(self, path: str) -> Result: ...
    def is_delayed(self, path: str) -> bool: ...
    def finish(self) -> None: ...


class FilterServer:
    capabilities = ("clean", "smudge", "delay")

    def __init__(self, reader: PktReader, writer: PktWriter, handler: Handler, log=None) -> None:
        self.r = reader
        self.w = writer
        self.handler = handler
        self.log = log or (lambda msg: None)
        self.caps: set[str] = set()

    def handshake(self) -> None:
        hello = self.r.read_text_list()
        if not hello or hello[0] != "git-filter-client" or "version=2" not in hello[1:]:
            raise ProtocolError(f"unexpected filter handshake {hello!r}")
        self.w.write_list(["git-filter-server", "version=2"])
        offered = {line.split("=", 1)[1] for line in self.r.read_text_list() if line.startswith("capability=")}
        self.caps = offered & set(self.capabilities)
        self.w.write_list([f"capability={c}" for c in self.capabilities if c in self.caps])

    def serve(self) -> None:
        self.handshake()
        try:
            while True:
                try:
                    headers = self.r.read_kv()
                except EOFError:
                    break
                self._dispatch(headers)
        finally:
            self.handler.finish()

    def _dispatch(self, headers: dict[str, str]) -> None:
        command = headers.get("command")
        path = headers.get("pathname", "")
        if command == "clean":
            self._clean(path)
        elif command == "smudge":
            self._smudge(path, headers.get("can-delay") == "1")
        elif command == "list_available_blobs":
            paths = self.handler.available()
            self.w.write_list([f"pathname={p}" for p in paths], push=False)
            self.w.write_list(["status=success"])
        else:
            for _ in self.r.iter_until_flush():
                pass
            self.w.write_list(["status=error"])

    def _clean(self, path: str) -> None:
        chunks = self.r.iter_until_flush()
        try:
            out = self.handler.clean(path, chunks)
        except Exception as err:  # noqa: BLE001 - one file's failure is that file's error
            for _ in chunks:  # drain what git still sends
                pass
            self.log(f"error: clean {path}: {err}")
            self.w.write_list(["status=error"])
            return
        for _ in chunks:
            pass
        # one write to git per answer: status, content, flush, flush (keep the status)
        self.w.write_list(["status=success"], push=False)
        self.w.write_data(out)
        self.w.write_flush(push=False)
        self.w.write_flush()

    def _smudge(self, path: str, can_delay: bool) -> None:
        blob = b"".join(self.r.iter_until_flush())
        if not can_delay and blob == b"" and self.handler.is_delayed(path):
            result: Result | None = self.handler.delayed_result(path)
        else:
            try:
                result = self.handler.smudge(path, blob, can_delay and "delay" in self.caps)
            except Exception as err:  # noqa: BLE001
                self.log(f"error: smudge {path}: {err}")
                self.w.write_list(["status=error"])
                return
            if result is None:
                self.w.write_list(["status=delayed"])
                return
        self._send(path, result)

    def _send(self, path: str, result: Result) -> None:
        if result.error is not None:
            self.log(f"error: {result.error}")
            self.w.write_list(["status=error"])
            return
        self.w.write_list(["status=success"], push=False)
        if result.file is not None:
            try:
                with open(result.file, "rb") as f:
                    while True:
                        chunk = f.read(CHUNK_OUT * 16)
                        if not chunk:
                            break
                        self.w.write_data(chunk)
            except OSError as err:
                self.log(f"error: reading {result.file} for {path}: {err}")
                self.w.write_flush()
                self.w.write_list(["status=error"])
                return
        elif result.data:
            self.w.write_data(result.data)
        self.w.write_flush(push=False)
        self.w.write_flush()
