"""uptls-proxy under valgrind and as an ASan/UBSan build (slow: skipped with
UPTLS_PROXY_FAST=1).

Run: /usr/bin/python3 -m pytest reference-proxy (all of uptls-proxy's tests;
the shared upstreams, proxy and fixtures are proxy_testlib.py and conftest.py).
"""

import shutil
import subprocess

import pytest

from proxy_testlib import FAST, ROOT, Proxy, tls_loc


def _load(p, n):
    for i in range(n):
        path = ("/ka/", "/plain/", "/tls/", "/bad/")[i % 4] + str(i)
        status, _ = p.get(path)
        assert status == (502 if path.startswith("/bad/") else 200), path


def _load_config(pki, b, bad, plain):
    return (f"upstream ka {{ server 127.0.0.1:{b.port}; keepalive 2; }}\n"
            f"server {{ LISTEN location /ka/ {{ proxy_pass https://ka; proxy_http_version 1.1; "
            f"proxy_set_header Connection \"\"; proxy_ssl_verify on; proxy_ssl_name localhost; "
            f"proxy_ssl_trusted_certificate {pki}/root.pem; }}\n"
            f"location /plain/ {{ proxy_pass http://127.0.0.1:{plain.port}; }}\n"
            + tls_loc(pki, b, "proxy_ssl_verify on; proxy_ssl_server_name on;", "/tls/")
            + tls_loc(pki, bad, "proxy_ssl_verify on;", "/bad/") + " }")


@pytest.mark.skipif(FAST or shutil.which("valgrind") is None, reason="slow / no valgrind")
def test_valgrind_no_leaks(proxy, backends, pki, tmp_path):
    b, bad, plain = backends(pki), backends(pki, cert="server-untrusted"), backends(tls=False)
    vlog = tmp_path / "vg.%p.log"
    p = proxy(_load_config(pki, b, bad, plain),
              wrapper=["valgrind", "--leak-check=full", "--show-leak-kinds=definite,indirect",
                       "--errors-for-leak-kinds=definite,indirect", "--trace-children=yes",
                       f"--log-file={vlog}"])
    _load(p, 300)
    p.stop()
    logs = [f.read_text() for f in tmp_path.glob("vg.*.log")]
    assert len(logs) >= 2                        # master and worker
    for text in logs:
        assert "ERROR SUMMARY: 0 errors" in text, text[-3000:]
        assert "definitely lost: 0 bytes" in text or "no leaks are possible" in text, text[-3000:]


@pytest.mark.skipif(FAST, reason="slow")
def test_asan_ubsan_build(backends, pki, tmp_path):
    subprocess.run(["make", "-s", "bin/uptls-proxy-asan"], cwd=ROOT, check=True)
    b, bad, plain = backends(pki), backends(pki, cert="server-untrusted"), backends(tls=False)
    p = Proxy(tmp_path, _load_config(pki, b, bad, plain), binary=ROOT / "bin" / "uptls-proxy-asan",
              env={"ASAN_OPTIONS": "detect_leaks=1", "UBSAN_OPTIONS": "print_stacktrace=1"})
    _load(p, 100)
    p.stop()
    out = (tmp_path / "proxy.out").read_text()
    assert "ERROR: AddressSanitizer" not in out and "LeakSanitizer" not in out, out
    assert "runtime error" not in out, out
