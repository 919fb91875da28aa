"""uptls-proxy's fault switches (--fault): each changes exactly the behaviour
it names, so a scenario can fail against it.

Run: /usr/bin/python3 -m pytest reference-proxy (all of uptls-proxy's tests;
the shared upstreams, proxy and fixtures are proxy_testlib.py and conftest.py).
"""

import json

from proxy_testlib import tls_loc


def test_fault_ignore_client_cert(proxy, backends, pki):
    b = backends(pki, client_ca="client-root")
    loc = tls_loc(pki, b, f"proxy_ssl_certificate {pki}/client.pem; "
                          f"proxy_ssl_certificate_key {pki}/client.key;")
    assert proxy(f"server {{ LISTEN {loc} }}", faults=["ignore-client-cert"]).get("/")[0] == 502


def test_fault_skip_verify(proxy, backends, pki):
    b = backends(pki, cert="server-untrusted")
    p = proxy(f"server {{ LISTEN {tls_loc(pki, b, 'proxy_ssl_verify on;')} }}",
              faults=["skip-verify"])
    assert p.get("/")[0] == 200


def test_fault_ignore_depth(proxy, backends, pki):
    b = backends(pki, cert="server-int")
    p = proxy(f"server {{ LISTEN {tls_loc(pki, b, 'proxy_ssl_verify on; proxy_ssl_verify_depth 0;')} }}",
              faults=["ignore-depth"])
    assert p.get("/")[0] == 200


def test_fault_skip_host_check(proxy, backends, pki):
    b = backends(pki, cert="server-wrong")
    p = proxy(f"server {{ LISTEN {tls_loc(pki, b, 'proxy_ssl_verify on;')} }}",
              env={"UPTLS_PROXY_FAULTS": "skip-host-check"})
    assert p.get("/")[0] == 200


def test_fault_ignore_protocols(proxy, backends, pki):
    b = backends(pki)
    p = proxy(f"server {{ LISTEN {tls_loc(pki, b, 'proxy_ssl_protocols TLSv1.2;')} }}",
              faults=["ignore-protocols"])
    assert json.loads(p.get("/")[1])["version"] == "TLSv1.3"


def test_fault_ignore_ciphers(proxy, backends, pki):
    b = backends(pki)
    p = proxy(f"server {{ LISTEN {tls_loc(pki, b, 'proxy_ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256;')} }}",
              faults=["ignore-ciphers"])
    assert json.loads(p.get("/")[1])["cipher"] != "TLS_AES_128_GCM_SHA256"


def test_fault_share_sessions(proxy, backends, pki):
    b = backends(pki)
    body = ("server { LISTEN " + tls_loc(pki, b, "proxy_ssl_verify on;", "/a")
            + tls_loc(pki, b, "proxy_ssl_verify on; proxy_ssl_name backend.test;", "/b") + " }")
    p = proxy(body, faults=["share-sessions"])
    p.get("/a")
    assert json.loads(p.get("/b")[1])["resumed"] is True


def test_fault_no_session_reuse(proxy, backends, pki):
    b = backends(pki)
    p = proxy(f"server {{ LISTEN {tls_loc(pki, b)} }}", faults=["no-session-reuse"])
    p.get("/")
    assert json.loads(p.get("/")[1])["resumed"] is False


def test_fault_no_sni(proxy, backends, pki):
    b = backends(pki)
    p = proxy(f"server {{ LISTEN {tls_loc(pki, b, 'proxy_ssl_server_name on;')} }}",
              faults=["no-sni"])
    assert json.loads(p.get("/")[1])["sni"] is None
