"""uptls-backend with nginx (when installed) as the TLS client.

Run: /usr/bin/python3 -m pytest harness/backend/test_backend*.py (make backend-test);
UPTLS_BACKEND_BIN tests another build (e.g. the sanitizer build). The
shared client helpers are backend_testlib.py, the fixtures conftest.py.
"""

import os
import signal
import socket

import pytest
from backend_testlib import NGINX, parse_response, read_all
from uptls import proc
from uptls.proc import free_port


@pytest.mark.skipif(not os.access(NGINX, os.X_OK), reason="nginx not installed")
def test_nginx_upstream_session_reuse(pki, backends, tmp_path):
    b = backends(pki)
    port = free_port()
    (tmp_path / "logs").mkdir()
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"""
user root;
worker_processes 1;
error_log {tmp_path}/logs/error.log info;
pid {tmp_path}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp_path}/body;
    proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fcgi;
    uwsgi_temp_path {tmp_path}/uwsgi;
    scgi_temp_path {tmp_path}/scgi;
    upstream be {{ server 127.0.0.1:{b.port}; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass https://be;
            proxy_ssl_server_name on;
            proxy_ssl_name backend.test;
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate {pki}/root.pem;
            proxy_ssl_verify_depth 2;
            proxy_ssl_certificate {pki}/cli.pem;
            proxy_ssl_certificate_key {pki}/cli.key;
            proxy_ssl_session_reuse on;
        }}
    }}
}}
""")
    ngx = proc.start([NGINX, "-p", str(tmp_path), "-c", str(conf), "-g", "daemon off;"],
                     log=tmp_path / "nginx.stderr")
    try:
        ngx.wait_port(port, timeout=5)
        bodies = []
        for _ in range(2):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(b"GET /via-nginx HTTP/1.1\r\nHost: front\r\nConnection: close\r\n\r\n")
                bodies.append(parse_response(read_all(s)))
        assert [x[0] for x in bodies] == [200, 200], bodies
        b.wait_for("close", count=2)
        hs = b.events("handshake")
        assert [h["resumed"] for h in hs] == [False, True]
        assert all(h["sni"] == "backend.test" for h in hs)
        assert hs[0]["version"] == "TLSv1.2"  # nginx 1.22 offers no TLS 1.3 upstream
        # nginx sends its client certificate only when asked: not here
        assert hs[0]["client_cert"] is None
        ch = b.events("client_hello")
        assert ch[1]["ticket_offered"] is True
        assert b.events("request")[0]["path"] == "/via-nginx"
    finally:
        ngx.stop(signals=((signal.SIGQUIT, 5.0), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)))
