"""stunnel 5.68 in client mode: a TCP tunnel that speaks TLS to the upstream.

One stunnel process per run, in the foreground (`foreground = yes`, no pid
file, log to the run folder); each unit is a service section with its own
`accept` port (a tunnel has no paths, like nginx-stream), `client = yes`
and one `connect` per upstream server. The client speaks HTTP through the
tunnel and the backend answers it; a refusal is a closed connection.
Option meanings: stunnel.8 (Debian: man 8 stunnel4; source
mtrojnar/stunnel@stunnel-5.68 src/options.c, src/verify.c, src/client.c).

Mapping of the abstract settings (their meaning is the nginx directive's):
- client_certificate -> `cert` (the chain file: "the whole certificate
  chain starting from the actual ... client certificate") + `key`.
- client_key_password -> unsupported: stunnel.8 has no passphrase option;
  an encrypted key makes it ask on the terminal (ui_get_pass).
- trusted_ca -> `CAfile`; crl -> `CRLfile`.
- verify -> `verifyChain = yes|no` (default no). stunnel checks no name
  unless told: "Certificates are accepted if no subject checks were
  specified" (stunnel.8 checkHost, checkIP); "for server certificate
  verification it is essential to also require a specific certificate with
  checkHost or checkIP" (verifyChain). So verify_name -> `checkHost`
  (`checkIP` for an IP literal), written only where verify is on; a
  scenario that relies on the upstream host being checked by default is a
  listed deviation.
- verify_depth -> no option (OpenSSL's default limit, 100, applies):
  expressible only where it cannot bind (as HAProxy, haproxy.depth_can_bind).
- send_sni / sni_name -> `sni = NAME`, `sni =` (empty: "disables sending the
  SNI extension"). Left out, stunnel sends the host of `connect` -- even an
  IP literal (src/client.c ssl_start: "c->opt->sni should always be
  initialized at this point, either explicitly with "sni" or implicitly
  with "protocolHost" or "connect""). The upstream's host name of a scenario cannot
  be written in `connect` (it must resolve; stunnel has no resolver
  option), so `connect` is 127.0.0.1:PORT and the adapter writes
  `sni = UPSTREAM_HOST`, the name stunnel would send for that host.
- protocols -> `sslVersionMin`/`sslVersionMax` (a contiguous range); TLS <
  1.2 also needs `securityLevel = 0`, written when the cipher string asks
  for @SECLEVEL=0 (stunnel raises the level to 2: src/ctx.c).
- ciphers -> `ciphers`; ciphersuites -> `ciphersuites`.
- session_reuse -> `sessionResume = yes|no` (default yes).
- keepalive N > 0 -> unsupported: one TLS connection per client connection
  (no upstream pool); 0 is what stunnel always does.
- connect_timeout -> `TIMEOUTconnect` ("time to wait to connect") and
  `TIMEOUTbusy` ("time to wait for expected data", which bounds the TLS
  handshake: src/client.c s_poll_wait in the handshake loop);
  read_timeout -> `TIMEOUTidle` ("time to keep an idle connection").
- upstream_group -> several `connect` lines with `failover = rr` (nginx's
  round robin; stunnel's default is prio).
"""

import os
import random
import re
import signal
import socket
import subprocess
import time

from .base import Target, TargetStartError, find_executable, free_port
from .haproxy import protocol_range
from .limits import fixed_limit_reasons
from .nginx import is_ip

DOC = "stunnel.8 (5.68)"
PROTO = {"TLSv1": "TLSv1", "TLSv1.1": "TLSv1.1", "TLSv1.2": "TLSv1.2", "TLSv1.3": "TLSv1.3"}


class StunnelTarget(Target):
    name = "stunnel"
    refusal_closes_connection = True
    capabilities = {
        **{k: True for k in (
            "client_certificate", "trusted_ca", "verify", "verify_depth", "verify_name",
            "send_sni", "sni_name", "protocols", "ciphers", "ciphersuites", "session_reuse",
            "crl", "keepalive", "upstream_group", "tls10", "shared_upstream", "ip_upstream",
            "connect_timeout", "read_timeout")},
        "client_key_password": f"stunnel has no passphrase option ({DOC} lists none for "
                               "'key'); an encrypted key makes it prompt on the terminal",
    }
    log_alert_markers = ("LOG0[", "LOG1[", "INTERNAL ERROR", "ERROR: AddressSanitizer",
                         "runtime error:", "LeakSanitizer")
    # SIGTERM/SIGINT/SIGQUIT terminate (stunnel.8 SIGNALS).
    stop_signals = ((signal.SIGTERM, 5.0), (signal.SIGKILL, 3.0))

    def find_binary(self):
        self.binary = find_executable(self.target_bin, "stunnel",
                                      "install it (make deps TARGET=stunnel: Debian's stunnel4) "
                                      "or set TARGET_BIN=/path/to/stunnel", ["/usr/bin"])
        return self.binary

    def version_info(self):
        r = subprocess.run([self.binary, "-version"], capture_output=True, text=True, timeout=10,
                           stdin=subprocess.DEVNULL)
        text = (r.stdout + r.stderr).strip()
        m = re.search(r"stunnel (\S+) on", text)
        run = re.search(r"Running\s+with (OpenSSL \S+)", text)
        built = re.search(r"Compiled with (OpenSSL \S+)", text)
        ssl = (run or built).group(1) if (run or built) else "?"
        lines = [ln for ln in text.splitlines() if re.match(r"(stunnel |Compiled|Running)", ln)]
        return {"name": self.name, "version": m.group(1) if m else "?", "binary": self.binary,
                "openssl": ssl, "tls_library": ssl, "detail": "\n".join(lines)}

    def documented_default_protocols(self):
        return (["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"],
                f"{DOC}: sslVersionMin default TLSv1, sslVersionMax default all (up to the "
                "highest version the linked OpenSSL supports)")

    def argv(self, conf_path):
        return [self.binary, conf_path]

    def unsupported(self, scenario):
        why = super().unsupported(scenario)
        if why:
            return why
        reasons = fixed_limit_reasons(
            self, scenario, f"stunnel has no verify-depth option ({DOC}: none; OpenSSL's "
            "default limit 100 applies)", f"sslVersionMin/sslVersionMax ({DOC})")
        for loc in scenario.locations:
            if loc.settings.get("keepalive"):
                reasons.append("keepalive: stunnel opens one TLS connection per client "
                               f"connection and keeps no upstream pool ({DOC}: no such option)")
        return "; ".join(dict.fromkeys(reasons)) or None

    def config_excerpt(self, conf, units):
        return self.paragraphs_naming(conf, [f"[{self.section(u)}]" for u in units])

    @staticmethod
    def section(u):
        return f"{u.slug}-{re.sub(r'[^A-Za-z0-9_-]', '_', u.location)}"

    def render(self, units, run_dir, port):
        out = ["; rendered by uptls for target stunnel",
               "foreground = yes", "pid =", f"output = {os.path.join(run_dir, 'error.log')}",
               "debug = info", ""]
        taken = {port}
        for u in units:
            u.port = p = listen_port(taken)
            taken.add(p)
            out += [f"; {u.scenario_id} location {u.location} {u.prefix}",
                    f"[{self.section(u)}]", "client = yes", f"accept = 127.0.0.1:{p}"]
            out += [f"connect = {addr}" for addr in u.servers]
            if len(u.servers) > 1:
                out.append("failover = rr")
            out += self.options(u, run_dir)
            out.append("")
        # Readiness: the harness waits for this listener (nothing behind it),
        # last, as stunnel binds the services in order; _wait_ready then
        # checks every unit's port too.
        out += ["[uptls-ready]", "client = yes", f"accept = 127.0.0.1:{port}",
                "connect = 127.0.0.1:9", ""]
        self.unit_ports = sorted(taken - {port})
        return "\n".join(out)

    def start(self, run_dir, units):
        # Hundreds of ports, each free when picked, bound a moment later: one
        # may have become some connection's source port meanwhile (stunnel
        # then exits: "Address already in use"). Start again on fresh ports.
        for attempt in range(3):
            try:
                return super().start(run_dir, units)
            except TargetStartError:
                if attempt == 2 or "Address already in use" not in self.log_text():
                    raise
                for log in ("target.stderr", "error.log"):
                    if os.path.exists(os.path.join(run_dir, log)):
                        os.replace(os.path.join(run_dir, log),
                                   os.path.join(run_dir, f"{log}.{attempt}"))
        raise AssertionError("unreachable")

    def _wait_ready(self, timeout=15.0):
        super()._wait_ready(timeout)
        # Every unit's port listening, seen in /proc/net/tcp: a test connect
        # would make stunnel open (and cache a session with) the backend.
        deadline = time.monotonic() + timeout
        want = set(getattr(self, "unit_ports", ()))
        while want - listening_ports():
            if time.monotonic() > deadline or not self.alive():
                self.stop()
                raise TargetStartError(f"stunnel did not listen on 127.0.0.1 ports "
                                       f"{sorted(want - listening_ports())[:5]}: {self.log_tail()}")
            time.sleep(0.02)

    def options(self, u, run_dir):
        s, pki = u.settings, u.pki
        o = []
        if "client_certificate" in s:
            o.append(f"cert = {pki.path(s['client_certificate'], 'chain.pem')}")
            o.append(f"key = {pki.path(s['client_certificate'], 'key')}")
        if "trusted_ca" in s:
            o.append(f"CAfile = {pki.bundle(run_dir, s['trusted_ca'], 'pem')}")
        if "verify" in s:
            o.append(f"verifyChain = {'yes' if s['verify'] else 'no'}")
        check = s.get("verify_name", s.get("sni_name"))
        if s.get("verify") and check is not None:
            o.append(f"checkIP = {check}" if is_ip(check) else f"checkHost = {check}")
        if s.get("send_sni") is False:
            o.append("sni =")
        else:
            # Left out, stunnel sends the connect host (the upstream host it
            # stands for; nothing for an IP, where stunnel sends the IP).
            sni = s.get("sni_name")
            if sni is None and s.get("send_sni"):
                sni = s.get("verify_name")
            if sni is None and not u.direct:
                sni = u.upstream_block
            if sni is not None:
                o.append(f"sni = {sni}")
        if "protocols" in s:
            lo, hi = protocol_range(s["protocols"])
            o += [f"sslVersionMin = {PROTO[lo]}", f"sslVersionMax = {PROTO[hi]}"]
        if "ciphers" in s:
            o.append(f"ciphers = {s['ciphers']}")
            if "@SECLEVEL=0" in s["ciphers"]:
                o.append("securityLevel = 0")
        if "ciphersuites" in s:
            o.append(f"ciphersuites = {s['ciphersuites']}")
        if "session_reuse" in s:
            o.append(f"sessionResume = {'yes' if s['session_reuse'] else 'no'}")
        if "crl" in s:
            o.append(f"CRLfile = {pki.bundle(run_dir, s['crl'], 'crl')}")
        if "connect_timeout" in s:
            o += [f"TIMEOUTconnect = {s['connect_timeout']}",
                  f"TIMEOUTbusy = {s['connect_timeout']}"]
        if "read_timeout" in s:
            o.append(f"TIMEOUTidle = {s['read_timeout']}")
        return o


def listen_port(taken):
    """A port to listen on, free now and outside the kernel's ephemeral range,
    so no outgoing connection takes it as its source port before stunnel
    binds it (there are hundreds per run); free_port() if none is found."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 0
    for _ in range(200 if low > 11000 else 0):
        p = random.randrange(10000, low)
        if p in taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p))
                return p
            except OSError:
                continue
    p = free_port()
    while p in taken:
        p = free_port()
    return p


def listening_ports():
    """The local TCP ports in LISTEN state (Linux /proc/net/tcp, tcp6)."""
    ports = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f, None)
                for line in f:
                    fields = line.split()
                    if len(fields) > 3 and fields[3] == "0A":
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except OSError:
            pass
    return ports
