"""uptls-backend's TLS configuration: session resumption (IDs, tickets, TLS
1.2 and 1.3), client certificates, versions and ciphers.

Run: /usr/bin/python3 -m pytest harness/backend/test_backend*.py (make backend-test);
UPTLS_BACKEND_BIN tests another build (e.g. the sanitizer build). The
shared client helpers are backend_testlib.py, the fixtures conftest.py.
"""

import os
import ssl

import pytest
from backend_testlib import cert_facts, client_ctx, get, parse_response


# ---- sessions ---------------------------------------------------------------

def resume_twice(b, ctx):
    _, f1 = get(b.port, ctx)
    _, f2 = get(b.port, ctx, session=f1["session"])
    b.wait_for("close", conn=2)
    return f1, f2


def test_tls12_session_id_resumption(pki, backends):
    b = backends(pki, "--tickets", "off")
    f1, f2 = resume_twice(b, client_ctx(pki, maxv=ssl.TLSVersion.TLSv1_2))
    assert f1["version"] == "TLSv1.2" and f2["reused"] is True
    assert b.events("handshake", 1)[0]["resumed"] is False
    assert b.events("handshake", 2)[0]["resumed"] is True
    ch2 = b.events("client_hello", 2)[0]
    assert ch2["session_id_len"] == 32 and ch2["ticket_offered"] is False


def test_tls12_ticket_resumption(pki, backends):
    b = backends(pki, "--session-cache", "off")
    f1, f2 = resume_twice(b, client_ctx(pki, maxv=ssl.TLSVersion.TLSv1_2))
    assert f2["reused"] is True
    assert b.events("client_hello", 2)[0]["ticket_offered"] is True
    assert b.events("handshake", 2)[0]["resumed"] is True


def test_tls13_ticket_resumption(pki, backends):
    b = backends(pki)
    f1, f2 = resume_twice(b, client_ctx(pki))
    assert f1["version"] == "TLSv1.3" and f2["reused"] is True
    assert b.events("client_hello", 1)[0]["psk_offered"] is False
    assert b.events("client_hello", 2)[0]["psk_offered"] is True
    assert b.events("handshake", 2)[0]["resumed"] is True


def test_tls13_stateful_resumption_cache_on_tickets_off(pki, backends):
    b = backends(pki, "--tickets", "off")
    _, f2 = resume_twice(b, client_ctx(pki))
    assert f2["reused"] is True
    assert b.events("handshake", 2)[0]["resumed"] is True


@pytest.mark.parametrize("maxv", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_no_resumption_when_cache_and_tickets_off(pki, backends, maxv):
    b = backends(pki, "--session-cache", "off", "--tickets", "off")
    f1, f2 = resume_twice(b, client_ctx(pki, maxv=maxv))
    assert f2["reused"] is False
    assert b.events("handshake", 2)[0]["resumed"] is False
    if maxv == ssl.TLSVersion.TLSv1_3:
        assert b.events("client_hello", 2)[0]["psk_offered"] is False  # no ticket was issued


# ---- client certificates ----------------------------------------------------

def test_client_auth_require_without_cert(pki, backends):
    b = backends(pki, "--client-auth", "require", "--client-ca", os.path.join(pki, "cliroot.pem"))
    with pytest.raises((ssl.SSLError, ConnectionResetError, OSError)):
        resp, _ = get(b.port, client_ctx(pki))
        assert not resp.startswith(b"HTTP/1.1 200")
        raise ssl.SSLError("no response")
    hs = b.wait_for("handshake", conn=1)[0]
    assert hs["ok"] is False
    assert "peer did not return a certificate" in hs["error"]
    assert hs["error_class"] == "SSL_ERROR_SSL"
    assert hs["alert"]["direction"] == "sent"
    assert b.events("request") == []


def test_client_auth_with_cert(pki, backends):
    b = backends(pki, "--client-auth", "require", "--client-ca", os.path.join(pki, "cliroot.pem"))
    resp, _ = get(b.port, client_ctx(pki, cert=True))
    assert parse_response(resp)[0] == 200
    hs = b.wait_for("handshake", conn=1)[0]
    subject, issuer, sha = cert_facts(os.path.join(pki, "cli.pem"))
    cc = hs["client_cert"]
    assert cc["subject"] == subject
    assert cc["issuer"] == issuer == "CN=uptls client root"
    assert cc["sha256"] == sha
    assert cc["chain_len"] == 1
    assert cc["verify"] == "ok"
    # the raw log line is one valid JSON line even with quotes/backslashes/UTF-8
    assert '\\"test\\"' in subject or '"test"' in subject


def test_client_auth_request_records_untrusted(pki, backends):
    # request mode: any certificate is accepted; the verify result is recorded
    b = backends(pki, "--client-auth", "request", "--client-ca", os.path.join(pki, "root.pem"))
    resp, _ = get(b.port, client_ctx(pki, cert=True))
    assert parse_response(resp)[0] == 200
    cc = b.wait_for("handshake", conn=1)[0]["client_cert"]
    assert cc["verify"] != "ok"
    resp, _ = get(b.port, client_ctx(pki))
    assert parse_response(resp)[0] == 200
    assert b.wait_for("handshake", conn=2)[0]["client_cert"] is None


def test_client_auth_resumption(pki, backends):
    b = backends(pki, "--client-auth", "require", "--client-ca", os.path.join(pki, "cliroot.pem"),
                 "--tickets", "off")
    f1, f2 = resume_twice(b, client_ctx(pki, cert=True, maxv=ssl.TLSVersion.TLSv1_2))
    assert f2["reused"] is True
    hs = b.events("handshake", 2)[0]
    assert hs["resumed"] is True and hs["client_cert"]["sha256"] == cert_facts(
        os.path.join(pki, "cli.pem"))[2]


# ---- versions and ciphers ---------------------------------------------------

def test_min_proto_tls13_refuses_tls12_client(pki, backends):
    b = backends(pki, "--min-proto", "TLSv1.3")
    with pytest.raises(ssl.SSLError):
        get(b.port, client_ctx(pki, maxv=ssl.TLSVersion.TLSv1_2))
    hs = b.wait_for("handshake", conn=1)[0]
    assert hs["ok"] is False
    assert "unsupported protocol" in hs["error"]
    assert hs["alert"] == {"direction": "sent", "name": "protocol version", "code": 70}
    assert b.events("client_hello", 1)[0]["versions"] == ["TLSv1.2"]


def test_max_proto_tls12(pki, backends):
    b = backends(pki, "--max-proto", "TLSv1.2")
    _, f = get(b.port, client_ctx(pki))
    assert f["version"] == "TLSv1.2"
    assert b.wait_for("handshake", conn=1)[0]["version"] == "TLSv1.2"


def test_ciphers_restriction(pki, backends):
    b = backends(pki, "--max-proto", "TLSv1.2", "--ciphers", "ECDHE-ECDSA-AES128-SHA256")
    _, f = get(b.port, client_ctx(pki, ciphers="ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-SHA256"))
    assert f["cipher"] == "ECDHE-ECDSA-AES128-SHA256"
    assert b.wait_for("handshake", conn=1)[0]["cipher"] == "ECDHE-ECDSA-AES128-SHA256"
    with pytest.raises(ssl.SSLError):
        get(b.port, client_ctx(pki, ciphers="ECDHE-ECDSA-AES256-GCM-SHA384"))
    hs = b.wait_for("handshake", conn=2)[0]
    assert hs["ok"] is False and "no shared cipher" in hs["error"]
    offered = b.events("client_hello", 2)[0]["ciphers"]
    assert "ECDHE-ECDSA-AES256-GCM-SHA384" in offered
    assert "ECDHE-ECDSA-AES128-SHA256" not in offered


def test_ciphersuites_restriction(pki, backends):
    b = backends(pki, "--ciphersuites", "TLS_CHACHA20_POLY1305_SHA256")
    _, f = get(b.port, client_ctx(pki))
    assert f["cipher"] == "TLS_CHACHA20_POLY1305_SHA256"


def test_tls10_with_seclevel0(pki, backends):
    b = backends(pki, "--min-proto", "TLSv1", "--max-proto", "TLSv1", "--ciphers", "DEFAULT:@SECLEVEL=0")
    ctx = client_ctx(pki, minv=ssl.TLSVersion.TLSv1, maxv=ssl.TLSVersion.TLSv1,
                     ciphers="DEFAULT:@SECLEVEL=0")
    _, f = get(b.port, ctx)
    assert f["version"] == "TLSv1"
    assert b.wait_for("handshake", conn=1)[0]["version"] == "TLSv1"
