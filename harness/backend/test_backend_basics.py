"""Tests for uptls-backend (bin/uptls-backend), driven through its command
line, its stdout line, its JSON-lines log and the wire, with Python's ssl
module (and nginx, when installed) as the client.

Run: /usr/bin/python3 -m pytest harness/backend/test_backend.py
Set UPTLS_BACKEND_BIN to test another build (e.g. the sanitizer build).
The PKI is a throwaway one made with the openssl CLI in a temporary folder
(tests/testpki.py).
"""

import errno
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

import pytest
from testpki import Pki

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BACKEND = os.environ.get("UPTLS_BACKEND_BIN", os.path.join(ROOT, "bin", "uptls-backend"))
NGINX = "/usr/sbin/nginx"
# A client-certificate subject with characters that need escaping somewhere.
CLIENT_SUBJECT = ["/O=uptls, \"test\"/CN=proxy\\client/CN=cl\u00efent"]


@pytest.fixture(scope="module")
def pki():
    d = tempfile.mkdtemp(prefix="uptls-backend-test-")
    p = Pki(d)
    p.ca("root", subject="/CN=uptls test root")
    p.ca("int", issuer="root", subject="/CN=uptls test int")
    p.leaf("srv", "int", san="DNS:backend.test,IP:127.0.0.1", subject="/CN=backend.test",
           chain=("int",), chain_file="chain.pem")
    # client PKI: its own root
    p.ca("cliroot", subject="/CN=uptls client root")
    p.leaf("cli", "cliroot", san=None, client=True, subject=CLIENT_SUBJECT[0])
    yield d
    shutil.rmtree(d, ignore_errors=True)


def cert_facts(path):
    """(subject RFC2253, issuer RFC2253, sha256 hex) as the openssl CLI prints them."""
    def field(opt):
        out = subprocess.run(["openssl", "x509", "-in", path, "-noout", opt,
                              "-nameopt", "RFC2253"], check=True, capture_output=True).stdout
        return out.decode().strip().split("=", 1)[1]
    fp = subprocess.run(["openssl", "x509", "-in", path, "-noout", "-fingerprint", "-sha256"],
                        check=True, capture_output=True).stdout.decode().strip()
    return field("-subject"), field("-issuer"), fp.split("=", 1)[1].replace(":", "").lower()


class Backend:
    def __init__(self, pki, *extra, name="b1"):
        self.name = name
        self.log = os.path.join(pki, f"log-{time.monotonic_ns()}.jsonl")
        self.argv = [BACKEND, "--name", name, "--cert", os.path.join(pki, "chain.pem"),
                     "--key", os.path.join(pki, "srv.key"), "--log", self.log, *extra]
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.proc.stdout.readline()
        assert line, f"backend did not start: {self.proc.stderr.read().decode()}"
        self.listening = json.loads(line)
        self.port = self.listening["port"]

    def stop(self, timeout=5):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=timeout)
        self.stderr = self.proc.stderr.read().decode(errors="replace")
        self.proc.stdout.close()
        self.proc.stderr.close()
        return rc

    def events(self, kind=None, conn=None):
        try:
            with open(self.log, "rb") as f:
                lines = f.read().split(b"\n")[:-1]
        except FileNotFoundError:
            return []
        evs = [json.loads(x) for x in lines]
        return [e for e in evs if (kind is None or e["event"] == kind)
                and (conn is None or e.get("conn") == conn)]

    def wait_for(self, kind, conn=None, count=1, timeout=5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            evs = self.events(kind, conn)
            if len(evs) >= count:
                return evs
            time.sleep(0.02)
        raise AssertionError(f"no {count} {kind} event(s) for conn {conn}: {self.events()}")


@pytest.fixture
def backends():
    started = []

    def start(pki, *extra, **kw):
        b = Backend(pki, *extra, **kw)
        started.append(b)
        return b
    yield start
    for b in started:
        if b.proc.returncode is None:
            # exit 0 and a quiet stderr: under valgrind or the sanitizers a
            # leak or an error shows here as a non-zero status
            assert b.stop() == 0, b.stderr
            assert b.stderr == "", b.stderr


def client_ctx(pki, *, cert=False, maxv=None, minv=None, ciphers=None, verify=True, ca="root.pem"):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        ctx.load_verify_locations(os.path.join(pki, ca))
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(os.path.join(pki, "cli.pem"), os.path.join(pki, "cli.key"))
    if maxv:
        ctx.maximum_version = maxv
    if minv:
        ctx.minimum_version = minv
    if ciphers:
        ctx.set_ciphers(ciphers)
    return ctx


def read_all(s):
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, ssl.SSLEOFError):
            break
        if not chunk:
            break
        data += chunk
    return data


def get(port, ctx, path="/", sni="backend.test", session=None, headers=(), close=True):
    """One request on a new TLS connection; returns (raw response, ssl socket facts)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    s = ctx.wrap_socket(raw, server_hostname=sni, session=session)
    try:
        req = f"GET {path} HTTP/1.1\r\nHost: backend.test\r\n"
        for k, v in headers:
            req += f"{k}: {v}\r\n"
        if close:
            req += "Connection: close\r\n"
        s.sendall((req + "\r\n").encode())
        resp = read_all(s)
        facts = {"version": s.version(), "cipher": s.cipher()[0], "reused": s.session_reused,
                 "session": s.session}
    finally:
        s.close()
    return resp, facts


def parse_response(resp):
    head, _, body = resp.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, body


# ---- start, basics -----------------------------------------------------------

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


# ---- sessions ---------------------------------------------------------------

def resume_twice(b, ctx):
    _, f1 = get(b.port, ctx)
    _, f2 = get(b.port, ctx, session=f1["session"])
    b.wait_for("close", conn=2)
    return f1, f2


def test_tls12_session_id_resumption(pki, backends):
    b = backends(pki, "--tickets", "off")
    f1, f2 = resume_twice(b, client_ctx(pki, maxv=ssl.TLSVersion.TLSv1_2))
    assert f1["version"] == "TLSv1.2" and f2["reused"] is True
    assert b.events("handshake", 1)[0]["resumed"] is False
    assert b.events("handshake", 2)[0]["resumed"] is True
    ch2 = b.events("client_hello", 2)[0]
    assert ch2["session_id_len"] == 32 and ch2["ticket_offered"] is False


def test_tls12_ticket_resumption(pki, backends):
    b = backends(pki, "--session-cache", "off")
    f1, f2 = resume_twice(b, client_ctx(pki, maxv=ssl.TLSVersion.TLSv1_2))
    assert f2["reused"] is True
    assert b.events("client_hello", 2)[0]["ticket_offered"] is True
    assert b.events("handshake", 2)[0]["resumed"] is True


def test_tls13_ticket_resumption(pki, backends):
    b = backends(pki)
    f1, f2 = resume_twice(b, client_ctx(pki))
    assert f1["version"] == "TLSv1.3" and f2["reused"] is True
    assert b.events("client_hello", 1)[0]["psk_offered"] is False
    assert b.events("client_hello", 2)[0]["psk_offered"] is True
    assert b.events("handshake", 2)[0]["resumed"] is True


def test_tls13_stateful_resumption_cache_on_tickets_off(pki, backends):
    b = backends(pki, "--tickets", "off")
    _, f2 = resume_twice(b, client_ctx(pki))
    assert f2["reused"] is True
    assert b.events("handshake", 2)[0]["resumed"] is True


@pytest.mark.parametrize("maxv", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_no_resumption_when_cache_and_tickets_off(pki, backends, maxv):
    b = backends(pki, "--session-cache", "off", "--tickets", "off")
    f1, f2 = resume_twice(b, client_ctx(pki, maxv=maxv))
    assert f2["reused"] is False
    assert b.events("handshake", 2)[0]["resumed"] is False
    if maxv == ssl.TLSVersion.TLSv1_3:
        assert b.events("client_hello", 2)[0]["psk_offered"] is False  # no ticket was issued


# ---- client certificates ----------------------------------------------------

def test_client_auth_require_without_cert(pki, backends):
    b = backends(pki, "--client-auth", "require", "--client-ca", os.path.join(pki, "cliroot.pem"))
    with pytest.raises((ssl.SSLError, ConnectionResetError, OSError)):
        resp, _ = get(b.port, client_ctx(pki))
        assert not resp.startswith(b"HTTP/1.1 200")
        raise ssl.SSLError("no response")
    hs = b.wait_for("handshake", conn=1)[0]
    assert hs["ok"] is False
    assert "peer did not return a certificate" in hs["error"]
    assert hs["error_class"] == "SSL_ERROR_SSL"
    assert hs["alert"]["direction"] == "sent"
    assert b.events("request") == []


def test_client_auth_with_cert(pki, backends):
    b = backends(pki, "--client-auth", "require", "--client-ca", os.path.join(pki, "cliroot.pem"))
    resp, _ = get(b.port, client_ctx(pki, cert=True))
    assert parse_response(resp)[0] == 200
    hs = b.wait_for("handshake", conn=1)[0]
    subject, issuer, sha = cert_facts(os.path.join(pki, "cli.pem"))
    cc = hs["client_cert"]
    assert cc["subject"] == subject
    assert cc["issuer"] == issuer == "CN=uptls client root"
    assert cc["sha256"] == sha
    assert cc["chain_len"] == 1
    assert cc["verify"] == "ok"
    # the raw log line is one valid JSON line even with quotes/backslashes/UTF-8
    assert '\\"test\\"' in subject or '"test"' in subject


def test_client_auth_request_records_untrusted(pki, backends):
    # request mode: any certificate is accepted; the verify result is recorded
    b = backends(pki, "--client-auth", "request", "--client-ca", os.path.join(pki, "root.pem"))
    resp, _ = get(b.port, client_ctx(pki, cert=True))
    assert parse_response(resp)[0] == 200
    cc = b.wait_for("handshake", conn=1)[0]["client_cert"]
    assert cc["verify"] != "ok"
    resp, _ = get(b.port, client_ctx(pki))
    assert parse_response(resp)[0] == 200
    assert b.wait_for("handshake", conn=2)[0]["client_cert"] is None


def test_client_auth_resumption(pki, backends):
    b = backends(pki, "--client-auth", "require", "--client-ca", os.path.join(pki, "cliroot.pem"),
                 "--tickets", "off")
    f1, f2 = resume_twice(b, client_ctx(pki, cert=True, maxv=ssl.TLSVersion.TLSv1_2))
    assert f2["reused"] is True
    hs = b.events("handshake", 2)[0]
    assert hs["resumed"] is True and hs["client_cert"]["sha256"] == cert_facts(
        os.path.join(pki, "cli.pem"))[2]


# ---- versions and ciphers ---------------------------------------------------

def test_min_proto_tls13_refuses_tls12_client(pki, backends):
    b = backends(pki, "--min-proto", "TLSv1.3")
    with pytest.raises(ssl.SSLError):
        get(b.port, client_ctx(pki, maxv=ssl.TLSVersion.TLSv1_2))
    hs = b.wait_for("handshake", conn=1)[0]
    assert hs["ok"] is False
    assert "unsupported protocol" in hs["error"]
    assert hs["alert"] == {"direction": "sent", "name": "protocol version", "code": 70}
    assert b.events("client_hello", 1)[0]["versions"] == ["TLSv1.2"]


def test_max_proto_tls12(pki, backends):
    b = backends(pki, "--max-proto", "TLSv1.2")
    _, f = get(b.port, client_ctx(pki))
    assert f["version"] == "TLSv1.2"
    assert b.wait_for("handshake", conn=1)[0]["version"] == "TLSv1.2"


def test_ciphers_restriction(pki, backends):
    b = backends(pki, "--max-proto", "TLSv1.2", "--ciphers", "ECDHE-ECDSA-AES128-SHA256")
    _, f = get(b.port, client_ctx(pki, ciphers="ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-SHA256"))
    assert f["cipher"] == "ECDHE-ECDSA-AES128-SHA256"
    assert b.wait_for("handshake", conn=1)[0]["cipher"] == "ECDHE-ECDSA-AES128-SHA256"
    with pytest.raises(ssl.SSLError):
        get(b.port, client_ctx(pki, ciphers="ECDHE-ECDSA-AES256-GCM-SHA384"))
    hs = b.wait_for("handshake", conn=2)[0]
    assert hs["ok"] is False and "no shared cipher" in hs["error"]
    offered = b.events("client_hello", 2)[0]["ciphers"]
    assert "ECDHE-ECDSA-AES256-GCM-SHA384" in offered
    assert "ECDHE-ECDSA-AES128-SHA256" not in offered


def test_ciphersuites_restriction(pki, backends):
    b = backends(pki, "--ciphersuites", "TLS_CHACHA20_POLY1305_SHA256")
    _, f = get(b.port, client_ctx(pki))
    assert f["cipher"] == "TLS_CHACHA20_POLY1305_SHA256"


def test_tls10_with_seclevel0(pki, backends):
    b = backends(pki, "--min-proto", "TLSv1", "--max-proto", "TLSv1", "--ciphers", "DEFAULT:@SECLEVEL=0")
    ctx = client_ctx(pki, minv=ssl.TLSVersion.TLSv1, maxv=ssl.TLSVersion.TLSv1,
                     ciphers="DEFAULT:@SECLEVEL=0")
    _, f = get(b.port, ctx)
    assert f["version"] == "TLSv1"
    assert b.wait_for("handshake", conn=1)[0]["version"] == "TLSv1"


# ---- HTTP errors ------------------------------------------------------------

def raw_exchange(b, pki, payload, pause=0.0):
    raw = socket.create_connection(("127.0.0.1", b.port), timeout=5)
    s = client_ctx(pki).wrap_socket(raw, server_hostname="backend.test")
    s.sendall(payload)
    if pause:
        time.sleep(pause)
    data = read_all(s)
    s.close()
    return data


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


# ---- faults -----------------------------------------------------------------

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


# ---- command line, signals ----------------------------------------------------

def run_cli(*args):
    return subprocess.run([BACKEND, *args], capture_output=True, timeout=10)


def test_unknown_fault_exits_2(pki):
    r = run_cli("--name", "x", "--cert", "c", "--key", "k", "--fault", "explode")
    assert r.returncode == 2
    err = r.stderr.decode()
    assert "explode" in err and "stall-handshake" in err and "slow-response" in err


@pytest.mark.parametrize("opt,val,allowed", [
    ("--client-auth", "maybe", "none, request, require"),
    ("--min-proto", "TLSv1.4", "TLSv1, TLSv1.1, TLSv1.2, TLSv1.3"),
    ("--session-cache", "yes", "on, off"),
    ("--port", "70000", "0..65535"),
])
def test_bad_option_value_exits_2(pki, opt, val, allowed):
    r = run_cli("--name", "x", "--cert", "c", "--key", "k", opt, val)
    assert r.returncode == 2
    err = r.stderr.decode()
    assert opt in err and val in err and allowed in err


def test_unknown_option_and_missing_required(pki):
    r = run_cli("--bogus")
    assert r.returncode == 2
    err = r.stderr.decode()
    assert "--bogus" in err and "--name: required" in err and "--cert: required" in err


def test_unloadable_cert_exits_2(pki):
    r = run_cli("--name", "x", "--cert", "/nonexistent.pem", "--key", os.path.join(pki, "srv.key"))
    assert r.returncode == 2 and "--cert" in r.stderr.decode()
    r = run_cli("--name", "x", "--cert", os.path.join(pki, "chain.pem"), "--key",
                os.path.join(pki, "cli.key"))
    assert r.returncode == 2 and "--key" in r.stderr.decode()
    assert "mismatch" in r.stderr.decode()
    r = run_cli("--name", "x", "--cert", os.path.join(pki, "chain.pem"), "--key",
                os.path.join(pki, "srv.key"), "--ciphers", "NOPE")
    assert r.returncode == 2 and "--ciphers" in r.stderr.decode()


def test_help_from_table():
    r = run_cli("-h")
    assert r.returncode == 0
    out = r.stdout.decode()
    for opt in ("--name", "--cert", "--client-auth", "--tickets", "--fault", "--log"):
        assert opt in out
    assert "reset-after-headers" in out


def test_sigterm_exits_0_promptly(pki, backends):
    b = backends(pki)
    idle = socket.create_connection(("127.0.0.1", b.port))
    s = client_ctx(pki).wrap_socket(socket.create_connection(("127.0.0.1", b.port)),
                                    server_hostname="backend.test")
    b.wait_for("handshake", count=1)
    t0 = time.monotonic()
    assert b.stop(timeout=3) == 0
    assert time.monotonic() - t0 < 1.0
    reasons = {e["reason"] for e in b.events("close")}
    assert reasons == {"shutdown"}
    idle.close()
    s.close()


def test_dies_with_its_parent(pki, tmp_path):
    # PR_SET_PDEATHSIG: the backend gets SIGTERM when the process that
    # started it exits, so it never outlives the harness.
    script = (
        "import subprocess, sys\n"
        "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE)\n"
        "print(p.stdout.readline().decode().strip(), flush=True)\n")
    parent = subprocess.run(
        [sys.executable, "-c", script, BACKEND, "--name", "orphan",
         "--cert", os.path.join(pki, "chain.pem"), "--key", os.path.join(pki, "srv.key"),
         "--log", str(tmp_path / "log.jsonl")], capture_output=True, timeout=10)
    pid = json.loads(parent.stdout)["pid"]
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
        with open(f"/proc/{pid}/stat") as f:
            if f.read().split(")")[1].split()[0] == "Z":
                break  # exited, waiting to be reaped by init
        time.sleep(0.05)
    else:
        assert not os.path.exists(f"/proc/{pid}"), "backend outlived its parent"


def test_log_to_stdout_by_default(pki):
    p = subprocess.Popen([BACKEND, "--name", "so", "--cert", os.path.join(pki, "chain.pem"),
                          "--key", os.path.join(pki, "srv.key")], stdout=subprocess.PIPE)
    port = json.loads(p.stdout.readline())["port"]
    get(port, client_ctx(pki))
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=5)
    kinds = [json.loads(x)["event"] for x in out.decode().splitlines()]
    assert kinds == ["accept", "client_hello", "handshake", "request", "close"]
    assert p.returncode == 0


def test_many_concurrent_connections(pki, backends):
    b = backends(pki, "--max-proto", "TLSv1.2")
    ctx = client_ctx(pki)
    results = []

    def one():
        try:
            resp, _ = get(b.port, ctx)
            results.append(parse_response(resp)[0])
        except Exception as e:  # noqa: BLE001 - recorded and asserted below
            results.append(repr(e))
    threads = [threading.Thread(target=one) for _ in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(200) == 200, [r for r in results if r != 200][:5]
    b.wait_for("close", count=200)
    assert len({e["conn"] for e in b.events("handshake")}) == 200


# ---- many listeners in one process (--listeners) ----------------------------

class Listeners:
    """One uptls-backend process serving the listeners described by specs
    (dicts, the JSON keys of --listeners), each with its own log."""

    def __init__(self, pki, specs, via_stdin=False):
        d = tempfile.mkdtemp(prefix="listeners-", dir=pki)
        self.logs, lines = [], []
        for i, spec in enumerate(specs):
            full = {"cert": os.path.join(pki, "chain.pem"), "key": os.path.join(pki, "srv.key"),
                    "log": os.path.join(d, f"l{i + 1}.jsonl"), **spec}
            self.logs.append(full["log"])
            lines.append(json.dumps(full))
        text = "# one listener per line\n" + "\n\n".join(lines) + "\n"
        if via_stdin:
            argv, stdin = [BACKEND, "--listeners", "-"], subprocess.PIPE
        else:
            path = os.path.join(d, "listeners.jsonl")
            with open(path, "w") as f:
                f.write(text)
            argv, stdin = [BACKEND, "--listeners", path], subprocess.DEVNULL
        self.proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        if via_stdin:
            self.proc.stdin.write(text.encode())
            self.proc.stdin.close()
        self.lines = []
        while True:
            line = self.proc.stdout.readline()
            assert line, f"backend did not start: {self.proc.stderr.read().decode()}"
            self.lines.append(json.loads(line))
            if self.lines[-1]["event"] == "ready":
                break
        self.ports = [x["port"] for x in self.lines[:-1]]

    def backend(self, i):
        """The i-th listener (0-based) as a Backend, for its events."""
        b = Backend.__new__(Backend)
        b.name, b.log, b.port, b.proc = None, self.logs[i], self.ports[i], self.proc
        return b

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=5)
        self.stderr = self.proc.stderr.read().decode(errors="replace")
        self.proc.stdout.close()
        self.proc.stderr.close()
        return rc


@pytest.fixture
def listeners():
    started = []

    def start(pki, specs, **kw):
        ls = Listeners(pki, specs, **kw)
        started.append(ls)
        return ls
    yield start
    for ls in started:
        if ls.proc.returncode is None:
            assert ls.stop() == 0, ls.stderr
            assert ls.stderr == "", ls.stderr


@pytest.mark.parametrize("via_stdin", [False, True])
def test_listeners_lines_and_own_configs(pki, listeners, via_stdin):
    ls = listeners(pki, [{"name": "b1"},
                         {"name": "b1", "max-proto": "TLSv1.2", "tickets": False,
                          "close-after-response": True},
                         {"name": "b2", "client-auth": "require",
                          "client-ca": os.path.join(pki, "cliroot.pem"), "idle-timeout": 30,
                          "fault": [], "session-cache": "off", "port": 0},
                         {"name": "b3", "fault": "non-tls"}],
                   via_stdin=via_stdin)
    pid = ls.proc.pid
    assert ls.lines == [
        {"event": "listening", "listener": 1, "name": "b1", "port": ls.ports[0], "pid": pid},
        {"event": "listening", "listener": 2, "name": "b1", "port": ls.ports[1], "pid": pid},
        {"event": "listening", "listener": 3, "name": "b2", "port": ls.ports[2], "pid": pid},
        {"event": "listening", "listener": 4, "name": "b3", "port": ls.ports[3], "pid": pid},
        {"event": "ready", "listeners": 4, "pid": pid}]
    assert len(set(ls.ports)) == 4
    ctx = client_ctx(pki)
    r1, f1 = get(ls.ports[0], ctx, "/one")
    r2, f2 = get(ls.ports[1], ctx, "/two", close=False)
    r3, _ = get(ls.ports[2], client_ctx(pki, cert=True), "/three")
    assert f1["version"] == "TLSv1.3" and f2["version"] == "TLSv1.2"
    assert parse_response(r1)[1]["x-uptls-backend"] == "b1"
    assert parse_response(r2)[1]["connection"] == "close"  # close-after-response
    assert parse_response(r3)[1]["x-uptls-backend"] == "b2"
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        get(ls.ports[2], ctx, "/no-cert")  # client-auth require
    with socket.create_connection(("127.0.0.1", ls.ports[3]), timeout=5) as s:
        s.sendall(b"\x16\x03\x01\x00\x05hello")
        assert read_all(s).startswith(b"HTTP/1.1 200 OK\r\n")  # its own fault only
    b = [ls.backend(i) for i in range(4)]
    assert "non-tls" in b[3].wait_for("handshake")[0]["error"]
    b[0].wait_for("close")
    b[1].wait_for("close")
    b[2].wait_for("close", count=2)
    # each listener logs only its own connections, numbered from 1
    assert [e["path"] for e in b[0].events("request")] == ["/one"]
    assert [e["path"] for e in b[1].events("request")] == ["/two"]
    assert [e["path"] for e in b[2].events("request")] == ["/three"]
    assert [e["conn"] for e in b[2].events("handshake")] == [1, 2]
    assert {e["name"] for e in b[2].events()} == {"b2"}
    for i in range(4):  # every line says which listener wrote it
        assert {e["listener"] for e in b[i].events()} == {i + 1}
    hs = b[2].events("handshake")
    assert hs[0]["client_cert"]["chain_len"] == 1 and hs[1]["ok"] is False


@pytest.mark.parametrize("maxv,opts", [
    (ssl.TLSVersion.TLSv1_2, {"tickets": False}),        # session ids, server cache
    (ssl.TLSVersion.TLSv1_2, {"session-cache": False}),  # TLS 1.2 tickets
    (ssl.TLSVersion.TLSv1_3, {}),                        # TLS 1.3 tickets
    (ssl.TLSVersion.TLSv1_3, {"tickets": False}),        # TLS 1.3 stateful
])
def test_listeners_never_share_sessions(pki, listeners, maxv, opts):
    # Same certificate, same options, one process: a session one listener
    # issued is still only ever resumed by that listener.
    ls = listeners(pki, [{"name": "b1", **opts}, {"name": "b2", **opts}])
    ctx = client_ctx(pki, maxv=maxv)
    _, f1 = get(ls.ports[0], ctx)
    _, other = get(ls.ports[1], ctx, session=f1["session"])
    _, same = get(ls.ports[0], ctx, session=f1["session"])
    assert other["reused"] is False and same["reused"] is True
    b1, b2 = ls.backend(0), ls.backend(1)
    b1.wait_for("close", count=2)
    b2.wait_for("close")
    assert [h["resumed"] for h in b1.events("handshake")] == [False, True]
    assert [h["resumed"] for h in b2.events("handshake")] == [False]


def test_listeners_sharing_one_log(pki, tmp_path, listeners):
    # same name, same log: the listener field tells their lines apart
    log = str(tmp_path / "shared.jsonl")
    ls = listeners(pki, [{"name": "b1", "log": log}, {"name": "b1", "log": log}])
    for i, port in enumerate(ls.ports * 2):
        get(port, client_ctx(pki), f"/{i}")
    b = ls.backend(0)
    b.wait_for("close", count=4)
    paths = {(e["listener"], e["conn"], e["path"]) for e in b.events("request")}
    assert paths == {(1, 1, "/0"), (2, 1, "/1"), (1, 2, "/2"), (2, 2, "/3")}


def test_listeners_sigterm_closes_every_listener(pki, listeners):
    ls = listeners(pki, [{"name": "b1"}, {"name": "b2"}])
    socks = [client_ctx(pki).wrap_socket(socket.create_connection(("127.0.0.1", p)),
                                         server_hostname="backend.test") for p in ls.ports]
    for i in range(2):
        ls.backend(i).wait_for("handshake")
    assert ls.stop() == 0 and ls.stderr == ""
    for i in range(2):
        assert [e["reason"] for e in ls.backend(i).events("close")] == ["shutdown"]
    for s in socks:
        s.close()


def test_listeners_json_strings(pki, tmp_path, listeners):
    # escapes and non-ASCII in a value (here the log path) are decoded
    d = tmp_path / "l\u00f6g \"x\""
    d.mkdir()
    ls = listeners(pki, [{"name": "b1", "log": str(d / "b1.jsonl")}])
    get(ls.ports[0], client_ctx(pki))
    b = ls.backend(0)
    b.wait_for("close")
    assert b.events("request")[0]["name"] == "b1"


def run_listeners(pki, text):
    return subprocess.run([BACKEND, "--listeners", "-"], input=text.encode(),
                          capture_output=True, timeout=10)


def test_listeners_bad_specs_exit_2_naming_listener_and_option(pki, tmp_path):
    cert, key = os.path.join(pki, "chain.pem"), os.path.join(pki, "srv.key")
    good = {"cert": cert, "key": key, "log": str(tmp_path / "good.jsonl")}
    lines = [
        json.dumps({"name": "ok1", **good}),
        json.dumps({"name": "bad2", **good, "ciphers": "NOPE"}),
        json.dumps({"name": "bad3", "cert": cert, "key": key, "tickets": "maybe",
                    "fault": ["explode"], "bogus": 1, "port": 70000}),
        '{"name": "bad4", "cert": ',
        json.dumps({"name": "bad5", **good, "close-after-response": "yes",
                    "min-proto": "TLSv1.3", "max-proto": "TLSv1.2"})[:-1] + ', "name": "x"}',
        json.dumps({"name": "bad6", **good, "cert": "/nonexistent.pem"}),
        json.dumps({"key": key, "cert": cert}),
    ]
    r = run_listeners(pki, "\n".join(lines) + "\n")
    assert r.returncode == 2 and r.stdout == b""  # nothing listened
    err = r.stderr.decode().splitlines()
    assert all(x.startswith("uptls-backend: listener ") for x in err), err

    def said(n, name, *words):
        return any(x.startswith(f"uptls-backend: listener {n} '{name}'")
                   and all(w in x for w in words) for x in err)
    assert not any("listener 1 " in x for x in err)
    assert said(2, "bad2", "--ciphers", "NOPE")
    assert said(3, "bad3", "--tickets", "maybe", "on, off")
    assert said(3, "bad3", "--fault", "explode", "stall-handshake")
    assert said(3, "bad3", "unknown key 'bogus'")
    assert said(3, "bad3", "--port", "70000")
    assert said(4, "bad4", "line 4", "bad JSON")
    assert said(5, "bad5", "--close-after-response", "true, false")
    assert said(5, "bad5", "--name: given twice")
    assert said(5, "bad5", "--min-proto: higher than --max-proto")
    assert said(6, "bad6", "--cert", "/nonexistent.pem")
    assert said(7, "?", "--name: required")


def test_listeners_takes_no_other_option_and_needs_one_listener(pki, tmp_path):
    r = run_cli("--listeners", "-", "--name", "x")
    assert r.returncode == 2 and "--listeners: takes no other option" in r.stderr.decode()
    r = run_listeners(pki, "# nothing\n\n")
    assert r.returncode == 2 and "no listener given" in r.stderr.decode()
    r = run_cli("--listeners", str(tmp_path / "missing.jsonl"))
    assert r.returncode == 2 and "missing.jsonl" in r.stderr.decode()
    assert "--listeners" in run_cli("-h").stdout.decode()


# ---- nginx as the client ------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not os.access(NGINX, os.X_OK), reason="nginx not installed")
def test_nginx_upstream_session_reuse(pki, backends, tmp_path):
    b = backends(pki)
    port = free_port()
    (tmp_path / "logs").mkdir()
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"""
user root;
worker_processes 1;
error_log {tmp_path}/logs/error.log info;
pid {tmp_path}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp_path}/body;
    proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fcgi;
    uwsgi_temp_path {tmp_path}/uwsgi;
    scgi_temp_path {tmp_path}/scgi;
    upstream be {{ server 127.0.0.1:{b.port}; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass https://be;
            proxy_ssl_server_name on;
            proxy_ssl_name backend.test;
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate {pki}/root.pem;
            proxy_ssl_verify_depth 2;
            proxy_ssl_certificate {pki}/cli.pem;
            proxy_ssl_certificate_key {pki}/cli.key;
            proxy_ssl_session_reuse on;
        }}
    }}
}}
""")
    ngx = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(conf), "-g", "daemon off;"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        bodies = []
        for _ in range(2):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(b"GET /via-nginx HTTP/1.1\r\nHost: front\r\nConnection: close\r\n\r\n")
                bodies.append(parse_response(read_all(s)))
        assert [x[0] for x in bodies] == [200, 200], bodies
        b.wait_for("close", count=2)
        hs = b.events("handshake")
        assert [h["resumed"] for h in hs] == [False, True]
        assert all(h["sni"] == "backend.test" for h in hs)
        assert hs[0]["version"] == "TLSv1.2"  # nginx 1.22 offers no TLS 1.3 upstream
        # nginx sends its client certificate only when asked: not here
        assert hs[0]["client_cert"] is None
        ch = b.events("client_hello")
        assert ch[1]["ticket_offered"] is True
        assert b.events("request")[0]["path"] == "/via-nginx"
    finally:
        ngx.send_signal(signal.SIGQUIT)
        try:
            ngx.wait(timeout=5)
        except subprocess.TimeoutExpired:
            ngx.terminate()
            ngx.wait()
        ngx.stderr.close()
