"""What every part of make bench shares: where things are, the two proxies
and three loads compared, log and number formatting, the machine, the
handshake client and the mock backend every measurement talks to."""

import json
import os
import platform
import shutil
import subprocess
import sys

import benchlib as bl

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


def hsclient(client, port, n, procs, extra=()):
    argv = [client, "-p", str(port), "-n", str(n), "-j", str(procs),
            "-C", f"{PKI}/root-a.pem", "-s", SERVER_NAME, "-g", "P-256", "-V", "TLSv1.3",
            *extra]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RuntimeError(f"uptls-hsclient failed: {r.stderr.strip()[:300]}") from None


def start_backend(log="/dev/null"):
    """uptls-backend serving server-a (the bench's one certificate): (Proc, port)."""
    return bl.start_backend(os.path.join(BIN, "uptls-backend"), f"{PKI}/server-a.chain.pem",
                            f"{PKI}/server-a.key", log)
