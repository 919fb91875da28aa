"""The comparison across every built-in target (#16): make compare over the
eleven targets writes compare.{json,md,html}, every column ran, and the page
shows eleven columns in headless Chromium, with a default-ClientHello
fingerprint (versions, suites, groups, signature algorithms, ALPN, extension
order) per TLS stack. A subset of the catalogue keeps it quick: the sanity
scenario and the documented-default-versions scenario (the fingerprint's
source) run on every target."""

import json
import subprocess

from test_reports import _chromium, _dump_dom, _Rows
from uptls import ROOT, targets

ALL = sorted(targets.TARGETS)


def test_eleven_targets_side_by_side(tmp_path):
    assert len(ALL) == 11, ALL
    out = tmp_path / "out"
    r = subprocess.run(["make", "-s", "compare", f"TARGETS={' '.join(ALL)}",
                        "SCENARIOS=sanity/*,protocol/default-versions", f"REPORT_DIR={out}"],
                       cwd=ROOT, capture_output=True, text=True, timeout=600,
                       stdin=subprocess.DEVNULL)
    m = json.loads((out / "compare.json").read_text())
    assert (out / "compare.md").exists() and (out / "compare.html").exists()
    cols = {c["target"]["name"]: c for c in m["columns"]}
    assert sorted(cols) == ALL, r.stdout[-3000:]
    assert all(c["status"] == "ok" for c in cols.values()), \
        {n: c.get("error") for n, c in cols.items() if c["status"] != "ok"}
    # every stack's default ClientHello, with ALPN and extension order
    for name, c in cols.items():
        fp = c["fingerprint"]
        assert fp.get("source") and fp["versions"] and fp["extensions"], (name, fp)
    assert cols["caddy"]["target"]["tls_library"].startswith("Go")
    assert _chromium(), "chromium is not installed (make deps)"
    p = _Rows()
    p.feed(_dump_dom(str(out / "compare.html")))
    assert sorted(p.targets) == sorted(c["label"] for c in m["columns"])
    assert len(p.targets) == 11
