"""Report writers: baseline diff, shard merge, escaping of peer strings,
the self-contained compare.html (and, in headless Chromium, its filter).

Most tests build result documents by hand (schema uptls-results/1), so
they do not depend on the catalogue of the day; the end-to-end ones run
`make conformance` / `make compare` against nginx as a user would.
"""

import copy
import html.parser
import json
import os
import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET

import pytest

from uptls import ROOT
import uptls_reports
from uptls_reports import compare, compare_html, compare_md, diff

HOSTILE = '<script>alert("x")</script> & "q"'
HOSTILE_MD = "<img src=x onerror=alert(1)>|`code`*bold* [link](javascript:x) \\| ~~s~~"
CTRL = "bad\x00bytes\x1b[31m\udc80"


# -- building result documents ------------------------------------------------------

def _hello(sni="backend.uptls.test", versions=("TLSv1.2", "TLSv1.3")):
    return {"versions": list(versions),
            "ciphers": ["TLS_AES_256_GCM_SHA384", "ECDHE-RSA-AES128-GCM-SHA256",
                        "TLS_EMPTY_RENEGOTIATION_INFO_SCSV"],
            "groups": ["x25519", "secp256r1"], "sigalgs": ["rsa_pss_rsae_sha256"],
            "sni": sni, "alpn": [], "session_id_len": 0, "ticket_offered": False,
            "psk_offered": False}


def _result(sid, verdict="pass", reason="every expectation held", version="TLSv1.3",
            sni="backend.uptls.test", subject="CN=uptls client-a,O=uptls", expected=None,
            error=None, resumed=False):
    conn = {"backend": "b1", "conn": 1, "ok": error is None, "requests": 1,
            "hello": _hello(sni)}
    if error is None:
        conn.update({"version": version, "cipher": "TLS_AES_256_GCM_SHA384", "resumed": resumed,
                     "sni": sni, "client_cert": {"subject": subject, "sha256": "ab",
                                                 "chain_len": 1, "verify": "ok"}})
    else:
        conn.update({"error": error, "alert": error})
    res = {"id": sid, "scenario": sid, "family": sid.split("/")[0], "title": f"title of {sid}",
           "importance": "high", "verdict": verdict, "reason": reason,
           "checks": "what it checks", "refs": ["RFC 8446"],
           "config_excerpt": f"location /u/{sid}/ {{\n    proxy_ssl_name {sni};\n}}",
           "steps": [{"step": 1, "location": "main",
                      "expected": expected or {"result": "accepted"},
                      "observed": {"responses": [{"status": 200, "backend": "b1",
                                                  "body": "ok", "time_ms": 1.0}],
                                   "connections": [conn]},
                      "failures": [] if verdict == "pass" else
                      [{"kind": "wrong-observation", "message": reason}]}]}
    if verdict == "fail":
        res["fail_kind"] = "wrong-observation"
    return res


def _doc(name, results, version="1.0", openssl="OpenSSL 3.0.x", started="2026-01-01T00:00:00+00:00"):
    s = {v: 0 for v in ("pass", "fail", "deviation", "note", "unsupported", "error")}
    for r in results:
        s[r["verdict"]] += 1
    return {"schema": "uptls-results/1",
            "target": {"name": name, "version": version, "binary": f"/usr/sbin/{name}",
                       "openssl": openssl},
            "started": started, "duration_s": 1.0, "summary": s, "scenarios": results}


IDS = ["sanity/plain-handshake", "sni/sent", "sni/absent", "trust/known-root", "trust/unknown-root",
       "session/tls12-reuse", "session/tls13-reuse", "protocol/default-versions"]


def _full(name, overrides=None, **kw):
    out = []
    for i in IDS:
        r = _result(i)
        if i == "protocol/default-versions":
            r["steps"][0]["expected"] = {"result": "accepted", "offered_versions_default_wire": True}
        out.append(r)
    for r in out:
        if overrides and r["id"] in overrides:
            r.update(overrides[r["id"]])
    return _doc(name, out, **kw)


def _hostile_doc(name="nginx"):
    rs = [_result("sanity/plain-handshake"),
          _result("hostile/subject", subject=HOSTILE, sni=HOSTILE, reason=HOSTILE_MD + CTRL),
          _result("hostile/error", verdict="fail", error=HOSTILE + CTRL,
                  reason=f"step 1: backend said {HOSTILE} {CTRL}")]
    rs[1]["steps"][0]["observed"]["responses"][0]["headers"] = {"X-Evil": HOSTILE}
    rs[1]["config_excerpt"] = "proxy_ssl_name " + HOSTILE + ";\n```\n</pre><script>x()</script>"
    d = _doc(name, rs)
    d["target"]["version"] = HOSTILE
    d["target_alerts"] = [HOSTILE]
    return d


# -- the diff behind BASELINE=file --------------------------------------------------

def test_diff_lists_new_fails_passes_changes_observations_added_removed():
    old = _full("nginx", {"trust/known-root": {"verdict": "fail", "reason": "was broken"},
                          "sni/absent": {"verdict": "note"}})
    new = copy.deepcopy(_full("nginx", version="1.1"))
    by = {r["id"]: r for r in new["scenarios"]}
    by["trust/unknown-root"].update(verdict="fail", reason="accepted an unknown root")
    by["session/tls13-reuse"].update(verdict="error", reason="target exited")
    c = by["sni/sent"]["steps"][0]["observed"]["connections"][0]
    c["hello"]["sni"] = c["sni"] = "other.example"
    by["session/tls12-reuse"]["steps"][0]["observed"]["connections"][0].update(
        version="TLSv1.2", resumed=True)
    by["protocol/default-versions"]["steps"][0]["observed"]["connections"][0]["hello"][
        "versions"] = ["TLSv1.3"]
    new["scenarios"] = [r for r in new["scenarios"] if r["id"] != "sni/absent"]
    new["scenarios"].append(_result("name/new-one", verdict="fail", reason="new and failing"))

    d = diff.diff_docs(old, new)
    assert d["target"] == {"version": ["1.0", "1.1"]}
    assert [(c["id"], c["old"], c["new"]) for c in d["new_bad"]] == [
        ("name/new-one", None, "fail"), ("session/tls13-reuse", "pass", "error"),
        ("trust/unknown-root", "pass", "fail")]
    assert [(c["id"], c["old"]) for c in d["new_pass"]] == [("trust/known-root", "fail")]
    assert {c["id"] for c in d["verdict_changes"]} == {
        "session/tls13-reuse", "trust/unknown-root", "trust/known-root"}
    obs = {(o["id"], o["what"]): (o["old"], o["new"]) for o in d["observations"]}
    assert obs == {
        ("sni/sent", "SNI"): (["backend.uptls.test"], ["other.example"]),
        ("session/tls12-reuse", "negotiated version"): (["TLSv1.3"], ["TLSv1.2"]),
        ("session/tls12-reuse", "resumed"): ([False], [True]),
        ("protocol/default-versions", "offered versions"): ([("TLSv1.2", "TLSv1.3")], [("TLSv1.3",)]),
    }
    assert d["added"] == ["name/new-one"] and d["removed"] == ["sni/absent"]
    assert d["unchanged"] == 1   # only the sanity scenario is as it was
    md = diff.baseline_markdown(d, "old.json")
    for needle in ("## New fails and errors", "## New passes", "## Changed observations",
                   "## Scenarios added", "## Scenarios removed", "other.example",
                   "1.0 → 1.1", "name/new-one"):
        assert needle in md, needle
    lines = "\n".join(diff.baseline_lines(d, "old.json"))
    assert "3 new fail/error, 1 new pass" in lines
    assert "trust/unknown-root: pass -> fail" in lines


def test_diff_of_identical_docs_is_empty_and_ignores_connection_count_noise():
    a = _full("nginx")
    b = copy.deepcopy(a)
    # One more connection that opened and closed without a handshake, and one
    # more with the same outcome: the same observation, not a change.
    conns = b["scenarios"][1]["steps"][0]["observed"]["connections"]
    conns.append({"backend": "b1", "conn": 2, "ok": None, "requests": 0})
    conns.append(copy.deepcopy(conns[0]))
    d = diff.diff_docs(a, b)
    assert not diff.has_changes(d)
    assert d["unchanged"] == len(IDS)
    assert "No change" in diff.baseline_markdown(d)


# -- merging result files ---------------------------------------------------------

def _shards(doc, n):
    """Split one result doc as SHARD=k/n does (stable slices of the sorted ids)."""
    ordered = sorted(doc["scenarios"], key=lambda r: r["id"])
    out = []
    for k in range(n):
        d = copy.deepcopy(doc)
        d["scenarios"] = [r for i, r in enumerate(ordered) if i % n == k]
        out.append((f"nginx-shard{k + 1}.json", d))
    return out


def test_shards_merge_into_one_column_without_gaps_or_duplicates():
    full = _full("nginx")
    cols = compare.merge(_shards(full, 3) + [("ref.json", _full("reference"))])
    assert [c["label"] for c in cols] == ["nginx", "reference"]
    nginx = cols[0]
    assert sorted(nginx["scenarios"]) == sorted(IDS)
    assert not nginx["overlaps"]
    assert nginx["summary"]["pass"] == len(IDS)
    m = compare.model(cols)
    assert [r["id"] for r in m["rows"]] == sorted(IDS, key=lambda i: (i.split("/")[0], i))
    assert all(r["cells"]["nginx"] is not None for r in m["rows"])   # no gap
    assert m["columns"][0]["missing"] == []
    assert "merged from 3 result files (8 scenarios)" in m["columns"][0]["notes"]


def test_overlapping_files_of_one_target_are_reported():
    full = _full("nginx")
    parts = _shards(full, 2)
    dup = copy.deepcopy(parts[0][1])
    dup["scenarios"][0]["verdict"] = "fail"
    cols = compare.merge(parts + [("again.json", dup)])
    assert len(cols) == 1
    c = cols[0]
    assert len(c["scenarios"]) == len(IDS)
    assert len(c["overlaps"]) == len(parts[0][1]["scenarios"])
    note = " ".join(c["notes"])
    assert "overlap" in note and "again.json" in note and "verdicts differ" in note
    md = compare_md.compare_markdown(compare.model(cols))
    assert "overlap" in md


def test_a_gap_is_shown_and_versions_are_separate_columns():
    a = _full("nginx", version="1.22.1")
    b = _full("nginx", version="1.25.3")
    b["scenarios"] = b["scenarios"][1:]
    m = compare.model(compare.merge([("a.json", a), ("b.json", b)]))
    assert [c["label"] for c in m["columns"]] == ["nginx 1.22.1", "nginx 1.25.3"]
    assert m["columns"][1]["missing"] == [IDS[0]]
    row = next(r for r in m["rows"] if r["id"] == IDS[0])
    assert row["verdicts"]["nginx 1.25.3"] == "absent" and not row["disagree"]


def test_disagreements_error_columns_and_fingerprint():
    m = compare.compare_docs(
        [_full("nginx"), _full("reference", {"sni/absent": {"verdict": "fail"}})],
        errors=[("haproxy", "uptls: TARGET=haproxy: unknown target")])
    assert m["disagreements"] == ["sni/absent"]
    hap = next(c for c in m["columns"] if c["label"] == "haproxy")
    assert hap["status"] == "error" and "unknown target" in hap["error"]
    assert all(r["verdicts"]["haproxy"] == "error" for r in m["rows"])
    fp = m["columns"][0]["fingerprint"]
    assert fp["source"] == "protocol/default-versions"
    assert fp["tls13_suites"] == ["TLS_AES_256_GCM_SHA384"]
    assert fp["tls12_suites"] == ["ECDHE-RSA-AES128-GCM-SHA256"]    # SCSV left out
    assert fp["groups"] == ["x25519", "secp256r1"]
    md = compare_md.compare_markdown(m)
    # CI summary order: summary table, then the disagreements, then details collapsed.
    i_sum, i_dis, i_det = md.index("| target |"), md.index("## Disagreements (1)"), md.index("<details>")
    assert i_sum < i_dis < i_det
    assert "could not run: uptls: TARGET=haproxy: unknown target" in md


def test_fingerprint_leaves_out_scsvs_written_as_code_points():
    """uptls-backend writes a suite OpenSSL cannot name as its code point:
    the SCSVs (0x00FF, 0x5600) are signals, not TLS 1.2 suites, whichever
    way they are written (the checks and the fingerprint share one table)."""
    doc = _full("nginx")
    for res in doc["scenarios"]:
        for st in res["steps"]:
            for c in st["observed"]["connections"]:
                c["hello"]["ciphers"] = ["TLS_AES_256_GCM_SHA384", "0x00FF",
                                         "ECDHE-RSA-AES128-GCM-SHA256", "0x5600", "0x1302"]
    fp = compare.compare_docs([doc])["columns"][0]["fingerprint"]
    assert fp["tls12_suites"] == ["ECDHE-RSA-AES128-GCM-SHA256"]
    assert fp["tls13_suites"] == ["TLS_AES_256_GCM_SHA384", "0x1302"]


# -- escaping -----------------------------------------------------------------------

class _Tags(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.text, self.attrs = [], [], []
        self._in_script = False
        self.script_text = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        (self.script_text if self._in_script else self.text).append(data)


def _parse(page):
    p = _Tags()
    p.feed(page)
    p.close()
    return p


def test_hostile_strings_render_as_text_in_html():
    page = compare_html.compare_html(compare.compare_docs([_hostile_doc()]))
    p = _parse(page)
    assert p.tags.count("script") == 1                      # ours, and only ours
    assert "".join(p.script_text).strip() == compare_html.JS.strip()
    assert "img" not in p.tags
    text = "".join(p.text)
    assert HOSTILE in text                                  # shown, as text
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &quot;q&quot;" in page
    for tag, attrs in p.attrs:
        assert not any(k.startswith("on") for k in attrs), (tag, attrs)


def test_hostile_strings_stay_plain_text_in_markdown():
    d = _hostile_doc()
    for md in (uptls_reports.markdown(d), compare_md.compare_markdown(compare.compare_docs([d])),
               diff.baseline_markdown(diff.diff_docs(_doc("nginx", []), d))):
        assert "<script" not in md and "<img" not in md and "<b>" not in md
        assert "&lt;script&gt;" in md
        # A hostile "|" cannot open a cell, a hostile backslash cannot unescape
        # one: every row of a table has as many cell separators as its header.
        width = None
        for line in md.splitlines():
            if not line.startswith("|"):
                width = None
                continue
            seps = len(re.findall(r"(?<!\\)\|", line.replace("\\\\", "")))
            if width is None:
                width = seps
            assert seps == width, line
        assert not re.search(r"(?<!\\)\]\(javascript", md)     # no live link


def test_hostile_strings_stay_valid_in_json_and_junit(tmp_path):
    d = _hostile_doc()
    paths = uptls_reports.write_all(d, str(tmp_path))
    assert set(paths) == {"json", "junit", "md", "html"}
    back = json.loads(open(paths["json"], encoding="utf-8").read())
    assert back["scenarios"][1]["steps"][0]["observed"]["connections"][0]["client_cert"][
        "subject"] == HOSTILE
    assert back["scenarios"][1]["reason"] == HOSTILE_MD + CTRL   # even the lone surrogate
    root = ET.parse(paths["junit"]).getroot()                   # well-formed despite \x00, \x1b
    fail = root.find(".//failure")
    assert HOSTILE in fail.get("message") and "\\x00" in fail.get("message")
    assert HOSTILE in fail.text
    assert root.find("properties/property[@name='target.version']").get("value") == HOSTILE


def test_real_hostile_subject_from_the_pki_renders_as_text(tmp_path):
    """server-hostile's subject, observed on the wire by the backend, through a real run."""
    sc = tmp_path / "scenarios" / "hostile"
    sc.mkdir(parents=True)
    (sc / "client-cert-subject.toml").write_text('''
title = "a certificate subject made of markup reaches the report as text"
importance = "low"
checks = "report escaping"
refs = ["tests/test_reports.py"]
[proxy]
trusted_ca = ["root-a"]
verify = true
verify_depth = 1
verify_name = "backend.uptls.test"
client_certificate = "server-hostile"
[[backend]]
name = "b1"
certificate = "server-hostile"
client_auth = "request"
client_ca = ["root-a"]
[[step]]
expect = { result = "accepted", client_cert = "server-hostile" }
''')
    out = tmp_path / "out"
    r = subprocess.run(["make", "-s", "conformance", "TARGET=nginx", f"REPORT_DIR={out}",
                        f"PYTEST_ARGS=--scenario-dir={tmp_path / 'scenarios'}"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads((out / "nginx.json").read_text())
    subj = doc["scenarios"][0]["steps"][0]["observed"]["connections"][0]["client_cert"]["subject"]
    assert "alert(" in subj and "<" in subj and "&" in subj
    page = (out / "nginx.html").read_text()
    p = _parse(page)
    assert p.tags.count("script") == 1
    assert subj in "".join(p.text)                       # the subject, as text
    assert "\\<b\\>" not in page and "Evil \\&lt;b\\&gt;Corp" in page
    ET.parse(out / "nginx.junit.xml")
    assert "<script" not in (out / "nginx.md").read_text()


# -- compare.html is self-contained --------------------------------------------------

def test_compare_html_is_self_contained():
    page = compare_html.compare_html(compare.compare_docs(
        [_full("nginx"), _hostile_doc("reference")], errors=[("haproxy", "unknown target")]))
    p = _parse(page)
    for tag, attrs in p.attrs:
        for k in ("src", "href", "srcset", "action", "data", "poster"):
            v = attrs.get(k) or ""
            assert not re.match(r"\s*(https?:)?//", v), (tag, k, v)
    assert "link" not in p.tags and "iframe" not in p.tags and "img" not in p.tags
    assert not re.search(r"@import|url\(", compare_html.CSS)
    assert not re.search(r"https?://", compare_html.JS + compare_html.CSS)
    assert 'src="' not in page.split("<script>")[1]    # the one script is inline


# -- end to end: make compare -----------------------------------------------------

def _make(*args, timeout=600):
    return subprocess.run(["make", "-s", "--no-print-directory", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def test_make_compare_shows_a_target_that_cannot_run_as_an_error_column(tmp_path):
    r = _make("compare", "TARGETS=nginx no-such-target", f"REPORT_DIR={tmp_path}",
              "SCENARIOS=sanity/*,sni/*")
    assert r.returncode != 0        # a column could not run
    m = json.loads((tmp_path / "compare.json").read_text())
    labels = [c["label"] for c in m["columns"]]
    assert labels == ["nginx", "no-such-target"]
    bad = m["columns"][1]
    assert bad["status"] == "error" and "unknown target" in bad["error"], bad
    assert m["columns"][0]["status"] == "ok" and m["columns"][0]["summary"]["pass"] >= 1
    for f in ("compare.md", "compare.html", "nginx/nginx.json", "nginx/nginx.junit.xml"):
        assert (tmp_path / f).exists(), f


def test_make_compare_merges_real_shards(tmp_path):
    res = tmp_path / "results"
    for k in (1, 2):
        r = _make("conformance", "TARGET=nginx", f"REPORT_DIR={res}/shard{k}", f"SHARD={k}/2",
                  "SCENARIOS=sanity/*,sni/*,trust/*,protocol/*")
        assert r.returncode in (0, 1), r.stdout + r.stderr
    r = _make("conformance", "TARGET=nginx", f"REPORT_DIR={tmp_path}/whole",
              "SCENARIOS=sanity/*,sni/*,trust/*,protocol/*")
    whole = json.loads((tmp_path / "whole" / "nginx.json").read_text())
    r = _make("compare", f"RESULTS={res}", f"REPORT_DIR={tmp_path}/cmp")
    m = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert [c["label"] for c in m["columns"]] == ["nginx"], r.stdout + r.stderr
    assert {r["id"] for r in m["rows"]} == {s["id"] for s in whole["scenarios"]}
    assert not m["columns"][0]["overlaps"]
    assert "merged from 2 result files" in " ".join(m["columns"][0]["notes"])


# -- headless Chromium: the page works in a browser ------------------------------

def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


def _dump_dom(page_path, query=""):
    exe = _chromium()
    profile = tempfile.mkdtemp(prefix="uptls-chromium-")
    try:
        r = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu",
                            "--disable-background-networking", "--disable-component-update",
                            "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                            "--dump-dom", f"file://{page_path}{query}"],
                           capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert r.returncode == 0 and "<html" in r.stdout, r.stderr[-2000:]
    return r.stdout


class _Rows(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows, self.targets, self.body = [], [], {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and "row" in (a.get("class") or "").split():
            self.rows.append(a)
        if tag == "th" and "target" in (a.get("class") or "").split():
            self.targets.append(a.get("data-target"))
        if tag == "body":
            self.body = a


@pytest.mark.skipif(_chromium() is None,
                    reason="chromium is not installed (apt-get install chromium; make deps does)")
def test_compare_html_in_headless_chromium(tmp_path):
    hostile = _hostile_doc("apache")
    hostile["scenarios"][2]["consequence"] = HOSTILE + HOSTILE_MD   # in the findings section
    hostile["invocation"] = {"target": HOSTILE, "target_bin": HOSTILE_MD}
    m = compare.compare_docs(
        [_full("nginx"), _full("reference", {"sni/absent": {"verdict": "fail"},
                                             "trust/unknown-root": {"verdict": "deviation"}}),
         hostile],
        errors=[("haproxy", "uptls: TARGET=haproxy: unknown target")])
    paths = compare.write_compare(m, str(tmp_path))
    page = os.path.abspath(paths["html"])
    want = {"nginx", "reference", "apache", "haproxy"}

    dom = _dump_dom(page)
    p = _Rows()
    p.feed(dom)
    assert set(p.targets) == want
    assert p.body.get("data-only") == "all"       # the script ran
    assert p.rows and not any("hidden" in r for r in p.rows)
    assert dom.count("<script") == 1               # no hostile script element was created
    assert "&lt;script&gt;alert(\"x\")&lt;/script&gt;" in dom
    assert "<img" not in dom
    # the findings lead the page, one row each, the hostile consequence as text
    assert dom.index('id="findings"') < dom.index('id="matrix"')
    finding_rows = re.findall(r'<tr class="finding" data-id="([^"]+)"', dom)
    assert finding_rows == [r["id"] for r in m["findings"]]
    assert {"sni/absent", "trust/unknown-root", "hostile/error"} <= set(finding_rows)
    assert "&lt;img src=x onerror=alert(1)&gt;" in dom.split('id="findings"')[1]

    for query in ("?only=disagree", "#only=disagree"):
        dom = _dump_dom(page, query)
        p = _Rows()
        p.feed(dom)
        assert p.body.get("data-only") == "disagree", query
        assert set(p.targets) == want
        shown = [r["data-id"] for r in p.rows if "hidden" not in r]
        assert shown and set(shown) == set(m["disagreements"]), (query, shown)
        assert {"sni/absent", "trust/unknown-root"} <= set(shown)

    dom = _dump_dom(page, "?sort=disagree")
    p = _Rows()
    p.feed(dom)
    flags = [r["data-disagree"] for r in p.rows]
    first = flags[:len(m["disagreements"])]
    assert first == ["1"] * len(first)            # disagreements brought to the top


# -- findings first (#15) -------------------------------------------------------------

from uptls_reports import findings as findings_mod  # noqa: E402


def _finding_doc():
    """Every verdict, importance and fail kind, out of order."""
    def r(sid, verdict, importance, kind=None, **kw):
        res = _result(sid, verdict="fail" if verdict in ("fail", "deviation") else verdict)
        res.update(verdict=verdict, importance=importance, **kw)
        res.pop("fail_kind", None)
        if kind:
            res["fail_kind"] = kind
        return res
    rs = [r("sanity/plain-handshake", "pass", "critical"),
          r("zz/low-note", "note", "low", reason="a low note"),
          r("name/med-refusal", "deviation", "medium", "unexpected-refusal",
            deviation={"source": "name source", "reason": "r", "kind": "unexpected-refusal"}),
          r("trust/crit-wrong", "fail", "critical", "wrong-observation"),
          r("zz/high-note", "note", "high", reason="the note text",
            consequence="a user of the high note gets this"),
          r("session/crit-accept-dev", "deviation", "critical", "unexpected-accept",
            consequence="the scenario's own sentence",
            deviation={"source": "the source", "reason": "r", "kind": "unexpected-accept"}),
          r("session/crit-accept-fail", "fail", "critical", "unexpected-accept"),
          r("newfamily/high-accept", "fail", "high", "unexpected-accept"),
          r("trust/unsupported", "unsupported", "critical"),
          r("trust/error", "error", "critical"),
          r("name/med-wrong", "fail", "medium", "wrong-observation")]
    for i, res in enumerate(rs):
        res["duration_s"] = round(0.5 + i * 0.25, 3)
    return _doc("nginx", rs)


FINDING_ORDER = ["session/crit-accept-fail", "session/crit-accept-dev", "trust/crit-wrong",
                 "newfamily/high-accept", "zz/high-note", "name/med-refusal", "name/med-wrong",
                 "zz/low-note"]


def test_findings_order_is_importance_then_kind_notes_last_of_their_importance():
    fs = findings_mod.findings(_finding_doc())
    assert [f["id"] for f in fs] == FINDING_ORDER
    by = {f["id"]: f for f in fs}
    # where each consequence comes from: the scenario, the note, family x kind, kind alone
    assert by["session/crit-accept-dev"]["consequence"] == "the scenario's own sentence"
    assert by["zz/high-note"]["consequence"] == "a user of the high note gets this"
    assert by["zz/low-note"]["consequence"] == "a low note"
    assert by["session/crit-accept-fail"]["consequence"] == \
        findings_mod.FAMILY_CONSEQUENCE[("session", "unexpected-accept")]
    assert by["newfamily/high-accept"]["consequence"] == \
        findings_mod.KIND_CONSEQUENCE["unexpected-accept"]
    assert [by[i]["consequence_from"] for i in ("session/crit-accept-dev", "zz/low-note",
                                                  "trust/crit-wrong", "newfamily/high-accept")] \
        == ["scenario", "note", "family", "kind"]
    assert by["session/crit-accept-dev"]["source"] == "the source"
    assert by["trust/crit-wrong"]["source"] is None
    assert by["name/med-wrong"]["repro"] == "make repro TARGET=nginx SCENARIO=name/med-wrong"


def test_repro_command_repeats_the_runs_target_and_binary_quoted():
    d = _finding_doc()
    d["invocation"] = {"target": "exec:examples/adapters/nginx", "target_bin": "/opt/my nginx"}
    f = findings_mod.findings(d)[0]
    assert f["repro"] == ("make repro TARGET=exec:examples/adapters/nginx "
                          "SCENARIO=session/crit-accept-fail 'TARGET_BIN=/opt/my nginx'")


def test_reports_begin_with_the_findings_and_list_the_slowest(tmp_path):
    d = _finding_doc()
    paths = uptls_reports.write_all(d, str(tmp_path))
    md = open(paths["md"], encoding="utf-8").read()
    heads = [ln for ln in md.splitlines() if ln.startswith("#")]
    assert heads[:2] == ["# uptls: nginx 1.0", "## Findings (8)"]
    items = re.findall(r"^\d+\. \*\*(\S+)\*\*", md, re.M)
    assert [i.replace("\\_", "_") for i in items] == FINDING_ORDER
    slow = md.split("## Slowest 5 scenarios")[1].split("##")[0]
    assert re.findall(r"^\| (\S+) \| ([\d.]+) \|", slow, re.M)[:2] == \
        [("name/med-wrong", "3.00"), ("trust/error", "2.75")]
    page = open(paths["html"], encoding="utf-8").read()
    assert re.findall(r"<h2>([^<]*)</h2>", page)[0] == "Findings (8)"
    assert re.findall(r'<tr class="finding" data-id="([^"]+)"', page) == FINDING_ORDER
    # the targets table names the result file, never a placeholder
    assert "&lt;doc" not in page and f'>{html.escape(paths["json"])}</div>' in page
    root = ET.parse(paths["junit"]).getroot()
    times = {tc.get("name"): tc.get("time") for tc in root.iter("testcase")}
    assert times["name/med-wrong"] == "3.0" and times["sanity/plain-handshake"] == "0.5"
    lines = findings_mod.findings_lines(d)
    assert lines[0].startswith("uptls findings (8)") and FINDING_ORDER[0] in lines[1]
    assert findings_mod.slowest_lines(d)[0].startswith("uptls slowest 5: name/med-wrong 3.00 s")


def test_a_page_without_result_paths_names_no_file():
    page = compare_html.compare_html(compare.compare_docs([_finding_doc()]))
    assert "&lt;doc" not in page and "<doc" not in page
    assert 'ran</td>' in page


def test_compare_findings_side_by_side():
    a = _finding_doc()
    b = _full("haproxy", {"session/tls12-reuse": {"verdict": "deviation", "importance": "critical",
                                                  "fail_kind": "unexpected-accept",
                                                  "deviation": {"source": "haproxy src"}}})
    b["scenarios"] += [copy.deepcopy(r) for r in a["scenarios"] if r["id"] == "name/med-refusal"]
    b["scenarios"][-1]["deviation"]["source"] = "haproxy doc"
    m = compare.compare_docs([a, b])
    rows = m["findings"]
    assert [r["id"] for r in rows][:3] == ["session/crit-accept-fail", "session/crit-accept-dev",
                                           "session/tls12-reuse"]
    row = next(r for r in rows if r["id"] == "name/med-refusal")
    assert {x: (f["verdict"], f["source"]) for x, f in row["targets"].items()} == \
        {"nginx": ("deviation", "name source"), "haproxy": ("deviation", "haproxy doc")}
    assert next(r for r in rows if r["id"] == "trust/crit-wrong")["others"] == {"haproxy": "absent"}
    assert json.loads(json.dumps(m))["findings"] == rows          # compare.json holds them
    md = compare_md.compare_markdown(m)
    assert md.index("## Findings (9)") < md.index("| target | version")
    assert "haproxy**: medium · unexpected-refusal · deviation; source: haproxy doc" in md
    page = compare_html.compare_html(m)
    assert page.index("<h2>Findings (9)</h2>") < page.index("<h2>Targets</h2>")


def test_hostile_consequence_source_and_target_in_the_findings(tmp_path):
    d = _hostile_doc()
    d["invocation"] = {"target": HOSTILE, "target_bin": HOSTILE_MD + CTRL}
    d["scenarios"][2].update(consequence=HOSTILE_MD + CTRL, verdict="deviation",
                             deviation={"source": HOSTILE + CTRL, "reason": HOSTILE})
    d["summary"] = {**d["summary"], "fail": 0, "deviation": 1}
    paths = uptls_reports.write_all(d, str(tmp_path))
    md = open(paths["md"], encoding="utf-8").read()
    section = md.split("## Findings")[1].split("Binary ")[0]
    assert "hostile/error" in section and "&lt;script&gt;" in section
    assert "<script" not in section and "<img" not in section and "\\`code\\`" in section
    assert not re.search(r"(?<!\\)\]\(javascript", section)
    page = open(paths["html"], encoding="utf-8").read()
    p = _parse(page)
    assert p.tags.count("script") == 1 and "img" not in p.tags
    found = page.split('<section id="findings">')[1].split("</section>")[0]
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in found      # source, target
    assert "&lt;img src=x onerror=alert(1)&gt;" in found                      # consequence
    for text in findings_mod.findings_lines(d):
        assert "\x1b" not in text and "\x00" not in text
    cmd = findings_mod.findings(d)[0]["repro"]
    assert cmd.startswith("make repro 'TARGET=<script>")                       # shell-quoted


def test_note_consequence_needs_a_note(tmp_path):
    from uptls import UptlsError, catalogue as cat_mod
    p = tmp_path / "fam" / "a.toml"
    p.parent.mkdir()
    p.write_text('title = "t"\nimportance = "low"\nchecks = "c"\nrefs = ["r"]\n'
                 'note_consequence = "n"\nconsequence = "c"\n[proxy]\nverify = false\n'
                 '[[backend]]\nname = "b1"\ncertificate = "server-a"\n'
                 '[[step]]\nexpect = { result = "accepted" }\n')
    with pytest.raises(UptlsError, match="note_consequence without a note"):
        cat_mod.load_catalogue(str(tmp_path))
    p.write_text(p.read_text().replace('note_consequence = "n"\n', ""))
    assert cat_mod.load_catalogue(str(tmp_path))[0].consequence == "c"


NGINX_FINDINGS = ["session/locations-do-not-share-verification",
                  "session/locations-do-not-share-client-identity",
                  "session/no-session-from-failed-verification-tls12",
                  "seed-example/as-written",
                  "name/ip-upstream-ip-san-accepted",
                  "session/locations-do-not-share-server-name",
                  "trust/verify-off-accepts-untrusted",
                  "name/cn-only-certificate",
                  "protocol/legacy-without-seclevel-refused"]


def test_make_conformance_nginx_reports_begin_with_its_findings(tmp_path):
    """The done-when of #15: nginx.md and nginx.html begin with the five nginx
    deviations and four notes, most important first (these scenarios and a
    few that pass, so a scenario other branches add cannot move the list)."""
    r = _make("conformance", "TARGET=nginx", f"REPORT_DIR={tmp_path}",
              "SCENARIOS=" + ",".join(NGINX_FINDINGS + ["sni/default-off", "name/san-match-accepted"]))
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads((tmp_path / "nginx.json").read_text())
    assert all(isinstance(s["duration_s"], float) for s in doc["scenarios"])
    by = {s["id"]: s for s in doc["scenarios"]}
    assert [by[i]["verdict"] for i in NGINX_FINDINGS] == ["deviation"] * 3 + ["note"] + \
        ["deviation"] * 2 + ["note"] * 3
    assert "CA restriction can be bypassed" in by[NGINX_FINDINGS[0]]["consequence"]
    assert "consequence" not in by["name/san-match-accepted"]
    md = (tmp_path / "nginx.md").read_text()
    assert md.splitlines()[2] == "## Findings (9)"
    assert [i.replace("\\_", "_") for i in re.findall(r"^\d+\. \*\*(\S+)\*\*", md, re.M)] \
        == NGINX_FINDINGS
    assert "`make repro TARGET=nginx SCENARIO=session/locations-do-not-share-verification`" in md
    page = (tmp_path / "nginx.html").read_text()
    assert re.findall(r"<h2>([^<]*)</h2>", page)[0] == "Findings (9)"
    assert re.findall(r'<tr class="finding" data-id="([^"]+)"', page) == NGINX_FINDINGS
    assert f'>{tmp_path / "nginx.json"}</div>' in page
    junit = ET.parse(tmp_path / "nginx.junit.xml").getroot()
    assert all(float(tc.get("time")) > 0 for tc in junit.iter("testcase"))
    out = r.stdout
    assert out.index("uptls findings (9)") < out.index("uptls nginx ")   # the summary's first
    assert "uptls slowest 5:" in out
