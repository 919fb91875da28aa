"""uptls-proxy: its command line, `-t`, and configuration errors (file, line,
directive).

Run: /usr/bin/python3 -m pytest reference-proxy (all of uptls-proxy's tests;
the shared upstreams, proxy and fixtures are proxy_testlib.py and conftest.py).
"""

import http.client
import os
import shutil
import signal
import subprocess

import pytest

from proxy_testlib import BIN, run_t
from uptls import proc
from uptls.proc import free_port


def test_version():
    r = subprocess.run([str(BIN), "-v"], capture_output=True, text=True)
    assert r.returncode == 0
    assert r.stdout.startswith("uptls-proxy version ")
    assert "nginx proxy_ssl_* semantics" in r.stdout and "OpenSSL 3" in r.stdout


def test_t_good_config(tmp_path):
    r = run_t(tmp_path, "events {}\nhttp { server { listen 127.0.0.1:1; "
                        "location / { return 200 ok; } } }\n")
    assert r.returncode == 0, r.stderr
    assert f"uptls-proxy: the configuration file {tmp_path}/nginx.conf syntax is ok" in r.stderr
    assert "test is successful" in r.stderr


SEED_EXAMPLE = """events {}
http {
    upstream backend.example.com {
        server 127.0.0.1:B1;
        server 127.0.0.1:B2;
   }

    server {
        listen      127.0.0.1:LP;
        server_name www.example.com;

        location /upstream {
            proxy_pass                    https://backend.example.com;
            proxy_ssl_certificate         PKI/client.pem;
            proxy_ssl_certificate_key     PKI/client.key
            proxy_ssl_protocols           TLSv1 TLSv1.1 TLSv1.2;
            proxy_ssl_ciphers             HIGH:!aNULL:!MD5;
            proxy_ssl_trusted_certificate PKI/root.pem;

            proxy_ssl_verify        on;
            proxy_ssl_verify_depth  2;
            proxy_ssl_session_reuse on;
        }
    }
}
"""


def test_seed_article_example(tmp_path, pki, backends):
    """The 'Complete Example' of NGINX's 'Securing HTTP Traffic to Upstream
    Servers' article (proxy half; the backend half is nginx as the upstream):
    its missing ';' is reported with the line; once fixed it runs."""
    b1 = backends(pki, cert="server-int", client_ca="client-root")
    b2 = backends(pki, cert="server", client_ca="client-root")
    port = free_port()
    text = (SEED_EXAMPLE.replace("PKI", str(pki)).replace("B1", str(b1.port))
            .replace("B2", str(b2.port)).replace("LP", str(port)))
    r = run_t(tmp_path, text)
    assert r.returncode == 1
    line = text.splitlines().index("            proxy_ssl_protocols           "
                                   "TLSv1 TLSv1.1 TLSv1.2;") + 1
    assert (f'uptls-proxy: [emerg] invalid number of arguments in "proxy_ssl_certificate_key" '
            f'directive in {tmp_path}/nginx.conf:{line}') in r.stderr
    fixed = text.replace("client.key\n", "client.key;\n")
    assert run_t(tmp_path, fixed).returncode == 0
    conf = tmp_path / "seed.conf"
    conf.write_text(fixed.replace("events {}", f"error_log {tmp_path}/seed.log info;\nevents {{}}"))
    p = proc.start([str(BIN), "-p", str(tmp_path), "-c", str(conf)])
    try:
        p.wait_port(port, timeout=10)
        for i in range(4):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("GET", f"/upstream/{i}")
            r2 = c.getresponse()
            assert r2.status == 200, r2.read()
            r2.read()
    finally:
        p.stop(signals=((signal.SIGTERM, 10.0), (signal.SIGKILL, 3.0)))
    seen = b1.handshakes + b2.handshakes
    assert len(b1.requests) == 2 and len(b2.requests) == 2        # round robin
    assert all(h["ok"] and h["client_cert"] == "client" for h in seen)
    assert all(h["version"] == "TLSv1.2" for h in seen)            # the listed protocols
    assert all(h["sni"] is None for h in seen)                     # SNI is off by default


@pytest.mark.parametrize("text, message", [
    ("events{}\nhttp { server { location / { proxy_ssl_verfiy_depth 2; } } }\n",
     'unknown directive "proxy_ssl_verfiy_depth" in {conf}:2'),
    ("events{}\nhttp { server { } } }\n", 'unexpected "}}" in {conf}:2'),
    ("events{}\nhttp { server { location / { proxy_ssl_verify on",
     'unexpected end of file, expecting ";" or "}}" in {conf}:2'),
    ("events{}\nhttp { server { location / {\n} }\n",
     'unexpected end of file, expecting "}}" in {conf}:4'),
    ("events{}\nhttp { server { location / { proxy_ssl_verify on {} } } }\n",
     'directive "proxy_ssl_verify" is not terminated by ";" in {conf}:2'),
    ("events{}\nhttp { server { location / { proxy_ssl_verify maybe; } } }\n",
     'invalid value "maybe" in "proxy_ssl_verify" directive, it must be "on" or "off" in {conf}:2'),
    ("events{}\nhttp { server { location / { proxy_pass https://127.0.0.1:1;\n"
     "proxy_ssl_verify on; } } }\n",
     'no "proxy_ssl_trusted_certificate" for "proxy_ssl_verify"'),
    ("events{}\nhttp { proxy_buffering off; }\n", 'unknown directive "proxy_buffering" in {conf}:2'),
    ("events{}\nhttp { server { location / { proxy_pass https://no-such-host.invalid; } } }\n",
     'host not found in upstream "no-such-host.invalid:443"'),
    ("events{}\nhttp { proxy_ssl_protocols TLSv1.2 TLSv9; }\n",
     'invalid value "TLSv9" in "proxy_ssl_protocols" directive'),
    ("events{}\nhttp { server { location / { proxy_pass http://127.0.0.1:1; "
     "proxy_pass http://127.0.0.1:2; } } }\n", '"proxy_pass" directive is duplicate'),
    ("events{}\nhttp { server { listen 127.0.0.1:1; } }\nworker_connections 5;\n",
     '"worker_connections" directive is not allowed here in {conf}:3'),
])
def test_t_errors(tmp_path, text, message):
    r = run_t(tmp_path, text)
    assert r.returncode == 1
    assert "uptls-proxy: [emerg] " + message.format(conf=tmp_path / "nginx.conf") in r.stderr, r.stderr
    assert "test failed" in r.stderr


def test_t_collects_every_error(tmp_path):
    r = run_t(tmp_path, "events{}\nhttp {\n foo 1;\n server { listen 127.0.0.1:1;\n"
                        " location / { bar 2; proxy_ssl_verify_depth x; } } }\n")
    assert r.returncode == 1
    assert 'unknown directive "foo"' in r.stderr and 'unknown directive "bar"' in r.stderr
    assert '"proxy_ssl_verify_depth" directive invalid number' in r.stderr


def test_encrypted_key_needs_password_file(tmp_path, pki):
    loc = (f"location / {{ proxy_pass https://127.0.0.1:1; proxy_ssl_certificate "
           f"{pki}/client.pem; proxy_ssl_certificate_key {pki}/client-enc.key; ")
    text = "events{}\nhttp { server { listen 127.0.0.1:1; %s } } }\n"
    r = run_t(tmp_path, text % (loc,))
    assert r.returncode == 1 and "cannot load certificate key" in r.stderr
    assert "never prompts" in r.stderr
    r = run_t(tmp_path, text % (loc + f"proxy_ssl_password_file {pki}/passwords;",))
    assert r.returncode == 0, r.stderr
    assert "s3cret" not in r.stderr


def test_relative_paths_and_include(tmp_path, pki):
    shutil.copy(pki / "root.pem", tmp_path / "ca.pem")
    (tmp_path / "loc.conf").write_text("proxy_ssl_trusted_certificate ca.pem;\n"
                                       "proxy_ssl_verify on;\n")
    r = run_t(tmp_path, "events{}\nhttp { server { listen 127.0.0.1:1; location / {\n"
                        "proxy_pass https://127.0.0.1:1; include loc.conf; } } }\n")
    assert r.returncode == 0, r.stderr


def test_unknown_fault_is_an_error(tmp_path):
    r = run_t(tmp_path, "events{}\n", "--fault", "no-such-fault")
    assert r.returncode == 1 and 'unknown fault "no-such-fault"' in r.stderr
    env = {**os.environ, "UPTLS_PROXY_FAULTS": "skip-verify,bogus"}
    r = subprocess.run([str(BIN), "-t", "-c", str(tmp_path / "nginx.conf")], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 1 and 'unknown fault "bogus"' in r.stderr
