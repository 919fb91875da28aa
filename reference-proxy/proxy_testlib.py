"""What uptls-proxy's tests share (reference-proxy/test_proxy_*.py; their
fixtures are conftest.py): stdlib + pytest only.

Upstreams are small Python `ssl` servers that record each handshake (SNI,
client certificate, version, cipher, resumed) and each request (Backend),
or answer every connection with fixed bytes (raw_upstream), so the tests
judge the proxy by what the upstream saw on the wire and what the client got
back. Proxy runs bin/uptls-proxy (UPTLS_PROXY_BIN overrides; it is built
first if missing) on a config written around the test's http{} body; its
process is started, waited for and stopped by uptls.proc. The throwaway
PKI is made with the openssl CLI (tests/testpki.py). Slow checks
(valgrind, ASan/UBSan build) run unless UPTLS_PROXY_FAST=1.
"""

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import threading
from pathlib import Path

from uptls import proc

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(os.environ.get("UPTLS_PROXY_BIN", ROOT / "bin" / "uptls-proxy"))
FAST = os.environ.get("UPTLS_PROXY_FAST") == "1"
SAN = "DNS:localhost,DNS:backend.test,DNS:backend.example.com"


# ---- upstreams -----------------------------------------------------------------------------

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


def raw_upstream(head):
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


# ---- the proxy -------------------------------------------------------------------------------

def run_t(tmp, text, *extra):
    conf = tmp / "nginx.conf"
    conf.write_text(text)
    return subprocess.run([str(BIN), "-t", "-p", str(tmp), "-c", str(conf), *extra],
                          capture_output=True, text=True, timeout=20)


class Proxy:
    """uptls-proxy on a config around http_body (its "LISTEN" becomes the
    listen directive of a free port), in the foreground, output in
    tmp/proxy.out; ready when the port accepts. binary: another build."""

    def __init__(self, tmp, http_body, faults=(), wrapper=(), env=None, workers=1, binary=None):
        self.tmp = tmp
        self.port = proc.free_port()
        self.log = tmp / "error.log"
        body = http_body.replace("LISTEN", f"listen 127.0.0.1:{self.port};")
        self.conf = tmp / "nginx.conf"
        self.conf.write_text(f"worker_processes {workers};\nerror_log {self.log} info;\n"
                             f"pid {tmp}/proxy.pid;\nevents {{ worker_connections 128; }}\n"
                             f"http {{\n{body}\n}}\n")
        args = [*wrapper, str(binary or BIN), "-p", str(tmp), "-c", str(self.conf),
                "-g", "daemon off;"]
        for f in faults:
            args += ["--fault", f]
        out = tmp / "proxy.out"
        out.unlink(missing_ok=True)
        self.proc = proc.start(args, log=out, env={**os.environ, **(env or {})})
        try:
            self.proc.wait_port(self.port, timeout=30 if wrapper else 5)
        except proc.ProcError as e:
            self.proc.stop()
            raise AssertionError(f"proxy {e}: " + out.read_text() + self.error_log()) from None

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
        """sig (TERM), then KILL after 30 s; the error log must hold no
        [alert] or [emerg]. Returns the log."""
        proc.stop(self.proc, signals=((sig, 30.0), (signal.SIGKILL, 3.0)))
        log = self.error_log()
        assert "[alert]" not in log and "[emerg]" not in log, log
        return log


def tls_loc(pki, backend, extra="", path="/", host="localhost"):
    return (f"location {path} {{ proxy_pass https://{host}:{backend.port}; "
            f"proxy_ssl_trusted_certificate {pki}/root.pem; {extra} }}")
