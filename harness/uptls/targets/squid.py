"""Squid 5.7 as a reverse proxy: `http_port ... accel` + one TLS `cache_peer
... originserver` per unit, steered by path (`cache_peer_access`).

Two Debian builds of one source, two targets:
- `squid` (Debian's default package): built `--with-gnutls`;
- `squid-openssl`: built `--with-openssl`; it conflicts with `squid` as a
  package, so it is unpacked into the project (tests/install-deps.sh) and
  found there, on PATH as squid-openssl, or at TARGET_BIN.
The adapter reads the flavour from `squid -v` (configure options) and the
TLS library from the library the binary links (tlslib.py).

Sources of every mapping: the cache_peer documentation of Squid 5.7
(src/cf.data.pre, shipped as squid.conf.documented, "SSL / HTTPS / TLS
OPTIONS" of cache_peer; quoted as [cache_peer]) and its source
(src/security/PeerOptions.cc, src/security/BlindPeerConnector.cc,
src/ssl/support.cc, src/cache_cf.cc).

- client_certificate -> tls-cert= (the chain) + tls-key=.
- client_key_password -> the global `sslpassword_program` ("Specify a
  program used for entering SSL key passphrases when using encrypted SSL
  certificate keys ... the program is given the key file name as argument",
  OpenSSL builds only); the adapter renders a script that prints the key's
  password file.
- trusted_ca -> tls-cafile= (repeatable) + tls-default-ca=off: Squid also
  trusts the system CAs by default for peers ([cache_peer] tls-default-ca:
  "Default is ON"); nginx trusts only the configured file.
- verify true -> nothing to write: Squid verifies a peer by default
  ([cache_peer] sslflags DONT_VERIFY_PEER "Accept certificates even if they
  fail to verify"); false -> tls-flags=DONT_VERIFY_PEER.
- verify_name / sni_name -> tls-domain= ([cache_peer] ssldomain: "The peer
  name as advertised in it's certificate. Used for verifying the
  correctness of the received peer certificate. If not specified the peer
  hostname will be used."), one knob for both (BlindPeerConnector.cc: the
  same sslDomain is the SNI): different names are unsupported.
- send_sni: Squid sends the peer's domain as SNI unless it is an IP
  (support.cc Ssl::setClientSNI); no option turns it off, so send_sni=false
  with a host name is unsupported.
- verify_depth -> no option: OpenSSL's default (100) applies; expressible
  only where it cannot bind (as for HAProxy).
- protocols -> tls-options=NO_TLSv1_x for every version outside the set
  (what tls-min-version=1.N does, plus the upper bound Squid has no option
  for; OpenSSL build). The
  GnuTLS build takes a priority string in tls-options ([cache_peer]
  tls-options: "GnuTLS options ... See the GnuTLS Priority Strings"):
  NORMAL:-VERS-ALL:+VERS-TLS1.x...
- ciphers -> tls-cipher= (OpenSSL syntax; the GnuTLS build ignores it).
- ciphersuites -> unsupported: no TLS 1.3 cipher option in Squid 5.7.
- session_reuse true -> nothing to write (one session kept per peer,
  BlindPeerConnector.cc); false -> unsupported: no option turns it off for
  peers.
- crl -> tls-crlfile= + tls-flags=VERIFY_CRL_ALL (nginx checks every level;
  Squid's default is the leaf only).
- keepalive 0 / absent -> `server_persistent_connections off` (global);
  N > 0 unsupported: the directive is global, not per cache_peer, and one
  configuration serves the whole run.
- connect_timeout -> connect-timeout=N on the cache_peer (it also bounds the
  TLS negotiation: FwdState passes the connect timeout to the
  PeerConnector); read_timeout -> the global `read_timeout`, set to the
  largest any unit asks (10 s without one): a looser bound than asked can
  only make a timeout scenario fail, never pass.
- upstream_group -> one cache_peer per server, all allowed for the unit's
  path, `round-robin`.

Each cache_peer names the unit's upstream host, resolved through a private
`hosts_file` (all names -> 127.0.0.1), so "the peer hostname" of the docs
is the same host nginx's proxy_pass names.
"""

import os
import re
import signal
import subprocess

from .base import Target, TargetStartError, find_executable, which
from .haproxy import checks_default_protocols, depth_can_bind, protocol_range
from .limits import one_name_for_both, sni_always_on
from .tlslib import tls_library

DOC = "Squid 5.7 squid.conf.documented (cf.data.pre) cache_peer"
ORDER = ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"]
GNUTLS_VERS = {"TLSv1": "+VERS-TLS1.0", "TLSv1.1": "+VERS-TLS1.1", "TLSv1.2": "+VERS-TLS1.2",
               "TLSv1.3": "+VERS-TLS1.3"}
# The GnuTLS build cannot read a response over a connection on which the
# server sent a session ticket (TLS 1.3 NewSessionTicket, or a TLS 1.2 ticket
# the client asked for): gnutls_record_recv() returns GNUTLS_E_AGAIN after
# consuming the ticket, Squid's tls_read_method passes that negative code on
# with errno 0, and Comm::ReadNow takes it for a read error: the client gets
# 502 ERR_READ_ERROR "read failure: (0) No error" (src/security/Session.cc
# tls_read_method, src/comm/Read.cc Comm::ReadNow; seen with OpenSSL's
# s_server and uptls-backend). The only configuration that works is TLS <= 1.2
# without the session-ticket extension, as an operator would have to write:
# every peer of the GnuTLS build gets it (a scenario that needs TLS 1.3 is
# unsupported, naming this).
GNUTLS_WORKAROUND = "%NO_TICKETS"
GNUTLS_TLS13 = ("TLS 1.3: Debian's GnuTLS Squid 5.7 cannot read a response over TLS 1.3 when "
                "the server sends a session ticket (gnutls_record_recv's GNUTLS_E_AGAIN is "
                "taken for a read error: src/security/Session.cc tls_read_method, "
                "src/comm/Read.cc Comm::ReadNow; client 502 ERR_READ_ERROR), so the adapter "
                "writes tls-options=NORMAL:-VERS-TLS1.3:%NO_TICKETS for every peer")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
# Where tests/install-deps.sh unpacks squid-openssl (it conflicts with squid).
LOCAL_SQUID_OPENSSL = [os.path.join(ROOT, d, "usr", "sbin", "squid")
                       for d in ("build/deps/squid-openssl",)]


class SquidTarget(Target):
    name = "squid"
    flavour = "gnutls"
    capabilities = {
        **{k: True for k in (
            "client_certificate", "trusted_ca", "verify", "verify_depth", "verify_name",
            "send_sni", "sni_name", "protocols", "ciphers", "session_reuse", "crl",
            "keepalive", "upstream_group", "tls10", "shared_upstream", "ip_upstream",
            "connect_timeout", "read_timeout")},
        "client_key_password": f"sslpassword_program exists only in OpenSSL builds ({DOC}: "
                               "TAG sslpassword_program, 'Note: This option is only "
                               "available if Squid was compiled with --with-openssl')",
        "ciphersuites": f"Squid 5.7 has no TLS 1.3 cipher suite option ({DOC}: tls-cipher= "
                        "sets the TLS <= 1.2 list only; PeerOptions.cc has no "
                        "SSL_CTX_set_ciphersuites)",
    }
    log_alert_markers = ("FATAL:", "assertion failed", "ERROR: AddressSanitizer")
    # SIGTERM with shutdown_lifetime 0 stops at once (squid -k shutdown).
    stop_signals = ((signal.SIGTERM, 5.0), (signal.SIGKILL, 3.0))

    def find_binary(self):
        self.binary = find_executable(self.target_bin, "squid",
                                      "install it (make deps) or set TARGET_BIN=/path/to/squid")
        self._check_flavour()
        return self.binary

    def _configure_text(self):
        r = subprocess.run([self.binary, "-v"], capture_output=True, text=True, timeout=10)
        return (r.stdout + r.stderr).strip()

    def _check_flavour(self):
        text = self._configure_text()
        has = "openssl" if "--with-openssl" in text else "gnutls" if "--with-gnutls" in text \
            else None
        if has != self.flavour:
            raise TargetStartError(
                f"{self.binary} is a Squid built {'--with-' + has if has else 'without TLS'}, "
                f"not --with-{self.flavour}: use TARGET="
                f"{'squid-openssl' if has == 'openssl' else 'squid'} for it, or TARGET_BIN")

    def version_info(self):
        text = self._configure_text()
        m = re.search(r"Version (\S+)", text)
        lib = tls_library(self.binary)
        return {"name": self.name, "version": m.group(1) if m else "?", "binary": self.binary,
                "openssl": lib if lib.startswith("OpenSSL") else None,
                "tls_library": lib, "detail": text.splitlines()[0] if text else ""}

    def documented_default_protocols(self):
        return None, None

    def argv(self, conf_path):
        return [self.binary, "-N", "-d", "1", "-f", conf_path]

    def check_config(self, conf_path):
        r = subprocess.run([self.binary, "-k", "parse", "-f", conf_path], capture_output=True,
                           text=True, timeout=30, stdin=subprocess.DEVNULL)
        bad = [ln for ln in (r.stdout + r.stderr).splitlines()
               if re.search(r"FATAL|ERROR|WARNING: cache_peer option|Bungled", ln)]
        if r.returncode != 0 or bad:
            return "\n".join(bad) or (r.stderr + r.stdout).strip()
        return None

    # -- what can be expressed --------------------------------------------------------
    def unsupported(self, scenario):
        why = super().unsupported(scenario)
        if why:
            return why
        reasons = []
        if checks_default_protocols(scenario):
            reasons.append(f"default protocols: {DOC} documents tls-min-version "
                           "'1.0 (default)' but no upper bound; the offered set is the TLS "
                           "library's")
        if depth_can_bind(scenario, getattr(self, "pki", None)):
            reasons.append(f"verify_depth: Squid 5.7 has no verify depth option ({DOC}: "
                           "no such option), so OpenSSL's default limit applies: a depth "
                           "lower than the backend's chain cannot be expressed")
        for loc in scenario.locations:
            s = loc.settings
            if self.flavour == "gnutls" and "TLSv1.3" in s.get("protocols", ["TLSv1.3"]) \
                    and "protocols" in s:
                reasons.append(GNUTLS_TLS13)
            if "protocols" in s and protocol_range(s["protocols"]) is None:
                reasons.append(f"protocols {s['protocols']}: tls-min-version and "
                               "tls-options express a contiguous range only")
            reasons.append(one_name_for_both(s, "tls-domain= is both the name checked and "
                                                "the SNI (BlindPeerConnector.cc)"))
            reasons.append(sni_always_on(loc, "Squid sends the peer domain as SNI whenever it "
                                              "is a host name (support.cc Ssl::setClientSNI); "
                                              "no option turns it off"))
            if s.get("session_reuse") is False:
                reasons.append(f"session_reuse=false: no cache_peer option turns TLS session "
                               f"resumption off ({DOC}: tls-options=NO_TICKET removes tickets "
                               "only; BlindPeerConnector.cc always offers peer->sslSession)")
            if s.get("keepalive"):
                reasons.append("keepalive > 0: server_persistent_connections is global in "
                               f"Squid ({DOC.replace('cache_peer', 'TAG server_persistent_connections')}), "
                               "not per cache_peer, and one configuration serves the whole run "
                               "with it off (nginx's default)")
        return "; ".join(dict.fromkeys(r for r in reasons if r)) or None

    def config_excerpt(self, conf, units):
        return "\n".join(ln for ln in conf.splitlines()
                         if any(f"{u.slug}_{self._loc(u)}" in ln for u in units))

    # -- rendering ------------------------------------------------------------------
    @staticmethod
    def _loc(u):
        return re.sub(r"[^A-Za-z0-9]", "_", u.location)

    def tls_options(self, u, run_dir):
        s, pki = u.settings, u.pki
        o = ["tls"]
        if "client_certificate" in s:
            o.append(f"tls-cert={pki.path(s['client_certificate'], 'chain.pem')}")
            o.append(f"tls-key={pki.path(s['client_certificate'], 'key')}")
        if "trusted_ca" in s:
            o.append(f"tls-cafile={pki.bundle(run_dir, s['trusted_ca'], 'pem')}")
            o.append("tls-default-ca=off")
        flags = []
        if s.get("verify") is False:
            flags.append("DONT_VERIFY_PEER")
        name = s.get("verify_name", s.get("sni_name"))
        if name is not None:
            o.append(f"tls-domain={name}")
        if "protocols" in s:
            o += self.protocol_options(s["protocols"])
        elif self.flavour == "gnutls":
            o.append("tls-options=NORMAL:-VERS-TLS1.3:" + GNUTLS_WORKAROUND)
        if "ciphers" in s:
            o.append(f"tls-cipher={s['ciphers']}")
        if "crl" in s:
            o.append(f"tls-crlfile={pki.bundle(run_dir, s['crl'], 'crl')}")
            if self.flavour == "openssl":
                # The GnuTLS build knows DONT_VERIFY_PEER and DONT_VERIFY_DOMAIN
                # only (its squid.conf.documented; VERIFY_CRL_ALL is "FATAL:
                # Unknown TLS flag"): the CRL file alone is what it can be told.
                flags.append("VERIFY_CRL_ALL")
        if flags:
            o.append("tls-flags=" + ",".join(flags))
        if "connect_timeout" in s:
            o.append(f"connect-timeout={s['connect_timeout']}")
        return o

    def protocol_options(self, protocols):
        lo, hi = protocol_range(protocols)
        if self.flavour == "gnutls":
            vers = ORDER[ORDER.index(lo):ORDER.index(hi) + 1]
            return ["tls-options=NORMAL:-VERS-ALL:" + ":".join(GNUTLS_VERS[v] for v in vers)
                    + ":" + GNUTLS_WORKAROUND]
        # tls-min-version=1.N alone makes Squid 5.7 log "ERROR: Unknown TLS
        # option" (it appends ":NO_TLSv1..." to an empty option list,
        # PeerOptions.cc updateTlsVersionLimits): the same SSL_OP_NO_* are
        # written as tls-options directly.
        outside = [v for v in ORDER if v not in ORDER[ORDER.index(lo):ORDER.index(hi) + 1]]
        return ["tls-options=" + ",".join("NO_" + v.replace(".", "_") for v in outside)] \
            if outside else []

    def password_program(self, units, run_dir):
        """sslpassword_program: prints the password file that goes with a key."""
        keys = {}
        for u in units:
            ent = u.settings.get("client_certificate")
            if ent and u.settings.get("client_key_password"):
                keys[u.pki.path(ent, "key")] = u.pki.path(ent, "pass")
        if not keys:
            return None
        path = os.path.join(run_dir, "sslpassword.sh")
        lines = ["#!/bin/sh", 'case "$1" in']
        lines += [f"  '{k}') exec head -n1 '{p}' ;;" for k, p in sorted(keys.items())]
        lines += ["esac", "exit 1", ""]
        with open(path, "w") as f:
            f.write("\n".join(lines))
        os.chmod(path, 0o700)
        return path

    def render(self, units, run_dir, port):
        hosts = {}
        read_timeouts = [u.settings["read_timeout"] for u in units if "read_timeout" in u.settings]
        out = ["# rendered by uptls for target " + self.name,
               f"http_port 127.0.0.1:{port} accel defaultsite=uptls.invalid no-vhost",
               "workers 1",
               f"pid_filename {os.path.join(run_dir, 'target.pid')}",
               f"cache_log {os.path.join(run_dir, 'error.log')}",
               f"access_log stdio:{os.path.join(run_dir, 'access.log')}",
               "cache_store_log none",
               "netdb_filename none",
               f"coredump_dir {run_dir}",
               "pinger_enable off",
               "shutdown_lifetime 0 seconds",
               f"hosts_file {os.path.join(run_dir, 'hosts')}",
               "dns_nameservers 127.0.0.1",
               "icp_port 0", "htcp_port 0", "snmp_port 0",
               "cache deny all",
               "cache_mem 8 MB",
               "http_access allow all",      # the listener is 127.0.0.1 only
               "never_direct allow all",
               "server_persistent_connections off",
               "connect_timeout 5 seconds",
               "peer_connect_timeout 5 seconds",
               f"read_timeout {max(read_timeouts, default=10)} seconds",
               "forward_max_tries 1",
               "retry_on_error off",
               "via off", "forwarded_for transparent",
               "debug_options ALL,1 83,2"]
        if os.geteuid() == 0:
            out.append("cache_effective_user proxy")
        prog = self.password_program(units, run_dir)
        if prog:
            out.append(f"sslpassword_program {prog}")
        out.append("")
        for u in units:
            tag = f"{u.slug}_{self._loc(u)}"
            out.append(f"# {u.scenario_id} location {u.location} {u.prefix}")
            out.append(f"acl p_{tag} urlpath_regex ^{re.escape(u.prefix)}")
            for i, addr in enumerate(u.servers, 1):
                host, _, bport = addr.rpartition(":")
                peer_host = host if u.direct else u.upstream_block
                if not u.direct:
                    hosts[peer_host] = "127.0.0.1"
                opts = ["no-query", "no-digest", "no-netdb-exchange", "originserver",
                        f"name={tag}_{i}"]
                if len(u.servers) > 1:
                    opts.append("round-robin")
                out.append(f"cache_peer {peer_host} parent {bport} 0 " + " ".join(
                    opts + self.tls_options(u, run_dir)))
                out.append(f"cache_peer_access {tag}_{i} allow p_{tag}")
                out.append(f"cache_peer_access {tag}_{i} deny all")
            out.append("")
        with open(os.path.join(run_dir, "hosts"), "w") as f:
            f.write("127.0.0.1 localhost\n")
            f.write("".join(f"127.0.0.1 {h}\n" for h in sorted(hosts)))
        return "\n".join(out)

    def start(self, run_dir, units):
        # Squid drops to cache_effective_user when started as root: its logs
        # and pid file are written from the run folder.
        if os.geteuid() == 0:
            for d in (run_dir, os.path.dirname(run_dir)):
                try:
                    os.chmod(d, 0o777 if d == run_dir else 0o711)
                except OSError:
                    pass
        return super().start(run_dir, units)


class SquidOpensslTarget(SquidTarget):
    name = "squid-openssl"
    flavour = "openssl"
    capabilities = dict(SquidTarget.capabilities, client_key_password=True)

    def find_binary(self):
        if not self.target_bin:
            for p in LOCAL_SQUID_OPENSSL + [which("squid-openssl") or ""]:
                if p and os.path.isfile(p) and os.access(p, os.X_OK):
                    self.target_bin = p
                    break
        self.binary = find_executable(
            self.target_bin, "squid-openssl",
            "run 'make deps' (it unpacks Debian's squid-openssl into build/deps/squid-openssl) "
            "or set TARGET_BIN=/path/to/squid built --with-openssl")
        self._check_flavour()
        return self.binary
