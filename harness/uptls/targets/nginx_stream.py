"""nginx stream module: TLS to the upstream from a TCP proxy.

The same proxy_ssl_* directives as the http proxy module, in a `stream {}`
server (https://nginx.org/en/docs/stream/ngx_stream_proxy_module.html:
proxy_ssl, proxy_ssl_certificate, proxy_ssl_certificate_key,
proxy_ssl_password_file, proxy_ssl_trusted_certificate, proxy_ssl_verify,
proxy_ssl_verify_depth, proxy_ssl_name -- default "host from proxy_pass" --,
proxy_ssl_server_name, proxy_ssl_protocols, proxy_ssl_ciphers,
proxy_ssl_conf_command, proxy_ssl_session_reuse, proxy_ssl_crl), with
`proxy_ssl on` required to turn TLS on at all. The lines are rendered by
the http adapter (NginxTarget.ssl_directives), so both read the abstract
settings the same way.

A stream server has no paths: each unit gets its own `listen` port and its
own `upstream` block (nginx keeps one cached session per upstream peer).
The client speaks HTTP through the TCP tunnel and the backend answers it.

What differs from the http module:
- keepalive: the stream proxy opens one upstream connection per client
  connection and has no upstream `keepalive` (ngx_stream_upstream_module
  has no such directive): keepalive N > 0 is unsupported; 0 (no idle
  connection kept) is what the stream proxy always does.
- a refusal cannot be an HTTP 5xx: the stream proxy closes the client
  connection (refusal_closes_connection; the verdict counts a closed
  connection without an answer as the refusal).
- the module is dynamic in Debian (libnginx-mod-stream): `load_module`
  from the binary's --modules-path, unless the binary has stream built in.
"""

import os
import re

from .base import TargetStartError, free_port
from .nginx import NginxTarget, q  # noqa: F401  (q: the same quoting)

DEFAULT_MODULES = "/usr/lib/nginx/modules"


class NginxStreamTarget(NginxTarget):
    name = "nginx-stream"
    capabilities = dict(NginxTarget.capabilities)
    refusal_closes_connection = True
    routing = "port"   # each unit on its own listen port (render sets unit.port)

    def find_binary(self):
        super().find_binary()
        self.module_path = self._stream_module()
        return self.binary

    def _stream_module(self):
        """Path of ngx_stream_module.so to load, or None when stream is built in."""
        detail = self.version_info()["detail"]
        args = detail.split()
        if "--with-stream" in args:
            return None
        m = re.search(r"--modules-path=(\S+)", detail)
        dirs = [m.group(1)] if m else []
        if self.target_bin:
            # A build tree: objs/nginx next to objs/ngx_stream_module.so.
            dirs.insert(0, os.path.dirname(os.path.abspath(self.target_bin)))
            p = re.search(r"--prefix=(\S+)", detail)
            if p:
                dirs.append(os.path.join(p.group(1), "modules"))
        dirs.append(DEFAULT_MODULES)
        for d in dirs:
            path = os.path.join(d, "ngx_stream_module.so")
            if os.path.isfile(path):
                return path
        raise TargetStartError(
            f"{self.binary} has no built-in stream module and ngx_stream_module.so is not in "
            f"{', '.join(dict.fromkeys(dirs))}: install libnginx-mod-stream (make deps) or "
            "build nginx --with-stream")

    def unsupported(self, scenario):
        why = super().unsupported(scenario)
        if why:
            return why
        for loc in scenario.locations:
            if loc.settings.get("keepalive"):
                return ("keepalive: the stream proxy opens one upstream connection per client "
                        "connection and has no upstream keepalive "
                        "(ngx_stream_upstream_module.html lists no keepalive directive)")
        return None

    def render(self, units, run_dir, port):
        out = ["# rendered by uptls for target " + self.name]
        if self.module_path:
            out.append(f"load_module {self.module_path};")
        out += [*self.main_preamble(), "worker_processes 1;",
                f"pid {os.path.join(run_dir, 'target.pid')};",
                f"error_log {os.path.join(run_dir, 'error.log')} info;",
                "events { worker_connections 4096; }", "stream {",
                "    proxy_connect_timeout 5s;", "    proxy_timeout 10s;", "",
                "    # readiness: the harness waits for this listener",
                f"    server {{ listen 127.0.0.1:{port}; return \"uptls\\n\"; }}", ""]
        upstreams = {}
        for u in units:
            if u.direct or u.upstream_block in upstreams:
                continue
            upstreams[u.upstream_block] = True
            out.append(f"    upstream {u.upstream_block} {{  # {u.scenario_id}")
            for addr in u.servers:
                out.append(f"        server {addr};")
            out.append("    }")
        taken = {port}
        for u in units:
            p = free_port()
            while p in taken:
                p = free_port()
            taken.add(p)
            u.port = p
            host = u.servers[0] if u.direct else u.upstream_block
            out += ["", f"    # {u.scenario_id} location {u.location} {u.prefix}",
                    "    server {", f"        listen 127.0.0.1:{p};",
                    f"        proxy_pass {host};", "        proxy_ssl on;"]
            if "connect_timeout" in u.settings:
                out.append(f"        proxy_connect_timeout {u.settings['connect_timeout']}s;")
            if "read_timeout" in u.settings:
                # ngx_stream_proxy_module.html#proxy_timeout: between two reads or writes.
                out.append(f"        proxy_timeout {u.settings['read_timeout']}s;")
            out += ["        " + d for d in self.ssl_directives(u, run_dir)]
            out.append("    }")
        out += ["}", ""]
        return "\n".join(out)

    def config_excerpt(self, conf, units):
        return self.paragraphs_naming(conf, [f" {u.prefix}" for u in units])
