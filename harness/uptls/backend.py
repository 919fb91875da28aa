"""Mock TLS backends: uptls-backend processes and what they observed.

One process per backend of a scenario. It picks its own port and reports
it on its first stdout line, so there is no port race; it writes one JSON
line per event to its log file, which this module reads back.
"""

import json
import os
import select
import signal
import subprocess
import time

from . import BIN, UptlsError

START_TIMEOUT = 10.0


class BackendProcess:
    def __init__(self, name, argv, log_path):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.proc = None
        self.port = None

    def start(self):
        return self.spawn().wait_port()

    def spawn(self):
        """Start the process. Call from the main thread: uptls-backend sets
        PR_SET_PDEATHSIG, which fires when the *thread* that forked it ends."""
        try:
            # stderr to a file: a pipe nobody drains could block a backend
            # writing a long sanitizer report at exit.
            self.stderr_path = self.log_path + ".stderr"
            with open(self.stderr_path, "wb") as err:
                self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=err,
                                             stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as e:
            raise UptlsError(f"backend {self.name}: cannot run {self.argv[0]}: {e.strerror}") \
                from None
        return self

    def wait_port(self):
        deadline = time.monotonic() + START_TIMEOUT
        line = b""
        while time.monotonic() < deadline and not line.endswith(b"\n"):
            r, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                line += chunk
            elif self.proc.poll() is not None:
                break
        try:
            msg = json.loads(line.decode().splitlines()[0])
            self.port = int(msg["port"])
        except (ValueError, KeyError, IndexError, UnicodeDecodeError):
            self.stop()
            raise UptlsError(f"backend {self.name} did not start: "
                             f"{self.stderr_tail() or line!r} "
                             f"(command: {' '.join(self.argv)})") from None
        return self

    def stderr_tail(self, n=2000):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read()[-n:].decode(errors="replace").strip()
        except (OSError, AttributeError):
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def events(self):
        """Every event line logged so far (a torn last line is left for later)."""
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        out = []
        for raw in data.split(b"\n")[:-1]:
            if raw.strip():
                try:
                    out.append(json.loads(raw))
                except ValueError:
                    out.append({"event": "garbled", "raw": raw[:200].decode(errors="replace")})
        return out


def argv_for(backend, pki, run_dir, slug, backend_bin=None):
    """uptls-backend's command line for a scenario's [[backend]] table."""
    exe = backend_bin or os.path.join(BIN, "uptls-backend")
    o = backend.options
    log = os.path.join(run_dir, "backends", f"{slug}.{backend.name}.jsonl")
    os.makedirs(os.path.dirname(log), exist_ok=True)
    argv = [exe, "--name", backend.name,
            "--cert", pki.path(backend.certificate, "chain.pem"),
            "--key", pki.path(backend.certificate, "key"),
            "--listen", "127.0.0.1", "--port", "0", "--log", log]
    auth = o.get("client_auth", "none")
    argv += ["--client-auth", auth]
    if o.get("client_ca"):
        argv += ["--client-ca", pki.bundle(run_dir, o["client_ca"], "pem")]
    for key, flag in (("min_proto", "--min-proto"), ("max_proto", "--max-proto"),
                      ("ciphers", "--ciphers"), ("ciphersuites", "--ciphersuites")):
        if key in o:
            argv += [flag, o[key]]
    for key, flag in (("session_cache", "--session-cache"), ("tickets", "--tickets")):
        if key in o:
            argv += [flag, "on" if o[key] else "off"]
    if o.get("close_after_response"):
        argv.append("--close-after-response")
    for fault in o.get("faults", []):
        argv += ["--fault", fault]
    return argv, log
