"""git's pkt-line framing, over read/write callables (testable with BytesIO).

A packet is a 4-hex-digit length (including the 4 bytes) and a payload;
``0000`` is a flush packet. Payloads are at most 65516 bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

MAX_PAYLOAD = 65516
FLUSH = None


class ProtocolError(Exception):
    """The peer broke the pkt-line protocol; the conversation cannot go on."""


class PktReader:
    def __init__(self, read: Callable[[int], bytes]) -> None:
        self._read = read

    def _exact(self, n: int) -> bytes:
        data = self._read(n)
        if len(data) == n:
            return data
        parts = [data]
        got = len(data)
        while got < n:
            more = self._read(n - got)
            if not more:
                raise EOFError(f"pkt-line stream ended after {got} of {n} bytes")
            parts.append(more)
            got += len(more)
        return b"".join(parts)

    def read_pkt(self) -> bytes | None:
        """One payload, or ``None`` for a flush packet. EOFError at clean end."""
        head = self._read(4)
        if not head:
            raise EOFError("end of stream")
        if len(head) < 4:
            head += self._exact(4 - len(head))
        try:
            length = int(head, 16)
        except ValueError as err:
            raise ProtocolError(f"bad pkt-line length {head!r}") from err
        if length == 0:
            return FLUSH
        if length < 4 or length > MAX_PAYLOAD + 4:
            raise ProtocolError(f"bad pkt-line length {length}")
        return self._exact(length - 4)

    def read_text_list(self) -> list[str]:
        """Text packets up to the next flush, without trailing newlines."""
        out = []
        while True:
            pkt = self.read_pkt()
            if pkt is FLUSH:
                return out
            out.append(pkt.decode("utf-8", "surrogateescape").rstrip("\n"))

    def iter_until_flush(self) -> Iterator[bytes]:
        while True:
            pkt = self.read_pkt()
            if pkt is FLUSH:
                return
            yield pkt

    def read_kv(self) -> dict[str, str]:
        out = {}
        for line in self.read_text_list():
            key, sep, value = line.partition("=")
            if not sep:
                raise ProtocolError(f"expected key=value, got {line!r}")
            out[key] = value
        return out


class PktWriter:
    def __init__(self, write: Callable[[bytes], object], flush: Callable[[], object] = lambda: None) -> None:
        self._write = write
        self._flush = flush

    def write_pkt(self, payload: bytes) -> None:
        if len(payload) > MAX_PAYLOAD:
            raise ValueError(f"payload of {len(payload)} bytes is over {MAX_PAYLOAD}")
        self._write(b"%04x" % (len(payload) + 4) + payload)

    def write_text(self, line: str) -> None:
        self.write_pkt(line.encode("utf-8", "surrogateescape") + b"\n")

    def write_flush(self, *, push: bool = True) -> None:
        """A flush packet; ``push=False`` leaves it buffered (more of the same answer follows)."""
        self._write(b"0000")
        if push:
            self._flush()

    def write_data(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        for start in range(0, len(view), MAX_PAYLOAD):
            chunk = view[start : start + MAX_PAYLOAD]
            self._write(b"%04x" % (len(chunk) + 4))
            self._write(chunk)

    def write_list(self, lines: list[str], *, push: bool = True) -> None:
        for line in lines:
            self.write_text(line)
        self.write_flush(push=push)
