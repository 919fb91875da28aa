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

Modules (bench/): bench_suite, bench_load, bench_ceiling, bench_backend (one
per section), bench_profile (perf/callgrind), bench_goals (judging),
bench_table (the printed table), bench_html (the chart page), bench_common
(paths, the proxies and loads compared, the handshake client), benchlib
(statistics, /proc accounting, processes through uptls.proc).
"""

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_html                                      # noqa: E402
from bench_backend import section_backend              # noqa: E402
from bench_ceiling import section_ceiling              # noqa: E402
from bench_common import BIN, LOADS, PKI, PROXIES, PROXY, ROOT, log, machine  # noqa: E402
from bench_goals import attach_profiles, goals         # noqa: E402
from bench_load import load_cleanup, proxy_preflight, section_load  # noqa: E402
from bench_suite import section_suite                  # noqa: E402
from bench_table import table                          # noqa: E402


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
