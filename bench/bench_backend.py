"""Section 4, backend: uptls-backend vs nginx as a TLS server, full and
resumed handshake rates with the same certificate (uptls-hsclient -j 2)."""

import os
import shutil
import tempfile

import benchlib as bl  # first: it puts harness/ on sys.path, for uptls.proc
from bench_common import NGINX, PKI, hsclient, log, start_backend
from bench_profile import profile_pids
from uptls import proc


def nginx_tls_server(d):
    port = proc.free_port()
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
    try:
        proc.wait_port(port, pr.p, timeout=5)
    except proc.ProcError:
        pr.stop()
        raise RuntimeError(f"nginx as a TLS server did not start: {pr.stderr_text()[:300]}") \
            from None
    return pr, port


def section_backend(args):
    d = tempfile.mkdtemp(prefix="uptls-bench-tls-")
    servers = {}
    res = {"client": "uptls-hsclient -j 2 (two processes, blocking, one GET per "
                     "connection), TLS 1.3, P-256 ECDHE, verification on",
           "servers": {}}
    try:
        be, bport = start_backend()
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
    be, port = start_backend()
    try:
        return profile_pids([be.pid], 3, lambda: hsclient(
            args.client, port, args.hs_full * (2 if mode == "resumed" else 1), 2,
            ["-r"] if mode == "resumed" else []))
    finally:
        be.stop()
