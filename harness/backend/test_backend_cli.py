"""uptls-backend's command line (errors exit 2 naming the option), help,
signals, dying with its parent, many connections.

Run: /usr/bin/python3 -m pytest harness/backend/test_backend*.py (make backend-test);
UPTLS_BACKEND_BIN tests another build (e.g. the sanitizer build). The
shared client helpers are backend_testlib.py, the fixtures conftest.py.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from backend_testlib import BACKEND, client_ctx, get, parse_response, run_cli
from uptls import proc


def test_unknown_fault_exits_2(pki):
    r = run_cli("--name", "x", "--cert", "c", "--key", "k", "--fault", "explode")
    assert r.returncode == 2
    err = r.stderr.decode()
    assert "explode" in err and "stall-handshake" in err and "slow-response" in err


@pytest.mark.parametrize("opt,val,allowed", [
    ("--client-auth", "maybe", "none, request, require"),
    ("--min-proto", "TLSv1.4", "TLSv1, TLSv1.1, TLSv1.2, TLSv1.3"),
    ("--session-cache", "yes", "on, off"),
    ("--port", "70000", "0..65535"),
])
def test_bad_option_value_exits_2(pki, opt, val, allowed):
    r = run_cli("--name", "x", "--cert", "c", "--key", "k", opt, val)
    assert r.returncode == 2
    err = r.stderr.decode()
    assert opt in err and val in err and allowed in err


def test_unknown_option_and_missing_required(pki):
    r = run_cli("--bogus")
    assert r.returncode == 2
    err = r.stderr.decode()
    assert "--bogus" in err and "--name: required" in err and "--cert: required" in err


def test_unloadable_cert_exits_2(pki):
    r = run_cli("--name", "x", "--cert", "/nonexistent.pem", "--key", os.path.join(pki, "srv.key"))
    assert r.returncode == 2 and "--cert" in r.stderr.decode()
    r = run_cli("--name", "x", "--cert", os.path.join(pki, "chain.pem"), "--key",
                os.path.join(pki, "cli.key"))
    assert r.returncode == 2 and "--key" in r.stderr.decode()
    assert "mismatch" in r.stderr.decode()
    r = run_cli("--name", "x", "--cert", os.path.join(pki, "chain.pem"), "--key",
                os.path.join(pki, "srv.key"), "--ciphers", "NOPE")
    assert r.returncode == 2 and "--ciphers" in r.stderr.decode()


def test_help_from_table():
    r = run_cli("-h")
    assert r.returncode == 0
    out = r.stdout.decode()
    for opt in ("--name", "--cert", "--client-auth", "--tickets", "--fault", "--log"):
        assert opt in out
    assert "reset-after-headers" in out


def test_sigterm_exits_0_promptly(pki, backends):
    b = backends(pki)
    idle = socket.create_connection(("127.0.0.1", b.port))
    s = client_ctx(pki).wrap_socket(socket.create_connection(("127.0.0.1", b.port)),
                                    server_hostname="backend.test")
    b.wait_for("handshake", count=1)
    t0 = time.monotonic()
    assert b.stop(timeout=3) == 0
    assert time.monotonic() - t0 < 1.0
    reasons = {e["reason"] for e in b.events("close")}
    assert reasons == {"shutdown"}
    idle.close()
    s.close()


def test_dies_with_its_parent(pki, tmp_path):
    # PR_SET_PDEATHSIG: the backend gets SIGTERM when the process that
    # started it exits, so it never outlives the harness.
    script = (
        "import subprocess, sys\n"
        "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE)\n"
        "print(p.stdout.readline().decode().strip(), flush=True)\n")
    parent = subprocess.run(
        [sys.executable, "-c", script, BACKEND, "--name", "orphan",
         "--cert", os.path.join(pki, "chain.pem"), "--key", os.path.join(pki, "srv.key"),
         "--log", str(tmp_path / "log.jsonl")], capture_output=True, timeout=10)
    pid = json.loads(parent.stdout)["pid"]
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
        with open(f"/proc/{pid}/stat") as f:
            if f.read().split(")")[1].split()[0] == "Z":
                break  # exited, waiting to be reaped by init
        time.sleep(0.05)
    else:
        assert not os.path.exists(f"/proc/{pid}"), "backend outlived its parent"


def test_log_to_stdout_by_default(pki):
    with proc.start([BACKEND, "--name", "so", "--cert", os.path.join(pki, "chain.pem"),
                     "--key", os.path.join(pki, "srv.key")], stdout=subprocess.PIPE) as p:
        port = json.loads(p.first_line(timeout=10))["port"]
        get(port, client_ctx(pki))
        p.send_signal(signal.SIGTERM)
        out, _ = p.communicate(timeout=5)
    kinds = [json.loads(x)["event"] for x in out.decode().splitlines()]
    assert kinds == ["accept", "client_hello", "handshake", "request", "close"]
    assert p.returncode == 0


def test_many_concurrent_connections(pki, backends):
    b = backends(pki, "--max-proto", "TLSv1.2")
    ctx = client_ctx(pki)
    results = []

    def one():
        try:
            resp, _ = get(b.port, ctx)
            results.append(parse_response(resp)[0])
        except Exception as e:  # noqa: BLE001 - recorded and asserted below
            results.append(repr(e))
    threads = [threading.Thread(target=one) for _ in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(200) == 200, [r for r in results if r != 200][:5]
    b.wait_for("close", count=200)
    assert len({e["conn"] for e in b.events("handshake")}) == 200
