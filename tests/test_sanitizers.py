"""Nothing hangs, nothing leaks, nothing crashes: the fast part, run by make test.

- every committed fuzz input (fuzz/corpus/<target>/ seeds and
  fuzz/regressions/<target>/ crashes found by make fuzz) replayed through the
  fuzz targets built with $(CC) -fsanitize=address,undefined and a plain main
  (make fuzz-replay's build: no libFuzzer needed), each within a time limit;
- one regression test per bug that fuzzing found, on the real program;
- the valgrind run (make valgrind) is too slow for make test: it is run by
  .ci/run and checked here only when UPTLS_VALGRIND=1.
"""

import os
import subprocess
import time
from pathlib import Path

import pytest

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
