"""Tests for uptls-backend's TLS-layer faults (backend_fault_tls.c,
backend_fault_chain.c, backend_fault_flight.c) and --list-faults, driven
through the command line, the wire (Python's ssl module, the openssl CLI)
and the JSON-lines log.

Run: /usr/bin/python3 -m pytest harness/backend/test_backend_faults_tls.py
Set UPTLS_BACKEND_BIN to test another build (e.g. the sanitizer build).
"""

import base64
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BACKEND = os.environ.get("UPTLS_BACKEND_BIN", os.path.join(ROOT, "bin", "uptls-backend"))
FAULT_TABLE = os.path.join(ROOT, "harness", "backend", "backend_fault.c")
REQUEST = b"GET /x HTTP/1.1\r\nHost: backend.test\r\nConnection: close\r\n\r\n"


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.fixture(scope="module")
def pki():
    """root -> int1 -> int2 -> leaf (backend.test); chain.pem = leaf, int2, int1."""
    d = tempfile.mkdtemp(prefix="uptls-backend-faults-")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    with open(os.path.join(d, "ca.ext"), "w") as f:
        f.write("basicConstraints=critical,CA:true\nkeyUsage=critical,keyCertSign,cRLSign\n")
    with open(os.path.join(d, "srv.ext"), "w") as f:
        f.write("subjectAltName=DNS:backend.test\n")
    openssl("req", "-x509", *ec, "-keyout", "root.key", "-out", "root.pem",
            "-subj", "/CN=uptls faults root", "-days", "2", cwd=d)
    issuer = "root"
    for name, ext in (("int1", "ca.ext"), ("int2", "ca.ext"), ("srv", "srv.ext")):
        cn = "backend.test" if name == "srv" else f"uptls faults {name}"
        openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}",
                cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{issuer}.pem", "-CAkey",
                f"{issuer}.key", "-CAcreateserial", "-out", f"{name}.pem", "-days", "2",
                "-extfile", ext, cwd=d)
        issuer = name
    with open(os.path.join(d, "chain.pem"), "w") as out:
        for name in ("srv.pem", "int2.pem", "int1.pem"):
            with open(os.path.join(d, name)) as f:
                out.write(f.read())
    yield d
    shutil.rmtree(d, ignore_errors=True)


class Backend:
    def __init__(self, pki, *extra):
        self.log = os.path.join(pki, f"log-{time.monotonic_ns()}.jsonl")
        argv = [BACKEND, "--name", "b1", "--cert", os.path.join(pki, "chain.pem"),
                "--key", os.path.join(pki, "srv.key"), "--log", self.log, *extra]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.proc.stdout.readline()
        assert line, f"backend did not start: {self.proc.stderr.read().decode()}"
        self.port = json.loads(line)["port"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=5)
        self.stderr = self.proc.stderr.read().decode(errors="replace")
        self.proc.stdout.close()
        self.proc.stderr.close()
        return rc

    def events(self, kind=None):
        try:
            with open(self.log) as f:
                evs = [json.loads(x) for x in f if x.strip()]
        except FileNotFoundError:
            return []
        return [e for e in evs if kind is None or e["event"] == kind]

    def wait_for(self, kind, count=1, timeout=5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.events(kind)) >= count:
                return self.events(kind)
            time.sleep(0.02)
        raise AssertionError(f"no {count} {kind} event(s): {self.events()}")


@pytest.fixture
def backend(pki):
    started = []

    def start(*extra):
        b = Backend(pki, *extra)
        started.append(b)
        return b
    yield start
    for b in started:
        assert b.stop() == 0, b.stderr
        # a sanitizer build reports on stderr; a clean exit writes nothing there
        assert "ERROR: AddressSanitizer" not in b.stderr and "runtime error" not in b.stderr


def client_ctx(pki, version=None, verify=True):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        ctx.load_verify_locations(os.path.join(pki, "root.pem"))
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if version:
        ctx.minimum_version = ctx.maximum_version = version
    return ctx


def fetch(b, ctx, timeout=5):
    """(response bytes, the exception that ended the read or None)."""
    data, err = b"", None
    with socket.create_connection(("127.0.0.1", b.port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname="backend.test",
                             suppress_ragged_eofs=False) as s:
            try:
                s.sendall(REQUEST)
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except (ssl.SSLError, OSError) as e:
                err = e
    return data, err


def whole(resp):
    head, _, body = resp.partition(b"\r\n\r\n")
    m = re.search(rb"Content-Length: (\d+)", head)
    return head.startswith(b"HTTP/1.1 200") and m and len(body) == int(m.group(1))


def test_list_faults_names_each_fault_first_with_its_help():
    out = subprocess.run([BACKEND, "--list-faults"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0 and out.stderr == ""
    rows = [ln.split(None, 1) for ln in out.stdout.splitlines()]
    assert len(rows) >= 25 and all(len(r) == 2 and r[1].strip() for r in rows), out.stdout
    names = [r[0] for r in rows]
    assert len(set(names)) == len(names)
    source = open(FAULT_TABLE).read()
    for name in names:   # documented where defined, by a comment starting with its name
        assert re.search(r"/\* " + re.escape(name) + r":", source), name
    tls = names[names.index("hello-request-before-response"):]
    assert len(tls) >= 15


@pytest.mark.parametrize("fault", ["key-update-before-response", "key-update-mid-body",
                                   "key-update-flood"])
def test_key_updates_then_the_whole_response(pki, backend, fault):
    b = backend("--fault", fault, "--min-proto", "TLSv1.3")
    resp, err = fetch(b, client_ctx(pki))
    assert whole(resp), (resp, err)
    ev = b.wait_for("fault")[0]
    assert ev["fault"] == fault and "update_requested" in ev["detail"]
    assert ev["detail"].startswith("32 " if fault == "key-update-flood" else "1 ")


@pytest.mark.parametrize("fault", ["hello-request-before-response", "hello-request-mid-body"])
def test_hello_request_then_the_whole_response(pki, backend, fault):
    b = backend("--fault", fault, "--max-proto", "TLSv1.2")
    resp, err = fetch(b, client_ctx(pki))
    assert whole(resp), (resp, err)
    assert b.wait_for("fault")[0]["detail"] == "HelloRequest sent"


def test_renegotiation_presents_an_untrusted_certificate(pki, backend):
    b = backend("--fault", "renegotiate-other-cert", "--max-proto", "TLSv1.2")
    # a verifying client renegotiates and fails on the self-signed certificate
    resp, err = fetch(b, client_ctx(pki))
    assert resp == b"" and isinstance(err, ssl.SSLError), (resp, err)
    hellos = b.wait_for("client_hello", 2)
    assert [h["renegotiation"] for h in hellos] == [False, True]
    # one that does not verify gets the response once the renegotiation is done
    resp, err = fetch(b, client_ctx(pki, verify=False))
    assert whole(resp), (resp, err)
    assert any(e["detail"].startswith("renegotiation completed") for e in b.events("fault"))


def test_hello_retry_request(pki, backend):
    b = backend("--fault", "hello-retry-request", "--min-proto", "TLSv1.3")
    resp, err = fetch(b, client_ctx(pki))
    assert whole(resp), (resp, err)
    assert [h["after_hrr"] for h in b.wait_for("client_hello", 2)] == [False, True]


def presented(pki, b):
    """Subjects of the certificates the backend sent, in order (openssl s_client)."""
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{b.port}",
                          "-showcerts", "-CAfile", os.path.join(pki, "root.pem")],
                         input="", capture_output=True, text=True, timeout=20).stdout
    return re.findall(r"^ *\d+ s:(.*)$", out, re.M), "Verify return code: 0 (ok)" in out


@pytest.mark.parametrize("fault,want", [
    ("chain-reversed", ["backend.test", "uptls faults int1", "uptls faults int2"]),
    ("chain-duplicate", ["backend.test", "uptls faults int2", "uptls faults int2",
                         "uptls faults int1", "uptls faults int1"]),
    ("chain-extra-unrelated", ["backend.test", "uptls-extra-0.invalid", "uptls faults int2",
                               "uptls faults int1"]),
])
def test_chain_faults_change_the_certificate_list(pki, backend, fault, want):
    subjects, verified = presented(pki, backend("--fault", fault))
    assert [s.split("CN = ")[-1] for s in subjects] == want
    assert verified   # a valid path still exists (RFC 8446 4.4.2)


def test_chain_100_certs_and_60kb(pki, backend):
    subjects, verified = presented(pki, backend("--fault", "chain-100-certs"))
    assert len(subjects) == 100 and verified
    b = backend("--fault", "chain-60kb")
    subjects, verified = presented(pki, b)
    assert verified and len(subjects) > 3
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{b.port}", "-showcerts"],
                         input="", capture_output=True, text=True, timeout=20).stdout
    ders = re.findall(r"-----BEGIN CERTIFICATE-----\n(.*?)-----END", out, re.S)
    assert sum(len(base64.b64decode(d)) for d in ders) > 60 * 1024


def client_hello():
    """A ClientHello's bytes, from a memory-BIO client."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="backend.test")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return out.read()


def test_dribble_handshake_one_byte_at_a_time(backend):
    b = backend("--fault", "dribble-handshake")
    with socket.create_connection(("127.0.0.1", b.port), timeout=5) as s:
        s.sendall(client_hello())
        got, reads, t0 = b"", 0, time.monotonic()
        while time.monotonic() - t0 < 0.3:
            chunk = s.recv(4096)
            assert chunk
            got, reads = got + chunk, reads + 1
    # the ServerHello record starts, a few bytes of the ~1 KB flight in 0.3 s,
    # in about as many reads as bytes (a loaded machine may join two)
    assert got[:1] == b"\x16"
    assert 2 <= len(got) <= 200 and reads >= len(got) // 2, (len(got), reads)


def test_garbage_after_server_hello(backend):
    b = backend("--fault", "garbage-after-server-hello")
    with socket.create_connection(("127.0.0.1", b.port), timeout=5) as s:
        s.sendall(client_hello())
        got, t0 = b"", time.monotonic()
        while b"\r\n\r\n" not in got and time.monotonic() - t0 < 3:
            got += s.recv(4096)
    first = 5 + int.from_bytes(got[3:5], "big")
    assert got[0] == 0x16 and got[5] == 2    # a handshake record holding a ServerHello
    assert got[first:] == b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


@pytest.mark.parametrize("fault,version", [
    ("oversized-record-mid-body", ssl.TLSVersion.TLSv1_3),
    ("oversized-record-mid-body", ssl.TLSVersion.TLSv1_2),
    ("corrupt-record-mid-body", ssl.TLSVersion.TLSv1_3),
    ("corrupt-record-mid-body", ssl.TLSVersion.TLSv1_2),
])
def test_bad_record_mid_body(pki, backend, fault, version):
    b = backend("--fault", fault)
    resp, err = fetch(b, client_ctx(pki, version))
    assert b"\r\n\r\n" in resp and not whole(resp)
    reason = "RECORD_OVERFLOW|LENGTH_TOO_LONG|too long" if "oversized" in fault \
        else "BAD_RECORD_MAC|DECRYPTION_FAILED|bad record mac"
    assert isinstance(err, ssl.SSLError) and re.search(reason, str(err), re.I), err


def test_close_notify_after_headers(pki, backend):
    b = backend("--fault", "close-notify-after-headers")
    resp, err = fetch(b, client_ctx(pki))
    head, _, body = resp.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and body == b"" and err is None
    assert b.wait_for("close")[0]["reason"] == "fault close-notify-after-headers"


def test_reset_after_handshake(pki, backend):
    b = backend("--fault", "reset-after-handshake")
    resp, err = fetch(b, client_ctx(pki))
    assert resp == b"" and isinstance(err, (ConnectionResetError, ssl.SSLError)), (resp, err)
    assert b.wait_for("close")[0]["reason"] == "fault reset-after-handshake"
    assert b.events("request") == []
