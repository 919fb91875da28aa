"""Helpers of `make bench`: statistics, /proc accounting, processes we start.

Every process the bench starts is started, waited for and stopped through
uptls.proc (harness/uptls/proc.py): by PID and its own process group
(SIGTERM, then SIGKILL), never by name; it dies with the bench.
"""

import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "harness"))
from uptls import proc  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- statistics ---------------------------------------------------------------------
def stat(values):
    """median, min, max of a list of numbers (None entries dropped)."""
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals),
            "runs": [round(v, 6) for v in vals]}


def ratio(a, b):
    """a/b of two medians; None when either is missing or b is 0."""
    if not a or not b or not b.get("median"):
        return None
    return a["median"] / b["median"]


def paired(xs, ys):
    """Per-run ratios x_i/y_i (the two measured in the same repetition)."""
    out = [x / y for x, y in zip(xs, ys) if x is not None and y]
    return stat(out)


# -- /proc ----------------------------------------------------------------------------
def _stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    # comm may contain spaces and parentheses: split after the last ')'
    return s[s.rindex(")") + 2:].split()


def cpu_seconds(pid):
    """utime + stime of one process (seconds), or None if it is gone."""
    try:
        f = _stat_fields(pid)
    except (OSError, ValueError):
        return None
    return (int(f[11]) + int(f[12])) / CLK_TCK


def children_of(pid):
    """Direct and indirect children (a proxy's master and its workers)."""
    by_parent = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            ppid = int(_stat_fields(d)[1])
        except (OSError, ValueError, IndexError):
            continue
        by_parent.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in by_parent.get(p, []):
            out.append(c)
            todo.append(c)
    return out


def tree(pid):
    return [pid] + children_of(pid)


def tree_cpu(pids):
    """Sum of utime+stime over processes (the ones alive)."""
    return sum(c for c in (cpu_seconds(p) for p in pids) if c is not None)


def system_busy_seconds():
    """CPU seconds all processes of the machine used so far (every core:
    user, nice, system, irq, softirq, steal; not idle or iowait)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)) / CLK_TCK


def vm_hwm_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


# -- processes --------------------------------------------------------------------------
class Proc:
    """A process the bench started (and its descendants, recorded by PID for
    their CPU time); its own process group, stopped by proc.stop."""

    def __init__(self, argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=None):
        self.argv = argv
        self.p = proc.start(argv, stdout=stdout, stderr=stderr, cwd=cwd)
        self.pid = self.p.pid
        self.known = {self.pid}

    def pids(self):
        """The process and every descendant (remembered, so pids() after an
        exit still names them)."""
        if self.p.poll() is None:
            self.known.update(children_of(self.pid))
        return [p for p in sorted(self.known) if os.path.exists(f"/proc/{p}")]

    def alive(self):
        return self.p.poll() is None

    def stop(self, timeout=5.0):
        """SIGTERM, SIGKILL after timeout; then SIGKILL to what is left of its
        process group (workers whose master died)."""
        proc.stop(self.p, signals=((signal.SIGTERM, timeout), (signal.SIGKILL, 3.0)))

    def stderr_text(self):
        if self.p.stderr and self.p.poll() is not None:
            try:
                return self.p.stderr.read().decode(errors="replace")
            except (OSError, ValueError):
                return ""
        return ""


def start_backend(bin_path, cert, key, log, name="bench", extra=()):
    """uptls-backend; returns (Proc, port)."""
    pr = Proc([bin_path, "--name", name, "--cert", cert, "--key", key,
               "--listen", "127.0.0.1", "--port", "0", "--log", log, *extra],
              stdout=subprocess.PIPE)     # it dies with the bench: its own PR_SET_PDEATHSIG
    try:
        port = int(json.loads(proc.first_line(pr.p, timeout=10))["port"])
    except (proc.ProcError, ValueError, KeyError) as e:
        pr.stop()
        raise RuntimeError(f"uptls-backend did not start: {pr.stderr_text().strip() or e}") \
            from None
    return pr, port


def wait_http(port, path="/", timeout=5.0):
    """(status, error) of one GET once the port accepts; status None on failure."""
    import http.client
    last = ["no answer"]

    def get():
        try:
            c = http.client.HTTPConnection("127.0.0.1", port,
                                           timeout=max(0.5, deadline - time.monotonic()))
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            c.close()
            return r.status
        except ConnectionRefusedError:
            last[0] = "connection refused"
        except (OSError, Exception) as e:  # timeouts, resets, bad status lines
            last[0] = f"{type(e).__name__}: {e}"
        return None
    deadline = time.monotonic() + timeout
    status = proc.wait_until(get, timeout, interval=0.05)
    return (status, None) if status else (None, last[0])


def run_timed(argv, env=None, timeout=600, cwd=None, foreign=None):
    """Run to completion; (returncode, wall_s, cpu_s of it and its reaped
    descendants, stdout+stderr text). foreign: a list that gets the cores
    other processes of the machine kept busy meanwhile."""
    sys0 = system_busy_seconds()
    t0 = time.monotonic()
    # group=False: in the bench's process group, so ^C reaches make and pytest too
    p = proc.start(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                   group=False)
    out = []

    th = threading.Thread(target=lambda: out.append(p.stdout.read()), daemon=True)
    th.start()
    timer = threading.Timer(timeout, lambda: p.poll() is None and p.kill())
    timer.start()
    _, status, ru = os.wait4(p.pid, 0)
    timer.cancel()
    wall = time.monotonic() - t0
    th.join(timeout=5)
    cpu = ru.ru_utime + ru.ru_stime
    if foreign is not None and wall > 0:
        foreign.append(max(0.0, (system_busy_seconds() - sys0 - cpu) / wall))
    p.returncode = os.waitstatus_to_exitcode(status)
    text = out[0].decode(errors="replace") if out else ""
    return p.returncode, wall, cpu, text
