"""Nothing hangs, nothing leaks, nothing crashes: the fast part, run by make test.

- every committed fuzz input (fuzz/corpus/<target>/ seeds and
  fuzz/regressions/<target>/ crashes found by make fuzz) replayed through the
  fuzz targets built with $(CC) -fsanitize=address,undefined and a plain main
  (make fuzz-replay's build: no libFuzzer needed), each within a time limit;
- one regression test per bug that fuzzing found, on the real program;
- valgrind over the catalogue and over 10,000 requests through uptls-proxy
  to uptls-backend over TLS: too slow for make test, so skipped unless
  UPTLS_VALGRIND=1 (make valgrind, which .ci/run calls).
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from uptls import proc

ROOT = Path(__file__).resolve().parent.parent
FUZZ = ROOT / "fuzz"
TARGETS = ("proxy_conf", "proxy_request", "proxy_response", "backend_request")
PROXY = Path(os.environ.get("UPTLS_PROXY_BIN", ROOT / "bin" / "uptls-proxy"))


@pytest.fixture(scope="module")
def replay_bins():
    bins = [f"build/fuzz/replay/fuzz_{t}" for t in TARGETS]
    subprocess.run(["make", "-s", *bins], cwd=ROOT, check=True)
    return {t: ROOT / b for t, b in zip(TARGETS, bins)}


def inputs(target, kind):
    d = FUZZ / kind / target
    return sorted(p for p in d.rglob("*") if p.is_file()) if d.is_dir() else []


@pytest.mark.parametrize("target", TARGETS)
def test_fuzz_seeds_and_regressions_replay_clean(replay_bins, target, tmp_path):
    files = inputs(target, "corpus") + inputs(target, "regressions")
    assert inputs(target, "corpus"), f"no seed corpus in fuzz/corpus/{target}/"
    env = {**os.environ,
           "ASAN_OPTIONS": f"detect_leaks=1:log_path={tmp_path}/asan",
           "UBSAN_OPTIONS": f"print_stacktrace=1:halt_on_error=1:log_path={tmp_path}/ubsan"}
    env.pop("FUZZ_DEBUG", None)
    for f in files:   # one process per input: a report names its input
        t0 = time.monotonic()
        r = subprocess.run([str(replay_bins[target]), str(f)], capture_output=True, text=True,
                           env=env, timeout=30)
        reports = "".join(p.read_text() for p in tmp_path.glob("*san*"))
        assert r.returncode == 0 and not reports, \
            f"{f.relative_to(ROOT)}: exit {r.returncode}\n{reports[-4000:]}{r.stderr[-2000:]}"
        assert time.monotonic() - t0 < 10, f"{f.relative_to(ROOT)} took too long"


# ---- regressions found by fuzzing, on the real programs ---------------------------------------

@pytest.fixture(scope="module")
def proxy_bin():
    if "UPTLS_PROXY_BIN" not in os.environ:
        subprocess.run(["make", "-s", "bin/uptls-proxy"], cwd=ROOT, check=True)
    return PROXY


def proxy_t(proxy_bin, tmp_path, text, files=None):
    conf = tmp_path / "nginx.conf"
    conf.write_text(text)
    for name, body in (files or {}).items():
        (tmp_path / name).write_text(body)
    return subprocess.run([str(proxy_bin), "-t", "-p", str(tmp_path), "-c", str(conf)],
                          capture_output=True, text=True, timeout=10)


def test_include_of_itself_is_an_error_not_a_hang(proxy_bin, tmp_path):
    # fuzz/regressions/proxy_conf/timeout-include-self-glob: "include *.conf;"
    # in nginx.conf read nginx.conf again at each of 16 levels, once per
    # include: exponential time (libFuzzer timeout), now an error naming it.
    t0 = time.monotonic()
    r = proxy_t(proxy_bin, tmp_path, "events {}\nhttp { include *.conf; include *.conf; }\n",
                {"a.conf": "proxy_ssl_verify on;\n"})
    assert r.returncode != 0
    assert f'"{tmp_path}/nginx.conf" includes itself (through "*.conf")' in r.stderr, r.stderr
    assert time.monotonic() - t0 < 5
    # an indirect cycle: a.conf includes b.conf includes a.conf
    r = proxy_t(proxy_bin, tmp_path, "events {}\nhttp { include a.conf; }\n",
                {"a.conf": "include b.conf;\n", "b.conf": "include a.conf;\n"})
    assert r.returncode != 0 and "includes itself" in r.stderr, r.stderr
    # the same file included twice, not from itself, is still fine
    r = proxy_t(proxy_bin, tmp_path, "events {}\nhttp { include a.conf; include a.conf; }\n",
                {"a.conf": "server { listen 127.0.0.1:1; }\n"})
    assert r.returncode == 0, r.stderr


# ---- valgrind (make valgrind; UPTLS_VALGRIND=1) ------------------------------------------------

VALGRIND = os.environ.get("UPTLS_VALGRIND") == "1"
VG_DIR = ROOT / "build" / "valgrind"
VG_OPTS = ("--tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect "
           "--errors-for-leak-kinds=definite,indirect --num-callers=30 --track-fds=no")


def vg_wrappers(name):
    """A bin folder whose uptls-proxy and uptls-backend run the real ones
    under memcheck, one log per process (%p); uptls-certgen is the real one
    (fixtures/test_certgen.py runs it under valgrind itself)."""
    bindir, logdir = VG_DIR / name / "bin", VG_DIR / name / "logs"
    subprocess.run(["rm", "-rf", str(VG_DIR / name)], check=True)
    bindir.mkdir(parents=True)
    logdir.mkdir(parents=True)
    for prog in ("uptls-proxy", "uptls-backend"):
        w = bindir / prog
        w.write_text(f"#!/bin/sh\nexec valgrind {VG_OPTS} --log-file={logdir}/%p.{prog}.log "
                     f"{ROOT}/bin/{prog} \"$@\"\n")
        w.chmod(0o755)
    (bindir / "uptls-certgen").symlink_to(ROOT / "bin" / "uptls-certgen")
    return bindir, logdir


def vg_summary(logdir, title):
    """Per program: processes, errors, bytes definitely/indirectly lost.
    A log with no ERROR SUMMARY (a process killed before exiting) counts as
    incomplete; `uptls-proxy -v`/`-t` runs count like any other."""
    import re
    per = {}
    bad = []
    for f in sorted(logdir.glob("*.log")):
        prog = f.name.split(".", 1)[1].rsplit(".", 1)[0]
        text = f.read_text(errors="replace")
        s = per.setdefault(prog, {"processes": 0, "errors": 0, "definitely_lost": 0,
                                  "indirectly_lost": 0, "incomplete": 0})
        s["processes"] += 1
        m = re.search(r"ERROR SUMMARY: ([\d,]+) errors", text)
        if m is None:
            s["incomplete"] += 1
            bad.append(f"{f.name}: no ERROR SUMMARY (killed?)\n{text[-1500:]}")
            continue
        n = int(m.group(1).replace(",", ""))
        s["errors"] += n
        for key, label in (("definitely_lost", "definitely lost"),
                           ("indirectly_lost", "indirectly lost")):
            m = re.search(label + r": ([\d,]+) bytes", text)
            if m:
                s[key] += int(m.group(1).replace(",", ""))
        if n:
            bad.append(f"{f.name}: {n} errors\n{text[-6000:]}")
    lines = [f"valgrind, {title}:"]
    for prog, s in sorted(per.items()):
        lines.append(f"  {prog}: {s['processes']} processes, {s['errors']} errors, "
                     f"{s['definitely_lost']} bytes definitely lost, "
                     f"{s['indirectly_lost']} bytes indirectly lost, {s['incomplete']} incomplete")
    text = "\n".join(lines)
    with open(VG_DIR / "summary.txt", "a") as out:
        out.write(text + "\n")
    print(text)
    return per, bad


@pytest.mark.skipif(not VALGRIND, reason="slow: make valgrind (UPTLS_VALGRIND=1)")
def test_valgrind_catalogue():
    bindir, logdir = vg_wrappers("catalogue")
    t0 = time.monotonic()
    r = subprocess.run(["make", "--no-print-directory", "conformance", "TARGET=reference",
                        f"TARGET_BIN={bindir}/uptls-proxy", f"REPORT_DIR={VG_DIR}/catalogue/report"],
                       cwd=ROOT, capture_output=True, text=True, timeout=1500,
                       env={**os.environ, "UPTLS_BIN_DIR": str(bindir)})
    took = time.monotonic() - t0
    per, bad = vg_summary(logdir, f"the catalogue against the reference proxy ({took:.0f} s, "
                                  f"make conformance exit {r.returncode})")
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert per.get("uptls-proxy", {}).get("processes", 0) >= 2
    assert per.get("uptls-backend", {}).get("processes", 0) >= 2
    assert not bad, "\n\n".join(bad)[:20000]


@pytest.mark.skipif(not VALGRIND, reason="slow: make valgrind (UPTLS_VALGRIND=1)")
def test_valgrind_10000_requests_through_the_proxy():
    bindir, logdir = vg_wrappers("requests")
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "soak/soak.py", "--bin-dir", str(bindir),
                        "--requests", "10000", "--connections", "16", "--warmup", "0",
                        "--no-kill", "--fresh-every", "10", "--no-resource-check",
                        "--max-seconds", "600"],
                       cwd=ROOT, capture_output=True, text=True, timeout=900)
    took = time.monotonic() - t0
    print(r.stdout)
    per, bad = vg_summary(logdir, f"10,000 requests (1 in 10 on a new TLS connection), "
                                  f"16 connections ({took:.0f} s, soak exit {r.returncode})")
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert not bad, "\n\n".join(bad)[:20000]


def _proxy_run(proxy_bin, tmp_path, server_block):
    port = proc.free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"error_log {tmp_path}/error.log info;\nevents {{}}\nhttp {{ server {{ "
                    f"listen 127.0.0.1:{port}; {server_block} }} }}\n")
    p = proc.start([str(proxy_bin), "-p", str(tmp_path), "-c", str(conf), "-g", "daemon off;"],
                   stdout=subprocess.DEVNULL, log=tmp_path / "proxy.stderr")
    try:
        p.wait_port(port, timeout=5)
    except proc.ProcError:
        p.stop()
        raise
    return p, port


def _exchange(port, data):
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(data)
        out = b""
        while b"\r\n\r\n" not in out:
            chunk = c.recv(4096)
            if not chunk:
                break
            out += chunk
    return out


@pytest.mark.parametrize("request_bytes", [
    b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\rInjected: 1\r\n\r\n",     # bare CR in a field
    b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x00b\r\n\r\n",              # NUL in a field
    b"GET /a\rb HTTP/1.1\r\nHost: a\r\n\r\n",                         # bare CR in the target
], ids=["bare-cr-field", "nul-field", "bare-cr-target"])
def test_request_with_bare_cr_or_nul_is_refused(proxy_bin, tmp_path, request_bytes):
    # fuzz/regressions/proxy_request/*: forwarded as is, a bare CR is a line
    # end to some upstream parsers (header injection); a NUL cut the field.
    # RFC 9112 2.2 / RFC 9110 5.5: reject. nginx answers 400.
    p, port = _proxy_run(proxy_bin, tmp_path, "location / { return 200 ok; }")
    try:
        assert _exchange(port, request_bytes).startswith(b"HTTP/1.1 400 "), request_bytes
        assert _exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").startswith(b"HTTP/1.1 200 ")
    finally:
        p.stop()


@pytest.mark.parametrize("response_bytes", [
    b"HTTP/1.1 200 OK\r\nX-A: a\rSet-Cookie: x=1\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\rSet-Cookie: x=1\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 0\r\n\r\n",
], ids=["bare-cr-field", "bare-cr-status-line", "nul-field"])
def test_response_with_bare_cr_or_nul_is_a_502(proxy_bin, tmp_path, response_bytes):
    # fuzz/regressions/proxy_response/*: a bare CR from the upstream reached
    # the client (response splitting); now "upstream sent invalid header", 502.
    import socket
    import threading
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    srv.settimeout(10)

    def upstream():
        try:
            c, _ = srv.accept()
            with c:
                buf = b""
                while b"\r\n\r\n" not in buf:
                    buf += c.recv(4096)
                c.sendall(response_bytes)
                time.sleep(0.3)
        except OSError:
            pass
    t = threading.Thread(target=upstream, daemon=True)
    t.start()
    p, port = _proxy_run(proxy_bin, tmp_path,
                         f"location / {{ proxy_pass http://127.0.0.1:{srv.getsockname()[1]}; }}")
    try:
        out = _exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 502 "), out
        assert b"Set-Cookie" not in out and b"X-A" not in out, out
    finally:
        p.stop()
        t.join(5)
        srv.close()
    assert "upstream sent invalid header" in (tmp_path / "error.log").read_text()
