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
    m = compare.compare_docs(
        [_full("nginx"), _full("reference", {"sni/absent": {"verdict": "fail"},
                                             "trust/unknown-root": {"verdict": "deviation"}}),
         _hostile_doc("apache")],
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
