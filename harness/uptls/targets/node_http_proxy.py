"""node-http-proxy: npm http-proxy 1.18.1 on the machine's Node.js.

The proxy is harness/node-http-proxy/runner.js (http-proxy installed next to
it by `make deps TARGET=node-http-proxy`: npm ci from the committed
lockfile), run by the `node` on PATH or TARGET_BIN, with a JSON config
rendered into the run folder: one http server, one route per unit (path
prefix), one `httpProxy.createProxyServer(options)` per route and upstream
server. TLS is Node's tls module: OpenSSL underneath, but the name check
(tls.checkServerIdentity), the SNI choice and the session cache are
Node's own JavaScript (lib/_tls_wrap.js, lib/_http_agent.js).

Sources: http-proxy 1.18.1 README (options) and lib/http-proxy/common.js
setupOutgoing (what reaches https.request); Node.js 20 docs: https.Agent,
tls.connect, tls.createSecureContext, tls.checkServerIdentity.

Mapping of the abstract settings (their meaning is the nginx directive's):
- every route: `target` is the object form {protocol 'https:', host, port}
  (the README's way to give a client certificate) and `changeOrigin: true`
  (Host: the target host, as nginx's default proxy_set_header Host
  $proxy_host). The target host is the name (verify_name, else sni_name,
  else the upstream host); the runner resolves the test names to 127.0.0.1.
- client_certificate -> target.cert + target.key; client_key_password ->
  target.passphrase (setupOutgoing copies pfx, key, passphrase, cert, ca,
  ciphers, secureProtocol from the target).
- trusted_ca -> `ca`; verify -> `secure` (http-proxy: rejectUnauthorized =
  secure, default true -- Node verifies by default, nginx does not).
- ciphers / ciphersuites -> target.ciphers (Node takes TLS 1.3 suites and
  the TLS <= 1.2 list in one string).
- read_timeout -> `proxyTimeout` (the outgoing request's socket timeout);
  connect_timeout -> `proxyTimeout` too when no read_timeout is given: Node
  has no connect timeout of its own, and proxyTimeout's socket timer runs
  from the connect on, so it bounds the connect and the TLS handshake.
- upstream_group -> round robin over the servers in the runner.
What http-proxy has no option for needs an explicit `agent` (an
https.Agent; http-proxy's default is `agent: false`, a fresh connection
per request and no session cache). The rendered route says why
(agent_why) and the runner logs which agent each route uses:
- sni_name other than the checked name, send_sni off -> Agent `servername`
  (empty: no SNI); verify_name other than the SNI name -> Agent
  checkServerIdentity on that name (node-http-proxy#1133: no servername
  option).
- protocols -> Agent minVersion/maxVersion (a contiguous range).
- crl -> Agent `crl` (setupOutgoing does not copy it from the target).
- session_reuse on -> a shared Agent (its TLS session cache,
  maxCachedSessions default 100); off -> no agent (nothing is resumed), or
  maxCachedSessions 0 on an Agent made for another setting; left out ->
  whatever the agent in use does (none: no resumption; an Agent: its cache).
- keepalive N > 0 -> Agent keepAlive with maxFreeSockets N.
- verify_depth -> no option (Node sets no depth: OpenSSL's default, 100):
  expressible only where it cannot bind (haproxy.depth_can_bind).
"""

import json
import os
import subprocess

from .. import ROOT
from .base import Target, TargetStartError, find_executable, unit_files
from .haproxy import protocol_range
from .limits import fixed_limit_reasons
from .nginx import is_ip

RUNNER_DIR = os.path.join(ROOT, "harness", "node-http-proxy")
RUNNER = os.path.join(RUNNER_DIR, "runner.js")
DOC = "http-proxy 1.18.1 README / lib/http-proxy/common.js"


class NodeHttpProxyTarget(Target):
    name = "node-http-proxy"
    capabilities = {k: True for k in (
        "client_certificate", "client_key_password", "trusted_ca", "verify", "verify_depth",
        "verify_name", "send_sni", "sni_name", "protocols", "ciphers", "ciphersuites",
        "session_reuse", "crl", "keepalive", "connect_timeout", "read_timeout",
        "upstream_group", "tls10", "shared_upstream", "ip_upstream")}
    log_alert_markers = ("Error: Cannot find module", "FATAL ERROR", "Uncaught", "node:internal",
                         "ERROR: AddressSanitizer")

    def find_binary(self):
        self.binary = find_executable(self.target_bin, "node",
                                      "install Node.js (make deps TARGET=node-http-proxy) or "
                                      "set TARGET_BIN=/path/to/node", ["/usr/bin"])
        if not os.path.isfile(os.path.join(RUNNER_DIR, "node_modules", "http-proxy",
                                           "package.json")):
            raise TargetStartError(f"http-proxy is not installed in {RUNNER_DIR}/node_modules: "
                                   "run make deps TARGET=node-http-proxy (npm ci)")
        return self.binary

    def version_info(self):
        script = ("console.log(JSON.stringify({node: process.version, openssl: "
                  "process.versions.openssl, proxy: require('http-proxy/package.json').version}))")
        r = subprocess.run([self.binary, "-e", script], capture_output=True, text=True,
                           timeout=20, cwd=RUNNER_DIR, stdin=subprocess.DEVNULL)
        try:
            v = json.loads(r.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise TargetStartError(f"{self.binary} could not load http-proxy from {RUNNER_DIR}: "
                                   f"{(r.stderr or r.stdout).strip()[-300:]}") from None
        lib = f"OpenSSL {v['openssl']} (Node {v['node']})"
        return {"name": self.name, "version": v["proxy"], "binary": self.binary,
                "openssl": f"OpenSSL {v['openssl']}", "tls_library": lib,
                "detail": f"http-proxy {v['proxy']} ({RUNNER}) on node {v['node']}; {lib}"}

    def documented_default_protocols(self):
        # Node docs, tls.createSecureContext: minVersion default
        # tls.DEFAULT_MIN_VERSION ('TLSv1.2'), maxVersion tls.DEFAULT_MAX_VERSION ('TLSv1.3').
        return (["TLSv1.2", "TLSv1.3"], "Node.js tls.DEFAULT_MIN_VERSION 'TLSv1.2', "
                "tls.DEFAULT_MAX_VERSION 'TLSv1.3' (tls.createSecureContext minVersion/maxVersion)")

    def argv(self, conf_path):
        return [self.binary, RUNNER, conf_path]

    def unsupported(self, scenario):
        why = super().unsupported(scenario)
        if why:
            return why
        reasons = fixed_limit_reasons(
            self, scenario, "neither http-proxy nor Node's tls has a verify depth option "
            "(tls.connect options; OpenSSL's default limit 100 applies)",
            "Node's minVersion/maxVersion (tls.createSecureContext)")
        return "; ".join(dict.fromkeys(reasons)) or None

    def config_excerpt(self, conf, units):
        try:
            routes = json.loads(conf)["routes"]
        except (ValueError, KeyError):
            return ""
        prefixes = {u.prefix for u in units}
        return json.dumps([r for r in routes if r["prefix"] in prefixes], indent=1)

    # -- rendering ------------------------------------------------------------------
    def render(self, units, run_dir, port):
        hosts, routes = {}, []
        for u in units:
            route = self.route(u, run_dir)
            for t in route["targets"]:
                if not is_ip(t["host"]):
                    hosts[t["host"]] = "127.0.0.1"
            routes.append(route)
        return json.dumps({"listen": {"host": "127.0.0.1", "port": port}, "hosts": hosts,
                           "routes": routes}, indent=1) + "\n"

    def route(self, u, run_dir):
        s = u.settings
        check = s.get("verify_name", s.get("sni_name"))
        host = check if check is not None else (None if u.direct else u.upstream_block)
        targets = []
        for addr in u.servers:
            ip, p = addr.rsplit(":", 1)
            targets.append({"host": host or ip, "port": int(p)})
        o = {"changeOrigin": True}
        files = unit_files(u, run_dir)
        for name, key in (("client_chain", "certFile"), ("client_key", "keyFile"),
                          ("client_key_password_file", "passphraseFile"),
                          ("trusted_ca_bundle", "caFile")):
            if name in files:
                o[key] = files[name]
        if "verify" in s:
            o["secure"] = bool(s["verify"])
        if "ciphers" in s:
            o["ciphers"] = s["ciphers"]
        if "ciphersuites" in s:
            o["ciphersuites"] = s["ciphersuites"]
        timeout = s.get("read_timeout", s.get("connect_timeout"))
        if timeout is not None:
            o["proxyTimeout"] = int(timeout * 1000)
        agent, why = {}, []
        sni = s.get("sni_name")
        if s.get("send_sni") is False:
            agent["servername"] = ""
            why.append("send_sni off: Agent servername '' (http-proxy has no SNI option)")
        elif sni is not None and sni != host:
            agent["servername"] = sni
            why.append("sni_name: Agent servername (http-proxy has no servername option, "
                       "node-http-proxy#1133)")
        if "verify_name" in s and sni is not None and s["verify_name"] != sni:
            agent["verifyName"] = s["verify_name"]
            why.append("verify_name apart from the SNI name: Agent checkServerIdentity")
        if "protocols" in s:
            lo, hi = protocol_range(s["protocols"])
            agent["minVersion"], agent["maxVersion"] = lo, hi
            why.append("protocols: Agent minVersion/maxVersion")
        if "crl" in s:
            agent["crlFile"] = files["crl_bundle"]
            why.append("crl: Agent crl")
        if s.get("session_reuse"):
            agent["maxCachedSessions"] = 100
            why.append("session_reuse on: a shared Agent keeps the TLS session cache")
        elif agent and "session_reuse" in s:
            # An Agent caches sessions by default (maxCachedSessions 100).
            agent["maxCachedSessions"] = 0
        if s.get("keepalive"):
            agent["keepAlive"] = True
            agent["maxFreeSockets"] = s["keepalive"]
            why.append("keepalive: Agent keepAlive, maxFreeSockets")
        return {"prefix": u.prefix, "label": f"{u.key} {u.location}", "targets": targets,
                "options": o, "agent": agent or None, "agent_why": "; ".join(why) or None}
