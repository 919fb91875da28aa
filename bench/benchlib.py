"""Helpers of `make bench`: statistics, /proc accounting, processes we start.

Every process the bench starts is recorded here by PID and stopped by PID
(SIGTERM, then SIGKILL); nothing is ever signalled by name.
"""

import json
import os
import signal
import socket
import statistics
import subprocess
import time

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
    """A process the bench started (and its descendants, recorded by PID)."""

    def __init__(self, argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=None):
        self.argv = argv
        self.p = subprocess.Popen(argv, stdout=stdout, stderr=stderr, cwd=cwd,
                                  stdin=subprocess.DEVNULL, start_new_session=True)
        self.pid = self.p.pid
        self.known = {self.pid}

    def pids(self):
        """The process and every descendant (remembered, so stop() finds them)."""
        if self.p.poll() is None:
            self.known.update(children_of(self.pid))
        return [p for p in sorted(self.known) if os.path.exists(f"/proc/{p}")]

    def alive(self):
        return self.p.poll() is None

    def stop(self, timeout=5.0):
        self.pids()
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        # descendants that outlived their parent: by PID, only the ones we saw
        deadline = time.monotonic() + 2.0
        for pid in sorted(self.known - {self.pid}):
            while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
                time.sleep(0.02)
            if os.path.exists(f"/proc/{pid}") and _zombie_or_ours(pid, self.known):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass

    def stderr_text(self):
        if self.p.stderr and self.p.poll() is not None:
            try:
                return self.p.stderr.read().decode(errors="replace")
            except (OSError, ValueError):
                return ""
        return ""


def _zombie_or_ours(pid, known):
    """A PID still alive is signalled only if it is still a descendant we
    recorded (its parent is one of ours or init, i.e. orphaned from ours)."""
    try:
        ppid = int(_stat_fields(pid)[1])
    except (OSError, ValueError, IndexError):
        return False
    return ppid in known or ppid == 1


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_backend(bin_path, cert, key, log, name="bench", extra=()):
    """uptls-backend; returns (Proc, port)."""
    pr = Proc([bin_path, "--name", name, "--cert", cert, "--key", key,
               "--listen", "127.0.0.1", "--port", "0", "--log", log, *extra],
              stdout=subprocess.PIPE)
    line = pr.p.stdout.readline()
    try:
        port = int(json.loads(line)["port"])
    except (ValueError, KeyError):
        pr.stop()
        raise RuntimeError(f"uptls-backend did not start: {pr.stderr_text().strip() or line!r}")
    return pr, port


def wait_http(port, path="/", timeout=5.0):
    """(status, error) of one GET once the port accepts; status None on failure."""
    import http.client
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port,
                                           timeout=max(0.5, deadline - time.monotonic()))
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            c.close()
            return r.status, None
        except ConnectionRefusedError:
            last = "connection refused"
            time.sleep(0.05)
        except (OSError, Exception) as e:  # timeouts, resets, bad status lines
            last = f"{type(e).__name__}: {e}"
            time.sleep(0.05)
    return None, last


def run_timed(argv, env=None, timeout=600, cwd=None, foreign=None):
    """Run to completion; (returncode, wall_s, cpu_s of it and its reaped
    descendants, stdout+stderr text). foreign: a list that gets the cores
    other processes of the machine kept busy meanwhile."""
    sys0 = system_busy_seconds()
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, env=env, cwd=cwd)
    out = []

    import threading
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
