"""Apache httpd 2.4: mod_proxy + mod_proxy_http + mod_ssl's SSLProxy* directives.

A private instance: its own config, ServerRoot, PidFile, ErrorLog and
DefaultRuntimeDir in the run folder (`apache2 -f FILE -d DIR -DFOREGROUND`),
modules loaded from the binary's libexec dir (Debian:
/usr/lib/apache2/modules); /etc/apache2 and the system service are never
touched. Sources: docs/manual/mod/mod_ssl.xml (SSLProxy* directives),
docs/manual/mod/mod_proxy.xml, modules/ssl/ssl_engine_kernel.c,
modules/ssl/ssl_engine_io.c, modules/proxy/proxy_util.c.

Each unit gets its own `<Proxy balancer://...>` section holding its
BalancerMember(s) and its SSLProxy* directives (SSLProxy* are allowed in a
proxy section since 2.4.30; a balancer's members take the section's
configuration), so no two units share a worker, a connection pool or an
SSL context. Members have retry=0 (a member in error is retried at once,
not after 60 s) and disablereuse=On unless the scenario asks for
keepalive (mod_proxy pools backend connections by default).

The name Apache checks and sends in SNI is one name: the URL host, or the
Host of the request with ProxyPreserveHost On (proxy_util.c
ap_proxy_determine_connection: "In the case of ProxyPreserveHost on use the
hostname of the request"; mod_ssl SSLProxyCheckPeerName: "the hostname
from the request URI"). There is no directive to set it apart from the
URL, and the URL host must resolve, so a unit whose name is a host name
(verify_name or sni_name, else the upstream host) is served in two hops
inside the one instance: /u/sNNN/LOC/ forwards over plain HTTP to
/i/sNNN/LOC/ on the same listener with `RequestHeader set Host NAME` and
ProxyPreserveHost On; /i/... proxies to the TLS balancer with
ProxyPreserveHost On, so the name checked and sent is NAME, written in the
configuration (not taken from the client). A unit whose name is an IP
literal (an IP upstream, no name configured) is one hop to
https://127.0.0.1:P: no SNI (mod_ssl sends none for an IP), and the name
check is against the IP.

Mapping of the abstract settings (meanings: the nginx directives'):
- client_certificate -> SSLProxyMachineCertificateFile (leaf + key in one
  file) + SSLProxyMachineCertificateChainFile (the intermediates). Apache
  sends it only when it chains to a CA the backend names in its
  CertificateRequest (mod_ssl.xml SSLProxyMachineCertificateFile).
- client_key_password -> unsupported: "currently there is no support for
  encrypted private keys" (mod_ssl.xml SSLProxyMachineCertificateFile).
- trusted_ca -> SSLProxyCACertificateFile; crl -> SSLProxyCARevocationFile
  + SSLProxyCARevocationCheck chain (nginx's proxy_ssl_crl checks every
  level).
- verify true -> SSLProxyVerify require + SSLProxyCheckPeerName on +
  SSLProxyCheckPeerExpire on; false -> none + off + off. SSLProxyCheckPeerCN
  off is written alongside: SSLProxyCheckPeerName supersedes it.
  Left out -> nothing written: Apache's default checks no chain but does
  check name and expiry.
- verify_depth k -> SSLProxyVerifyDepth k+1: Apache counts the root
  (ssl_engine_kernel.c ssl_callback_SSLVerify: errdepth > depth fails;
  mod_ssl.xml "1 means the remote server certificate has to be signed by a
  CA which is directly known"), OpenSSL/nginx do not.
- send_sni -> mod_ssl sends SNI whenever the name is a host name and never
  for an IP: send_sni=false with a host name is unsupported; sni_name
  different from verify_name is unsupported (apache/httpd PR #486).
- protocols -> SSLProxyProtocol -all +V...; ciphers -> SSLProxyCipherSuite;
  ciphersuites -> SSLProxyCipherSuite TLSv1.3 ...
- session_reuse true -> unsupported: mod_ssl keeps no client session cache
  for proxy connections (TARGETS.md; no SSLProxy* directive offers one);
  false -> nothing to write, never resumed.
- keepalive N > 0 -> connection reuse on (no disablereuse) with max=N per
  member; 0 or absent -> disablereuse=On.
"""

import os
import re
import signal
import subprocess

from .base import Target, find_executable
from .haproxy import checks_default_protocols
from .nginx import is_ip

DOCS = "mod_ssl.xml"
MODULES = ["mpm_event", "authz_core", "headers", "proxy", "proxy_http", "proxy_balancer",
           "slotmem_shm", "lbmethod_byrequests", "ssl", "socache_shmcb"]


def ap_quote(value):
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


class ApacheTarget(Target):
    name = "apache"
    capabilities = {
        **{k: True for k in (
            "client_certificate", "trusted_ca", "verify", "verify_depth", "verify_name",
            "send_sni", "sni_name", "protocols", "ciphers", "ciphersuites", "session_reuse",
            "crl", "keepalive", "upstream_group", "tls10", "shared_upstream", "ip_upstream",
            "connect_timeout", "read_timeout")},
        "client_key_password": f"Apache cannot use an encrypted proxy client key ({DOCS} "
                               "SSLProxyMachineCertificateFile: 'there is no support for "
                               "encrypted private keys'; the server stops at start)",
    }
    log_alert_markers = (":emerg]", ":alert]", "exit signal Segmentation", "exit signal Abort",
                         "ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer")
    # SIGTERM stops at once; SIGWINCH (graceful-stop) would wait for requests
    # (httpd docs/manual/stopping.xml).
    stop_signals = ((signal.SIGTERM, 5.0), (signal.SIGKILL, 3.0))

    def find_binary(self):
        self.binary = find_executable(self.target_bin, "apache2",
                                      "install it (make deps) or set TARGET_BIN=/path/to/httpd")
        return self.binary

    def version_info(self):
        r = subprocess.run([self.binary, "-v"], capture_output=True, text=True, timeout=10,
                           env=self._env())
        text = (r.stdout + r.stderr).strip()
        m = re.search(r"Apache/(\S+)", text)
        ssl = "?"
        mod = os.path.join(self.module_dir(), "mod_ssl.so")
        try:
            ldd = subprocess.run(["ldd", mod], capture_output=True, text=True, timeout=10).stdout
            lib = re.search(r"libssl\.so\.(\d+)", ldd)
            if lib:
                ov = subprocess.run(["openssl", "version"], capture_output=True, text=True,
                                    timeout=10).stdout.strip()
                ssl = " ".join(ov.split()[:2]) if ov.startswith("OpenSSL") else f"libssl.so.{lib.group(1)}"
        except (OSError, subprocess.SubprocessError):
            pass
        return {"name": self.name, "version": m.group(1) if m else "?", "binary": self.binary,
                "openssl": ssl, "detail": text}

    def module_dir(self):
        for d in (os.path.join(os.path.dirname(os.path.dirname(self.binary or "")), "lib",
                               "apache2", "modules"),
                  os.path.join(os.path.dirname(os.path.dirname(self.binary or "")), "modules"),
                  "/usr/lib/apache2/modules"):
            if os.path.isfile(os.path.join(d, "mod_ssl.so")):
                return d
        return "/usr/lib/apache2/modules"

    @staticmethod
    def _env():
        env = dict(os.environ)
        env.pop("APACHE_CONFDIR", None)
        return env

    def documented_default_protocols(self):
        return (["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"],
                "Apache 2.4 mod_ssl.xml SSLProxyProtocol: default 'all -SSLv3' (all = TLSv1 "
                "TLSv1.1 TLSv1.2 TLSv1.3 with OpenSSL 1.1.1+)")

    def argv(self, conf_path):
        return [self.binary, "-f", conf_path, "-d", self.run_dir, "-DFOREGROUND"]

    def check_config(self, conf_path):
        r = subprocess.run([self.binary, "-t", "-f", conf_path, "-d", os.path.dirname(conf_path)],
                           capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
                           env=self._env())
        if r.returncode != 0:
            return (r.stderr + r.stdout).strip()
        return None

    def _spawn(self):
        # apache2 reads no APACHE_* variables when given -f and -d, but keep
        # the environment free of a system instance's.
        os.environ.pop("APACHE_CONFDIR", None)
        super()._spawn()

    # -- what can be expressed --------------------------------------------------------
    @staticmethod
    def unit_name(settings, direct, upstream_block, servers):
        """The one name Apache checks and sends in SNI for a location."""
        name = settings.get("verify_name", settings.get("sni_name"))
        if name is None:
            name = servers[0].rsplit(":", 1)[0] if direct else upstream_block
        return name

    def unsupported(self, scenario):
        why = super().unsupported(scenario)
        if why:
            return why
        reasons = []
        for loc in scenario.locations:
            s = loc.settings
            if s.get("session_reuse"):
                reasons.append("session_reuse: mod_ssl keeps no client session cache for proxy "
                               "connections and no SSLProxy* directive turns one on: Apache never "
                               "resumes an upstream session (TARGETS.md; " + DOCS + ")")
            if "verify_name" in s and "sni_name" in s and s["verify_name"] != s["sni_name"]:
                reasons.append("sni_name != verify_name: Apache sends and checks one name, the "
                               "URL host or the preserved Host (apache/httpd PR #486)")
            name = s.get("verify_name", s.get("sni_name"))
            ip_upstream = loc.upstream_host and is_ip(loc.upstream_host)
            if s.get("send_sni") is False and not (name is None and ip_upstream):
                reasons.append("send_sni=false: mod_ssl always sends the host name it connects "
                               "for as SNI (ssl_engine_io.c: SNI unless the name is an IP "
                               "literal); it cannot be turned off")
        if checks_default_protocols(scenario) and self.documented_default_protocols()[0] is None:
            reasons.append("default protocols: not documented")
        return "; ".join(dict.fromkeys(reasons)) or None

    def config_excerpt(self, conf, units):
        return self.paragraphs_naming(conf, [f"balancer://{u.slug}-" for u in units])

    # -- rendering ------------------------------------------------------------------
    def client_files(self, u, run_dir):
        """Leaf + key (SSLProxyMachineCertificateFile) and the intermediates
        (SSLProxyMachineCertificateChainFile, None without any), mode 0600."""
        ent = u.settings["client_certificate"]
        d = os.path.join(run_dir, "pki")
        os.makedirs(d, exist_ok=True)
        with open(u.pki.path(ent, "chain.pem"), "rb") as f:
            pems = re.findall(rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\s*",
                              f.read(), re.S)
        with open(u.pki.path(ent, "key"), "rb") as f:
            key = f.read()
        leaf = os.path.join(d, f"{ent}.apache-cert+key.pem")
        chain = os.path.join(d, f"{ent}.apache-chain.pem") if len(pems) > 1 else None
        for path, data in ((leaf, pems[0].rstrip() + b"\n" + key),
                           (chain, b"".join(p.rstrip() + b"\n" for p in pems[1:]))):
            if path is None or os.path.exists(path):
                continue
            fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(path + ".tmp", path)
        return leaf, chain

    def ssl_directives(self, u, run_dir):
        s, pki = u.settings, u.pki
        d = ["SSLProxyEngine on"]
        if "client_certificate" in s:
            leaf, chain = self.client_files(u, run_dir)
            d.append(f"SSLProxyMachineCertificateFile {ap_quote(leaf)}")
            if chain:
                d.append(f"SSLProxyMachineCertificateChainFile {ap_quote(chain)}")
        if "trusted_ca" in s:
            d.append(f"SSLProxyCACertificateFile "
                     f"{ap_quote(pki.bundle(run_dir, s['trusted_ca'], 'pem'))}")
        if "verify" in s:
            on = s["verify"]
            d += [f"SSLProxyVerify {'require' if on else 'none'}",
                  f"SSLProxyCheckPeerName {'on' if on else 'off'}",
                  "SSLProxyCheckPeerCN off",
                  f"SSLProxyCheckPeerExpire {'on' if on else 'off'}"]
        if "verify_depth" in s:
            d.append(f"# nginx/OpenSSL depth {s['verify_depth']}: Apache counts the root")
            d.append(f"SSLProxyVerifyDepth {s['verify_depth'] + 1}")
        if "protocols" in s:
            d.append("SSLProxyProtocol -all " + " ".join("+" + p for p in s["protocols"]))
        if "ciphers" in s:
            d.append(f"SSLProxyCipherSuite {ap_quote(s['ciphers'])}")
        if "ciphersuites" in s:
            d.append(f"SSLProxyCipherSuite TLSv1.3 {ap_quote(s['ciphersuites'])}")
        if "crl" in s:
            d.append(f"SSLProxyCARevocationFile {ap_quote(pki.bundle(run_dir, s['crl'], 'crl'))}")
            d.append("SSLProxyCARevocationCheck chain")
        return d

    def render(self, units, run_dir, port):
        mods = self.module_dir()
        out = ["# rendered by uptls for target apache"]
        out += [f"LoadModule {m}_module {ap_quote(os.path.join(mods, f'mod_{m}.so'))}"
                for m in MODULES]
        out += [f"ServerRoot {ap_quote(run_dir)}",
                f"DefaultRuntimeDir {ap_quote(run_dir)}",
                f"PidFile {ap_quote(os.path.join(run_dir, 'target.pid'))}",
                f"ErrorLog {ap_quote(os.path.join(run_dir, 'error.log'))}",
                "LogLevel warn ssl:info proxy:info",
                "ServerName localhost",
                f"Listen 127.0.0.1:{port}"]
        if os.geteuid() == 0:
            out += ["User nobody", "Group nogroup"]
        out += ["StartServers 1", "ServerLimit 1", "ThreadsPerChild 64", "MaxRequestWorkers 64",
                "MinSpareThreads 1", "MaxSpareThreads 64",
                "Timeout 15", "ProxyTimeout 10", "KeepAlive On",
                "SSLSessionCache none",
                "<Location />", "    Require all granted", "</Location>", ""]
        for u in units:
            s = u.settings
            name = self.unit_name(s, u.direct, u.upstream_block, u.servers)
            balancer = f"balancer://{u.slug}-{re.sub(r'[^A-Za-z0-9]', '-', u.location)}"
            # mod_proxy.html#proxypass: connectiontimeout (connect), timeout
            # (waiting for data from the backend).
            member_opts = ["retry=0", f"connectiontimeout={s.get('connect_timeout', 5)}"]
            if "read_timeout" in s:
                member_opts.append(f"timeout={s['read_timeout']}")
            if s.get("keepalive"):
                member_opts.append(f"max={s['keepalive']}")
            else:
                member_opts.append("disablereuse=On")
            out.append(f"# {u.scenario_id} location {u.location}: name checked and sent: {name}")
            out.append(f"<Proxy {balancer}>")
            for addr in u.servers:
                out.append(f"    BalancerMember https://{addr} " + " ".join(member_opts))
            out += ["    " + ln for ln in self.ssl_directives(u, run_dir)]
            out.append("</Proxy>")
            inner = "/i" + u.prefix[2:]
            if is_ip(name):
                out += [f"<Location {u.prefix}>", f"    ProxyPass {balancer}/", "</Location>"]
            else:
                out += [f"<Location {u.prefix}>",
                        f"    RequestHeader set Host {ap_quote(name)}",
                        "    ProxyPreserveHost On",
                        f"    ProxyPass http://127.0.0.1:{port}{inner} retry=0 disablereuse=On",
                        "</Location>",
                        f"<Location {inner}>",
                        "    ProxyPreserveHost On",
                        f"    ProxyPass {balancer}/",
                        "</Location>"]
            out.append("")
        return "\n".join(out)

    def start(self, run_dir, units):
        for sub in ("logs",):
            os.makedirs(os.path.join(run_dir, sub), exist_ok=True)
        # Workers run as nobody when started as root: they need to reach the
        # run folder (nothing secret is read at request time).
        if os.geteuid() == 0:
            for d in (run_dir, os.path.dirname(run_dir)):
                try:
                    os.chmod(d, 0o711)
                except OSError:
                    pass
        return super().start(run_dir, units)
