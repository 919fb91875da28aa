"""make conformance as a user runs it: reports, exit codes, clear errors."""

import json
import os
import stat
import xml.etree.ElementTree as ET

from helpers import conformance


def test_nginx_subset_writes_three_reports(tmp_path):
    out = tmp_path / "out"
    r = conformance("TARGET=nginx", "SCENARIOS=sanity/*,trust/*", f"REPORT_DIR={out}")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads((out / "nginx.json").read_text())
    assert doc["schema"] == "uptls-results/1"
    assert doc["target"]["version"] and doc["target"]["openssl"].startswith("OpenSSL")
    assert {s["family"] for s in doc["scenarios"]} == {"sanity", "trust"}
    assert doc["summary"]["fail"] == 0 and doc["summary"]["error"] == 0
    suite = ET.parse(out / "nginx.junit.xml").getroot()
    assert int(suite.get("tests")) == len(doc["scenarios"])
    assert "trust/unknown-root-refused" in (out / "nginx.md").read_text()
    # one line per scenario while it runs, and the summary
    assert "trust/unknown-root-refused" in r.stdout
    assert "uptls nginx" in r.stdout


def test_missing_target_bin_is_one_clear_line(tmp_path):
    r = conformance("TARGET=nginx", "TARGET_BIN=/nonexistent/nginx", f"REPORT_DIR={tmp_path}")
    assert r.returncode == 2
    assert "TARGET_BIN=/nonexistent/nginx" in r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr


def test_unknown_target_is_one_clear_line(tmp_path):
    r = conformance("TARGET=nosuch", f"REPORT_DIR={tmp_path}")
    assert r.returncode == 2
    out = r.stdout + r.stderr
    assert "unknown target" in out and "nginx" in out


def test_target_that_exits_at_start(tmp_path):
    fake = tmp_path / "nginx"
    # Passes -V and -t, then dies when really started.
    fake.write_text("#!/bin/sh\ncase \"$1\" in -V) echo 'nginx version: nginx/9.9.9' >&2;;"
                    " -t) exit 0;; *) echo 'boom: cannot start' >&2; exit 1;; esac\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    r = conformance("TARGET=nginx", f"TARGET_BIN={fake}", f"REPORT_DIR={tmp_path}", timeout=60)
    assert r.returncode == 2, r.stdout
    out = r.stdout + r.stderr
    assert "exited at start" in out and "boom: cannot start" in out
    assert "Traceback" not in r.stdout + r.stderr


def test_broken_scenario_file_names_file_and_key(tmp_path):
    d = tmp_path / "cat" / "fam"
    d.mkdir(parents=True)
    (d / "bad.toml").write_text('title = "x"\nimportance = "low"\nchecks = "c"\nrefs = []\n'
                                '[proxy]\nverfiy = true\n[[backend]]\nname = "b"\n'
                                'certificate = "server-a"\n[[step]]\n'
                                'expect = { result = "accepted" }\n')
    r = conformance("TARGET=reference", f"REPORT_DIR={tmp_path}",
                    f"PYTEST_ARGS=--scenario-dir={tmp_path / 'cat'}")
    assert r.returncode == 2
    out = r.stdout + r.stderr
    assert "bad.toml" in out and "'verfiy'" in out
    assert "Traceback" not in r.stdout + r.stderr
    assert not os.path.exists(tmp_path / "reference.json")
