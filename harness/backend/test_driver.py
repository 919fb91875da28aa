"""Tests for the driver's side of uptls-backend --listeners
(harness/uptls/backend.py: spec_for, BackendGroup, start_listeners): how a
run's backends are packed into a few processes, and that a bad listener or a
dead process stays the problem of the scenarios it belongs to.

Run: /usr/bin/python3 -m pytest harness/backend/test_driver.py
(UPTLS_BACKEND_BIN selects the build, as for test_backend_*.py.)
"""

import dataclasses
import os
import signal
import socket
import ssl
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE)))  # harness/, for uptls

from uptls import backend as driver, proc  # noqa: E402
from testpki import Pki  # noqa: E402

BIN = os.environ.get("UPTLS_BACKEND_BIN")


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    p = Pki(tmp_path_factory.mktemp("drv-pki"))
    p.leaf("backend", subject="/CN=backend.test", san="DNS:backend.test")
    return str(p.path("backend", "chain.pem")), str(p.path("backend", "key"))


def spec(cert, folder, owner, name, **extra):
    return {"name": name, "cert": cert[0], "key": cert[1], "listen": "127.0.0.1", "port": 0,
            **extra}


def request(port, path):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5)) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


def wait_events(lst, kind, count=1, timeout=5):
    def enough():
        evs = [e for e in lst.events() if e["event"] == kind]
        return evs if len(evs) >= count else None
    evs = proc.wait_until(enough, timeout)
    if evs is not None:
        return evs
    raise AssertionError(f"{lst.name}: no {kind}: {lst.events()}")


@pytest.fixture
def groups():
    all_groups = []
    yield all_groups
    for g in all_groups:
        g.stop()
        if g.proc.returncode != -signal.SIGKILL:
            # exit 0 and a quiet stderr: under valgrind or the sanitizers a
            # leak or an error shows here
            assert g.proc.returncode == 0 and g.stderr_tail() == "", g.stderr_tail()


def test_owners_packed_into_few_processes(cert, tmp_path, groups):
    specs = {f"s{i}": [spec(cert, tmp_path, f"s{i}", "b1"), spec(cert, tmp_path, f"s{i}", "b2")]
             for i in range(5)}
    started, failed, gs = driver.start_listeners(specs, str(tmp_path), BIN, group_size=4)
    groups += gs
    assert failed == {}
    assert len(gs) == 3  # ceil(10 listeners / 4)
    assert sorted(started) == sorted(specs)
    for owner, lsts in started.items():
        assert sorted(lsts) == ["b1", "b2"]
        assert lsts["b1"].group is lsts["b2"].group  # a scenario's backends share a process
    # neighbours (which run at the same time) are in different processes
    assert started["s0"]["b1"].group is not started["s1"]["b1"].group
    ports = [lst.port for lsts in started.values() for lst in lsts.values()]
    assert len(set(ports)) == 10
    # every event is its own listener's, and no other's
    for _ in range(2):
        for owner, lsts in started.items():
            for name, lst in lsts.items():
                assert f"backend={name} conn=".encode() in request(lst.port, f"/{owner}/{name}")
    for owner, lsts in started.items():
        for name, lst in lsts.items():
            reqs = wait_events(lst, "request", count=2)
            assert [(r["conn"], r["path"]) for r in reqs] == \
                [(1, f"/{owner}/{name}"), (2, f"/{owner}/{name}")]
            assert {e["listener"] for e in lst.events()} == {lst.position}
    # one log per process; the listeners files stay in the folder: a run can
    # be replayed by hand
    files = sorted(os.listdir(tmp_path))
    assert [f for f in files if f.endswith(".log.jsonl")] == \
        [f"listeners-{i}.log.jsonl" for i in (1, 2, 3)]
    assert [f for f in files if f.endswith(".stderr")] == \
        [f"listeners-{i}.jsonl.stderr" for i in (1, 2, 3)]


def test_bad_listener_errors_only_its_owner(cert, tmp_path, groups):
    specs = {"s0": [spec(cert, tmp_path, "s0", "b1")],
             "s1": [spec(cert, tmp_path, "s1", "b1"),
                    spec(cert, tmp_path, "s1", "b2", ciphers="NOPE")],
             "s2": [spec(cert, tmp_path, "s2", "b1", tickets="maybe")],
             "s3": [spec(cert, tmp_path, "s3", "b1")]}
    started, failed, gs = driver.start_listeners(specs, str(tmp_path), BIN)
    groups += gs
    assert sorted(failed) == ["s1", "s2"]
    assert "'b2'" in failed["s1"] and "--ciphers" in failed["s1"] and "NOPE" in failed["s1"]
    assert "--tickets" in failed["s2"] and "maybe" in failed["s2"]
    assert sorted(started) == ["s0", "s3"]
    for owner in ("s0", "s3"):
        lst = started[owner]["b1"]
        assert lst.alive()
        assert b"200 OK" in request(lst.port, "/")


def test_dead_process_is_dead_for_every_owner_it_served(cert, tmp_path, groups):
    specs = {f"s{i}": [spec(cert, tmp_path, f"s{i}", "b1")] for i in range(4)}
    started, failed, gs = driver.start_listeners(specs, str(tmp_path), BIN, group_size=2)
    groups += gs
    assert failed == {} and len(gs) == 2
    victim = started["s0"]["b1"].group
    os.kill(victim.proc.pid, signal.SIGKILL)
    victim.proc.wait()
    dead = sorted(k for k, lsts in started.items() if not lsts["b1"].alive())
    alive = sorted(k for k, lsts in started.items() if lsts["b1"].alive())
    assert dead == ["s0", "s2"] and alive == ["s1", "s3"]


def test_missing_binary_errors_every_owner(cert, tmp_path):
    specs = {"s0": [spec(cert, tmp_path, "s0", "b1")], "s1": [spec(cert, tmp_path, "s1", "b1")]}
    started, failed, gs = driver.start_listeners(specs, str(tmp_path),
                                                 str(tmp_path / "no-such-backend"))
    assert started == {} and gs == []
    assert sorted(failed) == ["s0", "s1"] and "cannot run" in failed["s0"]


def test_owner_without_backends(cert, tmp_path, groups):
    started, failed, gs = driver.start_listeners({"s0": []}, str(tmp_path), BIN)
    assert started == {"s0": {}} and failed == {} and gs == []


def test_spec_for_maps_every_option(tmp_path):
    @dataclasses.dataclass
    class B:
        name: str
        certificate: str
        options: dict

    class Pki:
        def path(self, entity, kind):
            return f"/pki/{entity}.{kind}"

        def bundle(self, run_dir, names, kind):
            return f"{run_dir}/bundle-{'+'.join(names)}.{kind}"

    b = B("b2", "server-a", {"client_auth": "require", "client_ca": ["root-a"],
                             "min_proto": "TLSv1.2", "max_proto": "TLSv1.3",
                             "ciphers": "ECDHE+AESGCM", "ciphersuites": "TLS_AES_128_GCM_SHA256",
                             "session_cache": False, "tickets": True,
                             "close_after_response": True, "faults": ["truncate-body"]})
    s = driver.spec_for(b, Pki(), str(tmp_path), "s007")
    assert s == {"name": "b2", "cert": "/pki/server-a.chain.pem", "key": "/pki/server-a.key",
                 "listen": "127.0.0.1", "port": 0,
                 "client-auth": "require", "client-ca": f"{tmp_path}/bundle-root-a.pem",
                 "min-proto": "TLSv1.2", "max-proto": "TLSv1.3", "ciphers": "ECDHE+AESGCM",
                 "ciphersuites": "TLS_AES_128_GCM_SHA256", "session-cache": "off",
                 "tickets": "on", "close-after-response": True, "fault": ["truncate-body"]}
