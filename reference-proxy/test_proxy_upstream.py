"""Tests of uptls-proxy (reference-proxy/), stdlib + pytest only.

Run: /usr/bin/python3 -m pytest reference-proxy/test_proxy.py
(builds bin/uptls-proxy first if it is missing; UPTLS_PROXY_BIN overrides).

A throwaway PKI is made with the openssl CLI (tests/testpki.py); upstreams are small Python
`ssl` servers that record each handshake (SNI, client certificate, version,
cipher, resumed) and each request, so the tests judge the proxy by what the
upstream saw on the wire and what the client got back.
Slow checks (valgrind, ASan/UBSan build) run unless UPTLS_PROXY_FAST=1.
"""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest
from testpki import openssl as _openssl, Pki

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(os.environ.get("UPTLS_PROXY_BIN", ROOT / "bin" / "uptls-proxy"))
FAST = os.environ.get("UPTLS_PROXY_FAST") == "1"
SAN = "DNS:localhost,DNS:backend.test,DNS:backend.example.com"


# ---- PKI -------------------------------------------------------------------------------

def _ext(d, name, text):
    p = d / name
    p.write_text(text)
    return p.name


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    p = Pki(d)
    p.ca("root")
    p.ca("int", issuer="root")
    p.ca("other-root")
    p.ca("client-root")
    p.leaf("server", "root", san=SAN)
    p.leaf("server-int", "int", san=SAN, chain=("int",))
    p.leaf("server-wrong", "root", san="DNS:other.test")
    p.leaf("server-ip", "root", san="IP:127.0.0.1")
    p.leaf("server-untrusted", "other-root", san=SAN)
    p.leaf("client", "client-root", san=None, client=True)
    p.encrypt_key("client", "client-enc.key", "s3cret")
    (d / "passwords").write_text("wrong-one\ns3cret\n")
    return d


# ---- upstreams -----------------------------------------------------------------------------

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Backend:
    """A one-file HTTP/1.1 upstream, TLS or plain, that records what it saw."""

    def __init__(self, pki=None, cert="server", client_ca=None, ctx=None, tls=True,
                 max_version=None, close_after=False):
        self.handshakes = []
        self.requests = []
        self.close_after = close_after
        self.ctx = None
        if tls:
            self.ctx = ctx or ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            if ctx is None:
                self.ctx.load_cert_chain(pki / f"{cert}.chain.pem", pki / f"{cert}.key")
                if client_ca:
                    self.ctx.verify_mode = ssl.CERT_REQUIRED
                    self.ctx.load_verify_locations(pki / f"{client_ca}.pem")
                if max_version:
                    self.ctx.maximum_version = max_version
            self.ctx.sni_callback = self._sni
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self._sni_seen = {}
        self._lock = threading.Lock()
        self._conns = 0
        self._stop = False
        threading.Thread(target=self._loop, daemon=True).start()

    def _sni(self, sslobj, name, ctx):
        self._sni_seen[id(sslobj)] = name

    def _loop(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        with self._lock:
            self._conns += 1
            cid = self._conns
        conn.settimeout(10)
        info = {"conn": cid}
        if self.ctx:
            try:
                conn = self.ctx.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError) as e:
                self.handshakes.append({"ok": False, "error": str(e), "conn": cid})
                conn.close()
                return
            peer = conn.getpeercert()
            cn = None
            for rdn in (peer or {}).get("subject", ()):
                for k, v in rdn:
                    if k == "commonName":
                        cn = v
            info.update(ok=True, sni=self._sni_seen.get(id(conn)), resumed=conn.session_reused,
                        version=conn.version(), cipher=conn.cipher()[0], client_cert=cn)
            self.handshakes.append(info)
        f = conn.makefile("rb")
        try:
            while True:
                line = f.readline()
                if not line:
                    break
                method, path, _ = line.decode().split(" ", 2)
                headers = {}
                while True:
                    h = f.readline().decode()
                    if h in ("\r\n", "\n", ""):
                        break
                    k, v = h.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
                body = f.read(int(headers.get("content-length", "0")))
                req = {"method": method, "path": path, "headers": headers,
                       "body": body.decode(errors="replace"), "conn": cid,
                       **{k: info.get(k) for k in ("sni", "resumed", "version", "cipher",
                                                   "client_cert")}}
                self.requests.append(req)
                if path.startswith("/big"):
                    out = b"x" * int(path.split("/")[2])
                elif path.startswith("/chunked"):
                    out = None
                else:
                    out = json.dumps(req).encode()
                close = self.close_after or "close" in headers.get("connection", "").lower()
                if path.startswith("/truncated"):
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
                    break
                if out is None:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                                 + (b"Connection: close\r\n" if close else b"") + b"\r\n"
                                 + b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
                else:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 + f"Content-Length: {len(out)}\r\n".encode()
                                 + (b"Connection: close\r\n" if close else b"") + b"\r\n"
                                 + out)
                if close:
                    break
        except (OSError, ValueError):
            pass
        finally:
            try:
                if isinstance(conn, ssl.SSLSocket):
                    conn.unwrap()
            except (OSError, ValueError):
                pass
            conn.close()

    def close(self):
        self._stop = True
        self.sock.close()


@pytest.fixture
def backends():
    made = []

    def make(*args, **kw):
        b = Backend(*args, **kw)
        made.append(b)
        return b
    yield make
    for b in made:
        b.close()


# ---- the proxy -------------------------------------------------------------------------------

@pytest.fixture(scope="session", autouse=True)
def built():
    if "UPTLS_PROXY_BIN" not in os.environ:
        subprocess.run(["make", "-s", "bin/uptls-proxy"], cwd=ROOT, check=True)
    assert BIN.exists()


def run_t(tmp, text, *extra):
    conf = tmp / "nginx.conf"
    conf.write_text(text)
    return subprocess.run([str(BIN), "-t", "-p", str(tmp), "-c", str(conf), *extra],
                          capture_output=True, text=True, timeout=20)


class Proxy:
    def __init__(self, tmp, http_body, faults=(), wrapper=(), env=None, workers=1):
        self.tmp = tmp
        self.port = free_port()
        self.log = tmp / "error.log"
        body = http_body.replace("LISTEN", f"listen 127.0.0.1:{self.port};")
        self.conf = tmp / "nginx.conf"
        self.conf.write_text(f"worker_processes {workers};\nerror_log {self.log} info;\n"
                             f"pid {tmp}/proxy.pid;\nevents {{ worker_connections 128; }}\n"
                             f"http {{\n{body}\n}}\n")
        args = [*wrapper, str(BIN), "-p", str(tmp), "-c", str(self.conf), "-g", "daemon off;"]
        for f in faults:
            args += ["--fault", f]
        self.out = open(tmp / "proxy.out", "w")
        self.proc = subprocess.Popen(args, stdout=self.out, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})})
        deadline = time.time() + (30 if wrapper else 5)
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("proxy exited: " + (tmp / "proxy.out").read_text()
                                     + self.error_log())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("proxy did not start")

    def error_log(self):
        return self.log.read_text() if self.log.exists() else ""

    def conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)

    def get(self, path, method="GET", body=None, headers=None):
        c = self.conn()
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, data

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.close()
        log = self.error_log()
        assert "[alert]" not in log and "[emerg]" not in log, log
        return log


@pytest.fixture
def proxy(tmp_path):
    made = []

    def make(http_body, **kw):
        p = Proxy(tmp_path, http_body, **kw)
        made.append(p)
        return p
    yield make
    for p in made:
        p.stop()


def tls_loc(pki, backend, extra="", path="/", host="localhost"):
    return (f"location {path} {{ proxy_pass https://{host}:{backend.port}; "
            f"proxy_ssl_trusted_certificate {pki}/root.pem; {extra} }}")


# ---- command line and configuration --------------------------------------------------------------

def test_version():
    r = subprocess.run([str(BIN), "-v"], capture_output=True, text=True)
    assert r.returncode == 0
    assert r.stdout.startswith("uptls-proxy version ")
    assert "nginx proxy_ssl_* semantics" in r.stdout and "OpenSSL 3" in r.stdout


def test_t_good_config(tmp_path):
    r = run_t(tmp_path, "events {}\nhttp { server { listen 127.0.0.1:1; "
                        "location / { return 200 ok; } } }\n")
    assert r.returncode == 0, r.stderr
    assert f"uptls-proxy: the configuration file {tmp_path}/nginx.conf syntax is ok" in r.stderr
    assert "test is successful" in r.stderr


SEED_EXAMPLE = """events {}
http {
    upstream backend.example.com {
        server 127.0.0.1:B1;
        server 127.0.0.1:B2;
   }

    server {
        listen      127.0.0.1:LP;
        server_name www.example.com;

        location /upstream {
            proxy_pass                    https://backend.example.com;
            proxy_ssl_certificate         PKI/client.pem;
            proxy_ssl_certificate_key     PKI/client.key
            proxy_ssl_protocols           TLSv1 TLSv1.1 TLSv1.2;
            proxy_ssl_ciphers             HIGH:!aNULL:!MD5;
            proxy_ssl_trusted_certificate PKI/root.pem;

            proxy_ssl_verify        on;
            proxy_ssl_verify_depth  2;
            proxy_ssl_session_reuse on;
        }
    }
}
"""


def test_seed_article_example(tmp_path, pki, backends):
    """The 'Complete Example' of NGINX's 'Securing HTTP Traffic to Upstream
    Servers' article (proxy half; the backend half is nginx as the upstream):
    its missing ';' is reported with the line; once fixed it runs."""
    b1 = backends(pki, cert="server-int", client_ca="client-root")
    b2 = backends(pki, cert="server", client_ca="client-root")
    port = free_port()
    text = (SEED_EXAMPLE.replace("PKI", str(pki)).replace("B1", str(b1.port))
            .replace("B2", str(b2.port)).replace("LP", str(port)))
    r = run_t(tmp_path, text)
    assert r.returncode == 1
    line = text.splitlines().index("            proxy_ssl_protocols           "
                                   "TLSv1 TLSv1.1 TLSv1.2;") + 1
    assert (f'uptls-proxy: [emerg] invalid number of arguments in "proxy_ssl_certificate_key" '
            f'directive in {tmp_path}/nginx.conf:{line}') in r.stderr
    fixed = text.replace("client.key\n", "client.key;\n")
    assert run_t(tmp_path, fixed).returncode == 0
    conf = tmp_path / "seed.conf"
    conf.write_text(fixed.replace("events {}", f"error_log {tmp_path}/seed.log info;\nevents {{}}"))
    proc = subprocess.Popen([str(BIN), "-p", str(tmp_path), "-c", str(conf)])
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        for i in range(4):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("GET", f"/upstream/{i}")
            r2 = c.getresponse()
            assert r2.status == 200, r2.read()
            r2.read()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    seen = b1.handshakes + b2.handshakes
    assert len(b1.requests) == 2 and len(b2.requests) == 2        # round robin
    assert all(h["ok"] and h["client_cert"] == "client" for h in seen)
    assert all(h["version"] == "TLSv1.2" for h in seen)            # the listed protocols
    assert all(h["sni"] is None for h in seen)                     # SNI is off by default


@pytest.mark.parametrize("text, message", [
    ("events{}\nhttp { server { location / { proxy_ssl_verfiy_depth 2; } } }\n",
     'unknown directive "proxy_ssl_verfiy_depth" in {conf}:2'),
    ("events{}\nhttp { server { } } }\n", 'unexpected "}}" in {conf}:2'),
    ("events{}\nhttp { server { location / { proxy_ssl_verify on",
     'unexpected end of file, expecting ";" or "}}" in {conf}:2'),
    ("events{}\nhttp { server { location / {\n} }\n",
     'unexpected end of file, expecting "}}" in {conf}:4'),
    ("events{}\nhttp { server { location / { proxy_ssl_verify on {} } } }\n",
     'directive "proxy_ssl_verify" is not terminated by ";" in {conf}:2'),
    ("events{}\nhttp { server { location / { proxy_ssl_verify maybe; } } }\n",
     'invalid value "maybe" in "proxy_ssl_verify" directive, it must be "on" or "off" in {conf}:2'),
    ("events{}\nhttp { server { location / { proxy_pass https://127.0.0.1:1;\n"
     "proxy_ssl_verify on; } } }\n",
     'no "proxy_ssl_trusted_certificate" for "proxy_ssl_verify"'),
    ("events{}\nhttp { proxy_buffering off; }\n", 'unknown directive "proxy_buffering" in {conf}:2'),
    ("events{}\nhttp { server { location / { proxy_pass https://no-such-host.invalid; } } }\n",
     'host not found in upstream "no-such-host.invalid:443"'),
    ("events{}\nhttp { proxy_ssl_protocols TLSv1.2 TLSv9; }\n",
     'invalid value "TLSv9" in "proxy_ssl_protocols" directive'),
    ("events{}\nhttp { server { location / { proxy_pass http://127.0.0.1:1; "
     "proxy_pass http://127.0.0.1:2; } } }\n", '"proxy_pass" directive is duplicate'),
    ("events{}\nhttp { server { listen 127.0.0.1:1; } }\nworker_connections 5;\n",
     '"worker_connections" directive is not allowed here in {conf}:3'),
])
def test_t_errors(tmp_path, text, message):
    r = run_t(tmp_path, text)
    assert r.returncode == 1
    assert "uptls-proxy: [emerg] " + message.format(conf=tmp_path / "nginx.conf") in r.stderr, r.stderr
    assert "test failed" in r.stderr


def test_t_collects_every_error(tmp_path):
    r = run_t(tmp_path, "events{}\nhttp {\n foo 1;\n server { listen 127.0.0.1:1;\n"
                        " location / { bar 2; proxy_ssl_verify_depth x; } } }\n")
    assert r.returncode == 1
    assert 'unknown directive "foo"' in r.stderr and 'unknown directive "bar"' in r.stderr
    assert '"proxy_ssl_verify_depth" directive invalid number' in r.stderr


def test_encrypted_key_needs_password_file(tmp_path, pki):
    loc = (f"location / {{ proxy_pass https://127.0.0.1:1; proxy_ssl_certificate "
           f"{pki}/client.pem; proxy_ssl_certificate_key {pki}/client-enc.key; ")
    text = "events{}\nhttp { server { listen 127.0.0.1:1; %s } } }\n"
    r = run_t(tmp_path, text % (loc,))
    assert r.returncode == 1 and "cannot load certificate key" in r.stderr
    assert "never prompts" in r.stderr
    r = run_t(tmp_path, text % (loc + f"proxy_ssl_password_file {pki}/passwords;",))
    assert r.returncode == 0, r.stderr
    assert "s3cret" not in r.stderr


def test_relative_paths_and_include(tmp_path, pki):
    shutil.copy(pki / "root.pem", tmp_path / "ca.pem")
    (tmp_path / "loc.conf").write_text("proxy_ssl_trusted_certificate ca.pem;\n"
                                       "proxy_ssl_verify on;\n")
    r = run_t(tmp_path, "events{}\nhttp { server { listen 127.0.0.1:1; location / {\n"
                        "proxy_pass https://127.0.0.1:1; include loc.conf; } } }\n")
    assert r.returncode == 0, r.stderr


def test_unknown_fault_is_an_error(tmp_path):
    r = run_t(tmp_path, "events{}\n", "--fault", "no-such-fault")
    assert r.returncode == 1 and 'unknown fault "no-such-fault"' in r.stderr
    env = {**os.environ, "UPTLS_PROXY_FAULTS": "skip-verify,bogus"}
    r = subprocess.run([str(BIN), "-t", "-c", str(tmp_path / "nginx.conf")], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 1 and 'unknown fault "bogus"' in r.stderr


# ---- plain HTTP proxying --------------------------------------------------------------------------

def test_plain_proxying(proxy, backends):
    b = backends(tls=False)
    p = proxy(f"server {{ LISTEN location / {{ proxy_pass http://127.0.0.1:{b.port}; }}\n"
              f"location /api/ {{ proxy_pass http://127.0.0.1:{b.port}/v2/; "
              f"proxy_set_header X-Real $remote_addr; proxy_set_header User-Agent \"\"; }}\n"
              f"location = /ret {{ return 201 created; }} }}")
    status, data = p.get("/hello?x=1", headers={"User-Agent": "t", "X-Forwarded-For": "1.2.3.4"})
    assert status == 200
    req = json.loads(data)
    assert req["path"] == "/hello?x=1"
    assert req["headers"]["host"] == f"127.0.0.1:{b.port}"        # $proxy_host
    assert req["headers"]["connection"] == "close"                 # nginx's default
    assert req["headers"]["user-agent"] == "t"
    status, data = p.get("/api/x", headers={"User-Agent": "t"})
    req = json.loads(data)
    assert req["path"] == "/v2/x" and req["headers"]["x-real"] == "127.0.0.1"
    assert "user-agent" not in req["headers"]                      # "" removes it
    assert p.get("/ret") == (201, b"created")
    status, data = p.get("/post", method="POST", body=b"a" * 5000)
    assert json.loads(data)["body"] == "a" * 5000
    # chunked request body, forwarded with a Content-Length
    c = p.conn()
    c.putrequest("POST", "/te-in")
    c.putheader("Transfer-Encoding", "chunked")
    c.endheaders()
    c.send(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    r = c.getresponse()
    req = json.loads(r.read())
    assert req["body"] == "abcde" and req["headers"]["content-length"] == "5"
    c.close()


def test_keepalive_pipelining_and_framing(proxy, backends):
    b = backends(tls=False)
    p = proxy(f"server {{ LISTEN location / {{ proxy_pass http://127.0.0.1:{b.port}; }} }}")
    s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
    s.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /chunked HTTP/1.1\r\nHost: x\r\n\r\n"
              b"GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = _read_all(s)
    assert data.count(b"HTTP/1.1 200 OK") == 3
    assert b'"path": "/a"' in data and b'"path": "/b"' in data
    assert b"Transfer-Encoding: chunked" in data and b"0\r\n\r\n" in data
    assert b"hello" in data and b"world" in data
    assert data.index(b'"/a"') < data.index(b"hello") < data.index(b'"/b"')
    # a truncated upstream body is never passed on as complete
    c = p.conn()
    c.request("GET", "/truncated")
    r = c.getresponse()
    with pytest.raises(http.client.IncompleteRead):
        r.read()
    c.close()
    # a large body with back-pressure arrives whole
    status, data = p.get("/big/3000000")
    assert status == 200 and len(data) == 3000000


def test_pipelined_input_beyond_the_read_ahead_bound(proxy, backends):
    """More pipelined requests than the 64 KiB the proxy reads ahead while one
    is answered: reading pauses and resumes, every request is answered, in
    order."""
    b = backends(tls=False)
    p = proxy(f"server {{ LISTEN location / {{ proxy_pass http://127.0.0.1:{b.port}; }} }}")
    n = 800                                        # ~140 KiB of requests
    reqs = b"".join(f"GET /p{i:04d} HTTP/1.1\r\nHost: x\r\nX-Pad: {'p' * 140}\r\n\r\n"
                    .encode() for i in range(n - 1))
    reqs += f"GET /p{n - 1:04d} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    assert len(reqs) > 2 * 65536
    data = _raw(p.port, reqs)
    paths = [int(x) for x in re.findall(rb'"path": "/p(\d{4})"', data)]
    assert paths == list(range(n))


def test_header_line_arriving_in_small_pieces(proxy, backends):
    """A 20 KB header line sent 1 KB at a time spans several input buffer
    segments (proxy_readln() falls back to evbuffer_readln() past four)."""
    b = backends(tls=False)
    p = proxy(f"server {{ LISTEN location / {{ proxy_pass http://127.0.0.1:{b.port}; }} }}")
    req = (b"GET /long HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 20000
           + b"\r\nConnection: close\r\n\r\n")
    s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
    for i in range(0, len(req), 1000):
        s.sendall(req[i:i + 1000])
        time.sleep(0.002)
    data = _read_all(s)
    assert data.startswith(b"HTTP/1.1 200 OK")
    assert len(b.requests[0]["headers"]["x-long"]) == 20000


def _read_all(s):
    """Everything the socket sends until the peer closes; closes it."""
    out = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    s.close()
    return out


def _raw(port, data):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(data)
    return _read_all(s)


def test_request_header_lines(proxy, backends):
    """One header-line parser for requests and responses: no space after the
    colon and an empty value are valid (nginx: 200); whitespace in the name
    or before the colon, an empty name and a folded line are 400."""
    b = backends(tls=False)
    p = proxy(f"server {{ LISTEN location / {{ proxy_pass http://127.0.0.1:{b.port}; }} }}")
    out = _raw(p.port, b"GET /h HTTP/1.1\r\nHost: x\r\nX-A:b\r\nX-Empty:\r\nX-T: \t v \t\r\n"
               b"Connection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 "), out[:200]
    seen = json.loads(out.split(b"\r\n\r\n", 1)[1])["headers"]
    assert seen["x-a"] == "b" and seen["x-empty"] == "" and seen["x-t"] == "v"
    for bad in (b"X A: b", b"X-A : b", b"X-A\t: b", b": b", b"X-A", b" X-A: b"):
        out = _raw(p.port, b"GET /h HTTP/1.1\r\nHost: x\r\n" + bad + b"\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 400 "), (bad, out[:200])
    assert p.get("/after")[0] == 200


def _raw_upstream(head):
    """A plain upstream that answers every connection with `head` + "ok"."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)

    def loop():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            try:
                conn.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                conn.sendall(head + b"Content-Length: 2\r\nConnection: close\r\n\r\nok")
            except OSError:
                pass
            finally:
                conn.close()
    threading.Thread(target=loop, daemon=True).start()
    return srv


def test_response_header_lines(proxy):
    good = _raw_upstream(b"HTTP/1.1 200 OK\r\nX-Up:v\r\nX-Empty:\r\n")
    bad = {h: _raw_upstream(b"HTTP/1.1 200 OK\r\n" + h + b"\r\n")
           for h in (b"X Up: v", b"X-Up : v", b": v", b"X-Up")}
    locs = "".join(f"location /bad{i}/ {{ proxy_pass http://127.0.0.1:{s.getsockname()[1]}; }}\n"
                   for i, s in enumerate(bad.values()))
    p = proxy(f"server {{ LISTEN location / {{ proxy_pass http://127.0.0.1:"
              f"{good.getsockname()[1]}; }}\n{locs} }}")
    try:
        out = _raw(p.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head, body = out.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 200 ") and body == b"ok", out
        assert b"\r\nX-Up: v" in head and b"\r\nX-Empty: \r\n" in head + b"\r\n", head
        for i, h in enumerate(bad):
            assert p.get(f"/bad{i}/")[0] == 502, h
        assert p.error_log().count("upstream sent invalid header") >= len(bad)
    finally:
        good.close()
        for s in bad.values():
            s.close()


def test_plain_upstream_down_is_502(proxy):
    p = proxy(f"server {{ LISTEN location / {{ proxy_pass http://127.0.0.1:{free_port()}; }} }}")
    assert p.get("/")[0] == 502
    assert "connect() failed (111: Connection refused) while connecting to upstream" in p.error_log()


# ---- upstream TLS ---------------------------------------------------------------------------------

def test_verify_off_accepts_untrusted_and_warns(proxy, backends, pki):
    b = backends(pki, cert="server-untrusted")
    p = proxy(f"server {{ LISTEN location / {{ proxy_pass https://127.0.0.1:{b.port}; }} }}")
    assert p.get("/")[0] == 200
    assert "[warn]" in p.error_log() and '"proxy_ssl_verify" is off' in p.error_log()


def test_verify_on_refuses_untrusted(proxy, backends, pki):
    b = backends(pki, cert="server-untrusted")
    p = proxy(f"server {{ LISTEN {tls_loc(pki, b, 'proxy_ssl_verify on;')} }}")
    status, _ = p.get("/")
    assert status == 502 and b.requests == []
    log = p.error_log()
    assert "upstream SSL certificate verify error" in log
    assert f'upstream: "https://127.0.0.1:{b.port}/"' in log and 'request: "GET / HTTP/1.1"' in log


def test_verify_on_trusted_and_name(proxy, backends, pki):
    good = backends(pki)
    wrong = backends(pki, cert="server-wrong")
    ipsan = backends(pki, cert="server-ip")
    p = proxy("server { LISTEN "
              + tls_loc(pki, ipsan, "proxy_ssl_verify on;", "/ipsan", host="127.0.0.1")
              + tls_loc(pki, good, "proxy_ssl_verify on;", "/good")
              + tls_loc(pki, wrong, "proxy_ssl_verify on;", "/wrong")
              + tls_loc(pki, wrong, "proxy_ssl_verify on; proxy_ssl_name other.test;", "/named")
              + tls_loc(pki, good, "proxy_ssl_verify on;", "/ip", host="127.0.0.1") + " }")
    assert p.get("/good")[0] == 200
    assert p.get("/wrong")[0] == 502 and wrong.requests == []
    assert p.get("/named")[0] == 200
    # an IP literal is matched against iPAddress SANs only (RFC 2818 3.1;
    # nginx matches no IP SANs at all, nginx #1363)
    assert p.get("/ip")[0] == 502
    assert p.get("/ipsan")[0] == 200


def test_verify_depth(proxy, backends, pki):
    b = backends(pki, cert="server-int")
    p = proxy("server { LISTEN "
              + tls_loc(pki, b, "proxy_ssl_verify on; proxy_ssl_verify_depth 0;", "/d0")
              + tls_loc(pki, b, "proxy_ssl_verify on;", "/d1") + " }")
    assert p.get("/d0")[0] == 502         # one intermediate needs depth 1
    assert p.get("/d1")[0] == 200         # nginx's default depth 1


def test_sni(proxy, backends, pki):
    b = backends(pki)
    p = proxy("server { LISTEN "
              + tls_loc(pki, b, "", "/off")
              + tls_loc(pki, b, "proxy_ssl_server_name on;", "/on")
              + tls_loc(pki, b, "proxy_ssl_server_name on; proxy_ssl_name backend.test;", "/name")
              + tls_loc(pki, b, "proxy_ssl_server_name on;", "/ip", host="127.0.0.1") + " }")
    assert json.loads(p.get("/off")[1])["sni"] is None
    assert json.loads(p.get("/on")[1])["sni"] == "localhost"
    assert json.loads(p.get("/name")[1])["sni"] == "backend.test"
    assert json.loads(p.get("/ip")[1])["sni"] is None


def test_client_certificate(proxy, backends, pki):
    b = backends(pki, client_ca="client-root")
    p = proxy("server { LISTEN "
              + tls_loc(pki, b, f"proxy_ssl_certificate {pki}/client.pem; "
                        f"proxy_ssl_certificate_key {pki}/client-enc.key; "
                        f"proxy_ssl_password_file {pki}/passwords;", "/cert")
              + tls_loc(pki, b, "", "/nocert") + " }")
    status, data = p.get("/cert")
    assert status == 200 and json.loads(data)["client_cert"] == "client"
    assert p.get("/nocert")[0] == 502


def test_protocols_ciphers_conf_command(proxy, backends, pki):
    b = backends(pki)
    p = proxy("server { LISTEN "
              + tls_loc(pki, b, "proxy_ssl_protocols TLSv1.2; "
                        "proxy_ssl_ciphers ECDHE-ECDSA-CHACHA20-POLY1305;", "/v12")
              + tls_loc(pki, b, "proxy_ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256;",
                        "/v13") + " }")
    req = json.loads(p.get("/v12")[1])
    assert req["version"] == "TLSv1.2" and req["cipher"] == "ECDHE-ECDSA-CHACHA20-POLY1305"
    req = json.loads(p.get("/v13")[1])
    assert req["version"] == "TLSv1.3" and req["cipher"] == "TLS_AES_128_GCM_SHA256"


def test_session_reuse(proxy, backends, pki):
    b = backends(pki)
    b12 = backends(pki, max_version=ssl.TLSVersion.TLSv1_2)
    p = proxy("server { LISTEN "
              + tls_loc(pki, b, "proxy_ssl_verify on;", "/on")
              + tls_loc(pki, b12, "proxy_ssl_verify on;", "/on12")
              + tls_loc(pki, b, "proxy_ssl_session_reuse off;", "/off") + " }")
    for path, backend in (("/on", b), ("/on12", b12)):
        first = json.loads(p.get(path)[1])
        second = json.loads(p.get(path)[1])
        assert first["resumed"] is False and second["resumed"] is True, path
    # another location with different TLS settings never resumes /on's session
    third = json.loads(p.get("/off")[1])
    fourth = json.loads(p.get("/off")[1])
    assert third["resumed"] is False and fourth["resumed"] is False


def test_verification_memo_is_keyed_by_the_chain(proxy, backends, pki):
    """A chain that passed is not verified again (proxy_verify.c), but any
    other chain on the same server and location is: a memo never answers for
    bytes it did not verify."""
    b = backends(pki)
    p = proxy("server { LISTEN " + tls_loc(pki, b, "proxy_ssl_verify on; "
                                           "proxy_ssl_session_reuse off;") + " }")
    assert [p.get("/")[0] for _ in range(3)] == [200, 200, 200]
    for cert in ("server-untrusted", "server-wrong", "server"):
        b.ctx.load_cert_chain(pki / f"{cert}.chain.pem", pki / f"{cert}.key")
        assert p.get("/")[0] == (200 if cert == "server" else 502), cert
    # every request was a full handshake with a certificate to verify
    assert [h["ok"] for h in b.handshakes] == [True, True, True, False, False, True]
    assert not any(h.get("resumed") for h in b.handshakes)
    log = p.error_log()
    assert "unable to get local issuer certificate" in log and "hostname mismatch" in log


def _ca_db(d, name):
    """An `openssl ca` database for root (openssl ca takes exact dates where
    x509 -req and crl take days); returns its configuration file's name."""
    (d / f"{name}-ca").mkdir(exist_ok=True)
    (d / f"{name}-ca" / "index.txt").write_text("")
    (d / f"{name}-ca" / "serial").write_text("1000\n")
    (d / f"{name}-ca" / "crlnumber").write_text("1000\n")
    return _ext(d, f"{name}-ca.cnf",
                f"[ca]\ndefault_ca = c\n[c]\ndatabase = {name}-ca/index.txt\n"
                f"new_certs_dir = {name}-ca\nserial = {name}-ca/serial\n"
                f"crlnumber = {name}-ca/crlnumber\ndefault_md = sha256\n"
                "policy = p\nunique_subject = no\n[p]\ncommonName = supplied\n")


def _utc(t):
    return time.strftime("%Y%m%d%H%M%SZ", time.gmtime(t))


def _short_lived_leaf(d, name, seconds):
    """A leaf under root whose notAfter is `seconds` from now."""
    cnf = _ca_db(d, name)
    ext = _ext(d, f"{name}.ext", f"basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
               f"subjectAltName={SAN}\n")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
    _openssl("ca", "-batch", "-config", cnf, "-cert", "root.pem", "-keyfile", "root.key",
             "-in", f"{name}.csr", "-out", f"{name}.chain.pem", "-notext", "-extfile", ext,
             "-startdate", _utc(time.time() - 60), "-enddate", _utc(time.time() + seconds),
             cwd=d)
    return time.time() + seconds


def test_verification_memo_ends_with_the_chain(proxy, backends, pki):
    """A remembered pass lasts no longer than the chain's earliest notAfter."""
    until = _short_lived_leaf(pki, "server-brief", 3)
    b = backends(pki, cert="server-brief")
    p = proxy("server { LISTEN " + tls_loc(pki, b, "proxy_ssl_verify on; "
                                           "proxy_ssl_session_reuse off;") + " }")
    assert p.get("/")[0] == 200
    time.sleep(max(0.0, until - time.time()) + 1.5)
    assert p.get("/")[0] == 502
    assert "certificate has expired" in p.error_log()


def test_verification_memo_ends_with_a_newer_crl(proxy, backends, pki):
    """A CRL file holding a current empty CRL and a newer one, valid from 3 s
    on, that revokes the upstream's certificate: once the newer one is valid
    OpenSSL uses it, and a remembered pass must not outlive that."""
    cnf = _ca_db(pki, "crls")
    start = time.time() + 3
    gen = ["ca", "-batch", "-config", cnf, "-cert", "root.pem", "-keyfile", "root.key", "-gencrl"]
    _openssl(*gen, "-crl_lastupdate", _utc(time.time() - 3600),
             "-crl_nextupdate", _utc(time.time() + 3600), "-out", "crl-old.pem", cwd=pki)
    _openssl("ca", "-batch", "-config", cnf, "-cert", "root.pem", "-keyfile", "root.key",
             "-revoke", "server.pem", cwd=pki)
    _openssl(*gen, "-crl_lastupdate", _utc(start), "-crl_nextupdate", _utc(time.time() + 3600),
             "-out", "crl-new.pem", cwd=pki)
    (pki / "crls.pem").write_text((pki / "crl-old.pem").read_text()
                                  + (pki / "crl-new.pem").read_text())
    b = backends(pki)
    p = proxy("server { LISTEN " + tls_loc(pki, b, f"proxy_ssl_verify on; proxy_ssl_crl "
                                           f"{pki}/crls.pem; proxy_ssl_session_reuse off;") + " }")
    assert p.get("/")[0] == 200
    time.sleep(max(0.0, start - time.time()) + 1.5)
    assert p.get("/")[0] == 502
    assert "certificate revoked" in p.error_log()


def test_upstream_keepalive(proxy, backends, pki):
    b = backends(pki)
    p = proxy(f"upstream ka {{ server 127.0.0.1:{b.port}; keepalive 4; }}\n"
              f"server {{ LISTEN location / {{ proxy_pass https://ka; proxy_http_version 1.1; "
              f"proxy_set_header Connection \"\"; proxy_ssl_verify on; proxy_ssl_name localhost; "
              f"proxy_ssl_trusted_certificate {pki}/root.pem; }}\n"
              f"location /nk/ {{ proxy_pass https://ka; }} }}")
    conns = {json.loads(p.get(f"/{i}")[1])["conn"] for i in range(5)}
    assert len(conns) == 1 and len(b.handshakes) == 1
    conns = {json.loads(p.get(f"/nk/{i}")[1])["conn"] for i in range(3)}
    assert len(conns) == 3                       # Connection: close by default


def test_large_request_bodies_over_kept_alive_tls(proxy, backends, pki):
    """A request body near the 1 MiB limit goes whole to a TLS upstream, twice
    on one kept-alive connection (the request is written by the upstream write
    event's own callback, partly now and the rest as the socket drains)."""
    b = backends(pki)
    p = proxy(f"upstream ka {{ server 127.0.0.1:{b.port}; keepalive 2; }}\n"
              f"server {{ LISTEN location / {{ proxy_pass https://ka; proxy_http_version 1.1; "
              f"proxy_set_header Connection \"\"; }} }}")
    for i in range(2):
        body = bytes([65 + i]) * 1000000
        status, data = p.get(f"/up{i}", method="POST", body=body)
        assert status == 200
        got = json.loads(data)
        assert got["body"] == body.decode() and got["path"] == f"/up{i}"
    assert len({r["conn"] for r in b.requests}) == 1


def _tls_close_with_last_record(pki, first, last):
    """A TLS upstream that answers with record `first`, then `last` and its
    close_notify in one TCP segment (libevent 2.1 reads both in one go)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)

    def serve():
        for _ in range(2):
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(pki / "server.chain.pem", pki / "server.key")
            inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
            tls = ctx.wrap_bio(inc, out, server_side=True)
            conn.settimeout(5)
            try:
                req = b""
                while b"\r\n\r\n" not in req:    # handshake, then the request
                    try:
                        req += tls.read(65536)
                    except ssl.SSLWantReadError:
                        conn.sendall(out.read())
                        inc.write(conn.recv(65536))
                conn.sendall(out.read())
                tls.write(first)
                conn.sendall(out.read())
                time.sleep(0.2)
                tls.write(last)
                try:
                    tls.unwrap()
                except ssl.SSLError:
                    pass
                conn.sendall(out.read())
                time.sleep(0.2)
            except OSError:
                pass
            finally:
                conn.close()
    threading.Thread(target=serve, daemon=True).start()
    return srv


def test_last_record_before_the_upstream_close(proxy, pki):
    """The record before an upstream's close_notify is used even when both
    arrive together and the input holds a partial line (a header block, a
    read-until-close body): the close is handled after the data before it."""
    hdr = _tls_close_with_last_record(
        pki, b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * 6000,
        b"\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
    eof = _tls_close_with_last_record(
        pki, b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"a" * 6000, b"TAIL")
    p = proxy("server { LISTEN "
              f"location /h {{ proxy_pass https://127.0.0.1:{hdr.getsockname()[1]}; }}\n"
              f"location /e {{ proxy_pass https://127.0.0.1:{eof.getsockname()[1]}; }} }}")
    status, data = p.get("/h")
    assert (status, data) == (200, b"hello")
    status, data = p.get("/e")
    assert status == 200 and data == b"a" * 6000 + b"TAIL"
    hdr.close()
    eof.close()


def test_round_robin_weights_and_failover(proxy, backends, pki):
    b1, b2 = backends(pki), backends(pki)
    dead = free_port()
    p = proxy(f"upstream rr {{ server 127.0.0.1:{b1.port} weight=2; server 127.0.0.1:{b2.port}; }}\n"
              f"upstream fo {{ server 127.0.0.1:{dead}; server 127.0.0.1:{b1.port}; }}\n"
              f"upstream none {{ server 127.0.0.1:{dead}; server 127.0.0.1:{free_port()}; }}\n"
              f"upstream bad {{ server 127.0.0.1:{backends(pki, cert='server-untrusted').port}; "
              f"server 127.0.0.1:{b2.port}; }}\n"
              f"server {{ LISTEN location /rr {{ proxy_pass https://rr; }}\n"
              f"location /fo {{ proxy_pass https://fo; }}\n"
              f"location /none {{ proxy_pass https://none; }}\n"
              f"location /bad {{ proxy_pass https://bad; proxy_ssl_verify on; proxy_ssl_name localhost; "
              f"proxy_ssl_trusted_certificate {pki}/root.pem; }} }}")
    for _ in range(6):
        assert p.get("/rr")[0] == 200
    assert (len(b1.requests), len(b2.requests)) == (4, 2)
    for _ in range(3):
        assert p.get("/fo")[0] == 200
    assert p.get("/none")[0] == 502
    before = len(b2.requests)
    for _ in range(2):
        assert p.get("/bad")[0] == 200          # verification failure: next server
    assert len(b2.requests) == before + 2


def test_next_upstream_conditions(proxy, backends):
    """proxy_next_upstream beyond error and timeout, as nginx's
    ngx_http_upstream_test_next() and ngx_http_upstream_next(): a listed
    status moves on only while another server is left, a sent POST also needs
    non_idempotent, an invalid header is a 502 unless invalid_header is set."""
    s500 = _raw_upstream(b"HTTP/1.1 500 Internal Server Error\r\n").getsockname()[1]
    bad = _raw_upstream(b"HTTP/1.1 200 OK\r\nBroken header line\r\n").getsockname()[1]
    s404 = _raw_upstream(b"HTTP/1.1 404 Not Found\r\n").getsockname()[1]
    good = backends(tls=False).port

    def group(name, first):
        return f"upstream {name} {{ server 127.0.0.1:{first}; server 127.0.0.1:{good}; }}\n"
    p = proxy(group("a", s500) + group("b", s500) + group("c", bad) + group("d", bad)
              + group("e", s500) + group("f", s500)
              + f"upstream g {{ server 127.0.0.1:{s500}; }}\n"
              + f"upstream h {{ server 127.0.0.1:{s404}; server 127.0.0.1:{free_port()}; }}\n"
              + "server { LISTEN location /a { proxy_pass http://a; }\n"
              + "location /b { proxy_pass http://b; proxy_next_upstream error timeout http_500; }\n"
              + "location /c { proxy_pass http://c; }\n"
              + "location /d { proxy_pass http://d; proxy_next_upstream invalid_header; }\n"
              + "location /e { proxy_pass http://e; proxy_next_upstream http_500; }\n"
              + "location /f { proxy_pass http://f; proxy_next_upstream http_500 non_idempotent; }\n"
              + "location /g { proxy_pass http://g; proxy_next_upstream http_500; }\n"
              + "location /h { proxy_pass http://h; proxy_next_upstream http_404; } }")

    def statuses(path, method="GET"):
        return sorted(p.get(path, method=method, body=b"x" if method == "POST" else None)[0]
                      for _ in range(4))
    assert statuses("/a") == [200, 200, 500, 500]      # by default a 500 is an answer
    assert statuses("/b") == [200] * 4                 # then the 500 server is down (max_fails 1)
    assert statuses("/c") == [200, 200, 200, 502]      # invalid header: 502, server marked failed
    assert statuses("/d") == [200] * 4
    assert statuses("/e", "POST") == [200, 200, 500, 500]
    assert statuses("/f", "POST") == [200] * 4
    assert statuses("/g") == [500] * 4                 # no other server: passed on as it is
    # the other server is down after its connect error (not retried: no
    # "error"); a 404 does not count as a failure, and moving on from it
    # finds no live server: 502 (nginx's NGX_HTTP_UPSTREAM_FT_NOLIVE)
    assert statuses("/h") == [502] * 4


def test_client_abort_closes_the_upstream_and_keeps_serving(proxy, backends):
    """A client that goes away while its request is answered aborts it (nginx:
    "client prematurely closed connection", proxy_ignore_client_abort off):
    the upstream connection is closed and the proxy keeps serving."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    seen = {}

    def slow():
        conn, _ = srv.accept()
        conn.recv(65536)
        conn.settimeout(5)
        try:
            seen["eof"] = conn.recv(1) == b""      # the proxy closed its side
        except OSError:
            seen["eof"] = False
        conn.close()
    threading.Thread(target=slow, daemon=True).start()
    good = backends(tls=False)
    p = proxy(f"server {{ LISTEN location /slow {{ proxy_pass http://127.0.0.1:"
              f"{srv.getsockname()[1]}; }} location / {{ proxy_pass http://127.0.0.1:{good.port}; }} }}")
    c = socket.create_connection(("127.0.0.1", p.port))
    c.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.3)
    c.close()
    deadline = time.time() + 5
    while "eof" not in seen and time.time() < deadline:
        time.sleep(0.05)
    srv.close()
    assert seen.get("eof") is True
    assert "client prematurely closed connection" in p.error_log()
    assert p.get("/")[0] == 200


def test_stale_keepalive_connection_retry(proxy):
    """A cached connection the upstream closes when the next request arrives
    (its keepalive race) is retried on a new connection as nginx does: for a
    GET, not for a POST already sent, not with proxy_next_upstream off."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)

    def conn_loop(conn):
        f = conn.makefile("rb")
        try:
            for n in range(2):
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = f.readline()
                    if not line:
                        return
                    head += line
                length = int(([l.split(b":")[1] for l in head.split(b"\r\n")
                               if l.lower().startswith(b"content-length:")] or [b"0"])[0])
                f.read(length)
                if n == 1:
                    return                       # closes without answering
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        finally:
            conn.close()

    def loop():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=conn_loop, args=(conn,), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()
    port = srv.getsockname()[1]
    ka = 'proxy_http_version 1.1; proxy_set_header Connection "";'
    p = proxy("".join(f"upstream {n} {{ server 127.0.0.1:{port}; keepalive 4; }}\n"
                      for n in ("a", "b", "c"))
              + f"server {{ LISTEN location /a {{ proxy_pass http://a; {ka} }}\n"
              f"location /b {{ proxy_pass http://b; {ka} }}\n"
              f"location /c {{ proxy_pass http://c; {ka} proxy_next_upstream off; }} }}")
    assert [p.get("/a")[0] for _ in range(2)] == [200, 200]
    assert p.get("/b")[0] == 200
    assert p.get("/b", method="POST", body=b"x")[0] == 502
    assert [p.get("/c")[0] for _ in range(2)] == [200, 502]
    srv.close()


def test_timeouts_are_504(proxy):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)                                   # accepts, never answers
    try:
        p = proxy(f"server {{ LISTEN location / {{ proxy_pass https://127.0.0.1:{s.getsockname()[1]}; "
                  f"proxy_connect_timeout 300ms; }} }}")
        assert p.get("/")[0] == 504
        assert "upstream timed out" in p.error_log()
    finally:
        s.close()


def test_workers_and_graceful_quit(proxy, backends, pki):
    b = backends(pki)
    p = proxy(f"server {{ LISTEN {tls_loc(pki, b)} }}", workers=3)
    for _ in range(10):
        assert p.get("/")[0] == 200
    pid_file = p.tmp / "proxy.pid"
    assert pid_file.read_text().strip() == str(p.proc.pid)
    p.stop(signal.SIGQUIT)
    assert p.proc.returncode == 0 and not pid_file.exists()


# ---- fault switches: each changes exactly the behaviour it names ---------------------------------

def test_fault_ignore_client_cert(proxy, backends, pki):
    b = backends(pki, client_ca="client-root")
    loc = tls_loc(pki, b, f"proxy_ssl_certificate {pki}/client.pem; "
                          f"proxy_ssl_certificate_key {pki}/client.key;")
    assert proxy(f"server {{ LISTEN {loc} }}", faults=["ignore-client-cert"]).get("/")[0] == 502


def test_fault_skip_verify(proxy, backends, pki):
    b = backends(pki, cert="server-untrusted")
    p = proxy(f"server {{ LISTEN {tls_loc(pki, b, 'proxy_ssl_verify on;')} }}",
              faults=["skip-verify"])
    assert p.get("/")[0] == 200


def test_fault_ignore_depth(proxy, backends, pki):
    b = backends(pki, cert="server-int")
    p = proxy(f"server {{ LISTEN {tls_loc(pki, b, 'proxy_ssl_verify on; proxy_ssl_verify_depth 0;')} }}",
              faults=["ignore-depth"])
    assert p.get("/")[0] == 200


def test_fault_skip_host_check(proxy, backends, pki):
    b = backends(pki, cert="server-wrong")
    p = proxy(f"server {{ LISTEN {tls_loc(pki, b, 'proxy_ssl_verify on;')} }}",
              env={"UPTLS_PROXY_FAULTS": "skip-host-check"})
    assert p.get("/")[0] == 200


def test_fault_ignore_protocols(proxy, backends, pki):
    b = backends(pki)
    p = proxy(f"server {{ LISTEN {tls_loc(pki, b, 'proxy_ssl_protocols TLSv1.2;')} }}",
              faults=["ignore-protocols"])
    assert json.loads(p.get("/")[1])["version"] == "TLSv1.3"


def test_fault_ignore_ciphers(proxy, backends, pki):
    b = backends(pki)
    p = proxy(f"server {{ LISTEN {tls_loc(pki, b, 'proxy_ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256;')} }}",
              faults=["ignore-ciphers"])
    assert json.loads(p.get("/")[1])["cipher"] != "TLS_AES_128_GCM_SHA256"


def test_fault_share_sessions(proxy, backends, pki):
    b = backends(pki)
    body = ("server { LISTEN " + tls_loc(pki, b, "proxy_ssl_verify on;", "/a")
            + tls_loc(pki, b, "proxy_ssl_verify on; proxy_ssl_name backend.test;", "/b") + " }")
    p = proxy(body, faults=["share-sessions"])
    p.get("/a")
    assert json.loads(p.get("/b")[1])["resumed"] is True


def test_fault_no_session_reuse(proxy, backends, pki):
    b = backends(pki)
    p = proxy(f"server {{ LISTEN {tls_loc(pki, b)} }}", faults=["no-session-reuse"])
    p.get("/")
    assert json.loads(p.get("/")[1])["resumed"] is False


def test_fault_no_sni(proxy, backends, pki):
    b = backends(pki)
    p = proxy(f"server {{ LISTEN {tls_loc(pki, b, 'proxy_ssl_server_name on;')} }}",
              faults=["no-sni"])
    assert json.loads(p.get("/")[1])["sni"] is None


# ---- memory: valgrind and sanitizers ------------------------------------------------------------

def _load(p, n):
    for i in range(n):
        path = ("/ka/", "/plain/", "/tls/", "/bad/")[i % 4] + str(i)
        status, _ = p.get(path)
        assert status == (502 if path.startswith("/bad/") else 200), path


def _load_config(pki, b, bad, plain):
    return (f"upstream ka {{ server 127.0.0.1:{b.port}; keepalive 2; }}\n"
            f"server {{ LISTEN location /ka/ {{ proxy_pass https://ka; proxy_http_version 1.1; "
            f"proxy_set_header Connection \"\"; proxy_ssl_verify on; proxy_ssl_name localhost; "
            f"proxy_ssl_trusted_certificate {pki}/root.pem; }}\n"
            f"location /plain/ {{ proxy_pass http://127.0.0.1:{plain.port}; }}\n"
            + tls_loc(pki, b, "proxy_ssl_verify on; proxy_ssl_server_name on;", "/tls/")
            + tls_loc(pki, bad, "proxy_ssl_verify on;", "/bad/") + " }")


@pytest.mark.skipif(FAST or shutil.which("valgrind") is None, reason="slow / no valgrind")
def test_valgrind_no_leaks(proxy, backends, pki, tmp_path):
    b, bad, plain = backends(pki), backends(pki, cert="server-untrusted"), backends(tls=False)
    vlog = tmp_path / "vg.%p.log"
    p = proxy(_load_config(pki, b, bad, plain),
              wrapper=["valgrind", "--leak-check=full", "--show-leak-kinds=definite,indirect",
                       "--errors-for-leak-kinds=definite,indirect", "--trace-children=yes",
                       f"--log-file={vlog}"])
    _load(p, 300)
    p.stop()
    logs = [f.read_text() for f in tmp_path.glob("vg.*.log")]
    assert len(logs) >= 2                        # master and worker
    for text in logs:
        assert "ERROR SUMMARY: 0 errors" in text, text[-3000:]
        assert "definitely lost: 0 bytes" in text or "no leaks are possible" in text, text[-3000:]


@pytest.mark.skipif(FAST, reason="slow")
def test_asan_ubsan_build(backends, pki, tmp_path):
    subprocess.run(["make", "-s", "bin/uptls-proxy-asan"], cwd=ROOT, check=True)
    b, bad, plain = backends(pki), backends(pki, cert="server-untrusted"), backends(tls=False)
    global BIN
    saved, BIN = BIN, ROOT / "bin" / "uptls-proxy-asan"
    try:
        p = Proxy(tmp_path, _load_config(pki, b, bad, plain),
                  env={"ASAN_OPTIONS": "detect_leaks=1", "UBSAN_OPTIONS": "print_stacktrace=1"})
        _load(p, 100)
        p.stop()
    finally:
        BIN = saved
    out = (tmp_path / "proxy.out").read_text()
    assert "ERROR: AddressSanitizer" not in out and "LeakSanitizer" not in out, out
    assert "runtime error" not in out, out
