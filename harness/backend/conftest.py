"""Fixtures of uptls-backend's tests (harness/backend/test_backend_*.py): a
throwaway PKI per test file, backends and --listeners processes that must
exit 0 with a quiet stderr when stopped. Classes: backend_testlib.py."""

import shutil
import tempfile

import pytest
from backend_testlib import CLIENT_SUBJECT, Backend, Listeners
from testpki import Pki


@pytest.fixture(scope="module")
def pki():
    d = tempfile.mkdtemp(prefix="uptls-backend-test-")
    p = Pki(d)
    p.ca("root", subject="/CN=uptls test root")
    p.ca("int", issuer="root", subject="/CN=uptls test int")
    p.leaf("srv", "int", san="DNS:backend.test,IP:127.0.0.1", subject="/CN=backend.test",
           chain=("int",), chain_file="chain.pem")
    # client PKI: its own root
    p.ca("cliroot", subject="/CN=uptls client root")
    p.leaf("cli", "cliroot", san=None, client=True, subject=CLIENT_SUBJECT[0])
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def backends():
    started = []

    def start(pki, *extra, **kw):
        b = Backend(pki, *extra, **kw)
        started.append(b)
        return b
    yield start
    for b in started:
        if b.proc.returncode is None:
            # exit 0 and a quiet stderr: under valgrind or the sanitizers a
            # leak or an error shows here as a non-zero status
            assert b.stop() == 0, b.stderr
            assert b.stderr == "", b.stderr


@pytest.fixture
def listeners():
    started = []

    def start(pki, specs, **kw):
        ls = Listeners(pki, specs, **kw)
        started.append(ls)
        return ls
    yield start
    for ls in started:
        if ls.proc.returncode is None:
            assert ls.stop() == 0, ls.stderr
            assert ls.stderr == "", ls.stderr
