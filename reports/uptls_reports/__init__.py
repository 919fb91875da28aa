"""Report writers. The JSON result file is the source of truth (schema
uptls-results/1); JUnit XML and Markdown are drawn from it, so they can
also be regenerated from a result file made elsewhere.

Every string that came from a peer (certificate subjects, SNI, headers,
error text) is escaped for the format it lands in.
"""

import json
import os
import re
import xml.etree.ElementTree as ET

from uptls_vocab import BAD, WORST_FIRST, Verdict

VERDICT_ORDER = WORST_FIRST
MARK = {Verdict.PASS: "✅ pass", Verdict.FAIL: "❌ fail", Verdict.DEVIATION: "⚠️ deviation",
        Verdict.NOTE: "📝 note", Verdict.UNSUPPORTED: "➖ unsupported", Verdict.ERROR: "💥 error"}


def _atomic_write(path, text):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    # backslashreplace: a lone surrogate (undecodable peer bytes) becomes
    # \\udcXX, which is still valid JSON and readable text elsewhere.
    with open(tmp, "w", encoding="utf-8", errors="backslashreplace") as f:
        f.write(text)
    os.replace(tmp, path)


def write_all(doc, report_dir):
    """Write <target>.json, .junit.xml, .md and .html; return their paths."""
    name = doc["target"]["name"]
    if doc["target"].get("faults"):
        name += "+" + "+".join(doc["target"]["faults"])
    paths = {
        "json": os.path.join(report_dir, f"{name}.json"),
        "junit": os.path.join(report_dir, f"{name}.junit.xml"),
        "md": os.path.join(report_dir, f"{name}.md"),
        "html": os.path.join(report_dir, f"{name}.html"),
    }
    _atomic_write(paths["json"], json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    _atomic_write(paths["junit"], junit(doc))
    _atomic_write(paths["md"], markdown(doc))
    from . import compare, compare_html
    # The targets table names the result file this page was drawn from.
    _atomic_write(paths["html"], compare_html.compare_html(
        compare.compare_docs([doc], paths=[paths["json"]]),
        title=f"uptls: {name} {doc['target'].get('version') or ''}"))
    return paths


# Characters XML 1.0 cannot carry at all (not even escaped): control
# characters other than tab/newline/CR, lone surrogates, U+FFFE/U+FFFF.
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_safe(text):
    """Text ElementTree can serialize into well-formed XML: the characters XML
    cannot hold are written as \\xNN / \\uNNNN; <, & and quotes are escaped by ET."""
    return _XML_BAD.sub(lambda m: "\\x%02x" % ord(m.group()) if ord(m.group()) < 0x100
                        else "\\u%04x" % ord(m.group()), str(text))


def _detail(res):
    """Expected vs observed, as plain text, for a failure message."""
    out = [f"{res['id']}: {res['verdict']} — {res['reason']}"]
    for st in res.get("steps", []):
        out.append(f"step {st['step']} (location {st['location']}):")
        out.append("  expected: " + json.dumps(st["expected"], ensure_ascii=False))
        obs = st["observed"]
        out.append("  responses: " + json.dumps(
            [{k: r.get(k) for k in ("status", "backend")} for r in obs["responses"]]))
        for c in obs["connections"]:
            hello = c.get("hello") or {}
            brief = {k: c.get(k) for k in ("backend", "conn", "ok", "version", "cipher",
                                            "resumed", "sni", "error", "requests") if k in c}
            if c.get("client_cert") is not None:
                brief["client_cert"] = c["client_cert"].get("subject")
            brief["offered_versions"] = hello.get("versions")
            out.append("  conn: " + json.dumps(brief, ensure_ascii=False))
        for f in st["failures"]:
            out.append(f"  ✗ {f['kind']}: {f['message']}")
    if res.get("config_excerpt"):
        out.append("config:\n" + res["config_excerpt"])
    return "\n".join(out)


def junit(doc):
    s = doc["summary"]
    X = xml_safe
    suite = ET.Element("testsuite", {
        "name": X(f"uptls.{doc['target']['name']}"),
        "tests": str(len(doc["scenarios"])),
        "failures": str(s.get(Verdict.FAIL, 0)), "errors": str(s.get(Verdict.ERROR, 0)),
        "skipped": str(s.get(Verdict.UNSUPPORTED, 0)), "time": str(doc.get("duration_s", 0)),
        "timestamp": X(doc.get("started", ""))})
    props = ET.SubElement(suite, "properties")
    for k, v in doc["target"].items():
        ET.SubElement(props, "property", {"name": X(f"target.{k}"), "value": X(v)})
    for res in doc["scenarios"]:
        tc = ET.SubElement(suite, "testcase", {"classname": X(f"uptls.{res['family']}"),
                                               "name": X(res["id"]),
                                               "time": str(res.get("duration_s") or 0)})
        v = res["verdict"]
        if v == Verdict.FAIL:
            el = ET.SubElement(tc, "failure", {"message": X(res["reason"][:1000]),
                                               "type": X(res.get("fail_kind", "fail"))})
            el.text = X(_detail(res))
        elif v == Verdict.ERROR:
            el = ET.SubElement(tc, "error", {"message": X(res["reason"][:1000]), "type": "error"})
            el.text = X(_detail(res))
        elif v == Verdict.UNSUPPORTED:
            ET.SubElement(tc, "skipped", {"message": X("unsupported: " + res["reason"][:1000])})
        else:
            ET.SubElement(tc, "system-out").text = X(f"{v}: {res['reason']}")
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def md_escape(text):
    """Text safe inside a Markdown table cell: no markup, no HTML, no row breaks."""
    text = str(text)
    for a, b in (("\\", "\\\\"), ("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", "\\|"),
                 ("~", "\\~"),
                 ("`", "\\`"), ("*", "\\*"), ("_", "\\_"), ("[", "\\["), ("]", "\\]")):
        text = text.replace(a, b)
    return " ".join(text.split())


def markdown(doc):
    """<target>.md: the findings first, then the counts, the slowest
    scenarios, failures and errors, and every scenario (collapsed)."""
    from .findings import findings_md, slowest_md  # they import md_escape from here
    t, s = doc["target"], doc["summary"]
    lines = [f"# uptls: {md_escape(t['name'])} {md_escape(t.get('version', ''))}", ""]
    lines += findings_md(doc)
    lines += [f"Binary {md_escape(t.get('binary'))}, "
              f"{md_escape(t.get('tls_library') or t.get('openssl'))}; "
             f"started {doc.get('started')}, {doc.get('duration_s')} s.", "",
             "| " + " | ".join(VERDICT_ORDER) + " |",
             "|" + "---|" * len(VERDICT_ORDER),
             "| " + " | ".join(str(s.get(v, 0)) for v in VERDICT_ORDER) + " |", ""]
    lines += slowest_md(doc)
    bad = [r for r in doc["scenarios"] if r["verdict"] in BAD]
    if bad:
        lines += ["## Failures", ""]
        for r in bad:
            kind = f" ({r['fail_kind']})" if r.get("fail_kind") else ""
            lines.append(f"- **{md_escape(r['id'])}** [{r['importance']}]{kind}: "
                         f"{md_escape(r['reason'])}")
        lines.append("")
    # Details collapsed (fit for a CI job summary): the table opens on click.
    lines += [f"<details><summary>All {len(doc['scenarios'])} scenarios</summary>", "",
              "| scenario | importance | verdict | reason |", "|---|---|---|---|"]
    for r in sorted(doc["scenarios"], key=lambda r: (r["family"], r["id"])):
        lines.append(f"| {md_escape(r['id'])} | {r['importance']} | {MARK[r['verdict']]} | "
                     f"{md_escape(r['reason'][:300])} |")
    lines += ["", "</details>"]
    if doc.get("target_alerts"):
        lines += ["", "## Target log alerts not tied to a scenario", ""]
        lines += [f"- {md_escape(a)}" for a in doc["target_alerts"]]
    return "\n".join(lines) + "\n"
