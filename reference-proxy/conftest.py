"""Fixtures of uptls-proxy's tests (reference-proxy/test_proxy_*.py): the
binary built once, one throwaway PKI, upstreams and proxies
stopped after each test. The classes behind them are proxy_testlib.py."""

import os
import subprocess

import pytest
from proxy_testlib import BIN, ROOT, SAN, Backend, Proxy
from testpki import Pki


@pytest.fixture(scope="session", autouse=True)
def built():
    if "UPTLS_PROXY_BIN" not in os.environ:
        subprocess.run(["make", "-s", "bin/uptls-proxy"], cwd=ROOT, check=True)
    assert BIN.exists()


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """One PKI for every test file (tests add files to it: a short-lived leaf,
    CRLs; none changes one another uses)."""
    d = tmp_path_factory.mktemp("pki")
    p = Pki(d)
    p.ca("root")
    p.ca("int", issuer="root")
    p.ca("other-root")
    p.ca("client-root")
    p.leaf("server", "root", san=SAN)
    p.leaf("server-int", "int", san=SAN, chain=("int",))
    p.leaf("server-wrong", "root", san="DNS:other.test")
    p.leaf("server-ip", "root", san="IP:127.0.0.1")
    p.leaf("server-untrusted", "other-root", san=SAN)
    p.leaf("client", "client-root", san=None, client=True)
    p.encrypt_key("client", "client-enc.key", "s3cret")
    (d / "passwords").write_text("wrong-one\ns3cret\n")
    return d


@pytest.fixture
def backends():
    made = []

    def make(*args, **kw):
        b = Backend(*args, **kw)
        made.append(b)
        return b
    yield make
    for b in made:
        b.close()


@pytest.fixture
def proxy(tmp_path):
    made = []

    def make(http_body, **kw):
        p = Proxy(tmp_path, http_body, **kw)
        made.append(p)
        return p
    yield make
    for p in made:
        p.stop()
