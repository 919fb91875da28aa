"""uptls-backend: its listening line, what it observes and logs (handshake,
ClientHello, requests), keep-alive and bodies, and its HTTP errors
(400, 431).

Run: /usr/bin/python3 -m pytest harness/backend/test_backend*.py (make backend-test);
UPTLS_BACKEND_BIN tests another build (e.g. the sanitizer build). The
shared client helpers are backend_testlib.py, the fixtures conftest.py.
"""

import json
import socket
import time

from backend_testlib import client_ctx, get, parse_response, raw_exchange, read_all


def test_listening_line(pki, backends):
    b = backends(pki)
    assert b.listening["event"] == "listening"
    assert b.listening["name"] == "b1"
    assert b.listening["pid"] == b.proc.pid
    assert 0 < b.port < 65536
    with socket.create_connection(("127.0.0.1", b.port), timeout=2):
        pass


def test_request_and_observations(pki, backends):
    b = backends(pki)
    resp, facts = get(b.port, client_ctx(pki), "/hello?x=1", headers=[("X-Test", "yes")])
    status, hdrs, body = parse_response(resp)
    assert status == 200
    assert body == b"backend=b1 conn=1 req=1\n"
    assert hdrs["x-uptls-backend"] == "b1"
    assert hdrs["x-uptls-conn"] == "1"
    assert hdrs["content-type"] == "text/plain"
    assert hdrs["connection"] == "close"
    assert int(hdrs["content-length"]) == len(body)

    b.wait_for("close", conn=1)
    acc = b.events("accept", 1)[0]
    assert acc["peer"] == "127.0.0.1" and isinstance(acc["peer_port"], int)
    ch = b.events("client_hello", 1)[0]
    assert ch["sni"] == "backend.test"
    assert "TLSv1.3" in ch["versions"] and "TLSv1.2" in ch["versions"]
    assert ch["legacy_version"] == "TLSv1.2"
    assert "TLS_AES_128_GCM_SHA256" in ch["ciphers"]
    assert "x25519" in ch["groups"] or "secp256r1" in ch["groups"]
    assert "ecdsa_secp256r1_sha256" in ch["sigalgs"]
    assert ch["extensions"] and ch["extensions"][0] == 0  # server_name sent first
    assert ch["psk_offered"] is False
    hs = b.events("handshake", 1)[0]
    assert hs["ok"] is True
    assert hs["version"] == facts["version"] == "TLSv1.3"
    assert hs["cipher"] == facts["cipher"]
    assert hs["resumed"] is False
    assert hs["sni"] == "backend.test"
    assert hs["client_cert"] is None
    rq = b.events("request", 1)[0]
    assert rq["method"] == "GET" and rq["path"] == "/hello?x=1" and rq["version"] == "HTTP/1.1"
    assert ["X-Test", "yes"] in rq["headers"]
    assert rq["headers"][0] == ["Host", "backend.test"]
    assert rq["body_len"] == 0
    cl = b.events("close", 1)[0]
    assert cl["requests"] == 1
    assert cl["reason"] == "server_close"
    for e in b.events():
        assert e["name"] == "b1" and isinstance(e["t"], float) and e["conn"] == 1


def raw_client_hello():
    """A TLS 1.2 ClientHello with GREASE values and an unknown extension."""
    u16 = lambda v: v.to_bytes(2, "big")  # noqa: E731

    def ext(t, body):
        return u16(t) + u16(len(body)) + body
    name = b"raw.test"
    sni = u16(len(name) + 3) + b"\x00" + u16(len(name)) + name
    exts = (ext(0x0A0A, b"") + ext(0, sni) + ext(10, u16(4) + u16(0x0A0A) + u16(23))
            + ext(11, b"\x01\x00") + ext(13, u16(2) + u16(0x0403)) + ext(0x1234, b"hi"))
    ciphers = u16(0x0A0A) + u16(0xC02B) + u16(0x00FF)
    body = (u16(0x0303) + bytes(32) + b"\x00" + u16(len(ciphers)) + ciphers + b"\x01\x00"
            + u16(len(exts)) + exts)
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + u16(len(hs)) + hs


def test_client_hello_raw_fields(pki, backends):
    b = backends(pki)
    with socket.create_connection(("127.0.0.1", b.port), timeout=5) as s:
        s.sendall(raw_client_hello())
        s.recv(65536)  # the ServerHello flight
    ch = b.wait_for("client_hello", conn=1)[0]
    assert ch["versions"] == ["TLSv1.2"] and ch["legacy_version"] == "TLSv1.2"
    assert ch["ciphers"] == ["0x0A0A", "ECDHE-ECDSA-AES128-GCM-SHA256",
                             "TLS_EMPTY_RENEGOTIATION_INFO_SCSV"]
    assert ch["groups"] == ["0x0A0A", "secp256r1"]
    assert ch["sigalgs"] == ["ecdsa_secp256r1_sha256"]
    assert ch["sni"] == "raw.test"
    assert ch["extensions"] == [0x0A0A, 0, 10, 11, 13, 0x1234]
    assert ch["session_id_len"] == 0 and ch["ticket_offered"] is False
    hs = b.wait_for("handshake", conn=1)[0]
    assert hs["ok"] is False and hs["client_hello_seen"] is True


def test_keepalive_pipelining_and_bodies(pki, backends):
    b = backends(pki)
    raw = socket.create_connection(("127.0.0.1", b.port), timeout=5)
    s = client_ctx(pki).wrap_socket(raw, server_hostname="backend.test")
    s.sendall(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
              b"POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nTrailer: t\r\n\r\n")
    time.sleep(0.2)
    s.sendall(b"GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = read_all(s)
    s.close()
    assert data.count(b"HTTP/1.1 200 OK") == 3
    for k in (1, 2, 3):
        assert f"backend=b1 conn=1 req={k}\n".encode() in data
    b.wait_for("close", conn=1)
    reqs = b.events("request", 1)
    assert [r["path"] for r in reqs] == ["/a", "/b", "/c"]
    assert [r["body_len"] for r in reqs] == [5, 7, 0]
    assert b.events("close", 1)[0]["requests"] == 3


def test_json_escaping_of_arbitrary_bytes(pki, backends):
    b = backends(pki)
    data = raw_exchange(b, pki, b"GET /p HTTP/1.1\r\nHost: x\r\nX-Odd: a\"b\\c\xff\xc3\xa9\x7f\t!\r\n"
                        b"Connection: close\r\n\r\n")
    assert parse_response(data)[0] == 200
    b.wait_for("close", conn=1)
    with open(b.log, "rb") as f:
        line = [x for x in f.read().split(b"\n") if b'"request"' in x][0]
    line.decode("utf-8")  # the line itself is valid UTF-8
    hdr = json.loads(line)["headers"][1]
    assert hdr == ["X-Odd", "a\"b\\c\u00ff\u00e9\x7f\t!"]


def test_tcp_close_before_client_hello(pki, backends):
    b = backends(pki)
    socket.create_connection(("127.0.0.1", b.port)).close()
    hs = b.wait_for("handshake", conn=1)[0]
    assert hs["ok"] is False and hs["client_hello_seen"] is False and hs["error"]
    assert b.wait_for("close", conn=1)[0]["reason"] == "eof"


def test_large_bodies(pki, backends):
    b = backends(pki)
    big = 4 * 1024 * 1024
    chunk = b"y" * (1024 * 1024)
    payload = (b"PUT /cl HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % big + b"x" * big
               + b"PUT /ch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
               b"Connection: close\r\n\r\n"
               + b"".join(b"100000\r\n" + chunk + b"\r\n" for _ in range(3)) + b"0\r\n\r\n")
    t0 = time.monotonic()
    data = raw_exchange(b, pki, payload)
    assert time.monotonic() - t0 < 5
    assert data.count(b"HTTP/1.1 200 OK") == 2
    b.wait_for("close", conn=1)
    assert [r["body_len"] for r in b.events("request", 1)] == [big, 3 * len(chunk)]


def test_close_after_response_and_clean_close(pki, backends):
    b = backends(pki, "--close-after-response")
    resp, _ = get(b.port, client_ctx(pki), close=False)
    status, hdrs, _ = parse_response(resp)
    assert status == 200 and hdrs["connection"] == "close"
    # Python's ssl sends close_notify on unwrap(): a client that does gets clean=true
    raw = socket.create_connection(("127.0.0.1", b.port), timeout=5)
    s = client_ctx(pki).wrap_socket(raw, server_hostname="backend.test")
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.2)
    s.recv(65536)
    s.unwrap()
    raw.close()
    b.wait_for("close", conn=2)
    assert b.events("close", 2)[0]["clean"] is True


# ---- HTTP errors ------------------------------------------------------------

def test_malformed_request_gets_400(pki, backends):
    b = backends(pki)
    data = raw_exchange(b, pki, b"GARBAGE\r\n\r\n")
    status, hdrs, _ = parse_response(data)
    assert status == 400 and hdrs["connection"] == "close"
    b.wait_for("close", conn=1)
    rq = b.events("request", 1)[0]
    assert rq["status"] == 400 and rq["error"]
    assert b.events("close", 1)[0]["reason"] == "bad_request"


def test_bad_content_length_gets_400(pki, backends):
    b = backends(pki)
    data = raw_exchange(b, pki, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n")
    assert parse_response(data)[0] == 400


def test_header_block_too_large_gets_431(pki, backends):
    b = backends(pki)
    data = raw_exchange(b, pki, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n")
    assert parse_response(data)[0] == 431


def test_too_many_headers_gets_431(pki, backends):
    b = backends(pki)
    data = raw_exchange(b, pki, b"GET / HTTP/1.1\r\n" + b"X-H: 1\r\n" * 150 + b"\r\n")
    assert parse_response(data)[0] == 431
