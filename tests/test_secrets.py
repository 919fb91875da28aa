"""Private keys never reach a report or a log; key files are 0600."""

import glob
import os
import stat

import pytest

from helpers import catalogue, pki, run_target
import uptls_reports


def _key_bodies():
    """The base64 body lines of every private key the PKI holds."""
    lines = set()
    for path in glob.glob(os.path.join(pki().dir, "*.key")):
        with open(path) as f:
            for ln in f:
                ln = ln.strip()
                if ln and not ln.startswith("-----") and len(ln) >= 40:
                    lines.add(ln)
    assert lines
    return lines


@pytest.mark.parametrize("target", ["reference", "nginx"])
def test_no_private_key_in_reports_or_logs(tmp_path, target):
    sc = [s for s in catalogue() if s.family in ("client-cert", "sanity", "faults")]
    doc = run_target(target, sc, keep=True)
    run_dir = doc["run_dir"]
    try:
        uptls_reports.write_all(doc, str(tmp_path))
        bodies = _key_bodies()
        checked = 0
        for root in (run_dir, str(tmp_path)):
            for dirpath, _, files in os.walk(root):
                for name in files:
                    path = os.path.join(dirpath, name)
                    if name.endswith((".key", ".pem", ".conf", ".cfg")):
                        continue  # key material the target must read, in the run folder
                    with open(path, errors="replace") as f:
                        text = f.read()
                    checked += 1
                    assert "PRIVATE KEY" not in text, path
                    assert not any(b in text for b in bodies), path
        assert checked >= 5
    finally:
        import shutil
        shutil.rmtree(run_dir, ignore_errors=True)


def test_key_files_are_private():
    for path in glob.glob(os.path.join(pki().dir, "*.key")) + \
            glob.glob(os.path.join(pki().dir, "*.pass")):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
