"""Starting, waiting for and stopping the processes uptls runs: the one place.

Used by the driver (targets, backends), the tests, bench and soak. Stdlib
only (Linux: prctl). Every wait has a timeout; every process is stopped
by its PID (and, when it forks, through its own process group), never by
name.

    port = proc.free_port()
    p = proc.start([binary, "-c", conf], log=run_dir + "/target.stderr", cwd=run_dir)
    proc.wait_port(port, p, timeout=15)      # ProcError if it exits or stays silent
    ...
    proc.stop(p)                             # TERM, wait, KILL; then its group

    with proc.start(argv, stdout=subprocess.PIPE) as p:   # stop() on leaving
        line = proc.first_line(p, timeout=10)             # a "ready" line on stdout

start() returns a Proc, a subprocess.Popen with these functions as methods
(p.stop(), p.wait_port(port), p.first_line(), p.log_text(), p.log_tail()),
so code that held a Popen keeps working.
"""

import ctypes
import os
import select
import signal
import socket
import subprocess
import time

from . import UptlsError

# stop(): each signal in turn, with how long to wait for the exit after it.
STOP_SIGNALS = ((signal.SIGTERM, 5.0), (signal.SIGKILL, 3.0))
_PR_SET_PDEATHSIG = 1


class ProcError(UptlsError):
    """A process we started did not become ready: it exited, or it stayed
    silent past its timeout. The message says which (callers add who)."""


def free_port(host="127.0.0.1"):
    """A TCP port the kernel says is free now (the caller's program binds it
    right after; a program that can report the port it bound, as
    uptls-backend --port 0 does, avoids even that small race)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def die_with_parent():
    """In the child before exec (start(pdeathsig=True)): SIGTERM when its
    parent dies, even by SIGKILL, so nothing outlives the run. Linux
    PR_SET_PDEATHSIG fires when the *thread* that forked the child ends:
    start long-lived processes from a thread that lives as long as they do
    (the main thread)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class Proc(subprocess.Popen):
    """A process start() started: a Popen that knows where its output goes."""

    log_path = None

    def stop(self, signals=STOP_SIGNALS, group=True):
        return stop(self, signals, group)

    def wait_port(self, port, timeout=10.0, host="127.0.0.1"):
        return wait_port(port, self, timeout, host)

    def first_line(self, timeout=10.0):
        return first_line(self, timeout)

    def log_text(self):
        return log_text(self.log_path)

    def log_tail(self, n=8):
        return log_tail(self.log_path, n)

    def __exit__(self, *exc):
        self.stop()
        for f in (self.stdout, self.stderr, self.stdin):
            if f:
                f.close()
        return False


def start(argv, *, log=None, stdout=None, stderr=None, cwd=None, env=None,
          pdeathsig=True, group=True):
    """Start argv and return a Proc (raises OSError when it cannot run).

    log: a file that gets the program's stderr, and its stdout too unless
    stdout is given (appended; the parent does not hold it open). Without
    log, stdout/stderr are as given (subprocess.PIPE, a file) or inherited.
    stdin is always /dev/null. group: the process leads its own process
    group (its own session), so stop() also ends the workers a master
    forks, and a terminal's ^C does not reach it. pdeathsig: die_with_parent().
    """
    out = open(log, "ab") if log else None
    try:
        p = Proc(argv, stdin=subprocess.DEVNULL,
                 stdout=stdout if stdout is not None else out,
                 stderr=stderr if stderr is not None else out,
                 cwd=cwd, env=env, start_new_session=group,
                 preexec_fn=die_with_parent if pdeathsig else None)
    finally:
        if out:
            out.close()
    p.log_path = os.fspath(log) if log else None
    p.own_group = group
    return p


def wait_until(predicate, timeout, interval=0.02):
    """predicate()'s first true value, polled until timeout; None after it."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def wait_port(port, p=None, timeout=10.0, host="127.0.0.1"):
    """Return once host:port accepts a TCP connection. ProcError when p (a
    Popen, optional) exits first or nothing listens within timeout."""
    deadline = time.monotonic() + timeout
    while True:
        if p is not None and p.poll() is not None:
            raise ProcError(f"exited at start (status {p.returncode})")
        try:
            with socket.create_connection((host, port),
                                          timeout=max(0.05, min(0.5, deadline - time.monotonic()))):
                return
        except OSError:
            pass
        if time.monotonic() >= deadline:
            raise ProcError(f"did not listen on {host}:{port} within {timeout:g} s")
        time.sleep(0.02)


def first_line(p, timeout=10.0):
    """The first line p writes on its stdout (a PIPE), as bytes with its
    newline, read without blocking past timeout: how uptls-backend says it
    is ready (and on which port). ProcError when p exits or stays silent."""
    fd = p.stdout.fileno()
    deadline = time.monotonic() + timeout
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise ProcError(f"wrote no line within {timeout:g} s (so far: {line[:200]!r})")
        r, _, _ = select.select([fd], [], [], min(left, 0.2))
        if r:
            chunk = os.read(fd, 1)  # byte by byte: what follows the line stays in the pipe
            if not chunk:
                p.poll()
                raise ProcError(f"closed its output before a line (status {p.returncode}, "
                                f"so far: {line[:200]!r})")
            line += chunk
        elif p.poll() is not None:
            raise ProcError(f"exited at start (status {p.returncode})")
    return line


def stop(p, signals=STOP_SIGNALS, group=None):
    """Stop p (a Popen) by its PID: each signal in turn (TERM, then KILL by
    default), waiting after each for the exit; then, if p leads its own
    process group (start(group=True)), SIGKILL to what is left of the group
    (workers of a master that died). Returns p's exit status (negative: the
    signal), or None if even SIGKILL did not end it in time."""
    if p is None:
        return None
    if group is None:
        group = getattr(p, "own_group", False)
    for sig, wait in signals:
        if p.poll() is not None:
            break
        try:
            p.send_signal(sig)
            p.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            break
    if group:
        # The group is ours alone (its id is p's PID, and a PID is not reused
        # while a group of that id has a member).
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        return p.wait(timeout=3.0)
    except subprocess.TimeoutExpired:
        return None


def log_text(path):
    """The whole of a log file ("" when there is none yet)."""
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except (OSError, TypeError):
        return ""


def log_tail(path, n=8):
    """Its last n non-blank lines joined by " | " (for one-line error messages)."""
    lines = [ln for ln in log_text(path).splitlines() if ln.strip()]
    return " | ".join(lines[-n:]) or "(no output)"
