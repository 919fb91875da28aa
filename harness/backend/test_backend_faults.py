"""uptls-backend's fault switches (--fault): each misbehaves exactly as named.

Run: /usr/bin/python3 -m pytest harness/backend/test_backend*.py (make backend-test);
UPTLS_BACKEND_BIN tests another build (e.g. the sanitizer build). The
shared client helpers are backend_testlib.py, the fixtures conftest.py.
"""

import errno
import os
import socket
import ssl
import time

import pytest
from backend_testlib import client_ctx, get, parse_response, read_all


def test_fault_stall_handshake(pki, backends):
    b = backends(pki, "--fault", "stall-handshake")
    raw = socket.create_connection(("127.0.0.1", b.port), timeout=0.5)
    with pytest.raises((socket.timeout, TimeoutError)):
        client_ctx(pki).wrap_socket(raw, server_hostname="backend.test")
    raw.close()
    hs = b.wait_for("handshake", conn=1)[0]
    assert hs["ok"] is False and hs["client_hello_seen"] is False
    assert b.events("close", 1)[0]["reason"] == "eof"


def test_fault_close_after_client_hello(pki, backends):
    b = backends(pki, "--fault", "close-after-client-hello")
    with pytest.raises((ssl.SSLError, ConnectionResetError, OSError)) as ei:
        get(b.port, client_ctx(pki))
    assert "handshake failure" not in str(ei.value)
    assert b.wait_for("client_hello", conn=1)[0]["sni"] == "backend.test"
    hs = b.wait_for("handshake", conn=1)[0]
    assert hs["ok"] is False and hs["alert"] is None
    assert b.events("close", 1)[0]["reason"] == "fault close-after-client-hello"


def test_fault_alert_after_client_hello(pki, backends):
    b = backends(pki, "--fault", "alert-after-client-hello")
    with pytest.raises(ssl.SSLError) as ei:
        get(b.port, client_ctx(pki))
    assert "HANDSHAKE_FAILURE" in str(ei.value).upper()
    b.wait_for("client_hello", conn=1)
    hs = b.wait_for("handshake", conn=1)[0]
    assert hs["ok"] is False
    assert hs["alert"] == {"direction": "sent", "name": "handshake failure", "code": 40}


def test_fault_non_tls(pki, backends):
    b = backends(pki, "--fault", "non-tls")
    with socket.create_connection(("127.0.0.1", b.port), timeout=5) as s:
        s.sendall(b"\x16\x03\x01\x00\x05hello")
        data = read_all(s)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    with pytest.raises(ssl.SSLError):
        get(b.port, client_ctx(pki))
    hs = b.wait_for("handshake", conn=1)[0]
    assert hs["ok"] is False and "non-tls" in hs["error"]


def test_fault_omit_intermediate(pki, backends):
    ok = backends(pki)
    get(ok.port, client_ctx(pki))  # the full chain verifies against the root
    b = backends(pki, "--fault", "omit-intermediate")
    with pytest.raises(ssl.SSLCertVerificationError):
        get(b.port, client_ctx(pki))
    # trusting the intermediate too shows the leaf alone was sent and is fine
    ctx = client_ctx(pki)
    ctx.load_verify_locations(os.path.join(pki, "int.pem"))
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    resp, _ = get(b.port, ctx)
    assert parse_response(resp)[0] == 200


def test_fault_truncate_body(pki, backends):
    b = backends(pki, "--fault", "truncate-body")
    resp, _ = get(b.port, client_ctx(pki))
    status, hdrs, body = parse_response(resp)
    assert status == 200 and hdrs["content-length"] == "1000" and len(body) == 100
    b.wait_for("close", conn=1)
    cl = b.events("close", 1)[0]
    assert cl["reason"] == "fault truncate-body"


def test_fault_reset_after_headers(pki, backends):
    b = backends(pki, "--fault", "reset-after-headers")
    raw = socket.create_connection(("127.0.0.1", b.port), timeout=5)
    s = client_ctx(pki).wrap_socket(raw, server_hostname="backend.test")
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while not data.endswith(b"\r\n\r\n"):
        chunk = s.recv(65536)
        assert chunk, data
        data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK")
    assert b.wait_for("close", conn=1)[0]["reason"] == "fault reset-after-headers"
    # Python's ssl reports a reset as EOF: read the pending socket error instead.
    dup = socket.socket(fileno=os.dup(s.fileno()))
    assert dup.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNRESET
    dup.close()
    s.close()


def test_fault_huge_headers(pki, backends):
    b = backends(pki, "--fault", "huge-headers")
    resp, _ = get(b.port, client_ctx(pki))
    head, _, body = resp.partition(b"\r\n\r\n")
    assert len(head) > 64 * 1024
    assert body == b"backend=b1 conn=1 req=1\n"


def test_fault_slow_response(pki, backends):
    b = backends(pki, "--fault", "slow-response")
    t0 = time.monotonic()
    resp, _ = get(b.port, client_ctx(pki))
    took = time.monotonic() - t0
    assert parse_response(resp)[0] == 200
    assert took >= 0.8 * len(resp) * 0.05, (took, len(resp))


def test_several_faults(pki, backends):
    b = backends(pki, "--fault", "huge-headers", "--fault", "truncate-body")
    resp, _ = get(b.port, client_ctx(pki))
    head, _, body = resp.partition(b"\r\n\r\n")
    assert len(head) > 64 * 1024 and len(body) == 100
