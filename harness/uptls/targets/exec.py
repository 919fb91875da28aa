"""TARGET=exec:PATH -- a target whose adapter is a program in any language.

The harness talks to it through the adapter protocol, uptls-adapter/1
(docs/adapter-protocol.md; one JSON Schema per message in
docs/adapter-protocol/): `PATH describe`, `PATH render`, optionally
`PATH check`, each with one JSON request on standard input and one JSON
answer on standard output. The adapter writes the proxy's configuration and
says how to start it; the harness starts, watches and stops the processes
itself, so an adapter cannot leave one behind, and a proxy that dies is
seen as it is for the built-in targets.

Every answer is checked against its schema before it is used. Whatever
goes wrong with the adapter -- a non-zero exit, no JSON, JSON that breaks
the schema, an unknown setting, no answer within STEP_TIMEOUT, a proxy that
never listens -- ends the run with one line naming the adapter, the step
and what was wrong.
"""

import json
import os
import signal
import socket
import subprocess
import time

from .. import ROOT, jsonschema
from .base import Target, TargetStartError, die_with_parent, free_port, unit_files

PROTOCOL = "uptls-adapter/1"
SCHEMA_DIR = os.path.join(ROOT, "docs", "adapter-protocol")
STEP_TIMEOUT = 20.0      # one adapter step; with the rest, a broken adapter ends within 30 s
READY_TIMEOUT = 15.0
OUTPUT_LIMIT = 4 << 20


class AdapterError(TargetStartError):
    """The adapter broke the protocol: the run cannot go on."""


_schemas = {}


def schema(name):
    """The published schema of one message (describe-request, render-response, ...)."""
    if name not in _schemas:
        with open(os.path.join(SCHEMA_DIR, f"{name}.schema.json"), encoding="utf-8") as f:
            _schemas[name] = json.load(f)
    return _schemas[name]


class ExecTarget(Target):
    """A proxy driven by an external adapter program (TARGET=exec:PATH)."""

    undeclared = "not declared by the adapter (describe)"

    def __init__(self, adapter, target_bin=None, faults=()):
        super().__init__(target_bin, faults)
        self.adapter = adapter
        self.name = "exec"
        self.procs = []
        self.plan = None
        self.described = None
        self.unsupported_units = {}

    # -- the protocol ---------------------------------------------------------------
    def _fail(self, step, what):
        raise AdapterError(f"adapter {self.adapter}: {step}: {what}")

    def call(self, step, request):
        """Run one protocol step; return the adapter's answer, checked."""
        bad = jsonschema.errors(schema(f"{step}-request"), request)
        if bad:  # the harness's own request: a bug here, not the adapter's
            raise AssertionError(f"{step} request breaks its schema: {bad[0]}")
        try:
            p = subprocess.Popen([self.adapter, step], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 start_new_session=True, preexec_fn=die_with_parent)
        except OSError as e:
            self._fail(step, f"cannot run it: {e.strerror}")
        try:
            out, err = p.communicate(json.dumps(request).encode(), timeout=STEP_TIMEOUT)
        except subprocess.TimeoutExpired:
            _kill_group(p)
            self._fail(step, f"no answer within {STEP_TIMEOUT:.0f} s (stopped it)")
        finally:
            _kill_group(p)  # nothing the adapter started may outlive its step
        err_line = _last_line(err)
        if p.returncode != 0:
            self._fail(step, f"exited with status {p.returncode}"
                       + (f": {err_line}" if err_line else " (nothing on stderr)"))
        if len(out) > OUTPUT_LIMIT:
            self._fail(step, f"answered {len(out)} bytes (limit {OUTPUT_LIMIT})")
        try:
            answer = json.loads(out.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            shown = out[:60].decode("utf-8", "replace").strip() or "(nothing)"
            self._fail(step, f"answer is not JSON ({e}): {shown!r}")
        if isinstance(answer, dict) and "protocol" in answer and answer["protocol"] != PROTOCOL:
            self._fail(step, f"speaks {answer['protocol']!r}; this harness speaks {PROTOCOL!r}")
        bad = jsonschema.errors(schema(f"{step}-response"), answer)
        if bad:
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            self._fail(step, f"answer breaks docs/adapter-protocol/{step}-response.schema.json: "
                       f"{bad[0]}{more}")
        return answer

    def find_binary(self):
        if not (os.path.isfile(self.adapter) and os.access(self.adapter, os.X_OK)):
            raise TargetStartError(f"TARGET=exec:{self.adapter}: no executable file there")
        self.adapter = os.path.abspath(self.adapter)
        d = self.call("describe", {"protocol": PROTOCOL, "step": "describe",
                                   "target_bin": os.path.abspath(self.target_bin)
                                   if self.target_bin else None,
                                   "harness": {"name": "uptls", "version": "0.1.0"}})
        self.described = d
        self.name = d["name"]
        self.binary = d["binary"]
        self.capabilities = dict(d["capabilities"])
        self.unique_upstream_hosts = d.get("unique_upstream_hosts", False)
        self.refusal_closes_connection = d.get("refusal", "status") == "close"
        if d.get("deviations") and not self.deviations_file:
            self.deviations_file = os.path.normpath(
                os.path.join(os.path.dirname(self.adapter), d["deviations"]))
        return self.binary

    def describe(self):
        return dict(self.described)

    def version_info(self):
        d = self.described
        return {"name": d["name"], "version": d["version"], "binary": d["binary"],
                "openssl": d["tls_library"], "tls_library": d["tls_library"],
                "adapter": self.adapter, "detail": d.get("detail", "")}

    def documented_default_protocols(self):
        p = (self.described.get("defaults") or {}).get("protocols")
        return (p["versions"], p["source"]) if p else (None, None)

    # -- render, check, start ---------------------------------------------------------
    def _unit_request(self, u, run_dir):
        s, files = u.settings, unit_files(u, run_dir)
        out = {"id": unit_id(u), "scenario": u.key, "location": u.location, "prefix": u.prefix,
               "upstream": {"name": u.servers[0].rsplit(":", 1)[0] if u.direct
                            else u.upstream_block, "servers": list(u.servers),
                            "direct": bool(u.direct)},
               "settings": dict(s), "files": files}
        if getattr(u, "port", None):
            out["listen"] = {"host": "127.0.0.1", "port": u.port}
        return out

    def start(self, run_dir, units):
        self.run_dir = run_dir
        self.port = free_port()
        if self.described.get("routing") == "port":
            taken = {self.port}
            for u in units:
                u.port = free_port()
                while u.port in taken:
                    u.port = free_port()
                taken.add(u.port)
        request = {"protocol": PROTOCOL, "step": "render", "binary": self.binary,
                   "run_dir": run_dir, "listen": {"host": "127.0.0.1", "port": self.port},
                   "units": [self._unit_request(u, run_dir) for u in units]}
        plan = self.call("render", request)
        ids = {unit_id(u): u for u in units}
        for item in plan.get("unsupported", []):
            if item["unit"] not in ids:
                self._fail("render", f"unsupported names unit '{item['unit']}', which the "
                           "request did not contain")
            self.unsupported_units[ids[item["unit"]].key] = item["reason"]
        plan["config_files"] = [os.path.join(run_dir, f) for f in plan.get("config_files", [])]
        plan["logs"] = [os.path.join(run_dir, f) for f in plan.get("logs", [])]
        for f in plan["config_files"]:
            if not os.path.isfile(f):
                self._fail("render", f"config_files names {f}, which does not exist")
        self.plan = plan
        self.log_alert_markers = tuple(plan.get("alert_markers", ()))
        if self.described.get("check"):
            verdict = self.call("check", {"protocol": PROTOCOL, "step": "check",
                                          "binary": self.binary, "run_dir": run_dir,
                                          "config_files": plan["config_files"]})
            if not verdict["ok"]:
                raise TargetStartError(f"{self.name} rejects the rendered configuration "
                                       f"({', '.join(plan['config_files'])}):\n"
                                       f"{verdict.get('complaint', '(no complaint given)')}")
        self._spawn()
        return self._config_text()

    def _config_text(self):
        parts = []
        for f in self.plan["config_files"]:
            with open(f, errors="replace") as fh:
                parts.append(f"# {os.path.basename(f)}\n{fh.read()}")
        return "\n".join(parts)

    def config_excerpt(self, conf, units):
        own = self.plan.get("excerpts", {}) if self.plan else {}
        got = [own[unit_id(u)] for u in units if unit_id(u) in own]
        if got:
            return "\n".join(got)
        return self.paragraphs_naming(conf, [u.prefix for u in units] +
                                      [unit_id(u) for u in units])

    def _spawn(self):
        self.procs = []
        for i, spec in enumerate(self.plan["processes"]):
            out = open(os.path.join(self.run_dir, f"target-{i}.out"), "ab")
            env = dict(os.environ, **spec.get("env", {}))
            try:
                p = subprocess.Popen(spec["argv"], stdout=out, stderr=out, env=env,
                                     stdin=subprocess.DEVNULL, cwd=spec.get("cwd", self.run_dir),
                                     start_new_session=True, preexec_fn=die_with_parent)
            except OSError as e:
                self.stop()
                self._fail("render", f"processes[{i}]: cannot run {spec['argv'][0]}: {e.strerror}")
            finally:
                out.close()
            self.procs.append((p, spec))
            ready = spec.get("ready", [f"127.0.0.1:{self.port}"] if i == 0 else [])
            self._wait_ready(p, i, ready)

    def _wait_ready(self, p, i, ready):
        deadline = time.monotonic() + READY_TIMEOUT
        what = f"processes[{i}] ({os.path.basename(p.args[0])})"
        for addr in ready:
            host, port = addr.rsplit(":", 1)
            while True:
                if p.poll() is not None:
                    self.stop()
                    self._fail("render", f"{what} exited at start (status {p.returncode}): "
                               f"{self.log_tail()}")
                try:
                    with socket.create_connection((host.strip("[]"), int(port)), timeout=0.5):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        self.stop()
                        self._fail("render", f"{what} did not listen on {addr} within "
                                   f"{READY_TIMEOUT:.0f} s: {self.log_tail()}")
                    time.sleep(0.02)

    def alive(self):
        return bool(self.procs) and all(p.poll() is None for p, _ in self.procs)

    def stop(self):
        for p, spec in reversed(self.procs):
            sig = getattr(signal, "SIG" + spec.get("stop_signal", "TERM"))
            for s, wait in ((sig, spec.get("stop_timeout_s", 5.0)), (signal.SIGTERM, 3.0)):
                if p.poll() is not None:
                    break
                try:
                    os.kill(p.pid, s)
                    p.wait(timeout=wait)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    continue
            _kill_group(p)

    def restart(self):
        self.stop()
        self._spawn()

    def log_text(self):
        paths = list((self.plan or {}).get("logs", []))
        paths += [os.path.join(self.run_dir or "", f"target-{i}.out")
                  for i in range(len(self.procs))]
        parts = []
        for path in paths:
            try:
                with open(path, errors="replace") as f:
                    parts.append(f.read())
            except OSError:
                pass
        return "\n".join(parts)


def unit_id(u):
    """A unit's id in the protocol: its scenario slug (one per job, variants
    included) and location name, safe in file names and config identifiers."""
    return f"{u.slug}-{u.location}"


def _kill_group(p):
    """KILL what is left of a process group we started (the adapter's children too)."""
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if p.poll() is None:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def _last_line(data):
    lines = [ln.strip() for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""

