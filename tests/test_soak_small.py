"""A small soak (make soak's smaller sibling, in make test): 2,000 requests on
20 connections through uptls-proxy to two uptls-backends over TLS, one backend
killed and restarted mid-run. Every response is 200, 502 or 504; the proxy
stays up; its worker's fds and RSS come back to their level after the load."""

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_soak_small(tmp_path):
    subprocess.run(["make", "-s", "all"], cwd=ROOT, check=True)
    out = tmp_path / "soak.json"
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "soak/soak.py", "--requests", "2000", "--connections", "20",
                        "--warmup", "500", "--fresh-every", "5", "--max-seconds", "30",
                        "--json", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    fig = json.loads(out.read_text())
    assert fig["ok"] and fig["proxy_up"]
    counts = fig["counts"]
    assert set(counts) <= {"200", "502", "504"}, counts
    assert sum(counts.values()) + fig["closed_without_response"] == 2000
    assert fig["killed_after"] and fig["restarted_after"]
    assert fig["after"]["fds"] <= fig["before"]["fds"], fig
    assert took < 20, f"took {took:.1f} s"
