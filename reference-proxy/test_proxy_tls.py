"""uptls-proxy: the upstream TLS directives (proxy_ssl_verify, _verify_depth,
_server_name/_name, _certificate, _protocols/_ciphers/_conf_command,
_session_reuse, _crl) and the verification memo.

Run: /usr/bin/python3 -m pytest reference-proxy (all of uptls-proxy's tests;
the shared upstreams, proxy and fixtures are proxy_testlib.py and conftest.py).
"""

import json
import ssl
import time

from proxy_testlib import SAN, tls_loc
from testpki import Pki, openssl, utc


def test_verify_off_accepts_untrusted_and_warns(proxy, backends, pki):
    b = backends(pki, cert="server-untrusted")
    p = proxy(f"server {{ LISTEN location / {{ proxy_pass https://127.0.0.1:{b.port}; }} }}")
    assert p.get("/")[0] == 200
    assert "[warn]" in p.error_log() and '"proxy_ssl_verify" is off' in p.error_log()


def test_verify_on_refuses_untrusted(proxy, backends, pki):
    b = backends(pki, cert="server-untrusted")
    p = proxy(f"server {{ LISTEN {tls_loc(pki, b, 'proxy_ssl_verify on;')} }}")
    status, _ = p.get("/")
    assert status == 502 and b.requests == []
    log = p.error_log()
    assert "upstream SSL certificate verify error" in log
    assert f'upstream: "https://127.0.0.1:{b.port}/"' in log and 'request: "GET / HTTP/1.1"' in log


def test_verify_on_trusted_and_name(proxy, backends, pki):
    good = backends(pki)
    wrong = backends(pki, cert="server-wrong")
    ipsan = backends(pki, cert="server-ip")
    p = proxy("server { LISTEN "
              + tls_loc(pki, ipsan, "proxy_ssl_verify on;", "/ipsan", host="127.0.0.1")
              + tls_loc(pki, good, "proxy_ssl_verify on;", "/good")
              + tls_loc(pki, wrong, "proxy_ssl_verify on;", "/wrong")
              + tls_loc(pki, wrong, "proxy_ssl_verify on; proxy_ssl_name other.test;", "/named")
              + tls_loc(pki, good, "proxy_ssl_verify on;", "/ip", host="127.0.0.1") + " }")
    assert p.get("/good")[0] == 200
    assert p.get("/wrong")[0] == 502 and wrong.requests == []
    assert p.get("/named")[0] == 200
    # an IP literal is matched against iPAddress SANs only (RFC 2818 3.1;
    # nginx matches no IP SANs at all, nginx #1363)
    assert p.get("/ip")[0] == 502
    assert p.get("/ipsan")[0] == 200


def test_verify_depth(proxy, backends, pki):
    b = backends(pki, cert="server-int")
    p = proxy("server { LISTEN "
              + tls_loc(pki, b, "proxy_ssl_verify on; proxy_ssl_verify_depth 0;", "/d0")
              + tls_loc(pki, b, "proxy_ssl_verify on;", "/d1") + " }")
    assert p.get("/d0")[0] == 502         # one intermediate needs depth 1
    assert p.get("/d1")[0] == 200         # nginx's default depth 1


def test_sni(proxy, backends, pki):
    b = backends(pki)
    p = proxy("server { LISTEN "
              + tls_loc(pki, b, "", "/off")
              + tls_loc(pki, b, "proxy_ssl_server_name on;", "/on")
              + tls_loc(pki, b, "proxy_ssl_server_name on; proxy_ssl_name backend.test;", "/name")
              + tls_loc(pki, b, "proxy_ssl_server_name on;", "/ip", host="127.0.0.1") + " }")
    assert json.loads(p.get("/off")[1])["sni"] is None
    assert json.loads(p.get("/on")[1])["sni"] == "localhost"
    assert json.loads(p.get("/name")[1])["sni"] == "backend.test"
    assert json.loads(p.get("/ip")[1])["sni"] is None


def test_client_certificate(proxy, backends, pki):
    b = backends(pki, client_ca="client-root")
    p = proxy("server { LISTEN "
              + tls_loc(pki, b, f"proxy_ssl_certificate {pki}/client.pem; "
                        f"proxy_ssl_certificate_key {pki}/client-enc.key; "
                        f"proxy_ssl_password_file {pki}/passwords;", "/cert")
              + tls_loc(pki, b, "", "/nocert") + " }")
    status, data = p.get("/cert")
    assert status == 200 and json.loads(data)["client_cert"] == "client"
    assert p.get("/nocert")[0] == 502


def test_protocols_ciphers_conf_command(proxy, backends, pki):
    b = backends(pki)
    p = proxy("server { LISTEN "
              + tls_loc(pki, b, "proxy_ssl_protocols TLSv1.2; "
                        "proxy_ssl_ciphers ECDHE-ECDSA-CHACHA20-POLY1305;", "/v12")
              + tls_loc(pki, b, "proxy_ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256;",
                        "/v13") + " }")
    req = json.loads(p.get("/v12")[1])
    assert req["version"] == "TLSv1.2" and req["cipher"] == "ECDHE-ECDSA-CHACHA20-POLY1305"
    req = json.loads(p.get("/v13")[1])
    assert req["version"] == "TLSv1.3" and req["cipher"] == "TLS_AES_128_GCM_SHA256"


def test_session_reuse(proxy, backends, pki):
    b = backends(pki)
    b12 = backends(pki, max_version=ssl.TLSVersion.TLSv1_2)
    p = proxy("server { LISTEN "
              + tls_loc(pki, b, "proxy_ssl_verify on;", "/on")
              + tls_loc(pki, b12, "proxy_ssl_verify on;", "/on12")
              + tls_loc(pki, b, "proxy_ssl_session_reuse off;", "/off") + " }")
    for path, backend in (("/on", b), ("/on12", b12)):
        first = json.loads(p.get(path)[1])
        second = json.loads(p.get(path)[1])
        assert first["resumed"] is False and second["resumed"] is True, path
    # another location with different TLS settings never resumes /on's session
    third = json.loads(p.get("/off")[1])
    fourth = json.loads(p.get("/off")[1])
    assert third["resumed"] is False and fourth["resumed"] is False


def test_verification_memo_is_keyed_by_the_chain(proxy, backends, pki):
    """A chain that passed is not verified again (proxy_verify.c), but any
    other chain on the same server and location is: a memo never answers for
    bytes it did not verify."""
    b = backends(pki)
    p = proxy("server { LISTEN " + tls_loc(pki, b, "proxy_ssl_verify on; "
                                           "proxy_ssl_session_reuse off;") + " }")
    assert [p.get("/")[0] for _ in range(3)] == [200, 200, 200]
    for cert in ("server-untrusted", "server-wrong", "server"):
        b.ctx.load_cert_chain(pki / f"{cert}.chain.pem", pki / f"{cert}.key")
        assert p.get("/")[0] == (200 if cert == "server" else 502), cert
    # every request was a full handshake with a certificate to verify
    assert [h["ok"] for h in b.handshakes] == [True, True, True, False, False, True]
    assert not any(h.get("resumed") for h in b.handshakes)
    log = p.error_log()
    assert "unable to get local issuer certificate" in log and "hostname mismatch" in log


def test_verification_memo_ends_with_the_chain(proxy, backends, pki):
    """A remembered pass lasts no longer than the chain's earliest notAfter."""
    until = time.time() + 3
    Pki(pki).leaf_until("server-brief", "root", until, san=SAN)
    b = backends(pki, cert="server-brief")
    p = proxy("server { LISTEN " + tls_loc(pki, b, "proxy_ssl_verify on; "
                                           "proxy_ssl_session_reuse off;") + " }")
    assert p.get("/")[0] == 200
    time.sleep(max(0.0, until - time.time()) + 1.5)
    assert p.get("/")[0] == 502
    assert "certificate has expired" in p.error_log()


def test_verification_memo_ends_with_a_newer_crl(proxy, backends, pki):
    """A CRL file holding a current empty CRL and a newer one, valid from 3 s
    on, that revokes the upstream's certificate: once the newer one is valid
    OpenSSL uses it, and a remembered pass must not outlive that."""
    ca = Pki(pki).ca_command("crls", "root")
    start = time.time() + 3
    openssl(*ca, "-gencrl", "-crl_lastupdate", utc(time.time() - 3600),
            "-crl_nextupdate", utc(time.time() + 3600), "-out", "crl-old.pem", cwd=pki)
    openssl(*ca, "-revoke", "server.pem", cwd=pki)
    openssl(*ca, "-gencrl", "-crl_lastupdate", utc(start),
            "-crl_nextupdate", utc(time.time() + 3600), "-out", "crl-new.pem", cwd=pki)
    (pki / "crls.pem").write_text((pki / "crl-old.pem").read_text()
                                  + (pki / "crl-new.pem").read_text())
    b = backends(pki)
    p = proxy("server { LISTEN " + tls_loc(pki, b, f"proxy_ssl_verify on; proxy_ssl_crl "
                                           f"{pki}/crls.pem; proxy_ssl_session_reuse off;") + " }")
    assert p.get("/")[0] == 200
    time.sleep(max(0.0, start - time.time()) + 1.5)
    assert p.get("/")[0] == 502
    assert "certificate revoked" in p.error_log()
