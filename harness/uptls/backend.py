"""Mock TLS backends: uptls-backend processes and what they observed.

A run starts a few processes, each serving many listeners (uptls-backend
--listeners FILE, one JSON object per listener): one listener per backend of
a scenario, each with its own configuration and session cache. Each process
reports every listener's port on stdout (so there is no port race) and
writes one JSON line per event to its log, one log per process; every line
carries its listener's position, so an event belongs to exactly one
listener, that is to one scenario's backend (Listener.events).

A scenario's backends are all in one process. If that process dies, every
scenario it served sees its backends dead (Listener.alive) and errors. A
bad listener spec (a cipher string OpenSSL refuses, say) stops its whole
process before anything listens; start_listeners then errors the scenario
it belongs to and starts the others again without it.

BackendProcess runs one uptls-backend with a plain command line (one
listener), for tools that want exactly that (soak/).
"""

import json
import math
import os
import re
import signal
import subprocess
import threading
import time

from . import BIN, UptlsError, proc

START_TIMEOUT = 10.0
START_TIMEOUT_PER_LISTENER = 0.1  # loading a certificate takes ~1 ms; valgrind is slower
GROUP_SIZE = 64   # listeners per process at most: bounds what one crash takes down


class _Process:
    """What a single backend and a group of listeners share: one uptls-backend
    process, its stderr file, and how it is stopped."""

    proc = None
    stderr_path = None

    def stderr_tail(self, n=2000):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read()[-n:].decode(errors="replace").strip()
        except (OSError, TypeError):
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            proc.stop(self.proc, ((signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)), group=False)

    def _start(self, argv):
        """Start argv with stdout a pipe (its ready lines) and stderr to a file (a
        pipe nobody drains could block a backend writing a long sanitizer
        report at exit). No die-with-parent here: uptls-backend sets
        PR_SET_PDEATHSIG itself, which fires when the *thread* that forked it
        ends, so call from the main thread."""
        self.proc = proc.start(argv, stdout=subprocess.PIPE, log=self.stderr_path,
                               pdeathsig=False)


class BackendProcess(_Process):
    def __init__(self, name, argv, log_path):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.proc = None
        self.port = None

    def start(self):
        return self.spawn().wait_port()

    def spawn(self):
        """Start the process (from the main thread: see _Process._start)."""
        self.stderr_path = self.log_path + ".stderr"
        try:
            self._start(self.argv)
        except OSError as e:
            raise UptlsError(f"backend {self.name}: cannot run {self.argv[0]}: {e.strerror}") \
                from None
        return self

    def wait_port(self):
        try:
            line = proc.first_line(self.proc, START_TIMEOUT)
        except proc.ProcError:
            line = b""
        try:
            msg = json.loads(line.decode().splitlines()[0])
            self.port = int(msg["port"])
        except (ValueError, KeyError, IndexError, UnicodeDecodeError):
            self.stop()
            raise UptlsError(f"backend {self.name} did not start: "
                             f"{self.stderr_tail() or line!r} "
                             f"(command: {' '.join(self.argv)})") from None
        return self

    def events(self):
        """Every event line logged so far (a torn last line is left for later)."""
        return read_events(self.log_path)


def read_events(log_path):
    try:
        with open(log_path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    out = []
    for raw in data.split(b"\n")[:-1]:
        if raw.strip():
            try:
                out.append(json.loads(raw))
            except ValueError:
                out.append({"event": "garbled", "raw": raw[:200].decode(errors="replace")})
    return out


def spec_for(backend, pki, run_dir, slug):
    """The --listeners line (a dict) for a scenario's [[backend]] table; its
    log is its process's (BackendGroup)."""
    o = backend.options
    spec = {"name": backend.name,
            "cert": pki.path(backend.certificate, "chain.pem"),
            "key": pki.path(backend.certificate, "key"),
            "listen": "127.0.0.1", "port": 0,
            "client-auth": o.get("client_auth", "none")}
    if o.get("client_ca"):
        spec["client-ca"] = pki.bundle(run_dir, o["client_ca"], "pem")
    for key, opt in (("min_proto", "min-proto"), ("max_proto", "max-proto"),
                     ("ciphers", "ciphers"), ("ciphersuites", "ciphersuites")):
        if key in o:
            spec[opt] = o[key]
    for key, opt in (("session_cache", "session-cache"), ("tickets", "tickets")):
        if key in o:
            spec[opt] = "on" if o[key] else "off"
    if o.get("close_after_response"):
        spec["close-after-response"] = True
    if o.get("faults"):
        spec["fault"] = list(o["faults"])
    return spec


class Listener:
    """One backend of one scenario: a listener of a BackendGroup's process.
    alive(), stderr_tail() and stop() are the process's; events() are the
    lines of the process's log that carry this listener's position."""

    def __init__(self, spec, group, position):
        self.name = spec["name"]
        self.spec = spec
        self.group = group
        self.position = position  # 1, 2, ... as uptls-backend numbers them
        self.log_path = group.log_path
        self.port = None

    def alive(self):
        return self.group.alive()

    def stderr_tail(self, n=2000):
        return self.group.stderr_tail(n)

    def stop(self):
        self.group.stop()

    def events(self):
        return self.group.events_of(self.position)


class GroupStartError(UptlsError):
    def __init__(self, message, bad):
        super().__init__(message)
        self.bad = bad  # {listener position (0-based): [its problems]}


class BackendGroup(_Process):
    """One uptls-backend process serving many listeners (--listeners FILE)."""

    def __init__(self, path, specs, backend_bin=None):
        self.path = path          # the listeners file; kept in the run folder for replay
        self.exe = backend_bin or os.path.join(BIN, "uptls-backend")
        # One log for all the listeners (each line names its listener): one
        # file to create instead of one per backend, and one to read.
        self.log_path = path[:-len(".jsonl")] + ".log.jsonl"
        self.listeners = [Listener(s, self, i) for i, s in enumerate(specs, 1)]
        self.proc = None
        self.stderr_path = path + ".stderr"
        self._lock = threading.Lock()
        self._offset = 0
        self._events = {}  # position -> [event, ...]

    def events_of(self, position):
        """The events of one listener logged so far (a torn last line is left
        for later). The log is read from where the last call stopped."""
        with self._lock:
            try:
                with open(self.log_path, "rb") as f:
                    f.seek(self._offset)
                    data = f.read()
            except FileNotFoundError:
                data = b""
            end = data.rfind(b"\n") + 1
            self._offset += end
            for raw in data[:end].split(b"\n"):
                if not raw.strip():
                    continue
                try:
                    e = json.loads(raw)
                except ValueError:
                    m = re.search(rb'"listener":(\d+)', raw)
                    e = {"event": "garbled", "listener": int(m.group(1)) if m else None,
                         "raw": raw[:200].decode(errors="replace")}
                self._events.setdefault(e.get("listener"), []).append(e)
            return list(self._events.get(position, ()))

    def spawn(self):
        """Start the process (from the main thread: see _Process._start)."""
        with open(self.path, "w") as f:
            for lst in self.listeners:
                f.write(json.dumps({**lst.spec, "log": self.log_path}) + "\n")
        try:
            self._start([self.exe, "--listeners", self.path])
        except OSError as e:
            raise GroupStartError(f"cannot run {self.exe}: {e.strerror}", {}) from None
        return self

    def wait_ready(self):
        """Read the listening lines (one per listener, then ready)."""
        deadline = time.monotonic() + START_TIMEOUT + \
            START_TIMEOUT_PER_LISTENER * len(self.listeners)
        buf, lines = b"", []
        while not (lines and lines[-1].get("event") == "ready"):
            try:
                buf = proc.first_line(self.proc, max(0.0, deadline - time.monotonic()))
                if buf.strip():
                    lines.append(json.loads(buf))
            except (proc.ProcError, ValueError):
                break
        ports = {x.get("listener"): x.get("port") for x in lines if x.get("event") == "listening"}
        if not (lines and lines[-1].get("event") == "ready") or \
                sorted(ports) != list(range(1, len(self.listeners) + 1)):
            rc = self.proc.poll()
            self.stop()
            bad = {}
            for m in re.finditer(r"^uptls-backend: listener (\d+) .*$",
                                 self.stderr_tail(1 << 18), re.M):
                bad.setdefault(int(m.group(1)) - 1, []).append(m.group(0))
            why = "timed out" if rc is None else f"exit status {rc}"
            raise GroupStartError(f"uptls-backend --listeners {self.path} did not start "
                                  f"({why}): {self.stderr_tail() or buf[:300]!r}", bad)
        for i, lst in enumerate(self.listeners, 1):
            lst.port = int(ports[i])
        return self



def _fresh_path(folder, pattern):
    """folder/pattern with the first number not yet taken (the file is created)."""
    for i in range(1, 1 << 20):
        path = os.path.join(folder, pattern.format(i))
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            return path
        except FileExistsError:
            continue
    raise UptlsError(f"no free file name in {folder}")


def start_listeners(specs, folder, backend_bin=None, group_size=GROUP_SIZE):
    """Start the listeners of many owners (scenarios) in ceil(listeners /
    group_size) processes, each owner's listeners in one process, owners dealt
    round-robin (neighbours in the list, which run at the same time, land in
    different processes).

    specs: {owner: [spec, ...]}, in order. Returns ({owner: {name: Listener}},
    {owner: why its backends could not start}, [BackendGroup, ...]). Call
    from the main thread (see BackendGroup.spawn)."""
    os.makedirs(folder, exist_ok=True)
    started = {k: {} for k in specs if not specs[k]}
    failed, groups = {}, []
    pending = [k for k in specs if specs[k]]
    for attempt in range(3):
        if not pending:
            break
        n = max(1, math.ceil(sum(len(specs[k]) for k in pending) / group_size))
        plan = [pending[i::n] for i in range(n)]
        tries = []
        for owners in plan:
            if owners:
                path = _fresh_path(folder, "listeners-{}.jsonl")
                tries.append((owners, BackendGroup(path, [s for k in owners for s in specs[k]],
                                                   backend_bin)))
        for _, group in tries:  # all spawned first: they load their certificates in parallel
            try:
                group.spawn()
            except GroupStartError as e:
                group.error = e
        pending = []
        for owners, group in tries:
            err = getattr(group, "error", None)
            if err is None:
                try:
                    group.wait_ready()
                except GroupStartError as e:
                    err = e
            spans, i = {}, 0
            for k in owners:
                spans[k] = range(i, i + len(specs[k]))
                i += len(specs[k])
            if err is None:
                groups.append(group)
                for k in owners:
                    started[k] = {group.listeners[j].name: group.listeners[j] for j in spans[k]}
                continue
            # The owners of the listeners named on stderr fail; the others
            # are started again without them. If none is named (a crash, a
            # missing binary) or on the last attempt, every owner fails.
            named = {k: "; ".join(ln for j in spans[k] for ln in err.bad.get(j, []))
                     for k in owners if any(j in err.bad for j in spans[k])}
            for k in owners:
                if k in named:
                    failed[k] = named[k]
                elif not named or attempt == 2:
                    failed[k] = str(err)
                else:
                    pending.append(k)
    return started, failed, groups
