"""compare.md: the side-by-side comparison (compare.model()) in Markdown,
compact enough for a CI job summary (details collapsed)."""

from uptls_vocab import Verdict

from . import MARK, VERDICT_ORDER, md_escape
from .compare import FINGERPRINT_FIELDS
from .findings import compare_findings_md


def _cell_md(v):
    return MARK.get(v, "— absent" if v == "absent" else md_escape(v))


def compare_markdown(m, title="uptls: side-by-side comparison"):
    cols = m["columns"]
    labels = [c["label"] for c in cols]
    L = [f"# {md_escape(title)}", ""]
    L += compare_findings_md(m)
    L += ["| target | version | TLS library | " + " | ".join(VERDICT_ORDER) + " | status |",
          "|---|---|---|" + "---|" * len(VERDICT_ORDER) + "---|"]
    for c in cols:
        t, s = c["target"], c["summary"]
        status = "ran" if c["status"] == "ok" else "could not run: " + md_escape(str(c["error"])[:300])
        L.append(f"| **{md_escape(c['label'])}** | {md_escape(t.get('version') or '—')} | "
                 f"{md_escape((t.get('tls_library') or t.get('openssl')) or '—')} | "
                 + " | ".join(str(s.get(v, 0)) for v in VERDICT_ORDER) + f" | {status} |")
    notes = list(m.get("notes") or [])
    for c in cols:
        notes += [f"{c['label']}: {n}" for n in c.get("notes") or []]
    if notes:
        L.append("")
        L += [f"- {md_escape(n)}" for n in notes]
    dis = [r for r in m["rows"] if r["disagree"]]
    L += ["", f"## Disagreements ({len(dis)})", ""]
    if dis:
        L += ["| scenario | importance | " + " | ".join(md_escape(x) for x in labels) + " |",
              "|---|---|" + "---|" * len(labels)]
        for r in dis:
            L.append(f"| {md_escape(r['id'])} | {md_escape(r.get('importance', ''))} | "
                     + " | ".join(_cell_md(r["verdicts"][x]) for x in labels) + " |")
    else:
        ran = [c for c in cols if c["status"] == "ok"]
        L.append("The targets that ran agree on every scenario." if len(ran) > 1 else
                 "Fewer than two targets ran: nothing to disagree on.")
    # details, collapsed
    L += ["", "<details><summary>Fingerprint: what each target offers by default</summary>", ""]
    L += _fingerprint_md(cols)
    L += ["", "</details>", "", f"<details><summary>All {len(m['rows'])} scenarios</summary>", "",
          "| scenario | importance | " + " | ".join(md_escape(x) for x in labels) + " |",
          "|---|---|" + "---|" * len(labels)]
    for r in m["rows"]:
        mark = " ◆" if r["disagree"] else ""
        L.append(f"| {md_escape(r['id'])}{mark} | {md_escape(r.get('importance', ''))} | "
                 + " | ".join(_cell_md(r["verdicts"][x]) for x in labels) + " |")
    L += ["", "</details>"]
    bad = [(r, x) for r in m["rows"] for x in labels
           if r["cells"][x] and r["cells"][x].get("verdict") in (Verdict.FAIL, Verdict.ERROR,
                                                                 Verdict.DEVIATION)
           and next(c for c in cols if c["label"] == x)["status"] == "ok"]
    if bad:
        L += ["", f"<details><summary>Reasons for fail, error and deviation ({len(bad)})</summary>", ""]
        for r, x in bad:
            cell = r["cells"][x]
            kind = f" ({md_escape(cell['fail_kind'])})" if cell.get("fail_kind") else ""
            L.append(f"- **{md_escape(x)}** {md_escape(r['id'])}: {_cell_md(cell['verdict'])}{kind} "
                     f"— {md_escape(str(cell.get('reason', ''))[:500])}")
        L += ["", "</details>"]
    return "\n".join(L) + "\n"


def _fingerprint_md(cols):
    ran = [c for c in cols if c["status"] == "ok"]
    if not ran:
        return ["No target ran."]
    L = ["| | " + " | ".join(md_escape(c["label"]) for c in ran) + " |",
         "|---|" + "---|" * len(ran)]
    fps = [c.get("fingerprint") or {} for c in ran]
    L.append("| taken from | " + " | ".join(md_escape(f.get("source") or f.get("why", "—"))
                                             for f in fps) + " |")
    for key, name in FINGERPRINT_FIELDS:
        L.append(f"| {name} | " + " | ".join(
            "<br>".join(md_escape(x) for x in f.get(key) or []) or "—" for f in fps) + " |")
    return L
