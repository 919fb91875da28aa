"""Apache Traffic Server 9.2 as a reverse proxy: one remap rule per unit.

A private instance: `traffic_server --run-root=RUN/runroot.yaml` in the
foreground, with its own sysconfdir, logdir, runtimedir and cachedir in the
run folder (doc/admin-guide/files/records.config.en.rst, runroot:
doc/appendices/command-line/traffic_layout.en.rst), never
/etc/trafficserver, the system service, traffic_manager or port 8080. The
listener is 127.0.0.1 only (ip-in=; proxy.config.http.server_ports). The
cache is off, upstream names resolve through a private hosts file
(proxy.config.hostdb.host_file.path).

Each unit is a `regex_map http://.*:PORT/u/sNNN/LOC/ https://HOST:P/u/...`
rule (any client Host: the rule is chosen by path, as nginx's location)
with its TLS settings as `conf_remap.so` overrides of the records the docs
mark "Overridable" (src/shared/overridable_txn_vars.cc):

- trusted_ca -> proxy.config.ssl.client.CA.cert.filename; the global
  CA.cert.path points at an empty private folder, so nothing but the file
  is trusted (SSLClientUtils.cc: SSL_CTX_load_verify_locations(file, path);
  the system store only when both are unset).
- verify true -> proxy.config.ssl.client.verify.server.policy ENFORCED +
  .properties ALL; false -> policy DISABLED; left out -> nothing written:
  ATS 9's default is PERMISSIVE ("check but do not enforce", records.config
  doc), which forwards whatever the result, as nginx's default (off) does.
- verify_name / sni_name -> proxy.config.ssl.client.sni_policy @NAME: the
  name ATS checks is the SNI it sends (records.config doc
  ssl.client.verify.server.properties NAME: "check the server certificate
  name against the SNI"), one name for both; different names are
  unsupported. Without a name the policy is the default `host`: the
  outgoing Host, which is the remap target host (pristine_host_hdr 0).
- send_sni: ATS sends SNI whenever it has a name and no record turns it off
  (the '@' empty-literal trick also changes the name checked): send_sni =
  false with a name is unsupported.
- client_certificate -> proxy.config.ssl.client.cert.filename (the chain)
  + .private_key.filename; client_key_password unsupported: no passphrase
  for client keys (SSLClientUtils.cc SSL_CTX_use_PrivateKey_file without a
  callback; ssl_key_dialog is for server certificates only).
- verify_depth: hard-coded 7 (SSLConfig.cc client_verify_depth = 7,
  SSLClientUtils.cc SSL_CTX_set_verify_depth): expressible only where it
  cannot bind, as for HAProxy.
- protocols -> proxy.config.ssl.client.TLSv1 / TLSv1_1 / TLSv1_2 / TLSv1_3
  (0/1 each); ciphers -> proxy.config.ssl.client.cipher_suite;
  ciphersuites -> proxy.config.ssl.client.TLSv1_3.cipher_suites;
  session_reuse false -> proxy.config.ssl.origin_session_cache 0 (true is
  the default, 1: nothing written). These records are global only (not
  overridable), so units that need different values run in different
  traffic_server processes of the run, one per distinct set, each on its
  own port (address()); all others share one.
- crl: no CRL option for origin connections (records.config doc lists
  none; SSLClientUtils.cc has no CRL code): unsupported.
- keepalive -> proxy.config.http.keep_alive_enabled_out 1 for N > 0 (ATS
  has no per-rule pool size), 0 otherwise (the global default here).
- One origin, one attempt: a scenario's upstream of one server is tried
  once, as nginx does (proxy_next_upstream passes a failed request to the
  *next* server, and there is none); ATS retries the same origin 3 times by
  default, so proxy.config.http.connect_attempts_max_retries (and
  _dead_server) is written as 0.
- connect_timeout -> proxy.config.http.connect_attempts_timeout;
  read_timeout -> proxy.config.http.transaction_no_activity_timeout_out.
- upstream_group: one origin per remap rule; a group of servers on
  several ports needs parent.config / strategies.yaml, which this adapter
  does not render: unsupported.
"""

import http.client
import os
import re
import signal
import subprocess
import time

from .base import Target, TargetStartError, find_executable
from .base import free_port
from .haproxy import checks_default_protocols, depth_can_bind, protocol_range
from .limits import one_name_for_both, sni_always_on
from .tlslib import tls_library

DOC = "ATS 9.2 doc/admin-guide/files/records.config.en.rst"
PROBE_HOST = "uptls-ready.invalid"
PROBE_PATH = "/__uptls_ready/"
# Records that are global only (not in src/shared/overridable_txn_vars.cc,
# so conf_remap cannot set them per rule): units that need different values
# run in different traffic_server processes, one per distinct set.
GLOBAL_SETTINGS = ("protocols", "ciphers", "ciphersuites", "session_reuse")
PROTO_RECORDS = (("TLSv1", "TLSv1"), ("TLSv1.1", "TLSv1_1"), ("TLSv1.2", "TLSv1_2"),
                 ("TLSv1.3", "TLSv1_3"))


def global_key(settings):
    """The global records a unit needs, as a hashable key (None = defaults)."""
    s = settings
    return (tuple(s["protocols"]) if "protocols" in s else None, s.get("ciphers"),
            s.get("ciphersuites"), False if s.get("session_reuse") is False else None)


class TrafficserverTarget(Target):
    name = "trafficserver"
    capabilities = {
        **{k: True for k in (
            "client_certificate", "trusted_ca", "verify", "verify_depth", "verify_name",
            "send_sni", "sni_name", "session_reuse", "keepalive", "shared_upstream",
            "ip_upstream", "connect_timeout", "read_timeout", "protocols", "tls10", "ciphers",
            "ciphersuites")},
        "client_key_password": "ATS 9.2 loads origin client keys with no passphrase callback "
                               "(iocore/net/SSLClientUtils.cc SSL_CTX_use_PrivateKey_file; "
                               "ssl_key_dialog applies to server certificates only)",
        "crl": f"ATS 9.2 has no CRL option for origin connections ({DOC} lists none under "
               "proxy.config.ssl.client.*; iocore/net/SSLClientUtils.cc has no CRL code)",
        "upstream_group": "an origin group over several ports needs parent.config or "
                          "strategies.yaml (next-hop selection), which this adapter does not "
                          "render: one remap rule names one origin",
    }
    log_alert_markers = ("FATAL:", "ALERT:", "EMERGENCY:", "ERROR: AddressSanitizer")
    stop_signals = ((signal.SIGTERM, 5.0), (signal.SIGKILL, 3.0))

    def find_binary(self):
        self.binary = find_executable(self.target_bin, "traffic_server",
                                      "install trafficserver (make deps) or set "
                                      "TARGET_BIN=/path/to/traffic_server", ["/usr/bin"])
        return self.binary

    def version_info(self):
        r = subprocess.run([self.binary, "--version"], capture_output=True, text=True,
                           timeout=10, stdin=subprocess.DEVNULL)
        text = (r.stdout + r.stderr).strip()
        m = re.search(r"Traffic Server (\S+)", text)
        lib = tls_library(self.binary)
        return {"name": self.name, "version": m.group(1) if m else "?", "binary": self.binary,
                "openssl": lib if lib.startswith("OpenSSL") else None, "tls_library": lib,
                "detail": text.splitlines()[0] if text else ""}

    def documented_default_protocols(self):
        return None, None

    def _runroot(self):
        return os.path.join(self.run_dir, "runroot.yaml")

    def argv(self, conf_path):
        return [self.binary, f"--run-root={self._runroot()}"]

    def check_config(self, conf_path):
        return self._check_result(self._check_start())

    def _check_start(self):
        return subprocess.Popen([self.binary, f"--run-root={self._runroot()}", "-C",
                                 "verify_config"], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)

    @staticmethod
    def _check_result(p):
        try:
            text = p.communicate(timeout=30)[0].strip()
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            return "traffic_server -C verify_config did not finish within 30 s"
        if p.returncode != 0 or re.search(r"\b(ERROR|FATAL)\b", text):
            return text
        return None

    # -- what can be expressed --------------------------------------------------------
    def unsupported(self, scenario):
        why = super().unsupported(scenario)
        if why:
            return why
        reasons = []
        if checks_default_protocols(scenario):
            reasons.append("default protocols: proxy.config.ssl.client.TLSv1* are global; "
                           "not checked here")
        if depth_can_bind(scenario, getattr(self, "pki", None)):
            reasons.append("verify_depth: ATS 9.2 has no verify depth record for origins; the "
                           "client context's depth is hard-coded to 7 (iocore/net/SSLConfig.cc "
                           "client_verify_depth = 7): a lower depth cannot be expressed")
        for loc in scenario.locations:
            s = loc.settings
            reasons.append(one_name_for_both(s, "ATS checks the certificate against the SNI "
                                                f"it sends ({DOC}: "
                                                "ssl.client.verify.server.properties)"))
            reasons.append(sni_always_on(loc, "ATS sends the name it checks (a configured name, "
                                              "else the outgoing Host) as SNI ("
                                              f"{DOC}: proxy.config.ssl.client.sni_policy); no "
                                              "record turns SNI off"))
            if "protocols" in s and protocol_range(s["protocols"]) is None:
                reasons.append(f"protocols {s['protocols']}: proxy.config.ssl.client.TLSv1* "
                               "with a gap: OpenSSL uses a contiguous range")
        return "; ".join(dict.fromkeys(r for r in reasons if r)) or None

    def config_excerpt(self, conf, units):
        return "\n".join(ln for ln in conf.splitlines() if any(u.prefix in ln for u in units))

    # -- rendering ------------------------------------------------------------------
    def overrides(self, u, run_dir):
        s, pki = u.settings, u.pki
        o = []
        if "trusted_ca" in s:
            # A CA file of the unit's own: ATS keeps one client SSL_CTX per
            # (cert, key, CA file) and keys its origin session cache by
            # "SNI-or-IP:SSL_CTX*:verify policy", without the port
            # (SSLNetVConnection.cc sslClientHandShakeEvent lookup_key), so
            # units with the same SNI and CA file would share sessions across
            # backends (as nginx's per-upstream-block session; the nginx
            # adapter gives each location its own upstream block).
            unit_dir = os.path.join(run_dir, "units", f"{u.slug}-{u.location}")
            o.append(("proxy.config.ssl.client.CA.cert.filename",
                      pki.bundle(unit_dir, s["trusted_ca"], "pem")))
        if "verify" in s:
            if s["verify"]:
                o += [("proxy.config.ssl.client.verify.server.policy", "ENFORCED"),
                      ("proxy.config.ssl.client.verify.server.properties", "ALL")]
            else:
                o.append(("proxy.config.ssl.client.verify.server.policy", "DISABLED"))
        name = s.get("verify_name", s.get("sni_name"))
        if name is not None:
            o.append(("proxy.config.ssl.client.sni_policy", "@" + name))
        if "client_certificate" in s:
            o += [("proxy.config.ssl.client.cert.filename",
                   pki.path(s["client_certificate"], "chain.pem")),
                  ("proxy.config.ssl.client.private_key.filename",
                   pki.path(s["client_certificate"], "key"))]
        o.append(("proxy.config.http.keep_alive_enabled_out", 1 if s.get("keepalive") else 0))
        if "connect_timeout" in s:
            o.append(("proxy.config.http.connect_attempts_timeout", s["connect_timeout"]))
        if "read_timeout" in s:
            o.append(("proxy.config.http.transaction_no_activity_timeout_out",
                      s["read_timeout"]))
        return o

    def global_records(self, key):
        protocols, ciphers, suites, reuse = key
        out = []
        if protocols is not None:
            out += [f"CONFIG proxy.config.ssl.client.{rec} INT {1 if p in protocols else 0}"
                    for p, rec in PROTO_RECORDS]
        if ciphers is not None:
            out.append(f"CONFIG proxy.config.ssl.client.cipher_suite STRING {ciphers}")
        if suites is not None:
            out.append(f"CONFIG proxy.config.ssl.client.TLSv1_3.cipher_suites STRING {suites}")
        if reuse is False:
            out.append("CONFIG proxy.config.ssl.origin_session_cache INT 0")
        return out

    def records(self, run_dir, port):
        d = lambda *p: os.path.join(run_dir, *p)  # noqa: E731
        return [
            "CONFIG proxy.config.admin.user_id STRING #-1",
            f"CONFIG proxy.config.http.server_ports STRING {port}:ip-in=127.0.0.1",
            "CONFIG proxy.config.http.cache.http INT 0",
            "CONFIG proxy.config.http.wait_for_cache INT 0",
            "CONFIG proxy.config.url_remap.remap_required INT 1",
            "CONFIG proxy.config.url_remap.pristine_host_hdr INT 0",
            f"CONFIG proxy.config.hostdb.host_file.path STRING {d('hosts')}",
            "CONFIG proxy.config.dns.nameservers STRING 127.0.0.1",
            "CONFIG proxy.config.dns.lookup_timeout INT 1",
            "CONFIG proxy.config.body_factory.template_sets_dir STRING "
            + ("/etc/trafficserver/body_factory" if os.path.isdir("/etc/trafficserver/body_factory")
               else d("body_factory")),
            "CONFIG proxy.config.exec_thread.autoconfig INT 0",
            "CONFIG proxy.config.exec_thread.limit INT 1",
            "CONFIG proxy.config.accept_threads INT 0",
            "CONFIG proxy.config.task_threads INT 1",
            "CONFIG proxy.config.crash_log_helper STRING /bin/true",
            "CONFIG proxy.config.diags.output.diag STRING L",
            f"CONFIG proxy.config.ssl.client.CA.cert.path STRING {d('no-ca')}",
            "CONFIG proxy.config.http.keep_alive_enabled_out INT 0",
            "CONFIG proxy.config.http.connect_attempts_timeout INT 5",
            "CONFIG proxy.config.http.connect_attempts_max_retries INT 0",
            "CONFIG proxy.config.http.connect_attempts_max_retries_dead_server INT 0",
            "CONFIG proxy.config.http.transaction_no_activity_timeout_out INT 10",
            "CONFIG proxy.config.http.insert_request_via_str INT 0",
            "CONFIG proxy.config.http.insert_response_via_str INT 0",
            "",
        ]

    def render(self, units, run_dir, port):
        etc = os.path.join(run_dir, "etc")
        for sub in ("etc", "log", "run", "cache", "no-ca"):
            os.makedirs(os.path.join(run_dir, sub), exist_ok=True)
        root = {"prefix": run_dir, "exec_prefix": "/usr", "bindir": "/usr/bin",
                "sbindir": "/usr/sbin", "sysconfdir": etc, "datadir": os.path.join(run_dir, "cache"),
                "includedir": "/usr/include", "libdir": "/usr/lib/trafficserver",
                "libexecdir": self.plugin_dir(), "localstatedir": run_dir,
                "runtimedir": os.path.join(run_dir, "run"), "logdir": os.path.join(run_dir, "log"),
                "cachedir": os.path.join(run_dir, "cache")}
        hosts = {PROBE_HOST: "127.0.0.1"}
        remap = ["# rendered by uptls for target trafficserver",
                 "# readiness probe (see _wait_ready): to this instance itself, by name",
                 f"map http://127.0.0.1:{port}{PROBE_PATH} http://{PROBE_HOST}:{port}/unmapped/"]
        for u in units:
            host, _, bport = u.servers[0].rpartition(":")
            if not u.direct:
                host = u.upstream_block
                hosts[host] = "127.0.0.1"
            params = " ".join(f"@pparam={k}={v}" for k, v in self.overrides(u, run_dir))
            target = f"https://{host}:{bport}{u.prefix}"
            remap.append(f"# {u.scenario_id} location {u.location} {u.prefix}")
            # With the listener's port (Host: 127.0.0.1:PORT) and without
            # (a Host or absolute-form target naming no port means :80).
            for frm in (f"http://.*:{port}{u.prefix}", f"http://.*{u.prefix}"):
                remap.append(f"regex_map {frm} {target} @plugin=conf_remap.so {params}")
        files = {
            "runroot.yaml": "".join(f"{k}: {v}\n" for k, v in root.items()),
            "etc/records.config": "\n".join(self.records(run_dir, port) + self.global_records(
                global_key(units[0].settings)) + [""]),
            "etc/remap.config": "\n".join(remap) + "\n",
            "etc/ip_allow.yaml": "ip_allow:\n  - apply: in\n    ip_addrs: 127.0.0.1\n"
                                 "    action: allow\n    methods: ALL\n",
            "etc/logging.yaml": "logging:\n  formats: []\n  logs: []\n",
            "hosts": "127.0.0.1 localhost\n" + "".join(f"127.0.0.1 {h}\n" for h in sorted(hosts)),
        }
        for f in ("plugin.config", "storage.config", "volume.config", "ssl_multicert.config",
                  "sni.yaml", "strategies.yaml", "parent.config", "cache.config",
                  "hosting.config", "splitdns.config", "socks.config"):
            files[f"etc/{f}"] = ""
        for rel, text in files.items():
            with open(os.path.join(run_dir, rel), "w") as fh:
                fh.write(text)
        return files["etc/records.config"] + "\n" + files["etc/remap.config"]

    def plugin_dir(self):
        d = os.path.join(os.path.dirname(os.path.dirname(self.binary or "/usr/bin/x")),
                         "lib", "trafficserver", "modules")
        return d if os.path.isdir(d) else "/usr/lib/trafficserver/modules"

    # -- one process per set of global records ----------------------------------------
    def start(self, run_dir, units):
        groups = {}
        for u in units:
            groups.setdefault(global_key(u.settings), []).append(u)
        self.run_dir, self.instances, confs = run_dir, [], []
        try:
            for i, (key, members) in enumerate(sorted(groups.items(), key=lambda kv: repr(kv[0]))):
                inst = TrafficserverTarget(self.target_bin)
                inst.binary, inst.pki = self.binary, getattr(self, "pki", None)
                inst.run_dir = os.path.join(run_dir, f"ats{i}")
                os.makedirs(inst.run_dir, exist_ok=True)
                inst.port = free_port()
                conf = inst.render(members, inst.run_dir, inst.port)
                inst.conf_path = os.path.join(inst.run_dir, "target.conf")
                with open(inst.conf_path, "w") as f:
                    f.write(conf)
                for u in members:
                    u.port = inst.port
                self.instances.append(inst)
                confs.append(conf)
            # No `traffic_server -C verify_config` here: it costs about as much
            # CPU as a start, per process; a configuration traffic_server
            # refuses stops it at start (TargetStartError with its log), and
            # the project's tests run the check on the whole catalogue's
            # rendering (tests/test_targets.py).
            self.port = self.instances[0].port if self.instances else None
            self._spawn()
        except BaseException:
            self.stop()
            raise
        return "\n".join(confs)

    def _spawn(self):
        for inst in self.instances:
            if not inst.alive():
                inst._popen()
        for inst in self.instances:
            inst._wait_ready()
        self.proc = self.instances[0].proc if self.instances else None

    def _popen(self):
        """Start the process without waiting for it (the group's _spawn waits
        for every process after starting them all): base _spawn, no wait."""
        self.log_path = os.path.join(self.run_dir, "log", "diags.log")
        self._wait_ready = lambda timeout=15.0: None
        try:
            Target._spawn(self)
        finally:
            del self._wait_ready

    def alive(self):
        if not hasattr(self, "instances"):
            return super().alive()
        return bool(self.instances) and all(i.alive() for i in self.instances)

    def stop(self):
        if not hasattr(self, "instances"):
            return super().stop()
        # The graceful stop takes about a second: signal every process first.
        for inst in self.instances:
            if inst.alive():
                try:
                    os.kill(inst.proc.pid, self.stop_signals[0][0])
                except ProcessLookupError:
                    pass
        for inst in self.instances:
            inst.stop()

    def log_text(self):
        if not hasattr(self, "instances"):
            return super().log_text()
        return "\n".join(i.log_text() for i in self.instances)

    def _wait_ready(self, timeout=15.0):
        """Listening is not ready: HostDB reads the hosts file from a
        background event that first runs about a second after start
        (iocore/hostdb/HostDB.cc backgroundEvent, every 1 s), and a request
        before it goes to DNS. Ready = a request through the probe rule, to
        a name only the hosts file knows, reaches this instance itself
        (which answers 400 "Cycle Prohibited" or 404; before the hosts file
        is read the lookup fails: 500)."""
        Target._wait_ready(self, timeout)
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise TargetStartError(f"{self.name} exited at start: {self.log_tail()}")
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=3)
            try:
                conn.request("GET", PROBE_PATH)
                last = conn.getresponse().status
                if last < 500:
                    return
            except (OSError, http.client.HTTPException) as e:
                last = e
            finally:
                conn.close()
            time.sleep(0.1)
        self.stop()
        raise TargetStartError(f"{self.name} did not resolve names from its hosts file within "
                               f"{timeout:.0f}s (probe: {last}): {self.log_tail()}")
