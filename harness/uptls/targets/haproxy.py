"""HAProxy 2.6: the SSL keywords of a backend's `server` line.

Source of every mapping: HAProxy 2.6 doc/configuration.txt, section 5.2
("Server and default-server options"; /usr/share/doc/haproxy/
configuration.txt.gz on Debian), and src/ssl_sock.c. One `backend` per
unit (HAProxy keeps its session cache per server and per thread, so units
never share sessions; `nbthread 1` makes the counts exact); the frontend
picks it by path prefix (`use_backend ... if { path_beg /u/sNNN/LOC/ }`).

Mapping of the abstract settings (their meaning is the nginx directive's):

- client_certificate -> `crt FILE`: certificate chain and key in ONE PEM
  ("crt <cert>: ... a PEM file from which to load both a certificate and
  the associated private key"), made in the run folder with mode 0600.
- client_key_password -> unsupported: HAProxy 2.6 has no passphrase
  keyword for `crt`; an encrypted key makes it prompt on the terminal.
- trusted_ca -> `ca-file`; crl -> `crl-file`.
- verify -> `verify required|none`. HAProxy verifies by DEFAULT
  ("Unless ssl_server_verify appears in the global section, verify is set
  to required by default"), nginx does not: a scenario that leaves verify
  out gets nothing written and sees HAProxy's default; one that also gives
  no trusted_ca cannot run at all (HAProxy refuses a config that verifies
  without ca-file), so it is unsupported.
- verify_name / sni_name / send_sni -> `sni str(NAME)` or `verifyhost NAME`.
  `verify`: the names checked are "the name passed using the sni
  directive, or if not provided, the static host name passed using the
  verifyhost directive. When no name is found, the certificate's names are
  ignored." So with SNI on the SNI name is the checked name (as nginx's one
  proxy_ssl_name); with SNI off (HAProxy's default, like nginx's) the name
  goes to `verifyhost`. Without either HAProxy checks no name at all: a
  scenario that relies on the proxy_pass host being checked by default is
  a listed deviation.
- verify_depth -> no keyword: HAProxy never calls SSL_CTX_set_verify_depth
  for servers, so OpenSSL's default limit (100) applies. A scenario's depth
  is expressible only where it cannot bind: when no chain a backend of the
  scenario presents has more intermediates than the configured depth, the
  configured depth and 100 behave identically; otherwise the scenario is
  unsupported.
- protocols -> `ssl-min-ver`/`ssl-max-ver` (a set with a gap cannot be
  expressed: unsupported).
- ciphers -> `ciphers`; ciphersuites -> `ciphersuites`.
- session_reuse -> `ssl-reuse` / `no-ssl-reuse`.
- keepalive -> 0: `option http-server-close` + `http-reuse never` (one
  upstream connection per request; `http-reuse never` alone still keeps a
  per-client connection); N > 0: `http-reuse always` and `pool-max-conn N`
  (idle connections kept per server; with nbthread 1 and one server per
  backend, nginx's `keepalive N` per worker). Every backend whose scenario
  does not ask for keepalive gets http-server-close, so each request is a
  new handshake, as the scenarios expect of nginx's default.

A refused handshake is retried (`retries`, default 3, left as is): one
refused request may show several failed handshakes, which the verdict
tolerates. `timeout connect` is 300 ms (TURN_AROUND_MS): the retry
turn-around is min(timeout connect, 1 s).
"""

import os
import re
import signal
import subprocess

from .base import Target, find_executable

# HAProxy retries a failed connection to the same server ("retries", default
# 3, left as is) after "a turn-around timer of min("timeout connect", one
# second)" (configuration.txt 4.2, retries): with "timeout connect 5s" each
# refused handshake cost the client three seconds. A backend of a scenario
# that sets no connect_timeout connects and completes its handshake on
# loopback in milliseconds, so its "timeout connect" is 300 ms: no outcome
# changes and each turn-around is 0.3 s. A scenario that sets connect_timeout
# gets exactly that (faults/stall-handshake-times-out keeps its 4 x 1 s).
TURN_AROUND_MS = 300
PROTO = {"TLSv1": "TLSv1.0", "TLSv1.1": "TLSv1.1", "TLSv1.2": "TLSv1.2", "TLSv1.3": "TLSv1.3"}
ORDER = ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"]
DOC = "HAProxy 2.6 configuration.txt 5.2"


def protocol_range(protocols):
    """(min, max) of an exact protocol set, or None when the set has a gap."""
    idx = sorted(ORDER.index(p) for p in set(protocols))
    if not idx or idx != list(range(idx[0], idx[-1] + 1)):
        return None
    return ORDER[idx[0]], ORDER[idx[-1]]


def intermediates(pki, entity):
    """CA certificates between an entity and its root (neither counted)."""
    n, seen = 0, set()
    e = pki.entity(entity)
    while e.get("issuer_name") and e["issuer_name"] != e.get("root") and \
            e["issuer_name"] not in seen:
        seen.add(e["issuer_name"])
        n += 1
        e = pki.entity(e["issuer_name"])
    return n


def depth_can_bind(scenario, pki):
    """True when some location's verify_depth is below the intermediates a
    backend of the scenario presents (then the limit changes the outcome)."""
    if pki is None:
        return True
    longest = max((intermediates(pki, b.certificate) for b in scenario.backends), default=0)
    return any("verify_depth" in loc.settings and loc.settings["verify_depth"] < longest
               for loc in scenario.locations)


def checks_default_protocols(scenario):
    return any(st.expect.get("offered_versions_default") or
               st.expect.get("offered_versions_default_wire") for st in scenario.steps)


class HaproxyTarget(Target):
    name = "haproxy"
    capabilities = {
        **{k: True for k in (
            "client_certificate", "trusted_ca", "verify", "verify_name", "send_sni",
            "sni_name", "protocols", "ciphers", "ciphersuites", "session_reuse", "crl",
            "keepalive", "upstream_group", "tls10", "shared_upstream", "ip_upstream",
            "connect_timeout", "read_timeout")},
        # verify_depth: see unsupported() -- expressible only where it cannot bind.
        "verify_depth": True,
        "client_key_password": f"HAProxy 2.6 has no passphrase keyword for 'crt' ({DOC}: "
                               "crt); an encrypted key makes it prompt on the terminal",
    }
    log_alert_markers = ("[ALERT]", "[EMERG]", "ERROR: AddressSanitizer", "runtime error:",
                         "LeakSanitizer")
    # SIGQUIT only dumps memory pools in HAProxy; SIGUSR1 is the soft stop
    # (management.txt, "Stopping and restarting HAProxy").
    stop_signals = ((signal.SIGUSR1, 3.0), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0))

    def find_binary(self):
        self.binary = find_executable(self.target_bin, "haproxy",
                                      "install it (make deps) or set TARGET_BIN=/path/to/haproxy")
        return self.binary

    def version_info(self):
        r = subprocess.run([self.binary, "-vv"], capture_output=True, text=True, timeout=10)
        text = (r.stdout + r.stderr).strip()
        m = re.search(r"HA-?Proxy version (\S+)", text)
        run = re.search(r"Running on OpenSSL version : (OpenSSL \S+)", text)
        built = re.search(r"Built with OpenSSL version : (OpenSSL \S+)", text)
        return {"name": self.name, "version": m.group(1) if m else "?", "binary": self.binary,
                "openssl": (run or built).group(1) if (run or built) else "?",
                "detail": "\n".join(text.splitlines()[:3])}

    def documented_default_protocols(self):
        # configuration.txt documents no default ssl-min-ver/ssl-max-ver for
        # servers (only ssl-default-bind-options for the listening side).
        return None, None

    def argv(self, conf_path):
        return [self.binary, "-db", "-f", conf_path]

    def check_config(self, conf_path):
        r = subprocess.run([self.binary, "-c", "-q", "-f", conf_path], capture_output=True,
                           text=True, timeout=30, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            return (r.stderr + r.stdout).strip()
        return None

    def unsupported(self, scenario):
        why = super().unsupported(scenario)
        if why:
            return why
        reasons = []
        if checks_default_protocols(scenario) and self.documented_default_protocols()[0] is None:
            reasons.append("default protocols: HAProxy 2.6 documents no default ssl-min-ver/"
                           f"ssl-max-ver for servers ({DOC}: ssl-min-ver; only the bind side "
                           "has a documented default)")
        if depth_can_bind(scenario, getattr(self, "pki", None)):
            reasons.append(
                "verify_depth: HAProxy 2.6 has no verify-depth keyword for servers (" + DOC +
                ": no such server keyword; TARGETS.md), so OpenSSL's default limit (100) "
                "applies: a depth lower than the backend's chain cannot be expressed")
        for loc in scenario.locations:
            s = loc.settings
            if "protocols" in s and protocol_range(s["protocols"]) is None:
                reasons.append(f"protocols {s['protocols']}: ssl-min-ver/ssl-max-ver express "
                               "a contiguous range only")
            names = {s[k] for k in ("verify_name", "sni_name") if k in s}
            if len(names) > 1 and s.get("send_sni"):
                reasons.append("verify_name != sni_name with SNI on: HAProxy checks the SNI "
                               f"name whenever one is sent ({DOC}: verify)")
            if "verify" not in s and "trusted_ca" not in s:
                reasons.append("verify left out without trusted_ca: HAProxy verifies by default "
                               f"and refuses a server without ca-file ({DOC}: verify; "
                               "ssl-server-verify)")
        return "; ".join(dict.fromkeys(reasons)) or None

    def config_excerpt(self, conf, units):
        return self.paragraphs_naming(conf, [f"backend {self.backend_name(u)}  #" for u in units])

    # -- rendering ------------------------------------------------------------------
    @staticmethod
    def backend_name(u):
        return f"b_{u.slug}_{re.sub(r'[^A-Za-z0-9_]', '_', u.location)}"

    def client_pem(self, u, run_dir):
        """Certificate chain + key in one file, as `crt` wants it (mode 0600)."""
        ent = u.settings["client_certificate"]
        out = os.path.join(run_dir, "pki", f"{ent}.crt+key.pem")
        if not os.path.exists(out):
            os.makedirs(os.path.dirname(out), exist_ok=True)
            data = b""
            for suffix in ("chain.pem", "key"):
                with open(u.pki.path(ent, suffix), "rb") as f:
                    chunk = f.read()
                data += chunk if chunk.endswith(b"\n") else chunk + b"\n"
            fd = os.open(out + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(out + ".tmp", out)
        return out

    def server_options(self, u, run_dir):
        s, pki = u.settings, u.pki
        o = ["ssl"]
        if "client_certificate" in s:
            o.append(f"crt {self.client_pem(u, run_dir)}")
        if "trusted_ca" in s:
            o.append(f"ca-file {pki.bundle(run_dir, s['trusted_ca'], 'pem')}")
        if "verify" in s:
            o.append("verify " + ("required" if s["verify"] else "none"))
        name = s.get("sni_name", s.get("verify_name"))
        if s.get("send_sni"):
            if name is None and not u.direct:
                name = u.upstream_block      # nginx: the proxy_pass host, never an IP
            if name is not None:
                o.append(f"sni str({name})")
        elif name is not None:
            o.append(f"verifyhost {s.get('verify_name', name)}")
        if "protocols" in s:
            lo, hi = protocol_range(s["protocols"])
            o.append(f"ssl-min-ver {PROTO[lo]} ssl-max-ver {PROTO[hi]}")
        if "ciphers" in s:
            o.append(f"ciphers {s['ciphers']}")
        if "ciphersuites" in s:
            o.append(f"ciphersuites {s['ciphersuites']}")
        if "session_reuse" in s:
            o.append("ssl-reuse" if s["session_reuse"] else "no-ssl-reuse")
        if "crl" in s:
            o.append(f"crl-file {pki.bundle(run_dir, s['crl'], 'crl')}")
        if s.get("keepalive"):
            o.append(f"pool-max-conn {s['keepalive']}")
        return o

    def render(self, units, run_dir, port):
        out = ["# rendered by uptls for target haproxy",
               "global",
               "    nbthread 1",
               "    log stdout format raw local0 info",
               "",
               "defaults",
               "    mode http",
               "    log global",
               "    option httplog",
               f"    timeout connect {TURN_AROUND_MS}ms",
               "    timeout client 10s",
               "    timeout server 10s",
               "",
               "frontend fe",
               f"    bind 127.0.0.1:{port}"]
        for u in units:
            out.append(f"    use_backend {self.backend_name(u)} if {{ path_beg {u.prefix} }}")
        out.append("")
        for u in units:
            out.append(f"backend {self.backend_name(u)}  # {u.scenario_id} location "
                       f"{u.location} {u.prefix}")
            if u.settings.get("keepalive"):
                out.append("    http-reuse always")
            else:
                out.append("    option http-server-close")
                out.append("    http-reuse never")
            # configuration.txt 4.2: "timeout connect" (the TCP connect and,
            # as measured, the TLS handshake to the server), "timeout server".
            if "connect_timeout" in u.settings:
                # Exactly the scenario's bound: "timeout connect" also
                # bounds the server-side TLS handshake (measured: a stalled
                # handshake under "timeout connect 300ms" gave up after 4 x
                # 0.3 s), so a lower value would change the verdict.
                out.append(f"    timeout connect {u.settings['connect_timeout']}s")
            if "read_timeout" in u.settings:
                out.append(f"    timeout server {u.settings['read_timeout']}s")
            for i, addr in enumerate(u.servers, 1):
                out.append(f"    server s{i} {addr} " + " ".join(self.server_options(u, run_dir)))
            out.append("")
        return "\n".join(out)
