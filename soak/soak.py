#!/usr/bin/python3
"""Soak: many requests through uptls-proxy to an upstream group of two
uptls-backends over TLS while one backend is killed and restarted mid-run.

Loopback only, bounded in count (--requests) and time (--max-seconds). One
process: a non-blocking HTTP/1.1 client keeping --connections keep-alive
connections to the proxy (selectors, stdlib only). Checks:
  - every response is 200, 502 or 504 (each counted); a connection the
    proxy closes without a response is counted too and allowed only while a
    backend is down (a response cut when its upstream died, as nginx does);
  - the proxy (master and worker, same PIDs) is up at the end;
  - the worker's open fds (/proc/PID/fd) and RSS come back to their level
    before the load (measured after a warm-up on as many connections, so the
    caches and buffers that stay are already there) within a tolerance:
    fds exactly (+ --fd-tolerance), RSS + max(--rss-tolerance-pct %, --rss-tolerance-kb).
Prints the figures and, with --json FILE, writes them. Exit 0 when every
check holds, 1 otherwise.
"""

import argparse
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "harness"))

from uptls import BIN, pki as pki_mod, proc  # noqa: E402
from uptls.backend import BackendProcess  # noqa: E402


def backend_argv(pki, name, port, bin_dir):
    return [os.path.join(bin_dir, "uptls-backend"), "--name", name,
            "--cert", pki.path("server-a", "chain.pem"), "--key", pki.path("server-a", "key"),
            "--listen", "127.0.0.1", "--port", str(port), "--log", "/dev/null",
            "--idle-timeout", "30"]


def proc_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def proc_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


class Conn:
    __slots__ = ("sock", "buf", "sent_at", "need", "waiting")

    def __init__(self):
        self.sock = None
        self.buf = b""
        self.waiting = False


class Load:
    """Keeps N keep-alive connections busy until `total` requests are done."""

    def __init__(self, port, connections, path="/soak/", fresh_every=0):
        self.port = port
        self.n = connections
        self.path = path
        self.fresh_every = fresh_every
        self.sel = selectors.DefaultSelector()
        self.counts = {}
        self.closed_no_response = 0
        self.closed_while_down = 0
        self.connect_errors = 0
        self.done = 0
        self.sent = 0
        self.down = False

    def _open(self, c):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", self.port))
        except BlockingIOError:
            pass
        c.sock, c.buf, c.waiting = s, b"", False
        self.sel.register(s, selectors.EVENT_WRITE, c)

    def _close(self, c):
        try:
            self.sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()
        c.sock = None

    def _send(self, c):
        path = self.path
        if self.fresh_every and self.sent % self.fresh_every == self.fresh_every - 1:
            path = "/fresh/"
        req = (f"GET {path}{self.sent} HTTP/1.1\r\nHost: soak.test\r\n\r\n").encode()
        self.sent += 1
        try:
            c.sock.send(req)
        except OSError:
            self.connect_errors += 1
            self._finish_closed(c)
            return
        c.waiting = True
        self.sel.modify(c.sock, selectors.EVENT_READ, c)

    def _finish_closed(self, c):
        if c.waiting or c.sock is not None:
            pass
        if c.waiting:
            self.done += 1
            self.closed_no_response += 1
            if self.down:
                self.closed_while_down += 1
        self._close(c)

    def _parse(self, c):
        """Returns (status, keep) for each complete response in c.buf."""
        out = []
        while True:
            end = c.buf.find(b"\r\n\r\n")
            if end < 0:
                return out
            head = c.buf[:end].decode("latin-1").split("\r\n")
            status = int(head[0].split(" ")[1])
            length, keep = 0, True
            for h in head[1:]:
                k, _, v = h.partition(":")
                k = k.strip().lower()
                if k == "content-length":
                    length = int(v.strip())
                elif k == "connection" and "close" in v.lower():
                    keep = False
                elif k == "transfer-encoding":
                    raise ValueError("chunked response not expected here")
            if len(c.buf) < end + 4 + length:
                return out
            c.buf = c.buf[end + 4 + length:]
            out.append((status, keep))

    def run(self, total, deadline, on_progress=None):
        conns = [Conn() for _ in range(self.n)]
        target = self.done + total
        first = self.sent
        for c in conns:
            self._open(c)
        while self.done < target:
            if time.monotonic() > deadline:
                raise TimeoutError(f"load not finished in time: {self.done - (target - total)}"
                                   f"/{total} requests")
            for key, ev in self.sel.select(timeout=1.0):
                c = key.data
                if ev & selectors.EVENT_WRITE and not c.waiting:
                    err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        self.connect_errors += 1
                        self._close(c)
                        if self.sent - first < total:
                            self._open(c)
                        continue
                    if self.sent - first < total:
                        self._send(c)
                    else:
                        self._close(c)
                    continue
                try:
                    data = c.sock.recv(65536)
                except (ConnectionResetError, OSError):
                    data = b""
                if not data:
                    self._finish_closed(c)
                    if self.sent - first < total:
                        self._open(c)
                    continue
                c.buf += data
                for status, keep in self._parse(c):
                    c.waiting = False
                    self.done += 1
                    self.counts[status] = self.counts.get(status, 0) + 1
                    if on_progress:
                        on_progress(self.done - (target - total))
                    if not keep:
                        self._close(c)
                        if self.sent - first < total:
                            self._open(c)
                        break
                    if self.sent - first < total:
                        self._send(c)
                    else:
                        self._close(c)
                        break
        for c in conns:
            if c.sock is not None:
                self._close(c)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=50000)
    ap.add_argument("--connections", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=2000, help="requests before the baseline")
    ap.add_argument("--kill-at", type=float, default=0.3, help="fraction of requests done")
    ap.add_argument("--restart-at", type=float, default=0.5, help="fraction of requests done")
    ap.add_argument("--max-seconds", type=float, default=240)
    ap.add_argument("--fd-tolerance", type=int, default=0)
    ap.add_argument("--rss-tolerance-pct", type=float, default=10.0)
    ap.add_argument("--rss-tolerance-kb", type=int, default=4096)
    ap.add_argument("--no-kill", action="store_true", help="no backend is killed")
    ap.add_argument("--fresh-every", type=int, default=0,
                    help="every Nth request goes to a location with no upstream keepalive "
                         "(a new TLS connection, session resumed)")
    ap.add_argument("--no-resource-check", action="store_true",
                    help="do not check fds and RSS (e.g. under valgrind)")
    ap.add_argument("--bin-dir", default=BIN)
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--keep", action="store_true", help="keep the run folder (config, logs)")
    return ap.parse_args(argv)


def proxy_conf(tmp, pki, ports, lport):
    """uptls-proxy's configuration: /soak/ over a keepalive upstream group of
    both backends, /fresh/ over the same without keepalive (a new TLS
    connection per request, session resumed)."""
    return f"""worker_processes 1;
error_log {tmp}/error.log error;
events {{ worker_connections 2048; }}
http {{
    upstream soak {{
        server 127.0.0.1:{ports[0]};
        server 127.0.0.1:{ports[1]};
        keepalive 32;
    }}
    upstream fresh {{
        server 127.0.0.1:{ports[0]};
        server 127.0.0.1:{ports[1]};
    }}
    server {{
        listen 127.0.0.1:{lport};
        location /soak/ {{
            proxy_pass https://soak;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_ssl_trusted_certificate {pki.path("root-a", "pem")};
            proxy_ssl_verify on;
            proxy_ssl_name backend.uptls.test;
            proxy_ssl_session_reuse on;
            proxy_connect_timeout 2s;
            proxy_read_timeout 10s;
        }}
        location /fresh/ {{
            proxy_pass https://fresh;
            proxy_ssl_trusted_certificate {pki.path("root-a", "pem")};
            proxy_ssl_verify on;
            proxy_ssl_name backend.uptls.test;
            proxy_ssl_server_name on;
            proxy_ssl_session_reuse on;
            proxy_connect_timeout 5s;
            proxy_read_timeout 30s;
        }}
    }}
}}
"""


def start_backend(pki, i, port, bin_dir):
    """uptls-backend b<i> on a fixed port (a restarted one takes its old port)."""
    b = BackendProcess(f"b{i}", backend_argv(pki, f"b{i}", port, bin_dir), "/dev/null")
    return b.start()


def start_proxy(bin_dir, tmp, conf, lport):
    """uptls-proxy in the foreground, ready on lport; returns it and its one worker's PID."""
    proxy = proc.start([os.path.join(bin_dir, "uptls-proxy"), "-p", tmp, "-c", conf,
                        "-g", "daemon off;"], stdout=subprocess.DEVNULL, log=f"{tmp}/stderr")
    proxy.wait_port(lport, timeout=30)   # a valgrind wrapper starts slowly
    workers = proc.wait_until(lambda: children(proxy.pid), timeout=10, interval=0.1) or []
    assert len(workers) == 1, f"expected one worker, found {workers}"
    return proxy, workers[0]


def measure(worker):
    return {"fds": proc_fds(worker), "rss_kb": proc_rss_kb(worker)}


def warm_up(load, args, worker, deadline, fig):
    """The warm-up load, then the worker's baseline; the counters start again."""
    load.run(args.warmup, deadline)
    time.sleep(0.5)
    fig["warmup_counts"] = dict(load.counts)
    fig["before"] = measure(worker)
    load.counts, load.closed_no_response, load.closed_while_down = {}, 0, 0
    load.connect_errors = 0


def run_load(load, args, pki, ports, backends, worker, deadline, fig):
    """The measured load; backend b2 killed at --kill-at and restarted at
    --restart-at (fractions of the requests); the worker's peak fds/RSS
    sampled every 1,000 responses."""
    state = {"killed": None, "restarted": None}
    kill_n, restart_n = int(args.requests * args.kill_at), int(args.requests * args.restart_at)
    peak = {"fds": 0, "rss_kb": 0}

    def progress(n):
        if n % 1000 == 0:
            peak["fds"] = max(peak["fds"], proc_fds(worker))
            peak["rss_kb"] = max(peak["rss_kb"], proc_rss_kb(worker))
        if args.no_kill:
            return
        if state["killed"] is None and n >= kill_n:
            backends[1].proc.send_signal(signal.SIGKILL)   # our own child, by PID
            backends[1].proc.wait()
            state["killed"] = n
            load.down = True
        elif state["killed"] is not None and state["restarted"] is None and n >= restart_n:
            backends[1] = start_backend(pki, 2, ports[1], args.bin_dir)
            state["restarted"] = n
            load.down = False

    t0 = time.monotonic()
    load.run(args.requests, deadline, progress)
    fig["seconds"] = round(time.monotonic() - t0, 1)
    fig["req_per_s"] = round(args.requests / fig["seconds"])
    fig["counts"] = {str(k): v for k, v in sorted(load.counts.items())}
    fig["closed_without_response"] = load.closed_no_response
    fig["closed_while_backend_down"] = load.closed_while_down
    fig["connect_errors"] = load.connect_errors
    fig["killed_after"], fig["restarted_after"] = state["killed"], state["restarted"]
    fig["peak"] = peak


def count_proxy_log(tmp, fig):
    """What the proxy saw of the kill: failed attempts it retried elsewhere."""
    log = proc.log_text(f"{tmp}/error.log")
    fig["proxy_errors_logged"] = log.count("[error]")
    fig["proxy_alerts_logged"] = log.count("[alert]") + log.count("[emerg]")


def soak(args, fig):
    """Start the backends and the proxy, warm up, run the load, measure; stop
    everything whatever happens. Fills fig."""
    pki = pki_mod.build()
    tmp = tempfile.mkdtemp(prefix="uptls-soak.")
    backends, proxy = [], None
    deadline = time.monotonic() + args.max_seconds
    try:
        ports = [proc.free_port(), proc.free_port()]
        for i, port in enumerate(ports):
            backends.append(start_backend(pki, i + 1, port, args.bin_dir))
        lport = proc.free_port()
        conf = os.path.join(tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(proxy_conf(tmp, pki, ports, lport))
        fig["proxy_log"] = f"{tmp}/error.log"
        proxy, worker = start_proxy(args.bin_dir, tmp, conf, lport)
        load = Load(lport, args.connections, fresh_every=args.fresh_every)
        warm_up(load, args, worker, deadline, fig)
        run_load(load, args, pki, ports, backends, worker, deadline, fig)
        # after the load: every client connection is closed; the proxy keeps
        # at most `keepalive` idle upstream connections, as at the baseline
        time.sleep(1.0)
        fig["after"] = measure(worker)
        fig["proxy_up"] = proxy.poll() is None and children(proxy.pid) == [worker]
    finally:
        if proxy is not None:
            proxy.stop(signals=((signal.SIGTERM, 10.0), (signal.SIGKILL, 3.0)))
        for b in backends:
            b.stop()
        count_proxy_log(tmp, fig)
        if args.keep:
            print(f"soak: run folder kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
            fig.pop("proxy_log", None)


def judge(fig, args):
    """The checks of the module's docstring: a list of what did not hold."""
    problems = []
    bad = {k: v for k, v in fig["counts"].items() if k not in ("200", "502", "504")}
    if bad:
        problems.append(f"statuses other than 200/502/504: {bad}")
    if fig["closed_without_response"] != fig["closed_while_backend_down"]:
        problems.append("a connection closed without a response while both backends were up")
    if fig["connect_errors"]:
        problems.append(f"{fig['connect_errors']} connections to the proxy failed")
    if sum(fig["counts"].values()) + fig["closed_without_response"] != args.requests:
        problems.append("requests unaccounted for")
    if fig["proxy_alerts_logged"]:
        problems.append(f"{fig['proxy_alerts_logged']} [alert]/[emerg] lines in the proxy's log")
    if not fig["proxy_up"]:
        problems.append("the proxy (master or its worker) did not stay up")
    b, a = fig["before"], fig["after"]
    if args.no_resource_check:
        pass
    elif a["fds"] > b["fds"] + args.fd_tolerance:
        problems.append(f"fds {b['fds']} -> {a['fds']} (tolerance {args.fd_tolerance})")
    rss_tol = max(b["rss_kb"] * args.rss_tolerance_pct / 100, args.rss_tolerance_kb)
    if a["rss_kb"] > b["rss_kb"] + rss_tol and not args.no_resource_check:
        problems.append(f"RSS {b['rss_kb']} kB -> {a['rss_kb']} kB (tolerance {rss_tol:.0f} kB)")
    fig["rss_tolerance_kb"] = round(rss_tol)
    return problems


def print_figures(fig, args, problems):
    b, a = fig["before"], fig["after"]
    print(f"soak: {args.requests} requests on {args.connections} connections in "
          f"{fig['seconds']} s ({fig['req_per_s']} req/s); backend b2 killed after "
          f"{fig['killed_after']}, restarted after {fig['restarted_after']}")
    print(f"  statuses: {fig['counts']}; closed without a response: "
          f"{fig['closed_without_response']} (all while b2 was down: "
          f"{fig['closed_without_response'] == fig['closed_while_backend_down']})")
    print(f"  proxy error log: {fig['proxy_errors_logged']} [error] lines (upstream attempts "
          f"that failed and were retried or answered 502/504), "
          f"{fig['proxy_alerts_logged']} [alert]/[emerg]")
    print(f"  worker fds: {b['fds']} before, {fig['peak']['fds']} peak, {a['fds']} after "
          f"(tolerance +{args.fd_tolerance})")
    print(f"  worker RSS: {b['rss_kb']} kB before, {fig['peak']['rss_kb']} kB peak, "
          f"{a['rss_kb']} kB after (tolerance +{fig['rss_tolerance_kb']} kB)")
    print(f"  proxy up: {fig['proxy_up']}; " + ("OK" if fig["ok"] else "FAILED: " + "; ".join(problems)))


def main(argv=None):
    args = parse_args(argv)
    t_start = time.monotonic()
    fig = {"requests": args.requests, "connections": args.connections}
    soak(args, fig)
    fig["total_seconds"] = round(time.monotonic() - t_start, 1)
    problems = judge(fig, args)
    fig["ok"] = not problems
    fig["problems"] = problems
    print_figures(fig, args, problems)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(fig, f, indent=1)
    return 0 if fig["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
