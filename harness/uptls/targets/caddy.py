"""Caddy 2.6: reverse_proxy with the http transport's tls settings (Go crypto/tls).

One `caddy run` per run, in the foreground, with a JSON config rendered
into the run folder: the admin API off (`admin.disabled`, never :2019),
no autosaved config (`admin.config.persist false`), no automatic HTTPS
(nothing on 80/443), storage and HOME/XDG dirs inside the run folder. One
route per unit, matched by path prefix, each with its own reverse_proxy
handler (so its own http.Transport: no two units share a connection pool).

Sources: Caddy 2.6 docs (caddyserver.com/docs/caddyfile/directives/
reverse_proxy, "The http transport"; JSON: apps/http/servers/routes/handle/
reverse_proxy/transport/http), caddyserver/caddy@v2.6.2
modules/caddyhttp/reverseproxy/httptransport.go (TLSConfig,
MakeTLSClientConfig), Go 1.19 crypto/tls (Config docs).

Mapping of the abstract settings (their meaning is the nginx directive's):
- client_certificate -> tls.client_certificate_file (the chain) +
  client_certificate_key_file (tls.LoadX509KeyPair).
- client_key_password -> unsupported: no passphrase field in TLSConfig;
  LoadX509KeyPair cannot read an encrypted PEM key.
- trusted_ca -> tls.root_ca_pem_files (replaces the system pool).
- verify false -> tls.insecure_skip_verify (chain AND name unchecked);
  true -> nothing: Caddy verifies by default (system roots unless
  root_ca_pem_files), nginx does not -- a scenario that leaves verify out
  sees Caddy's default.
- verify_name / sni_name -> tls.server_name: one name for both ("tls_server_name
  sets the server name used when verifying the certificate received in the
  TLS handshake ... also used for SNI"); different names: unsupported. With
  no name, Go uses the host of the dial address; the scenario's upstream
  host name cannot be dialled (it must resolve), so the adapter dials
  127.0.0.1:PORT and writes server_name = the upstream host, which is what
  Caddy would use for `reverse_proxy https://HOST:PORT`. An IP upstream is
  dialled as such: Go sends no SNI for an IP and checks its IP SANs.
- send_sni false -> unsupported for a host name (Go sends ServerName as SNI
  unless it is an IP: crypto/tls Config.ServerName); nothing to write for
  an IP upstream without a name.
- verify_depth -> no field (Go's x509 has no depth limit): expressible
  only where it cannot bind (haproxy.depth_can_bind).
- protocols -> nothing written when the set is Go's default (TLSv1.2
  TLSv1.3), else unsupported; ciphers, ciphersuites -> unsupported: Caddy's http transport
  has no TLS version or cipher fields, by the maintainers' decision
  (caddyserver/caddy#4747, #4752; PRs #4748, #5484 closed); Go 1.19
  offers TLS 1.2-1.3 as a client. crl -> unsupported: Go's crypto/tls
  does no revocation checking and TLSConfig has no CRL field.
- session_reuse false -> nothing to write: Caddy sets no
  ClientSessionCache, so it never resumes (httptransport.go
  MakeTLSClientConfig); true -> unsupported for that reason.
- keepalive N > 0 -> keep_alive {enabled, max_idle_conns_per_host N}; 0 or
  left out -> keep_alive.enabled false (Caddy pools by default, nginx
  does not: every request a new handshake, as the scenarios expect).
- connect_timeout -> dial_timeout + tls.handshake_timeout (nginx bounds
  the connect and the TLS handshake with it); read_timeout -> read_timeout.
- upstream_group -> several upstreams, load_balancing round_robin.
"""

import json
import os
import re
import signal
import subprocess

from .base import Target, find_executable
from .limits import fixed_limit_reasons
from .nginx import is_ip

DOC = "Caddy 2.6 reverse_proxy, http transport"
NO_TLS_KNOBS = ("Caddy's http transport has no TLS version or cipher settings by the "
                "maintainers' decision (caddyserver/caddy#4747, #4752; PRs #4748, #5484 "
                "closed; httptransport.go TLSConfig)")
SECOND = 1_000_000_000


class CaddyTarget(Target):
    name = "caddy"
    capabilities = {
        **{k: True for k in (
            "client_certificate", "trusted_ca", "verify", "verify_depth", "verify_name",
            "send_sni", "sni_name", "session_reuse", "keepalive", "upstream_group",
            "shared_upstream", "ip_upstream", "connect_timeout", "read_timeout",
            "protocols")},  # protocols: the default set only, see unsupported()
        "client_key_password": "Caddy's http transport has no key passphrase field "
                               "(httptransport.go TLSConfig; Go tls.LoadX509KeyPair reads no "
                               "encrypted PEM key)",
        "ciphers": NO_TLS_KNOBS,
        "ciphersuites": NO_TLS_KNOBS + "; Go's TLS 1.3 suites are not configurable at all "
                        "(crypto/tls Config.CipherSuites: 'TLS 1.3 ciphersuites are not "
                        "configurable')",
        "tls10": NO_TLS_KNOBS + "; Go 1.19 offers TLS 1.2 at least as a client",
        "crl": "Go's crypto/tls and x509 check no revocation and Caddy's TLSConfig has no "
               "CRL field (httptransport.go TLSConfig)",
    }
    log_alert_markers = ("panic:", "fatal error:", "goroutine ")
    # SIGINT/SIGTERM: graceful stop (grace_period 1 s in the config); SIGQUIT
    # exits without cleanup (caddyserver.com/docs/command-line, "caddy run").
    stop_signals = ((signal.SIGTERM, 5.0), (signal.SIGKILL, 3.0))

    def find_binary(self):
        self.binary = find_executable(self.target_bin, "caddy",
                                      "install it (make deps TARGET=caddy) or set "
                                      "TARGET_BIN=/path/to/caddy", ["/usr/bin"])
        return self.binary

    def _env(self, base_dir):
        # Caddy keeps its data (certificates, autosave) under HOME/XDG: in the run.
        return {**os.environ, "HOME": base_dir, "XDG_CONFIG_HOME": os.path.join(base_dir, "cfg"),
                "XDG_DATA_HOME": os.path.join(base_dir, "data")}

    def version_info(self):
        def out(*args):
            r = subprocess.run([self.binary, *args], capture_output=True, text=True, timeout=10,
                               stdin=subprocess.DEVNULL, env=self._env("/nonexistent"))
            return (r.stdout + r.stderr).strip()
        version = out("version")
        m = re.search(r"v?(\d+\.\d+\.\d+\S*)", version)
        go = re.search(r"^go\s+(go\S+)", out("build-info"), re.M)
        lib = f"Go {go.group(1)[2:]} crypto/tls" if go else "Go crypto/tls"
        return {"name": self.name, "version": m.group(1) if m else "?", "binary": self.binary,
                "openssl": f"none ({lib})", "tls_library": lib,
                "detail": f"caddy {version}; {lib}"}

    GO_DEFAULT = ("TLSv1.2", "TLSv1.3")

    def documented_default_protocols(self):
        return (list(self.GO_DEFAULT),
                "Go 1.19 crypto/tls Config.MinVersion: 'By default, TLS 1.2 is currently used as "
                "the minimum when acting as a client'; MaxVersion: 'By default, the maximum "
                "version supported by this package is used, which is currently TLS 1.3'; "
                "Caddy 2.6 sets neither (httptransport.go MakeTLSClientConfig)")

    def argv(self, conf_path):
        return ["env", *[f"{k}={v}" for k, v in self._env(self.run_dir).items()
                         if k in ("HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME")],
                self.binary, "run", "--config", conf_path]

    def check_config(self, conf_path):
        r = subprocess.run([self.binary, "validate", "--config", conf_path],
                           capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
                           env=self._env(self.run_dir))
        if r.returncode != 0:
            return (r.stderr + r.stdout).strip()[-2000:]
        return None

    def unsupported(self, scenario):
        why = super().unsupported(scenario)
        if why:
            return why
        reasons = fixed_limit_reasons(self, scenario, "Go's x509 verification has no depth "
                                      "limit and Caddy no depth field (httptransport.go TLSConfig)")
        for loc in scenario.locations:
            s = loc.settings
            names = {s[k] for k in ("verify_name", "sni_name") if k in s}
            if len(names) > 1:
                reasons.append("verify_name != sni_name: Caddy has one tls_server_name for "
                               f"the name checked and the name sent ({DOC}: tls_server_name)")
            name = next(iter(names), None) or loc.upstream_host
            if s.get("send_sni") is False and name and not is_ip(name):
                reasons.append("send_sni off: Go sends the server name as SNI whenever it is "
                               "a host name and Caddy has no switch (crypto/tls "
                               "Config.ServerName; httptransport.go TLSConfig)")
            if "protocols" in s and set(s["protocols"]) != set(self.GO_DEFAULT):
                reasons.append(f"protocols {s['protocols']}: {NO_TLS_KNOBS}; only Go's "
                               "default set (TLSv1.2 TLSv1.3: nothing written) is expressible")
            if s.get("session_reuse"):
                reasons.append("session_reuse on: Caddy's http transport sets no "
                               "ClientSessionCache, so it never resumes a session "
                               "(httptransport.go MakeTLSClientConfig)")
        return "; ".join(dict.fromkeys(reasons)) or None

    def config_excerpt(self, conf, units):
        try:
            routes = json.loads(conf)["apps"]["http"]["servers"]["uptls"]["routes"]
        except (ValueError, KeyError):
            return ""
        prefixes = {u.prefix + "*" for u in units}
        mine = [r for r in routes if set(r.get("match", [{}])[0].get("path", [])) & prefixes]
        return json.dumps(mine, indent=1)

    # -- rendering ------------------------------------------------------------------
    def render(self, units, run_dir, port):
        for d in ("cfg", "data"):
            os.makedirs(os.path.join(run_dir, d), exist_ok=True)
        # "@id" labels a route (any Caddy JSON object may carry one): the
        # scenario (+ ~wrongN) and location it serves.
        routes = [{"@id": f"{u.key} {u.location}", "match": [{"path": [u.prefix + "*"]}],
                   "terminal": True, "handle": [self.handler(u, run_dir)]} for u in units]
        routes.append({"handle": [{"handler": "static_response", "status_code": 404}]})
        conf = {
            "admin": {"disabled": True, "config": {"persist": False}},
            "storage": {"module": "file_system", "root": os.path.join(run_dir, "data")},
            "logging": {"logs": {"default": {
                "writer": {"output": "file", "filename": os.path.join(run_dir, "error.log")},
                "level": "INFO"}}},
            "apps": {"http": {
                "grace_period": SECOND,
                "servers": {"uptls": {
                    "listen": [f"127.0.0.1:{port}"],
                    "automatic_https": {"disable": True},
                    "routes": routes}}}},
        }
        return json.dumps(conf, indent=1) + "\n"

    def handler(self, u, run_dir):
        s, pki = u.settings, u.pki
        tls = {}
        if "client_certificate" in s:
            tls["client_certificate_file"] = pki.path(s["client_certificate"], "chain.pem")
            tls["client_certificate_key_file"] = pki.path(s["client_certificate"], "key")
        if "trusted_ca" in s:
            tls["root_ca_pem_files"] = [pki.bundle(run_dir, s["trusted_ca"], "pem")]
        if s.get("verify") is False:
            tls["insecure_skip_verify"] = True
        name = s.get("verify_name", s.get("sni_name"))
        if name is None and not u.direct:
            name = u.upstream_block   # what Caddy uses for reverse_proxy https://HOST:PORT
        if name is not None:
            tls["server_name"] = name
        transport = {"protocol": "http", "tls": tls}
        if s.get("keepalive"):
            transport["keep_alive"] = {"enabled": True,
                                       "max_idle_conns_per_host": s["keepalive"]}
        else:
            transport["keep_alive"] = {"enabled": False}
        if "connect_timeout" in s:
            transport["dial_timeout"] = s["connect_timeout"] * SECOND
            tls["handshake_timeout"] = s["connect_timeout"] * SECOND
        if "read_timeout" in s:
            transport["read_timeout"] = s["read_timeout"] * SECOND
        h = {"handler": "reverse_proxy", "transport": transport,
             "upstreams": [{"dial": addr} for addr in u.servers]}
        if len(u.servers) > 1:
            h["load_balancing"] = {"selection_policy": {"policy": "round_robin"}}
        return h
