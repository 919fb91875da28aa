"""uptls-backend --listeners: many listeners in one process, each with its
own configuration, log and session cache.

Run: /usr/bin/python3 -m pytest harness/backend/test_backend*.py (make backend-test);
UPTLS_BACKEND_BIN tests another build (e.g. the sanitizer build). The
shared client helpers are backend_testlib.py, the fixtures conftest.py.
"""

import json
import os
import socket
import ssl
import subprocess

import pytest
from backend_testlib import BACKEND, client_ctx, get, parse_response, read_all, run_cli


@pytest.mark.parametrize("via_stdin", [False, True])
def test_listeners_lines_and_own_configs(pki, listeners, via_stdin):
    ls = listeners(pki, [{"name": "b1"},
                         {"name": "b1", "max-proto": "TLSv1.2", "tickets": False,
                          "close-after-response": True},
                         {"name": "b2", "client-auth": "require",
                          "client-ca": os.path.join(pki, "cliroot.pem"), "idle-timeout": 30,
                          "fault": [], "session-cache": "off", "port": 0},
                         {"name": "b3", "fault": "non-tls"}],
                   via_stdin=via_stdin)
    pid = ls.proc.pid
    assert ls.lines == [
        {"event": "listening", "listener": 1, "name": "b1", "port": ls.ports[0], "pid": pid},
        {"event": "listening", "listener": 2, "name": "b1", "port": ls.ports[1], "pid": pid},
        {"event": "listening", "listener": 3, "name": "b2", "port": ls.ports[2], "pid": pid},
        {"event": "listening", "listener": 4, "name": "b3", "port": ls.ports[3], "pid": pid},
        {"event": "ready", "listeners": 4, "pid": pid}]
    assert len(set(ls.ports)) == 4
    ctx = client_ctx(pki)
    r1, f1 = get(ls.ports[0], ctx, "/one")
    r2, f2 = get(ls.ports[1], ctx, "/two", close=False)
    r3, _ = get(ls.ports[2], client_ctx(pki, cert=True), "/three")
    assert f1["version"] == "TLSv1.3" and f2["version"] == "TLSv1.2"
    assert parse_response(r1)[1]["x-uptls-backend"] == "b1"
    assert parse_response(r2)[1]["connection"] == "close"  # close-after-response
    assert parse_response(r3)[1]["x-uptls-backend"] == "b2"
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        get(ls.ports[2], ctx, "/no-cert")  # client-auth require
    with socket.create_connection(("127.0.0.1", ls.ports[3]), timeout=5) as s:
        s.sendall(b"\x16\x03\x01\x00\x05hello")
        assert read_all(s).startswith(b"HTTP/1.1 200 OK\r\n")  # its own fault only
    b = [ls.backend(i) for i in range(4)]
    assert "non-tls" in b[3].wait_for("handshake")[0]["error"]
    b[0].wait_for("close")
    b[1].wait_for("close")
    b[2].wait_for("close", count=2)
    # each listener logs only its own connections, numbered from 1
    assert [e["path"] for e in b[0].events("request")] == ["/one"]
    assert [e["path"] for e in b[1].events("request")] == ["/two"]
    assert [e["path"] for e in b[2].events("request")] == ["/three"]
    assert [e["conn"] for e in b[2].events("handshake")] == [1, 2]
    assert {e["name"] for e in b[2].events()} == {"b2"}
    for i in range(4):  # every line says which listener wrote it
        assert {e["listener"] for e in b[i].events()} == {i + 1}
    hs = b[2].events("handshake")
    assert hs[0]["client_cert"]["chain_len"] == 1 and hs[1]["ok"] is False


@pytest.mark.parametrize("maxv,opts", [
    (ssl.TLSVersion.TLSv1_2, {"tickets": False}),        # session ids, server cache
    (ssl.TLSVersion.TLSv1_2, {"session-cache": False}),  # TLS 1.2 tickets
    (ssl.TLSVersion.TLSv1_3, {}),                        # TLS 1.3 tickets
    (ssl.TLSVersion.TLSv1_3, {"tickets": False}),        # TLS 1.3 stateful
])
def test_listeners_never_share_sessions(pki, listeners, maxv, opts):
    # Same certificate, same options, one process: a session one listener
    # issued is still only ever resumed by that listener.
    ls = listeners(pki, [{"name": "b1", **opts}, {"name": "b2", **opts}])
    ctx = client_ctx(pki, maxv=maxv)
    _, f1 = get(ls.ports[0], ctx)
    _, other = get(ls.ports[1], ctx, session=f1["session"])
    _, same = get(ls.ports[0], ctx, session=f1["session"])
    assert other["reused"] is False and same["reused"] is True
    b1, b2 = ls.backend(0), ls.backend(1)
    b1.wait_for("close", count=2)
    b2.wait_for("close")
    assert [h["resumed"] for h in b1.events("handshake")] == [False, True]
    assert [h["resumed"] for h in b2.events("handshake")] == [False]


def test_listeners_sharing_one_log(pki, tmp_path, listeners):
    # same name, same log: the listener field tells their lines apart
    log = str(tmp_path / "shared.jsonl")
    ls = listeners(pki, [{"name": "b1", "log": log}, {"name": "b1", "log": log}])
    for i, port in enumerate(ls.ports * 2):
        get(port, client_ctx(pki), f"/{i}")
    b = ls.backend(0)
    b.wait_for("close", count=4)
    paths = {(e["listener"], e["conn"], e["path"]) for e in b.events("request")}
    assert paths == {(1, 1, "/0"), (2, 1, "/1"), (1, 2, "/2"), (2, 2, "/3")}


def test_listeners_sigterm_closes_every_listener(pki, listeners):
    ls = listeners(pki, [{"name": "b1"}, {"name": "b2"}])
    socks = [client_ctx(pki).wrap_socket(socket.create_connection(("127.0.0.1", p)),
                                         server_hostname="backend.test") for p in ls.ports]
    for i in range(2):
        ls.backend(i).wait_for("handshake")
    assert ls.stop() == 0 and ls.stderr == ""
    for i in range(2):
        assert [e["reason"] for e in ls.backend(i).events("close")] == ["shutdown"]
    for s in socks:
        s.close()


def test_listeners_json_strings(pki, tmp_path, listeners):
    # escapes and non-ASCII in a value (here the log path) are decoded
    d = tmp_path / "l\u00f6g \"x\""
    d.mkdir()
    ls = listeners(pki, [{"name": "b1", "log": str(d / "b1.jsonl")}])
    get(ls.ports[0], client_ctx(pki))
    b = ls.backend(0)
    b.wait_for("close")
    assert b.events("request")[0]["name"] == "b1"


def run_listeners(pki, text):
    return subprocess.run([BACKEND, "--listeners", "-"], input=text.encode(),
                          capture_output=True, timeout=10)


def test_listeners_bad_specs_exit_2_naming_listener_and_option(pki, tmp_path):
    cert, key = os.path.join(pki, "chain.pem"), os.path.join(pki, "srv.key")
    good = {"cert": cert, "key": key, "log": str(tmp_path / "good.jsonl")}
    lines = [
        json.dumps({"name": "ok1", **good}),
        json.dumps({"name": "bad2", **good, "ciphers": "NOPE"}),
        json.dumps({"name": "bad3", "cert": cert, "key": key, "tickets": "maybe",
                    "fault": ["explode"], "bogus": 1, "port": 70000}),
        '{"name": "bad4", "cert": ',
        json.dumps({"name": "bad5", **good, "close-after-response": "yes",
                    "min-proto": "TLSv1.3", "max-proto": "TLSv1.2"})[:-1] + ', "name": "x"}',
        json.dumps({"name": "bad6", **good, "cert": "/nonexistent.pem"}),
        json.dumps({"key": key, "cert": cert}),
    ]
    r = run_listeners(pki, "\n".join(lines) + "\n")
    assert r.returncode == 2 and r.stdout == b""  # nothing listened
    err = r.stderr.decode().splitlines()
    assert all(x.startswith("uptls-backend: listener ") for x in err), err

    def said(n, name, *words):
        return any(x.startswith(f"uptls-backend: listener {n} '{name}'")
                   and all(w in x for w in words) for x in err)
    assert not any("listener 1 " in x for x in err)
    assert said(2, "bad2", "--ciphers", "NOPE")
    assert said(3, "bad3", "--tickets", "maybe", "on, off")
    assert said(3, "bad3", "--fault", "explode", "stall-handshake")
    assert said(3, "bad3", "unknown key 'bogus'")
    assert said(3, "bad3", "--port", "70000")
    assert said(4, "bad4", "line 4", "bad JSON")
    assert said(5, "bad5", "--close-after-response", "true, false")
    assert said(5, "bad5", "--name: given twice")
    assert said(5, "bad5", "--min-proto: higher than --max-proto")
    assert said(6, "bad6", "--cert", "/nonexistent.pem")
    assert said(7, "?", "--name: required")


def test_listeners_takes_no_other_option_and_needs_one_listener(pki, tmp_path):
    r = run_cli("--listeners", "-", "--name", "x")
    assert r.returncode == 2 and "--listeners: takes no other option" in r.stderr.decode()
    r = run_listeners(pki, "# nothing\n\n")
    assert r.returncode == 2 and "no listener given" in r.stderr.decode()
    r = run_cli("--listeners", str(tmp_path / "missing.jsonl"))
    assert r.returncode == 2 and "missing.jsonl" in r.stderr.decode()
    assert "--listeners" in run_cli("-h").stdout.decode()
