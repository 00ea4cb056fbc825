"""pkt-line codec and the filter protocol server, over in-memory streams."""

from __future__ import annotations

import io

import pytest

from gitdata.git.filter_process import FilterServer
from gitdata.git.pktline import MAX_PAYLOAD, PktReader, PktWriter, ProtocolError


def pkt(data: bytes) -> bytes:
    return b"%04x" % (len(data) + 4) + data


def text(line: str) -> bytes:
    return pkt(line.encode() + b"\n")


FLUSH = b"0000"


def test_round_trip_and_flush():
    buf = io.BytesIO()
    w = PktWriter(buf.write)
    w.write_text("hello")
    w.write_data(b"x" * (MAX_PAYLOAD + 10))
    w.write_flush()
    r = PktReader(io.BytesIO(buf.getvalue()).read)
    assert r.read_pkt() == b"hello\n"
    assert r.read_pkt() == b"x" * MAX_PAYLOAD
    assert r.read_pkt() == b"x" * 10
    assert r.read_pkt() is None
    with pytest.raises(EOFError):
        r.read_pkt()


@pytest.mark.parametrize("bad", [b"zzzz", b"0002", b"fff0" + b"x" * 10])
def test_bad_lengths_are_protocol_errors(bad):
    with pytest.raises((ProtocolError, EOFError)):
        PktReader(io.BytesIO(bad).read).read_pkt()


def test_truncated_payload_is_eof():
    with pytest.raises(EOFError):
        PktReader(io.BytesIO(b"0010abc").read).read_pkt()


class Result:
    def __init__(self, data=None, file=None, error=None):
        self.data, self.file, self.error = data, file, error


class FakeHandler:
    """A handler with fixed answers: this tests the protocol code alone."""

    def __init__(self):
        self.cleaned = {}
        self.finished = False
        self.delayed = set()

    def clean(self, path, chunks):
        data = b"".join(chunks)
        self.cleaned[path] = data
        return b"CLEAN:" + data[:4]

    def smudge(self, path, blob, can_delay):
        if path == "bad":
            return Result(error="broken")
        if can_delay and path == "slow":
            self.delayed.add(path)
            return None
        return Result(data=b"SMUDGED:" + blob)

    def available(self):
        return sorted(self.delayed)

    def is_delayed(self, path):
        return path in self.delayed

    def delayed_result(self, path):
        self.delayed.discard(path)
        return Result(data=b"LATE")

    def finish(self):
        self.finished = True


def handshake(delay=True):
    caps = [text("capability=clean"), text("capability=smudge")] + ([text("capability=delay")] if delay else [])
    return text("git-filter-client") + text("version=2") + FLUSH + b"".join(caps) + FLUSH


def read_all(data: bytes) -> list:
    r = PktReader(io.BytesIO(data).read)
    out = []
    while True:
        try:
            out.append(r.read_pkt())
        except EOFError:
            return out


def serve(inp: bytes):
    out = io.BytesIO()
    handler = FakeHandler()
    FilterServer(PktReader(io.BytesIO(inp).read), PktWriter(out.write), handler).serve()
    return read_all(out.getvalue()), handler


def test_handshake_clean_smudge_error_and_delay():
    inp = handshake()
    inp += text("command=clean") + text("pathname=a.bin") + FLUSH + pkt(b"abcdef") + FLUSH
    inp += text("command=smudge") + text("pathname=x") + FLUSH + pkt(b"ptr") + FLUSH
    inp += text("command=smudge") + text("pathname=bad") + FLUSH + pkt(b"ptr") + FLUSH
    inp += text("command=smudge") + text("pathname=slow") + text("can-delay=1") + FLUSH + pkt(b"p") + FLUSH
    inp += text("command=list_available_blobs") + FLUSH
    inp += text("command=smudge") + text("pathname=slow") + FLUSH + FLUSH
    packets, handler = serve(inp)
    assert packets[:3] == [b"git-filter-server\n", b"version=2\n", None]
    assert packets[3:7] == [b"capability=clean\n", b"capability=smudge\n", b"capability=delay\n", None]
    rest = packets[7:]
    # clean
    assert rest[:5] == [b"status=success\n", None, b"CLEAN:abcd", None, None]
    assert handler.cleaned["a.bin"] == b"abcdef"
    # smudge ok
    assert rest[5:10] == [b"status=success\n", None, b"SMUDGED:ptr", None, None]
    # smudge error: one file's error, the process goes on
    assert rest[10:12] == [b"status=error\n", None]
    # delayed, then listed, then delivered
    assert rest[12:14] == [b"status=delayed\n", None]
    assert rest[14:18] == [b"pathname=slow\n", None, b"status=success\n", None]
    assert rest[18:23] == [b"status=success\n", None, b"LATE", None, None]
    assert handler.finished


def test_no_delay_capability_when_git_does_not_offer_it():
    packets, _ = serve(handshake(delay=False))
    assert b"capability=delay\n" not in packets


def test_bad_handshake_is_a_protocol_error():
    with pytest.raises(ProtocolError):
        serve(text("hello") + FLUSH)
