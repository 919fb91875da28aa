"""Section 2, load: the reference proxy vs nginx, one worker each, one shared
uptls-backend, one nginx-syntax config file run unchanged by both, wrk on
loopback: a) upstream keepalive, b) new connection + resumption, c) full
handshake per request."""

import os
import re
import shutil
import tempfile

import benchlib as bl  # first: it puts harness/ on sys.path, for uptls.proc
import bench_profile
from bench_common import LOADS, NGINX, PKI, PROXIES, PROXY, SERVER_NAME, log, start_backend
from uptls import proc


def render_load_config(d, port, backend_port):
    """One nginx-syntax file both proxies run unchanged."""
    lines = ["# uptls bench: the same file for nginx and uptls-proxy"]
    if os.geteuid() == 0:
        lines.append("user root;")
    lines += ["daemon off;", "worker_processes 1;", f"pid {d}/proxy.pid;",
              f"error_log {d}/error.log warn;", "events { worker_connections 4096; }",
              "http {", "    access_log off;",
              f"    upstream bench_a {{ server 127.0.0.1:{backend_port}; keepalive 32; }}",
              f"    upstream bench_b {{ server 127.0.0.1:{backend_port}; }}",
              f"    upstream bench_c {{ server 127.0.0.1:{backend_port}; }}",
              "    server {", f"        listen 127.0.0.1:{port};",
              "        location / { return 404; }"]
    tls = [f"proxy_ssl_trusted_certificate {PKI}/root-a.pem;", "proxy_ssl_verify on;",
           f"proxy_ssl_name {SERVER_NAME};", "proxy_ssl_server_name on;",
           "proxy_ssl_protocols TLSv1.3;", "proxy_ssl_conf_command Groups P-256;"]
    per = {"a": ["proxy_pass https://bench_a;", "proxy_http_version 1.1;",
                 'proxy_set_header Connection "";', "proxy_ssl_session_reuse on;"],
           "b": ["proxy_pass https://bench_b;", "proxy_ssl_session_reuse on;"],
           "c": ["proxy_pass https://bench_c;", "proxy_ssl_session_reuse off;"]}
    for k in LOADS:
        lines.append(f"        location /{k}/ {{")
        lines += ["            " + x for x in per[k] + tls]
        lines.append("        }")
    lines += ["    }", "}", ""]
    path = os.path.join(d, "bench.conf")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path


def proxy_argv(which, d, conf):
    exe = NGINX if which == "nginx" else PROXY
    return [exe, "-p", d + "/", "-c", conf]


def start_proxy(which, d, conf, port):
    """(Proc, None) or (None, reason)."""
    for f in ("error.log",):
        try:
            os.truncate(os.path.join(d, f), 0)
        except OSError:
            pass
    pr = bl.Proc(proxy_argv(which, d, conf))
    bad = []
    for path in ("/a/", "/b/", "/c/"):
        st, err = bl.wait_http(port, path, timeout=6.0)
        if st != 200:
            bad.append(f"GET {path}: {st or err}")
            break
    if bad:
        alive = pr.alive()
        pr.stop()
        tail = ""
        try:
            tail = " | ".join(open(os.path.join(d, "error.log")).read().strip().splitlines()[-3:])
        except OSError:
            pass
        err = pr.stderr_text().strip().splitlines()[-2:]
        return None, ("; ".join(bad) + ("" if alive else " (process exited)") +
                      (f"; log: {tail[:300]}" if tail else "") +
                      (f"; stderr: {' | '.join(err)[:200]}" if err else ""))
    return pr, None


def proxy_preflight(built):
    """Does bin/uptls-proxy start and forward one request of each load?"""
    if not built:
        return False, "bin/uptls-proxy did not build (build/bench/proxy-build.log)"
    if not os.access(PROXY, os.X_OK):
        return False, "bin/uptls-proxy is not built"
    d = tempfile.mkdtemp(prefix="uptls-bench-pre-")
    be = None
    try:
        be, bport = start_backend()
        port = proc.free_port()
        conf = render_load_config(d, port, bport)
        pr, why = start_proxy("reference", d, conf, port)
        if pr is None:
            return False, why
        pr.stop()
        return True, None
    finally:
        if be:
            be.stop()
        shutil.rmtree(d, ignore_errors=True)


WRK_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}

def parse_wrk(text):
    r = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    r["rps"] = float(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", text)
    r["requests"] = int(m.group(1)) if m else None
    for pct in ("50", "99"):
        m = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s|m)\b", text)
        r[f"p{pct}_ms"] = float(m.group(1)) * WRK_UNITS[m.group(2)] if m else None
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    r["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    r["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    return r


def wrk(port, path, seconds, conns=32):
    argv = ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency",
            f"http://127.0.0.1:{port}{path}"]
    rc, wall, cpu, text = bl.run_timed(argv, timeout=seconds + 60)
    r = parse_wrk(text)
    r["wrk_cpu_s"] = cpu
    r["wall_s"] = wall
    return r, " ".join(argv)


def backend_log_counts(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    return {"handshakes": data.count(b'"event":"handshake"'),
            "resumed": data.count(b'"resumed":true'),
            "failed": data.count(b'"ok":false'),
            "requests": data.count(b'"event":"request"')}


def check_load_shape(load, m, conns=32):
    """Did the proxy do what the load is meant to measure? (from the backend's
    log). Up to 2 x conns failed handshakes are tolerated: wrk closes its
    connections at the end and a proxy then aborts upstream handshakes in flight."""
    c = m.get("upstream")
    if not c or not m.get("requests"):
        return None
    hs, req = c["handshakes"], max(1, c["requests"])
    if c["failed"] > 2 * conns:
        return f"{c['failed']} upstream handshakes failed"
    if load == "a" and hs > 0.05 * req:
        return f"upstream connections not kept alive: {hs} handshakes for {req} requests"
    if load in ("b", "c") and hs < 0.9 * req:
        return f"expected one upstream handshake per request: {hs} for {req} requests"
    if load == "b" and c["resumed"] < 0.5 * hs:
        return f"mostly not resumed: {c['resumed']} resumed of {hs} handshakes"
    if load == "c" and c["resumed"]:
        return f"session reuse off but {c['resumed']} handshakes resumed"
    return None


def measure_load(which, load, d, conf, port, seconds, be, be_log):
    pr, why = start_proxy(which, d, conf, port)
    if pr is None:
        return None, why
    try:
        path = f"/{load}/"
        wrk(port, path, 1)                              # warm-up (connections, sessions)
        pids = pr.pids()
        if be_log:
            os.truncate(be_log, 0)
        c0, b0, s0 = bl.tree_cpu(pids), bl.cpu_seconds(be.pid), bl.system_busy_seconds()
        w, cmd = wrk(port, path, seconds)
        c1, b1, s1 = bl.tree_cpu(pids), bl.cpu_seconds(be.pid), bl.system_busy_seconds()
        hwm = [bl.vm_hwm_kib(p) for p in pids]
        alive = pr.alive()
        m = dict(w)
        m["cpu_s"] = c1 - c0
        m["busy"] = (c1 - c0) / w["wall_s"]      # cores the proxy kept busy
        # cores that processes other than the proxy, the backend and wrk kept busy
        m["foreign_cores"] = max(0.0, (s1 - s0) - (c1 - c0) - (b1 - b0) - w["wrk_cpu_s"]) / \
            w["wall_s"]
        m["cpu_us_per_req"] = (c1 - c0) / w["requests"] * 1e6 if w.get("requests") else None
        m["backend_cpu_us_per_req"] = ((b1 - b0) / w["requests"] * 1e6
                                       if w.get("requests") else None)
        m["peak_rss_mib"] = sum(h for h in hwm if h) / 1024
        m["processes"] = len(pids)
        m["upstream"] = backend_log_counts(be_log) if be_log else None
        if be_log:
            os.truncate(be_log, 0)
        if not alive:
            return m, "the proxy exited during the measurement"
        if not w.get("requests"):
            return m, "wrk completed no request"
        if w["non2xx"] or w["socket_errors"] > w["requests"] * 0.01:
            return m, f"{w['non2xx']} non-2xx responses, {w['socket_errors']} socket errors"
        return m, check_load_shape(load, m)
    finally:
        pr.stop()


def section_load(args, proxy_ok):
    d = tempfile.mkdtemp(prefix="uptls-bench-load-")
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    be_log = os.path.join(shm, f"uptls-bench-{os.getpid()}.jsonl") if shm else None
    be, bport = start_backend(be_log or "/dev/null")
    port = proc.free_port()
    conf = render_load_config(d, port, bport)
    res = {"config": open(conf).read(), "loads": LOADS, "proxies": {},
           "wrk": f"wrk -t1 -c32 -d{args.seconds}s --latency (1 s warm-up before each)",
           "backend_log": be_log or "/dev/null"}
    raw = {p: {k: [] for k in LOADS} for p in PROXIES}
    problems = {p: {} for p in PROXIES}
    unavailable = {}
    if not proxy_ok[0]:
        unavailable["reference"] = proxy_ok[1]
    try:
        for i in range(args.runs):
            for load in LOADS:
                order = PROXIES if (i + ord(load)) % 2 == 0 else PROXIES[::-1]
                for p in order:
                    if p in unavailable:
                        continue
                    log(f"load {load}: {p} (run {i + 1}/{args.runs})")
                    m, why = measure_load(p, load, d, conf, port, args.seconds, be, be_log)
                    if m is None:
                        unavailable[p] = f"did not start or answer: {why}"
                        continue
                    raw[p][load].append(m)
                    if why:
                        problems[p].setdefault(load, why)
        for p in PROXIES:
            entry = {"binary": NGINX if p == "nginx" else PROXY}
            if p in unavailable:
                entry["not_available"] = unavailable[p]
            entry["loads"] = {}
            for load in LOADS:
                ms = raw[p][load]
                if not ms:
                    continue
                entry["loads"][load] = {
                    k: bl.stat([m.get(k) for m in ms])
                    for k in ("rps", "p50_ms", "p99_ms", "cpu_us_per_req", "peak_rss_mib",
                              "backend_cpu_us_per_req", "busy", "foreign_cores")}
                up = [m["upstream"] for m in ms if m.get("upstream")]
                if up:
                    entry["loads"][load]["upstream_per_request"] = {
                        "handshakes": sum(u["handshakes"] for u in up) /
                        max(1, sum(u["requests"] for u in up)),
                        "resumed_share": sum(u["resumed"] for u in up) /
                        max(1, sum(u["handshakes"] for u in up))}
                if load in problems[p]:
                    entry["loads"][load]["invalid"] = problems[p][load]
            res["proxies"][p] = entry
        ratios = {}
        if "reference" not in unavailable and "nginx" not in unavailable:
            for load in LOADS:
                rr, nn = raw["reference"][load], raw["nginx"][load]
                ratios[load] = {k: {"of_medians": bl.ratio(res["proxies"]["reference"]["loads"]
                                                           .get(load, {}).get(k),
                                                           res["proxies"]["nginx"]["loads"]
                                                           .get(load, {}).get(k)),
                                    "per_run": bl.paired([m.get(k) for m in rr],
                                                         [m.get(k) for m in nn])}
                                for k in ("rps", "p99_ms", "cpu_us_per_req", "peak_rss_mib")}
        res["ratios_reference_over_nginx"] = ratios
        res["_dir"], res["_conf"], res["_port"] = d, conf, port
        res["_backend"] = (be, be_log)
    except BaseException:
        be.stop()
        raise
    return res


def load_cleanup(res):
    be, be_log = res.pop("_backend", (None, None))
    if be:
        be.stop()
    if be_log:
        try:
            os.unlink(be_log)
        except OSError:
            pass
    d = res.pop("_dir", None)
    res.pop("_conf", None)
    res.pop("_port", None)
    if d:
        shutil.rmtree(d, ignore_errors=True)


def profile_proxy(res, which, load, seconds=3):
    d, conf, port = res["_dir"], res["_conf"], res["_port"]
    pr, why = start_proxy(which, d, conf, port)
    if pr is None:
        return {"tool": None, "top": [], "why": why}
    try:
        wrk(port, f"/{load}/", 1)
        if bench_profile.PERF is None or bench_profile.PERF:
            prof = bench_profile.profile_pids(pr.pids(), seconds,
                                lambda: wrk(port, f"/{load}/", seconds))
            if prof.get("tool"):
                return prof
    finally:
        pr.stop()
    return bench_profile.callgrind_proxy(proxy_argv(which, d, conf), port, f"/{load}/")
