"""What every target adapter provides, and the process handling they share
(through uptls.proc: started in its own process group, dying with the
harness, stopped by PID)."""

import os
import signal
import tomllib

from uptls_vocab import FailKind

from .. import UptlsError, proc
from ..proc import die_with_parent, free_port  # noqa: F401  (adapters import them from here)

HERE = os.path.dirname(os.path.abspath(__file__))


class TargetStartError(UptlsError):
    """The target binary is missing or would not start: the run cannot go on."""


class Target:
    """A proxy under test.

    Subclasses set `name`, `capabilities` (setting -> True, or a string
    saying why the target cannot express it) and implement find_binary,
    version_info, render, argv. Each unit (one location of one scenario)
    is served under its own path prefix on the one listener of one process.
    """

    name = "?"
    capabilities = {}
    log_alert_markers = ("[alert]", "[emerg]", "ERROR: AddressSanitizer",
                         "runtime error:", "LeakSanitizer")
    # stop(): signals sent in turn, each with how long to wait for the exit
    # (a target whose graceful stop is another signal overrides this).
    stop_signals = ((signal.SIGQUIT, 5.0), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0))

    def __init__(self, target_bin=None, faults=()):
        self.target_bin = target_bin or None
        self.faults = tuple(faults)
        self.binary = None
        self.proc = None
        self.run_dir = None
        self.port = None
        self.log_path = None

    # -- what a subclass provides -------------------------------------------------
    def find_binary(self):
        raise NotImplementedError

    def version_info(self):
        raise NotImplementedError

    def render(self, units, run_dir, port):
        raise NotImplementedError

    def argv(self, conf_path):
        raise NotImplementedError

    def address(self, unit):
        """Where the client sends a unit's requests: one listener for all by
        default (units differ by path prefix); a target without paths (a TCP
        proxy) gives each unit its own port in render()."""
        return "127.0.0.1", getattr(unit, "port", None) or self.port

    @staticmethod
    def paragraphs_naming(conf, needles):
        """The blank-line-separated blocks of a rendered config that name any
        of needles: a config excerpt for targets that render one block (or a
        few) per unit, each naming the unit's path prefix or slug."""
        blocks = [b.strip("\n") for b in conf.split("\n\n")]
        return "\n".join(b for b in blocks if any(n in b for n in needles))

    def check_config(self, conf_path):
        """Return None, or the target's complaint about the rendered config."""
        return None

    # Why a capability the adapter does not list cannot be used.
    undeclared = "not supported by this adapter"

    def unsupported(self, scenario):
        """None, or why this target cannot express what the scenario needs."""
        missing = []
        for cap in sorted(scenario.capabilities()):
            have = self.capabilities.get(cap, False)
            if have is True:
                continue
            why = have if isinstance(have, str) else self.undeclared
            missing.append(f"{cap}: {why}")
        return "; ".join(missing) or None

    # A project's own deviation list (DEVIATIONS=file) replaces the built-in one.
    deviations_file = None

    def deviations(self):
        """The target's known, sourced deviations: {scenario id: {reason, source}}."""
        cached = getattr(self, "_deviations", None)
        if cached is not None:
            return cached
        path = self.deviations_file or os.path.join(HERE, f"{self.name}.deviations.toml")
        if not os.path.exists(path):
            if self.deviations_file:
                raise UptlsError(f"DEVIATIONS={path}: no such file")
            self._deviations = {}
            return self._deviations
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise UptlsError(f"{path}: TOML syntax error: {e}") from None
        out = {}
        for d in data.get("deviation", []):
            for key in ("scenario", "reason", "source"):
                if key not in d:
                    raise UptlsError(f"{path}: every [[deviation]] needs scenario, reason "
                                     f"and source; one lacks '{key}'")
            # A "~wrongN" entry explains why a wrong-way variant cannot fail on
            # this target (read by tests/test_targets.py): it has no kind.
            if "~wrong" not in d["scenario"] and d.get("kind") not in tuple(FailKind):
                raise UptlsError(f"{path}: deviation '{d['scenario']}': 'kind' must be one of "
                                 f"{', '.join(FailKind)} (the way the scenario fails), "
                                 f"not {d.get('kind')!r}")
            unknown = set(d) - {"scenario", "reason", "source", "kind", "step"}
            if unknown:
                raise UptlsError(f"{path}: deviation '{d['scenario']}': unknown key(s) "
                                 f"{sorted(unknown)}")
            if d["scenario"] in out:
                raise UptlsError(f"{path}: deviation '{d['scenario']}' is listed twice")
            out[d["scenario"]] = {k: d[k] for k in ("reason", "source", "kind", "step") if k in d}
        self._deviations = out
        return out

    def check_deviations(self, scenario_ids):
        """Every listed deviation names a scenario of the catalogue (or one of
        its wrong-way variants, id~wrongN): a typo would silently explain nothing."""
        known = set(scenario_ids)
        bad = [sid for sid in self.deviations() if sid.split("~wrong")[0] not in known]
        if bad:
            where = self.deviations_file or f"{self.name}.deviations.toml"
            raise UptlsError(f"{where}: deviation(s) for unknown scenario id(s): "
                             f"{', '.join(sorted(bad))}")

    def describe(self):
        """This adapter in the shape of the adapter protocol's describe answer
        (docs/adapter-protocol.md): built-in adapters and exec: adapters
        declare themselves alike (tests validate both against the schema)."""
        info = self.version_info()
        protos, source = (self.documented_default_protocols()
                          if hasattr(self, "documented_default_protocols") else (None, None))
        out = {"protocol": "uptls-adapter/1", "name": self.name, "version": info["version"],
               "binary": info["binary"],
               "tls_library": info.get("tls_library") or info.get("openssl") or "?",
               "detail": info.get("detail") or "",
               "capabilities": dict(self.capabilities),
               "routing": "port" if getattr(self, "routing", "path") == "port" else "path",
               "refusal": "close" if getattr(self, "refusal_closes_connection", False)
               else "status",
               "unique_upstream_hosts": bool(getattr(self, "unique_upstream_hosts", False)),
               "check": type(self).check_config is not Target.check_config}
        if protos:
            out["defaults"] = {"protocols": {"versions": list(protos), "source": source}}
        return out

    # -- process handling shared by all -------------------------------------------
    def start(self, run_dir, units):
        self.run_dir = run_dir
        self.port = free_port()
        conf = self.render(units, run_dir, self.port)
        conf_path = os.path.join(run_dir, "target.conf")
        with open(conf_path, "w") as f:
            f.write(conf)
        complaint = self.check_config(conf_path)
        if complaint:
            raise TargetStartError(f"{self.name} rejects the rendered configuration "
                                   f"{conf_path}:\n{complaint}")
        self.log_path = os.path.join(run_dir, "error.log")
        self.conf_path = conf_path
        self._spawn()
        return conf

    def _spawn(self):
        # From the main thread: die-with-parent fires when the forking thread ends.
        try:
            self.proc = proc.start(self.argv(self.conf_path), cwd=self.run_dir,
                                   log=os.path.join(self.run_dir, "target.stderr"))
        except OSError as e:
            raise TargetStartError(f"cannot run {self.binary}: {e.strerror}") from None
        self._wait_ready()

    def restart(self):
        """Start the target again with the same configuration (after a crash)."""
        self.stop()
        self._spawn()

    def _wait_ready(self, timeout=15.0):
        try:
            proc.wait_port(self.port, self.proc, timeout)
        except proc.ProcError as e:  # it exited, or did not listen in time
            self.stop()
            raise TargetStartError(f"{self.name} {e}: {self.log_tail()}") from None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """stop_signals in turn (QUIT, TERM, KILL), then KILL of the whole
        process group (workers left behind by a master that died)."""
        if self.proc is not None:
            proc.stop(self.proc, self.stop_signals, group=True)

    def log_text(self):
        paths = (self.log_path, os.path.join(self.run_dir or "", "target.stderr"))
        return "\n".join(proc.log_text(p) for p in paths if p and os.path.exists(p))

    def log_tail(self, n=8):
        lines = [ln for ln in self.log_text().splitlines() if ln.strip()]
        return " | ".join(lines[-n:]) or "(no log output)"

    def alert_lines(self):
        return [ln for ln in self.log_text().splitlines()
                if any(m in ln for m in self.log_alert_markers)]


def unit_files(unit, run_dir):
    """The files a unit's settings name, by the adapter protocol's names
    (docs/adapter-protocol.md, render: files): client_chain, client_key,
    client_key_password_file, trusted_ca_bundle, crl_bundle. CA and CRL
    lists are written as one bundle each into run_dir."""
    s, pki, files = unit.settings, unit.pki, {}
    if "client_certificate" in s:
        files["client_chain"] = pki.path(s["client_certificate"], "chain.pem")
        files["client_key"] = pki.path(s["client_certificate"], "key")
        if s.get("client_key_password"):
            files["client_key_password_file"] = pki.path(s["client_certificate"], "pass")
    if "trusted_ca" in s:
        files["trusted_ca_bundle"] = pki.bundle(run_dir, s["trusted_ca"], "pem")
    if "crl" in s:
        files["crl_bundle"] = pki.bundle(run_dir, s["crl"], "crl")
    return files


def find_executable(target_bin, name, hint, fallbacks=()):
    """TARGET_BIN if given (it must be executable), else NAME on PATH or in sbin."""
    if target_bin:
        if not (os.path.isfile(target_bin) and os.access(target_bin, os.X_OK)):
            raise TargetStartError(f"TARGET_BIN={target_bin}: no executable file there")
        return os.path.abspath(target_bin)
    path = which(name, list(fallbacks) + ["/usr/sbin", "/usr/local/sbin"])
    if not path:
        raise TargetStartError(f"no {name} binary on PATH or in /usr/sbin: {hint}")
    return os.path.abspath(path)


def which(name, fallbacks=()):
    for d in os.environ.get("PATH", "").split(os.pathsep) + list(fallbacks):
        p = os.path.join(d, name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None
