"""Profiles of a goal that does not hold: perf samples of running processes
or of a whole command, or valgrind's callgrind when perf cannot sample."""

import glob
import os
import re
import shutil
import subprocess
import tempfile
import time

import benchlib as bl


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


def _perf_unusable():
    """None when perf can sample here (asked once), else the profile saying why not."""
    global PERF
    if PERF is None:
        PERF = perf_usable()
    return None if PERF else {"tool": None, "top": [], "why": "perf cannot sample here"}


def profile_pids(pids, seconds, during):
    """perf samples of running processes while during() runs; top symbols."""
    why = _perf_unusable()
    if why:
        return why
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
    why = _perf_unusable()
    if why:
        return why
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
