"""Section 1, suite: the wall time of `make conformance` for nginx and the
reference proxy (warm and cold PKI) against the floor, the CPU time of the
same handshakes between uptls-backend and a plain OpenSSL client."""

import glob
import json
import os
import re
import shutil
import subprocess
import tempfile

import benchlib as bl
from bench_common import BIN, PROXIES, PROXY, ROOT, hsclient, log, start_backend


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
        be, port = start_backend()
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
