"""nginx (http module): the proxy_ssl_* directives of ngx_http_proxy_module.

Every upstream-TLS setting a scenario specifies is written explicitly, even
where it equals nginx's default; a setting the scenario leaves out is left
out here too (that is how a scenario checks a default). Directive meanings:
https://nginx.org/en/docs/http/ngx_http_proxy_module.html (proxy_ssl_*),
https://nginx.org/en/docs/http/ngx_http_upstream_module.html (upstream,
keepalive). Each scenario location gets its own upstream block, because
nginx keeps one cached session per upstream peer, shared by every location
that proxies to that block (ngx_http_upstream_round_robin.c,
peer->ssl_session).
"""

import ipaddress
import os
import re
import subprocess

from .base import Target, find_executable

# Documented defaults of the versions we know, for scenarios that check a
# default (protocol/default-versions): nginx 1.22 offers TLSv1 TLSv1.1
# TLSv1.2 upstream; 1.23.4 added TLSv1.3 to the default
# (ngx_http_proxy_module.html#proxy_ssl_protocols, CHANGES 1.23.4).
DEFAULT_PROTOCOLS = (
    ((1, 23, 4), ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"], "nginx >= 1.23.4: "
     "proxy_ssl_protocols default 'TLSv1 TLSv1.1 TLSv1.2 TLSv1.3' (TLSv1.3 added in 1.23.4)"),
    ((0, 0, 0), ["TLSv1", "TLSv1.1", "TLSv1.2"], "nginx < 1.23.4: proxy_ssl_protocols "
     "default 'TLSv1 TLSv1.1 TLSv1.2' (ngx_http_proxy_merge_loc_conf)"),
)


def is_ip(host):
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


def q(value):
    """Quote a directive argument when it needs it (nginx syntax)."""
    if value == "" or re.search(r"[\s;{}\"'#$\\]", value):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return value


class NginxTarget(Target):
    name = "nginx"
    binary_name = "nginx"
    capabilities = {k: True for k in (
        "client_certificate", "client_key_password", "trusted_ca", "verify", "verify_depth",
        "verify_name", "send_sni", "sni_name", "protocols", "ciphers", "ciphersuites",
        "session_reuse", "crl", "keepalive", "connect_timeout", "read_timeout", "upstream_group", "tls10", "shared_upstream",
        "ip_upstream")}
    # The upstream host names of one process must be unique (one upstream
    # block per name): the runner splits a run where scenarios collide.
    unique_upstream_hosts = True

    def find_binary(self):
        self.binary = find_executable(self.target_bin, self.binary_name,
                                      "install it (make deps) or set TARGET_BIN=/path/to/nginx",
                                      ["/usr/local/nginx/sbin"])
        return self.binary

    def version_info(self):
        r = subprocess.run([self.binary, "-V"], capture_output=True, text=True, timeout=10)
        text = (r.stderr + r.stdout).strip()
        m = re.search(r"nginx/(\S+)", text)
        ssl = re.search(r"built with (OpenSSL \S+)", text)
        run = re.search(r"running with (OpenSSL \S+)", text)
        return {"name": self.name, "version": m.group(1) if m else "?",
                "binary": self.binary,
                "openssl": (run or ssl).group(1) if (run or ssl) else "?",
                "detail": text}

    def version_tuple(self):
        m = re.match(r"(\d+)\.(\d+)\.(\d+)", self.version_info()["version"])
        return tuple(int(x) for x in m.groups()) if m else (0, 0, 0)

    def documented_default_protocols(self):
        return self.documented_default_protocols_for(self.version_tuple())

    @staticmethod
    def documented_default_protocols_for(v):
        for since, protos, source in DEFAULT_PROTOCOLS:
            if v >= since:
                return protos, source
        return None, None

    def argv(self, conf_path):
        return [self.binary, "-p", self.run_dir, "-c", conf_path, "-g", "daemon off;"]

    def check_config(self, conf_path):
        r = subprocess.run([self.binary, "-t", "-p", self.run_dir, "-c", conf_path],
                           capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            return (r.stderr + r.stdout).strip()
        return None

    # -- rendering ------------------------------------------------------------------
    def unsupported(self, scenario):
        why = super().unsupported(scenario)
        if why:
            return why
        for loc in scenario.locations:
            s = loc.settings
            if "verify_name" in s and "sni_name" in s and s["verify_name"] != s["sni_name"]:
                return ("verify_name != sni_name: nginx has one proxy_ssl_name for both the "
                        "name checked and the name sent in SNI")
        return None

    def main_preamble(self):
        lines = []
        if os.geteuid() == 0:
            # Workers would switch to 'nobody' and could not read the 0600 keys.
            lines.append("user root;")
        return lines

    def http_preamble(self, run_dir):
        # Debian's nginx has absolute temp paths compiled in; keep them in the run.
        tmp = os.path.join(run_dir, "tmp")
        os.makedirs(tmp, exist_ok=True)
        return [f"{d}_temp_path {os.path.join(tmp, d)};"
                for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")]

    def render(self, units, run_dir, port):
        out = ["# rendered by uptls for target " + self.name, *self.main_preamble(),
               "worker_processes 1;", f"pid {os.path.join(run_dir, 'target.pid')};",
               f"error_log {os.path.join(run_dir, 'error.log')} info;",
               "events { worker_connections 4096; }", "http {", "    access_log off;"]
        out += ["    " + ln for ln in self.http_preamble(run_dir)]
        out += ["    proxy_connect_timeout 5s;", "    proxy_read_timeout 10s;",
                "    proxy_send_timeout 10s;", ""]
        upstreams = {}
        for u in units:
            if u.direct:
                continue
            if u.upstream_block in upstreams:
                continue
            upstreams[u.upstream_block] = True
            out.append(f"    upstream {u.upstream_block} {{  # {u.scenario_id}")
            for addr in u.servers:
                out.append(f"        server {addr};")
            if u.settings.get("keepalive"):
                out.append(f"        keepalive {u.settings['keepalive']};")
            out.append("    }")
        out += ["", "    server {", f"        listen 127.0.0.1:{port};",
                "        location / { return 404; }"]
        for u in units:
            out.append("")
            out.append(f"        # {u.scenario_id} location {u.location}")
            out.append(f"        location {u.prefix} {{")
            out += ["            " + d for d in self.location_directives(u, run_dir)]
            out.append("        }")
        out += ["    }", "}", ""]
        return "\n".join(out)

    def location_directives(self, u, run_dir):
        s = u.settings
        host = u.servers[0] if u.direct else u.upstream_block
        d = [f"proxy_pass https://{host};"] + self.ssl_directives(u, run_dir)
        if "connect_timeout" in s:
            # Bounds the TCP connect and the upstream TLS handshake
            # (ngx_http_upstream_ssl_init_connection arms connect_timeout).
            d.append(f"proxy_connect_timeout {s['connect_timeout']}s;")
        if "read_timeout" in s:
            d.append(f"proxy_read_timeout {s['read_timeout']}s;")
        if s.get("keepalive"):
            # Upstream keepalive needs HTTP/1.1 and no "Connection: close"
            # (ngx_http_upstream_module.html#keepalive).
            d.append("proxy_http_version 1.1;")
            d.append('proxy_set_header Connection "";')
        return d

    def ssl_directives(self, u, run_dir):
        """The proxy_ssl_* lines of a unit: the same directives in the http
        proxy module and the stream proxy module (nginx_stream.py)."""
        s, pki = u.settings, u.pki
        d = []
        if "client_certificate" in s:
            d.append(f"proxy_ssl_certificate {q(pki.path(s['client_certificate'], 'chain.pem'))};")
            d.append(f"proxy_ssl_certificate_key {q(pki.path(s['client_certificate'], 'key'))};")
            if s.get("client_key_password"):
                d.append(f"proxy_ssl_password_file {q(pki.path(s['client_certificate'], 'pass'))};")
        if "trusted_ca" in s:
            d.append(f"proxy_ssl_trusted_certificate {q(pki.bundle(run_dir, s['trusted_ca'], 'pem'))};")
        if "verify" in s:
            d.append(f"proxy_ssl_verify {'on' if s['verify'] else 'off'};")
        if "verify_depth" in s:
            d.append(f"proxy_ssl_verify_depth {s['verify_depth']};")
        name = s.get("verify_name", s.get("sni_name"))
        if name is not None:
            d.append(f"proxy_ssl_name {q(name)};")
        if "send_sni" in s:
            d.append(f"proxy_ssl_server_name {'on' if s['send_sni'] else 'off'};")
        if "protocols" in s:
            d.append("proxy_ssl_protocols " + " ".join(s["protocols"]) + ";")
        if "ciphers" in s:
            d.append(f"proxy_ssl_ciphers {q(s['ciphers'])};")
        if "ciphersuites" in s:
            d.append(f"proxy_ssl_conf_command Ciphersuites {q(s['ciphersuites'])};")
        if "session_reuse" in s:
            d.append(f"proxy_ssl_session_reuse {'on' if s['session_reuse'] else 'off'};")
        if "crl" in s:
            d.append(f"proxy_ssl_crl {q(pki.bundle(run_dir, s['crl'], 'crl'))};")
        return d
