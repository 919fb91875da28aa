"""What uptls-backend's tests share (harness/backend/test_backend_*.py;
their fixtures are conftest.py): the backend under test as a process
(Backend, Listeners), and Python-ssl clients to drive it.

Backend and Listeners are started, waited for and stopped through
uptls.proc; each keeps its stderr in a file beside its log (.stderr), which
the fixtures require to be empty at the end (valgrind, sanitizers).
"""

import json
import os
import signal
import socket
import ssl
import subprocess
import tempfile
import time

from uptls import proc

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BACKEND = os.environ.get("UPTLS_BACKEND_BIN", os.path.join(ROOT, "bin", "uptls-backend"))
NGINX = "/usr/sbin/nginx"
# A client-certificate subject with characters that need escaping somewhere.
CLIENT_SUBJECT = ["/O=uptls, \"test\"/CN=proxy\\client/CN=cl\u00efent"]


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
        self.stderr_path = self.log + ".stderr"
        # pdeathsig=False: uptls-backend sets PR_SET_PDEATHSIG itself
        # (test_dies_with_its_parent), and a preexec_fn makes every start a
        # full fork of pytest (~60 ms on a busy machine, 70 starts here).
        self.proc = proc.start(self.argv, stdout=subprocess.PIPE, log=self.stderr_path,
                               pdeathsig=False)
        line = _ready_line(self.proc)
        assert line, f"backend did not start: {proc.log_text(self.stderr_path)}"
        self.listening = json.loads(line)
        self.port = self.listening["port"]

    def stop(self, timeout=5):
        """SIGTERM, and the exit status once it exits (SIGKILL after timeout:
        then the status says so); its stderr is in self.stderr."""
        rc = proc.stop(self.proc, signals=((signal.SIGTERM, timeout), (signal.SIGKILL, 3.0)))
        self.stderr = proc.log_text(self.stderr_path)
        self.proc.stdout.close()
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
        def enough():
            evs = self.events(kind, conn)
            return evs if len(evs) >= count else None
        evs = proc.wait_until(enough, timeout)
        if evs is not None:
            return evs
        raise AssertionError(f"no {count} {kind} event(s) for conn {conn}: {self.events()}")


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


def raw_exchange(b, pki, payload, pause=0.0):
    raw = socket.create_connection(("127.0.0.1", b.port), timeout=5)
    s = client_ctx(pki).wrap_socket(raw, server_hostname="backend.test")
    s.sendall(payload)
    if pause:
        time.sleep(pause)
    data = read_all(s)
    s.close()
    return data


def run_cli(*args):
    return subprocess.run([BACKEND, *args], capture_output=True, timeout=10)


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
        # Not proc.start: --listeners - needs a pipe on stdin; the rest is proc's
        # (it sets PR_SET_PDEATHSIG itself, as Backend says).
        self.stderr_path = os.path.join(d, "stderr")
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=err,
                                         start_new_session=True)
        if via_stdin:
            self.proc.stdin.write(text.encode())
            self.proc.stdin.close()
        self.lines = []
        while not self.lines or self.lines[-1]["event"] != "ready":
            line = _ready_line(self.proc)
            assert line, f"backend did not start: {proc.log_text(self.stderr_path)}"
            self.lines.append(json.loads(line))
        self.ports = [x["port"] for x in self.lines[:-1]]

    def backend(self, i):
        """The i-th listener (0-based) as a Backend, for its events."""
        b = Backend.__new__(Backend)
        b.name, b.log, b.port, b.proc = None, self.logs[i], self.ports[i], self.proc
        return b

    def stop(self):
        rc = proc.stop(self.proc, signals=((signal.SIGTERM, 5.0), (signal.SIGKILL, 3.0)),
                       group=True)
        self.stderr = proc.log_text(self.stderr_path)
        self.proc.stdout.close()
        return rc


def _ready_line(p):
    """The next line uptls-backend writes on stdout (its listening or ready
    line), or b"" when it exits or stays silent for 10 s (then it is stopped)."""
    try:
        return proc.first_line(p, timeout=10)
    except proc.ProcError:
        proc.stop(p, group=True)
        return b""
