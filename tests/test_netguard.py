"""The loopback guard itself: a test that reached past 127.0.0.1 must fail, in this process
and in the processes it starts."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from conftest import netguard


def test_a_connect_past_loopback_is_refused_and_logged(loopback_only):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(OSError, match="loopback only"):
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: never answered, never tried
    finally:
        s.close()
    assert "connect '192.0.2.1'" in loopback_only.read_text()
    loopback_only.write_text("")  # this test's own trip is expected


def test_a_lookup_of_a_real_name_is_refused_in_a_child_process(loopback_only):
    code = "import socket\ntry:\n socket.getaddrinfo('s3.amazonaws.com', 443)\nexcept OSError as e:\n print(e)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "loopback only" in out
    assert "lookup 's3.amazonaws.com'" in loopback_only.read_text()
    loopback_only.write_text("")


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.1", "::1", "localhost", "LOCALHOST.", "bucket.localhost", "", None])
def test_loopback_names_and_addresses_pass(host):
    assert netguard._loopback(host)


@pytest.mark.parametrize("host", ["10.0.0.1", "169.254.169.254", "metadata.google.internal", "127.0.0.1.nip.io", "::ffff:8.8.8.8", "0.0.0.0"])
def test_other_hosts_are_refused(host):
    assert not netguard._loopback(host)


def test_a_loopback_connect_still_works(tmp_path):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    c = socket.create_connection(srv.getsockname(), timeout=5)
    c.close()
    srv.close()
