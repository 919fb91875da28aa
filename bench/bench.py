#!/usr/bin/python3
"""make bench: the performance figures of uptls (see README.md, Performance).

Sections, each comparison measured in the same run as what it is compared
with, every figure the median of --runs repetitions with min and max:

  suite    wall time of `make conformance` for nginx and the reference proxy
           (warm PKI; cold: the run builds its PKI into an empty folder of its
           own, UPTLS_PKI_OUT, never touching fixtures/out, which other people
           use concurrently; a driver without UPTLS_PKI_OUT: warm + the time
           of uptls-certgen -f into a temporary folder); the floor: the
           CPU time of the same number of handshakes between uptls-backend
           and a plain OpenSSL client (build/bench/uptls-hsclient).
  load     reference proxy vs nginx, one worker each, one shared uptls-backend,
           one nginx-syntax config file run unchanged by both, wrk on
           loopback: a) upstream keepalive, b) new connection + resumption,
           c) full handshake per request.
  ceiling  openssl speed ecdsap256 ecdhp256 -> client-side full handshakes/s
           per core.
  backend  uptls-backend vs nginx as a TLS server: full and resumed
           handshake rates with the same certificate.

A goal that does not hold is named with why and a profile (perf, or
valgrind's callgrind when perf cannot sample) of where the time goes.
Writes OUT/bench.json and OUT/bench.html (inline SVG).
"""

import argparse
import datetime
import glob
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl          # noqa: E402
import bench_html              # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "bin")
PKI = os.path.join(ROOT, "fixtures", "out")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
PROXY = os.path.join(BIN, "uptls-proxy")
SERVER_NAME = "backend.uptls.test"        # a SAN of server-a
PROXIES = ("nginx", "reference")
LOADS = {
    "a": "upstream keepalive (keepalive 32, HTTP/1.1)",
    "b": "new upstream connection per request, session resumption",
    "c": "full upstream handshake per request (session reuse off)",
}
GOAL_SUITE_WALL = 5.0
GOAL_SUITE_FLOOR_X = 5.0
GOAL_BACKEND_X = 0.9
GOAL_C_X = 1.25


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def fmt(v, nd=2):
    if v is None:
        return "-"
    if isinstance(v, dict):
        return f"{fmt(v['median'], nd)} [{fmt(v['min'], nd)}-{fmt(v['max'], nd)}]"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{nd}f}"


# =====================================================================================
# machine
# =====================================================================================
def machine():
    model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ossl = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    ngv = subprocess.run([NGINX, "-v"], capture_output=True, text=True).stderr.strip()
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "openssl": ossl, "nginx": ngv.replace("nginx version: ", "").replace("nginx/", ""),
            "wrk": (wrk.stdout + wrk.stderr).split("Copyright")[0].strip(),
            "loadavg_at_start": open("/proc/loadavg").read().split()[:3]}


# =====================================================================================
# profiles
# =====================================================================================
def perf_usable():
    if not shutil.which("perf"):
        return False
    with tempfile.NamedTemporaryFile(suffix=".perf") as f:
        r = subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-o", f.name, "--", "true"],
                           capture_output=True, text=True)
        return r.returncode == 0


PERF = None


def perf_top(data, sort, limit=12):
    r = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children",
                        "--sort", sort, "--percent-limit", "1"],
                       capture_output=True, text=True, timeout=120)
    rows = []
    for line in r.stdout.splitlines():
        m = re.match(r"\s+([\d.]+)%\s+(.*)$", line)
        if m:
            rows.append(f"{float(m.group(1)):5.1f}%  {' '.join(m.group(2).split())}")
        if len(rows) >= limit:
            break
    return rows


def profile_pids(pids, seconds, during):
    """perf samples of running processes while during() runs; top symbols."""
    global PERF
    if PERF is None:
        PERF = perf_usable()
    if not PERF:
        return {"tool": None, "top": [], "why": "perf cannot sample here"}
    with tempfile.TemporaryDirectory(prefix="uptls-bench-perf-") as d:
        data = os.path.join(d, "perf.data")
        pr = bl.Proc(["perf", "record", "-q", "-e", "cpu-clock", "-F", "1999", "-o", data,
                      "-p", ",".join(str(p) for p in pids), "--", "sleep", str(seconds)])
        time.sleep(0.2)
        during()
        pr.p.wait(timeout=seconds + 30)
        return {"tool": f"perf record -e cpu-clock -p (its processes), {seconds} s",
                "by_dso": perf_top(data, "dso", 6),
                "top": perf_top(data, "dso,sym")}


def profile_command(argv, sort="comm,dso"):
    global PERF
    if PERF is None:
        PERF = perf_usable()
    if not PERF:
        return {"tool": None, "top": [], "why": "perf cannot sample here"}
    with tempfile.TemporaryDirectory(prefix="uptls-bench-perf-") as d:
        data = os.path.join(d, "perf.data")
        subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-F", "1999", "-o", data,
                        "--", *argv], capture_output=True, timeout=300)
        return {"tool": "perf record -e cpu-clock (whole command, children inherited)",
                "by_process": perf_top(data, "comm", 8),
                "top": perf_top(data, "comm,dso,sym", 14)}


def callgrind_proxy(argv, port, path, seconds=3):
    """Fallback profile of a proxy: run it under callgrind, light wrk load."""
    if not shutil.which("valgrind"):
        return {"tool": None, "top": [], "why": "neither perf nor valgrind usable"}
    with tempfile.TemporaryDirectory(prefix="uptls-bench-cg-") as d:
        out = os.path.join(d, "cg.%p")
        pr = bl.Proc(["valgrind", "--tool=callgrind", "--trace-children=yes",
                      f"--callgrind-out-file={out}", *argv])
        st, _ = bl.wait_http(port, path, timeout=20)
        if st:
            subprocess.run(["wrk", "-t1", "-c4", f"-d{seconds}s", f"http://127.0.0.1:{port}{path}"],
                           capture_output=True, timeout=seconds + 30)
        pr.stop(timeout=20)
        rows = []
        for f in sorted(glob.glob(os.path.join(d, "cg.*")), key=os.path.getsize, reverse=True)[:1]:
            r = subprocess.run(["callgrind_annotate", "--inclusive=no", f],
                               capture_output=True, text=True)
            for line in r.stdout.splitlines():
                m = re.match(r"\s*([\d,]+)\s+\(\s*([\d.]+)%\)\s+(\S.*)$", line)
                if m and "PROGRAM TOTALS" not in line:
                    rows.append(f"{float(m.group(2)):5.1f}%  {m.group(3)[:110]}")
                if len(rows) >= 12:
                    break
        return {"tool": "valgrind --tool=callgrind (Ir), wrk -c4", "top": rows}


# =====================================================================================
# 1. suite time
# =====================================================================================
def make_conformance(target, report_dir, keep=False, extra=()):
    argv = ["make", "--no-print-directory", "-C", ROOT, *extra, "conformance",
            f"TARGET={target}", f"REPORT_DIR={report_dir}"]
    if keep:
        argv.append("KEEP=1")
    return argv


def result_doc(report_dir, target):
    try:
        with open(os.path.join(report_dir, f"{target}.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def count_handshakes(run_dir):
    c = {"full": 0, "resumed": 0, "failed": 0}
    for path in glob.glob(os.path.join(run_dir, "**", "*.jsonl"), recursive=True):
        with open(path, errors="replace") as f:
            for line in f:
                if '"handshake"' not in line:
                    continue
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                if e.get("event") != "handshake":
                    continue
                if not e.get("ok"):
                    c["failed"] += 1
                elif e.get("resumed"):
                    c["resumed"] += 1
                else:
                    c["full"] += 1
    return c


def slowest_scenarios(doc, n=5):
    """Scenarios by the time their requests took (ms, summed over steps)."""
    out = []
    for sc in doc.get("scenarios", []):
        ms = sum(r.get("time_ms") or 0 for st in sc.get("steps") or []
                 for r in (st.get("observed") or {}).get("responses") or [])
        out.append((round(ms), sc.get("id")))
    out.sort(reverse=True)
    return [{"id": i, "request_ms": ms} for ms, i in out[:n]]


def why_not(text):
    for line in text.splitlines():
        if "uptls:" in line and ("sanity" in line or "not built" in line or "Exit" in line):
            return line.strip().lstrip("! ").replace("_pytest.outcomes.Exit: ", "")[:300]
    tail = [ln for ln in text.strip().splitlines() if ln.strip()][-2:]
    return " | ".join(tail)[:300]


def floor_cpu(client, counts, runs):
    """CPU (client + uptls-backend) of the same number of handshakes: failed
    ones are timed as full ones (they do at most that much work)."""
    n_full = counts["full"] + counts["failed"]
    n_res = counts["resumed"]
    vals, walls = [], []
    for _ in range(runs):
        be, port = bl.start_backend(os.path.join(BIN, "uptls-backend"),
                                    f"{PKI}/server-a.chain.pem", f"{PKI}/server-a.key", "/dev/null")
        try:
            c0 = bl.cpu_seconds(be.pid)
            total, wall = 0.0, 0.0
            for n, extra in ((n_full, []), (n_res, ["-r"])):
                if n == 0:
                    continue
                out = hsclient(client, port, n, 1, extra)
                total += out["client_cpu_s"]
                wall += out["wall_s"]
            total += bl.cpu_seconds(be.pid) - c0
            vals.append(total)
            walls.append(wall)
        finally:
            be.stop()
    return bl.stat(vals), bl.stat(walls)


def section_suite(args, proxy_ok, proxy_built):
    res = {"targets": {}, "pki": {}}
    tmp = tempfile.mkdtemp(prefix="uptls-bench-suite-")
    extra = () if proxy_built else ("-o", os.path.relpath(PROXY, ROOT))
    try:
        # PKI: cold build into a private folder, then the stamp check a run does.
        certgen = os.path.join(BIN, "uptls-certgen")
        pki_file = os.path.join(ROOT, "fixtures", "pki.toml")
        cold, warm = [], []
        for i in range(args.runs):
            out = os.path.join(tmp, f"pki{i}")
            rc, wall, _, text = bl.run_timed([certgen, "-i", pki_file, "-o", out, "-f"])
            if rc != 0:
                res["pki"]["error"] = text.strip()[:300]
                break
            cold.append(wall)
            rc, wall, _, _ = bl.run_timed([certgen, "-i", pki_file, "-o", out])
            warm.append(wall)
        m = re.search(r"\((\d+) entities", text or "")
        res["pki"].update({"cold_s": bl.stat(cold), "warm_check_s": bl.stat(warm),
                           "entities": int(m.group(1)) if m else None,
                           "how": "uptls-certgen -f into a temporary folder (cold); the same "
                                  "command without -f (the stamp check every run does)"})
        # make all once, untimed, so no timed run compiles anything
        subprocess.run(["make", "--no-print-directory", "-C", ROOT, *extra, "all"],
                       capture_output=True)
        unavailable = {}
        if not proxy_ok[0]:
            unavailable["reference"] = proxy_ok[1]
        walls = {t: [] for t in PROXIES}
        cpus = {t: [] for t in PROXIES}
        driver = {t: [] for t in PROXIES}
        summary, slow, exits = {}, {}, {}
        foreign = {t: [] for t in PROXIES}
        colds = {t: [] for t in PROXIES}
        # Since the driver honours UPTLS_PKI_OUT, a cold run gets a PKI folder
        # of its own; before, cold = warm + uptls-certgen -f.
        with open(os.path.join(ROOT, "harness", "uptls", "__init__.py")) as f:
            cold_direct = "UPTLS_PKI_OUT" in f.read()
        for i in range(args.runs):
            order = PROXIES if i % 2 == 0 else PROXIES[::-1]
            for t in order:
                if t in unavailable:
                    continue
                rd = os.path.join(tmp, f"r-{t}-{i}")
                log(f"suite: make conformance TARGET={t} (run {i + 1}/{args.runs})")
                rc, wall, cpu, text = bl.run_timed(make_conformance(t, rd, extra=extra),
                                                   foreign=foreign[t])
                doc = result_doc(rd, t)
                if rc not in (0, 1) or not doc:
                    unavailable[t] = (f"make conformance TARGET={t} exited {rc}: {why_not(text)}")
                    continue
                exits[t] = rc        # 1: some verdict fail/error; the time still counts
                walls[t].append(wall)
                cpus[t].append(cpu)
                driver[t].append(doc.get("duration_s"))
                summary[t] = doc.get("summary")
                slow[t] = slowest_scenarios(doc)
                if cold_direct:
                    # the same run with an empty PKI folder of its own (UPTLS_PKI_OUT)
                    env = dict(os.environ, UPTLS_PKI_OUT=os.path.join(tmp, f"pki-{t}-{i}"))
                    rd = os.path.join(tmp, f"c-{t}-{i}")
                    log(f"suite: make conformance TARGET={t}, cold PKI (run {i + 1}/{args.runs})")
                    rc, wall, _, _ = bl.run_timed(make_conformance(t, rd, extra=extra), env=env)
                    if rc in (0, 1) and result_doc(rd, t):
                        colds[t].append(wall)
        # handshake counts from one KEEP=1 run per target (untimed)
        for t in PROXIES:
            entry = {"scenarios": sum((summary.get(t) or {}).values()) or None,
                     "summary": summary.get(t), "slowest": slow.get(t),
                     "exit": exits.get(t)}
            if t in unavailable:
                entry["not_available"] = unavailable[t]
                res["targets"][t] = entry
                continue
            rd = os.path.join(tmp, f"keep-{t}")
            rc, _, _, text = bl.run_timed(make_conformance(t, rd, keep=True, extra=extra))
            doc = result_doc(rd, t) or {}
            run_dir = doc.get("run_dir")
            counts = count_handshakes(run_dir) if run_dir and os.path.isdir(run_dir) else None
            if run_dir and run_dir.startswith(tempfile.gettempdir()) and "uptls-" in run_dir:
                shutil.rmtree(run_dir, ignore_errors=True)
            log(f"suite: floor for {t}: {counts}")
            fl, flw = floor_cpu(args.client, counts, args.runs) if counts else (None, None)
            wall = bl.stat(walls[t])
            pki_cold = res["pki"]["cold_s"]
            entry.update({
                "warm_wall_s": wall, "cpu_s": bl.stat(cpus[t]),
                "driver_run_s": bl.stat(driver[t]),
                "foreign_cores": bl.stat(foreign[t]),
                "cold_wall_s": (bl.stat(colds[t]) if cold_direct else
                                {k: wall[k] + pki_cold["median"] for k in ("median", "min", "max")}
                                if wall and pki_cold else None),
                "handshakes": counts, "floor_cpu_s": fl, "floor_wall_s_sequential": flw,
                "wall_over_floor": (wall["median"] / fl["median"]) if wall and fl else None,
                "cpu_over_floor": (bl.stat(cpus[t])["median"] / fl["median"])
                if cpus[t] and fl else None,
            })
            res["targets"][t] = entry
        res["floor_how"] = ("uptls-hsclient (C, OpenSSL, blocking, one connection at a time) "
                            "against uptls-backend with server-a (P-256, TLS 1.3, P-256 "
                            "ECDHE, verification on): full handshakes for the run's full and "
                            "failed ones, resumed for its resumed ones, each with one GET; "
                            "CPU = the client's getrusage + the backend's utime+stime")
        res["cold_how"] = ("make conformance with UPTLS_PKI_OUT=<empty temporary folder>: "
                           "the run builds its PKI" if cold_direct else
                           "warm make conformance + uptls-certgen -f (median of each)")
        res["make_extra"] = list(extra)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return res


# =====================================================================================
# 2. load: reference proxy vs nginx
# =====================================================================================
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
    be, bport = bl.start_backend(os.path.join(BIN, "uptls-backend"),
                                 f"{PKI}/server-a.chain.pem", f"{PKI}/server-a.key",
                                 be_log or "/dev/null")
    port = bl.free_port()
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
        if PERF is None or PERF:
            prof = profile_pids(pr.pids(), seconds,
                                lambda: wrk(port, f"/{load}/", seconds))
            if prof.get("tool"):
                return prof
    finally:
        pr.stop()
    return callgrind_proxy(proxy_argv(which, d, conf), port, f"/{load}/")


# =====================================================================================
# 3. ceiling
# =====================================================================================
def section_ceiling(args):
    argv = ["openssl", "speed", "-seconds", str(args.speed_seconds), "ecdsap256", "ecdhp256"]
    log("ceiling: " + " ".join(argv))
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    m1 = re.search(r"256 bits ecdsa \(nistp256\)\s+\S+\s+\S+\s+([\d.]+)\s+([\d.]+)", r.stdout)
    m2 = re.search(r"256 bits ecdh \(nistp256\)\s+\S+\s+([\d.]+)", r.stdout)
    if not (m1 and m2):
        return {"command": " ".join(argv), "error": "could not parse openssl speed output"}
    sign, verify, ecdh = float(m1.group(1)), float(m1.group(2)), float(m2.group(1))
    # Client side of a TLS 1.3 full handshake with P-256 ECDHE to server-a
    # (leaf signed by the trusted root): verify CertificateVerify + verify the
    # leaf's signature, one ECDHE key generation (costed as one ECDSA sign:
    # both are one fixed-base scalar multiplication), one ECDH derivation.
    client_s = 2 / verify + 1 / sign + 1 / ecdh
    server_s = 1 / sign + 1 / sign + 1 / ecdh      # sign CertificateVerify, keygen, derive
    return {"command": " ".join(argv), "ecdsa_sign_per_s": sign,
            "ecdsa_verify_per_s": verify, "ecdh_per_s": ecdh,
            "client_full_hs_per_core": 1 / client_s,
            "server_full_hs_per_core": 1 / server_s,
            "both_sides_full_hs_per_core": 1 / (client_s + server_s),
            "how": "client = 2 ECDSA verify + 1 keygen (~1 sign) + 1 ECDH; server = 1 sign + "
                   "1 keygen + 1 ECDH; public-key operations only (no hashing, AEAD, "
                   "X.509 parsing, syscalls)"}


# =====================================================================================
# 4. mock backend vs nginx as a TLS server
# =====================================================================================
def nginx_tls_server(d):
    port = bl.free_port()
    lines = []
    if os.geteuid() == 0:
        lines.append("user root;")
    lines += ["daemon off;", "worker_processes 1;", f"pid {d}/tls.pid;",
              f"error_log {d}/tls-error.log warn;", "events { worker_connections 4096; }",
              "http {", "    access_log off;", "    server {",
              f"        listen 127.0.0.1:{port} ssl;",
              f"        ssl_certificate {PKI}/server-a.chain.pem;",
              f"        ssl_certificate_key {PKI}/server-a.key;",
              "        ssl_protocols TLSv1.2 TLSv1.3;",
              "        ssl_session_cache shared:bench:4m;", "        ssl_session_tickets on;",
              '        location / { return 200 "backend=nginx conn=1 req=1\\n"; }',
              "    }", "}", ""]
    conf = os.path.join(d, "tls.conf")
    with open(conf, "w") as f:
        f.write("\n".join(lines))
    pr = bl.Proc([NGINX, "-p", d + "/", "-c", conf])
    deadline = time.monotonic() + 5
    import socket
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return pr, port
        except OSError:
            time.sleep(0.05)
    pr.stop()
    raise RuntimeError(f"nginx as a TLS server did not start: {pr.stderr_text()[:300]}")


def hsclient(client, port, n, procs, extra=()):
    argv = [client, "-p", str(port), "-n", str(n), "-j", str(procs),
            "-C", f"{PKI}/root-a.pem", "-s", SERVER_NAME, "-g", "P-256", "-V", "TLSv1.3",
            *extra]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RuntimeError(f"uptls-hsclient failed: {r.stderr.strip()[:300]}") from None


def section_backend(args):
    d = tempfile.mkdtemp(prefix="uptls-bench-tls-")
    servers = {}
    res = {"client": "uptls-hsclient -j 2 (two processes, blocking, one GET per "
                     "connection), TLS 1.3, P-256 ECDHE, verification on",
           "servers": {}}
    try:
        be, bport = bl.start_backend(os.path.join(BIN, "uptls-backend"),
                                     f"{PKI}/server-a.chain.pem", f"{PKI}/server-a.key",
                                     "/dev/null")
        servers["uptls-backend"] = (be, bport)
        ng, nport = nginx_tls_server(d)
        servers["nginx"] = (ng, nport)
        raw = {s: {"full": [], "resumed": []} for s in servers}
        n = {"full": args.hs_full, "resumed": args.hs_resumed}
        for i in range(args.runs):
            for mode in ("full", "resumed"):
                order = list(servers) if i % 2 == 0 else list(servers)[::-1]
                for s in order:
                    pr, port = servers[s]
                    pids = pr.pids()
                    c0, s0 = bl.tree_cpu(pids), bl.system_busy_seconds()
                    out = hsclient(args.client, port, n[mode], 2,
                                   ["-r"] if mode == "resumed" else [])
                    c1, s1 = bl.tree_cpu(pids), bl.system_busy_seconds()
                    out["foreign_cores"] = max(0.0, (s1 - s0) - (c1 - c0) -
                                               out["client_process_cpu_s"]) / out["wall_s"]
                    out["server_cpu_us_per_hs"] = (c1 - c0) / max(1, out["ok"]) * 1e6
                    out["rate"] = out["ok"] / out["wall_s"] if out["wall_s"] else None
                    raw[s][mode].append(out)
        log("backend: measured")
        for s in servers:
            res["servers"][s] = {}
            for mode in ("full", "resumed"):
                outs = raw[s][mode]
                e = {"rate_hs_per_s": bl.stat([o["rate"] for o in outs]),
                     "server_cpu_us_per_hs": bl.stat([o["server_cpu_us_per_hs"] for o in outs]),
                     "foreign_cores": bl.stat([o["foreign_cores"] for o in outs]),
                     "n": n[mode], "failed": sum(o["failed"] for o in outs),
                     "resumed": sum(o["resumed"] for o in outs)}
                errs = [o["first_error"] for o in outs if o.get("first_error")]
                if errs:
                    e["first_error"] = errs[0]
                res["servers"][s][mode] = e
        res["ratios_backend_over_nginx"] = {
            mode: {"rate": {"of_medians": bl.ratio(res["servers"]["uptls-backend"][mode]["rate_hs_per_s"],
                                                   res["servers"]["nginx"][mode]["rate_hs_per_s"]),
                            "per_run": bl.paired([o["rate"] for o in raw["uptls-backend"][mode]],
                                                 [o["rate"] for o in raw["nginx"][mode]])},
                   "server_cpu_per_hs": {
                       "of_medians": bl.ratio(res["servers"]["uptls-backend"][mode]["server_cpu_us_per_hs"],
                                              res["servers"]["nginx"][mode]["server_cpu_us_per_hs"])}}
            for mode in ("full", "resumed")}
    finally:
        for pr, _ in servers.values():
            pr.stop()
        shutil.rmtree(d, ignore_errors=True)
    return res


def profile_backend(args, mode):
    be, port = bl.start_backend(os.path.join(BIN, "uptls-backend"),
                                f"{PKI}/server-a.chain.pem", f"{PKI}/server-a.key", "/dev/null")
    try:
        return profile_pids([be.pid], 3, lambda: hsclient(
            args.client, port, args.hs_full * (2 if mode == "resumed" else 1), 2,
            ["-r"] if mode == "resumed" else []))
    finally:
        be.stop()


# =====================================================================================
# goals
# =====================================================================================
def goals(doc, args):
    out = []

    def goal(name, holds, figure, why=None, profile=None):
        out.append({"goal": name, "holds": holds, "figure": figure, "why": why,
                    "profile_key": profile})

    suite = doc.get("suite", {}).get("targets", {})
    for t in PROXIES:
        e = suite.get(t, {})
        if e.get("not_available"):
            goal(f"suite {t}: whole catalogue < {GOAL_SUITE_WALL:.0f} s wall", None,
                 "not available: " + e["not_available"])
            goal(f"suite {t}: within {GOAL_SUITE_FLOOR_X:.0f}x the handshake floor", None,
                 "not available")
            continue
        w = e.get("warm_wall_s")
        if w:
            goal(f"suite {t}: whole catalogue < {GOAL_SUITE_WALL:.0f} s wall (warm)",
                 w["median"] < GOAL_SUITE_WALL, f"{w['median']:.2f} s",
                 None if w["median"] < GOAL_SUITE_WALL else "see the profile", f"suite-{t}")
        c = e.get("cold_wall_s")
        if c:
            goal(f"suite {t}: whole catalogue < {GOAL_SUITE_WALL:.0f} s wall (cold PKI)",
                 c["median"] < GOAL_SUITE_WALL, f"{c['median']:.2f} s")
        x = e.get("wall_over_floor")
        if x is not None:
            fl = e["floor_cpu_s"]["median"]
            why = None
            if x > GOAL_SUITE_FLOOR_X:
                cpu = e["cpu_s"]["median"]
                ncpu = doc["machine"]["nproc"] or 1
                busy = cpu / (w["median"] * ncpu)
                why = (f"the catalogue's {sum(e['handshakes'].values())} handshakes cost "
                       f"{fl * 1000:.0f} ms of CPU, all its processes {cpu:.2f} s CPU "
                       f"(see the profile: backend process starts, python, the target); "
                       f"over {w['median']:.2f} s wall on {ncpu} cores that is "
                       f"{busy * 100:.0f}% busy")
                if busy < 0.5:
                    why += (", so most of the wall time is waiting, not computing; "
                            "slowest scenarios by request time: " +
                            ", ".join(f"{x['id']} {x['request_ms']} ms"
                                      for x in (e.get("slowest") or [])[:4]))
                why += (f"; driver run {e['driver_run_s']['median']:.2f} s of the wall, the "
                        f"rest is python/pytest start-up, catalogue load and reports")
            goal(f"suite {t}: wall within {GOAL_SUITE_FLOOR_X:.0f}x the handshake floor",
                 x <= GOAL_SUITE_FLOOR_X, f"{x:.1f}x ({w['median']:.2f} s / {fl:.3f} s CPU)",
                 why, f"suite-{t}")

    load = doc.get("load") or {}
    ref = load.get("proxies", {}).get("reference", {})
    ngx = load.get("proxies", {}).get("nginx", {})
    ratios = load.get("ratios_reference_over_nginx", {})
    for k in LOADS if load else ():
        if ref.get("not_available") or ngx.get("not_available") or k not in ratios:
            why = "not available: " + (ref.get("not_available") or ngx.get("not_available") or "?")
            goal(f"load {k}: reference >= 1.0x nginx requests/s", None, why)
            continue
        r = ratios[k]
        rl, nl = ref["loads"][k], ngx["loads"][k]
        inval = rl.get("invalid") or nl.get("invalid")
        rps = r["rps"]["of_medians"]
        cpu = r["cpu_us_per_req"]["of_medians"]
        p99 = r["p99_ms"]["of_medians"]
        base_why = (f"CPU/request reference {rl['cpu_us_per_req']['median']:.1f} us vs nginx "
                    f"{nl['cpu_us_per_req']['median']:.1f} us; cores kept busy reference "
                    f"{rl['busy']['median']:.2f} vs nginx {nl['busy']['median']:.2f}")
        ru, nu = rl.get("upstream_per_request"), nl.get("upstream_per_request")
        if ru and nu:
            base_why += (f"; upstream handshakes/request {ru['handshakes']:.3f} vs "
                         f"{nu['handshakes']:.3f}, resumed {ru['resumed_share'] * 100:.0f}% vs "
                         f"{nu['resumed_share'] * 100:.0f}%")
        fr, fn = (rl.get("foreign_cores") or {}).get("median"), (nl.get("foreign_cores") or {}).get("median")
        if fr is not None and fn is not None and abs(fr - fn) > 0.2:
            base_why += (f"; CAUTION: other processes kept {fr:.2f} cores busy during the reference "
                         f"runs vs {fn:.2f} during nginx's, so this comparison is skewed by the "
                         f"machine, not only the proxies (re-run on a quiet machine)")
        if rl["busy"]["median"] < 0.9 * nl["busy"]["median"]:
            base_why += ("; the reference proxy is idle part of the time while nginx is not: "
                         "it waits (blocking call, serialised upstream connects, a timer) "
                         "rather than computes" +
                         (", or other processes took its core" if fr and fr > 0.2 else ""))
        if inval:
            base_why += f"; load shape: reference: {rl.get('invalid', 'ok')}, nginx: {nl.get('invalid', 'ok')}"
        need = GOAL_C_X if k == "c" else 1.0
        rps_why = base_why
        if rps < need:
            # req/s = cores busy / CPU per request
            target_cpu = nl["cpu_us_per_req"]["median"] * rl["busy"]["median"] / \
                max(1e-9, nl["busy"]["median"]) / need
            rps_why = (f"{base_why}; at its current cores-busy, {need:.2f}x nginx needs "
                       f"<= {target_cpu:.0f} us CPU/request")
            if k == "c":
                c = doc.get("ceiling") or {}
                if c.get("client_full_hs_per_core"):
                    rps_why += (f" (the public-key operations alone take "
                                f"{1e6 / c['client_full_hs_per_core']:.0f} us: the rest is "
                                f"OpenSSL's per-handshake overhead, see the profile)")
        goal(f"load {k}: reference >= {need:.2f}x nginx requests/s", rps >= need,
             f"{rps:.2f}x ({rl['rps']['median']:,.0f} vs {nl['rps']['median']:,.0f} req/s)",
             None if rps >= need else rps_why, f"proxy-reference-{k}")
        goal(f"load {k}: reference CPU/request <= nginx", cpu <= 1.0,
             f"{cpu:.2f}x ({rl['cpu_us_per_req']['median']:.1f} vs "
             f"{nl['cpu_us_per_req']['median']:.1f} us)",
             None if cpu <= 1.0 else base_why, f"proxy-reference-{k}")
        goal(f"load {k}: reference p99 <= nginx", p99 <= 1.0,
             f"{p99:.2f}x ({rl['p99_ms']['median']:.2f} vs {nl['p99_ms']['median']:.2f} ms)",
             None if p99 <= 1.0 else base_why, f"proxy-reference-{k}")

    be = doc.get("backend", {}).get("ratios_backend_over_nginx", {})
    for mode in ("full", "resumed"):
        if mode not in be:
            continue
        r = be[mode]["rate"]["of_medians"]
        s = doc["backend"]["servers"]
        why = None
        if r < GOAL_BACKEND_X:
            why = (f"server CPU per handshake uptls-backend "
                   f"{s['uptls-backend'][mode]['server_cpu_us_per_hs']['median']:.0f} us vs nginx "
                   f"{s['nginx'][mode]['server_cpu_us_per_hs']['median']:.0f} us")
        goal(f"backend: {mode} handshake rate >= {GOAL_BACKEND_X}x nginx", r >= GOAL_BACKEND_X,
             f"{r:.2f}x ({s['uptls-backend'][mode]['rate_hs_per_s']['median']:,.0f} vs "
             f"{s['nginx'][mode]['rate_hs_per_s']['median']:,.0f} hs/s)", why,
             f"backend-{mode}")
    return out


def attach_profiles(doc, args, gl, load_res):
    """One profile per subject whose goal fails."""
    profiles = {}
    for g in gl:
        key = g.get("profile_key")
        if g["holds"] is not False or not key or key in profiles:
            continue
        log(f"profile: {key}")
        if key.startswith("suite-"):
            t = key[len("suite-"):]
            rd = tempfile.mkdtemp(prefix="uptls-bench-prof-")
            try:
                profiles[key] = profile_command(make_conformance(
                    t, rd, extra=tuple(doc["suite"].get("make_extra", ()))))
            finally:
                shutil.rmtree(rd, ignore_errors=True)
        elif key.startswith("proxy-reference-") and load_res and "_dir" in load_res:
            load = key.rsplit("-", 1)[1]
            profiles[key] = {"reference": profile_proxy(load_res, "reference", load),
                             "nginx": profile_proxy(load_res, "nginx", load)}
        elif key.startswith("backend-"):
            profiles[key] = profile_backend(args, key.split("-", 1)[1])
    doc["profiles"] = profiles


# =====================================================================================
# the table
# =====================================================================================
def table(doc):
    L = []
    m = doc["machine"]
    L.append(f"uptls bench -- {m['nproc']} x {m['cpu']}, {m['openssl']}, nginx {m['nginx']}, "
             f"{doc['runs']} runs each: median [min-max]")
    noise = doc.get("noise")
    if noise and noise["max_foreign_cores"] > 0.2:
        L.append(f"!! other processes kept up to {noise['max_foreign_cores']:.2f} cores busy (median "
                 f"of a measurement; {noise['where']}): absolute figures are noisy, the paired "
                 f"same-run ratios are the robust ones")
    s = doc.get("suite")
    if s:
        L.append("")
        L.append("1. Suite: make conformance, whole catalogue")
        pk = s["pki"]
        L.append(f"   PKI build (uptls-certgen -f, {pk.get('entities')} entities): "
                 f"{fmt(pk.get('cold_s'), 3)} s;  stamp check (warm): {fmt(pk.get('warm_check_s'), 3)} s")
        L.append(f"   {'':34}{'nginx':>28}{'reference':>28}")
        rows = [("scenarios", "scenarios", 0), ("warm wall s", "warm_wall_s", 2),
                ("cold wall s (PKI built by the run)" if s.get("cold_how", "").startswith("make")
                 else "cold wall s (warm + PKI build)", "cold_wall_s", 2),
                ("CPU s (all processes)", "cpu_s", 2), ("driver run s (results)", "driver_run_s", 2),
                ("floor CPU s (same handshakes)", "floor_cpu_s", 3),
                ("wall / floor", "wall_over_floor", 1),
                ("other processes, cores", "foreign_cores", 2)]
        for label, key, nd in rows:
            cells = []
            for t in PROXIES:
                e = s["targets"].get(t, {})
                if e.get("not_available"):
                    cells.append("not available")
                else:
                    v = e.get(key)
                    cells.append(str(v) if key == "scenarios" else fmt(v, nd))
            L.append(f"   {label:34}{cells[0]:>28}{cells[1]:>28}")
        hs = ["/".join(str(s['targets'].get(t, {}).get('handshakes', {}).get(k, '-'))
                       for k in ("full", "resumed", "failed")) if s["targets"].get(t, {}).get("handshakes")
              else "-" for t in PROXIES]
        L.append(f"   {'handshakes full/resumed/failed':34}{hs[0]:>28}{hs[1]:>28}")
        vs = []
        for t in PROXIES:
            sm = s["targets"].get(t, {}).get("summary")
            vs.append(" ".join(f"{k[:4]} {v}" for k, v in sm.items() if v) if sm else "-")
        L.append(f"   {'verdicts (last timed run)':34}{vs[0]:>28}{vs[1]:>28}")
        for t in PROXIES:
            if s["targets"].get(t, {}).get("not_available"):
                L.append(f"   reference not available: {s['targets'][t]['not_available']}"
                         if t == "reference" else f"   {t} not available: {s['targets'][t]['not_available']}")
    ld = doc.get("load")
    if ld:
        L.append("")
        L.append(f"2. Load: {ld['wrk']}; one worker each; TLS 1.3, P-256, verify on; one uptls-backend")
        L.append(f"   {'':26}{'nginx':>26}{'reference':>26}{'ref/nginx':>11}")
        for k, title in LOADS.items():
            L.append(f"   ({k}) {title}")
            for label, key, nd in (("requests/s", "rps", 0), ("p50 ms", "p50_ms", 2),
                                   ("p99 ms", "p99_ms", 2), ("CPU us/request", "cpu_us_per_req", 1),
                                   ("peak RSS MiB", "peak_rss_mib", 1),
                                   ("cores busy (CPU s / s)", "busy", 2),
                                   ("other processes, cores", "foreign_cores", 2)):
                cells = []
                for p in PROXIES:
                    e = ld["proxies"].get(p, {})
                    v = e.get("loads", {}).get(k, {}).get(key)
                    cells.append(fmt(v, nd) if v else ("n/a" if e.get("not_available") else "-"))
                r = bl.ratio(ld["proxies"].get("reference", {}).get("loads", {}).get(k, {}).get(key),
                             ld["proxies"].get("nginx", {}).get("loads", {}).get(k, {}).get(key))
                rt = f"{r:.2f}x" if r else "-"
                L.append(f"     {label:24}{cells[0]:>26}{cells[1]:>26}{rt:>11}")
            ups = []
            for p in PROXIES:
                u = ld["proxies"].get(p, {}).get("loads", {}).get(k, {}).get("upstream_per_request")
                ups.append(f"{u['handshakes']:.3f} hs/req, {u['resumed_share'] * 100:.0f}% res"
                           if u else "-")
            L.append(f"     {'upstream (backend log)':24}{ups[0]:>26}{ups[1]:>26}")
            for p in PROXIES:
                inv = ld["proxies"].get(p, {}).get("loads", {}).get(k, {}).get("invalid")
                if inv:
                    L.append(f"     !! {p}: {inv}")
        for p in PROXIES:
            if ld["proxies"].get(p, {}).get("not_available"):
                L.append(f"   {p}: not available: {ld['proxies'][p]['not_available']}")
    c = doc.get("ceiling")
    if c and "client_full_hs_per_core" in c:
        L.append("")
        L.append(f"3. Ceiling ({c['command']}): ECDSA P-256 sign {c['ecdsa_sign_per_s']:,.0f}/s, "
                 f"verify {c['ecdsa_verify_per_s']:,.0f}/s, ECDH {c['ecdh_per_s']:,.0f}/s")
        L.append(f"   client side of a full handshake: {c['client_full_hs_per_core']:,.0f}/s per core; "
                 f"server side {c['server_full_hs_per_core']:,.0f}/s; both {c['both_sides_full_hs_per_core']:,.0f}/s")
        for p in PROXIES:
            v = (ld or {}).get("proxies", {}).get(p, {}).get("loads", {}).get("c", {}).get("rps")
            if v:
                L.append(f"   load (c) {p}: {v['median']:,.0f} req/s = "
                         f"{v['median'] / c['client_full_hs_per_core'] * 100:.0f}% of the client-side ceiling")
    b = doc.get("backend")
    if b and b.get("servers"):
        L.append("")
        L.append(f"4. Mock backend vs nginx as a TLS server (server-a); client: {b['client']}")
        L.append(f"   {'':30}{'uptls-backend':>26}{'nginx':>26}{'backend/nginx':>15}")
        for mode in ("full", "resumed"):
            for label, key, nd in (("handshakes/s", "rate_hs_per_s", 0),
                                   ("server CPU us/hs", "server_cpu_us_per_hs", 0),
                                   ("other processes, cores", "foreign_cores", 2)):
                cells = [fmt(b["servers"][s][mode][key], nd) for s in ("uptls-backend", "nginx")]
                rk = {"rate_hs_per_s": "rate", "server_cpu_us_per_hs": "server_cpu_per_hs"}.get(key)
                r = b["ratios_backend_over_nginx"][mode][rk]["of_medians"] if rk else None
                rt = f"{r:.2f}x" if r else ""
                L.append(f"   {mode + ' ' + label:30}{cells[0]:>26}{cells[1]:>26}{rt:>15}")
            for s in ("uptls-backend", "nginx"):
                e = b["servers"][s][mode]
                if e.get("failed"):
                    L.append(f"     !! {s}: {e['failed']} failed ({e.get('first_error')})")
                if mode == "resumed" and e.get("resumed", 0) < 0.9 * e["n"] * doc["runs"]:
                    L.append(f"     !! {s}: only {e['resumed']} of {e['n'] * doc['runs']} resumed")
    L.append("")
    L.append("Goals")
    for g in doc.get("goals", []):
        mark = {True: "HOLDS", False: "FAILS", None: "N/A  "}[g["holds"]]
        L.append(f"   [{mark}] {g['goal']}: {g['figure']}")
        if g["holds"] is False and g.get("why"):
            L.append(f"           why: {g['why']}")
    for key, prof in (doc.get("profiles") or {}).items():
        L.append("")
        L.append(f"Profile {key}")
        items = prof.items() if "reference" in prof else [(None, prof)]
        for who, p in items:
            head = f"   {who}: " if who else "   "
            if not p.get("tool"):
                L.append(f"{head}no profile: {p.get('why')}")
                continue
            L.append(f"{head}{p['tool']}")
            if p.get("by_process"):
                L.append("     by process: " + "; ".join(x.strip() for x in p["by_process"][:6]))
            if p.get("by_dso"):
                L.append("     by object: " + "; ".join(x.strip() for x in p["by_dso"][:6]))
            for row in p.get("top", [])[:12]:
                L.append(f"     {row}")
    return "\n".join(L)


# =====================================================================================
def proxy_preflight(built):
    """Does bin/uptls-proxy start and forward one request of each load?"""
    if not built:
        return False, "bin/uptls-proxy did not build (build/bench/proxy-build.log)"
    if not os.access(PROXY, os.X_OK):
        return False, "bin/uptls-proxy is not built"
    d = tempfile.mkdtemp(prefix="uptls-bench-pre-")
    be = None
    try:
        be, bport = bl.start_backend(os.path.join(BIN, "uptls-backend"),
                                     f"{PKI}/server-a.chain.pem", f"{PKI}/server-a.key",
                                     "/dev/null")
        port = bl.free_port()
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


def proxy_builds():
    r = subprocess.run(["make", "--no-print-directory", "-C", ROOT, "-q",
                        os.path.relpath(PROXY, ROOT)], capture_output=True)
    if r.returncode == 0:
        return True
    r = subprocess.run(["make", "--no-print-directory", "-C", ROOT, os.path.relpath(PROXY, ROOT)],
                       capture_output=True)
    return r.returncode == 0 and os.access(PROXY, os.X_OK)


def noise_summary(doc):
    """The largest median 'other processes' load seen by any measurement."""
    seen = []
    for t, e in (doc.get("suite") or {}).get("targets", {}).items():
        if e.get("foreign_cores"):
            seen.append((e["foreign_cores"]["median"], f"suite {t}"))
    for p, e in (doc.get("load") or {}).get("proxies", {}).items():
        for k, m in e.get("loads", {}).items():
            if m.get("foreign_cores"):
                seen.append((m["foreign_cores"]["median"], f"load {k} {p}"))
    for srv, e in (doc.get("backend") or {}).get("servers", {}).items():
        for mode, m in e.items():
            if m.get("foreign_cores"):
                seen.append((m["foreign_cores"]["median"], f"backend {mode} {srv}"))
    if not seen:
        return None
    v, where = max(seen)
    return {"max_foreign_cores": v, "where": where,
            "loadavg_at_end": open("/proc/loadavg").read().split()[:3]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=5, help="wrk duration per measurement")
    ap.add_argument("--speed-seconds", type=int, default=2)
    ap.add_argument("--hs-full", type=int, default=1500)
    ap.add_argument("--hs-resumed", type=int, default=3000)
    ap.add_argument("--out", default="reports/out")
    ap.add_argument("--client", default="build/bench/uptls-hsclient")
    ap.add_argument("--only", default="", help="suite,load,ceiling,backend (default: all)")
    args = ap.parse_args()
    args.client = os.path.abspath(args.client)
    only = set(x.strip() for x in args.only.split(",") if x.strip()) or \
        {"suite", "load", "ceiling", "backend"}
    t0 = time.monotonic()
    if not os.path.isfile(os.path.join(PKI, "manifest.json")):
        subprocess.run([os.path.join(BIN, "uptls-certgen"), "-i",
                        os.path.join(ROOT, "fixtures", "pki.toml"), "-o", PKI], check=True)
    doc = {"schema": "uptls-bench/1", "runs": args.runs,
           "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "machine": machine()}
    built = proxy_builds()
    ok = proxy_preflight(built)
    doc["reference_preflight"] = {"ok": ok[0], "why": ok[1]}
    log(f"reference proxy: {'ok' if ok[0] else 'not available: ' + ok[1]}")
    load_res = None
    try:
        if "ceiling" in only:
            doc["ceiling"] = section_ceiling(args)
        if "backend" in only:
            doc["backend"] = section_backend(args)
        if "load" in only and not shutil.which("wrk"):
            doc["load"] = {"loads": LOADS, "wrk": "wrk", "proxies": {
                p: {"not_available": "wrk is not installed (apt-get install wrk)"}
                for p in PROXIES}}
        elif "load" in only:
            load_res = section_load(args, ok)
            doc["load"] = {k: v for k, v in load_res.items() if not k.startswith("_")}
        if "suite" in only:
            doc["suite"] = section_suite(args, ok, built)
        doc["goals"] = goals(doc, args)
        attach_profiles(doc, args, doc["goals"], load_res)
    finally:
        if load_res:
            load_cleanup(load_res)
    doc["noise"] = noise_summary(doc)
    doc["bench_wall_s"] = round(time.monotonic() - t0, 1)
    text = table(doc)
    doc["table"] = text
    os.makedirs(args.out, exist_ok=True)
    jp = os.path.join(args.out, "bench.json")
    hp = os.path.join(args.out, "bench.html")
    with open(jp + ".tmp", "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(jp + ".tmp", jp)
    with open(hp + ".tmp", "w") as f:
        f.write(bench_html.render(doc))
    os.replace(hp + ".tmp", hp)
    print(text)
    print(f"\nwrote {jp} and {hp} ({doc['bench_wall_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
