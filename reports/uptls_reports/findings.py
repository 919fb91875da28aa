"""Findings: what every report leads with.

A finding is a result whose verdict is one of uptls_vocab.FINDINGS (fail,
deviation, note), in uptls_vocab.finding_key order (importance, then the
way it failed, notes after the fails and deviations of their importance).
Each one says, in this order: the consequence (one sentence: what an
attacker or a user gets), the scenario id, the source of the deviation
when it is one, and the command that reproduces it (`make repro`).

Where the consequence comes from, first that applies:
1. the result's own `consequence`: the scenario's `consequence` key (for a
   fail or deviation) or `note_consequence` (for a note), which the driver
   copies into the result file;
2. for a note without one, the note itself (the result's reason);
3. a sentence for the scenario's family and the way it failed
   (FAMILY_CONSEQUENCE), else one for the way it failed (KIND_CONSEQUENCE),
   so a new family or an imported suite reads sensibly before anyone writes
   its sentences.

    findings(doc)            -> [finding] of one result file
    compare_findings(model)  -> [row] of compare.model(): one per scenario that
                                is a finding on any target, each target's cell
    slowest(doc, n)          -> the n scenarios with the longest wall time
    *_md / *_lines           Markdown and terminal text (HTML: findings_html.py)
"""

import re
import shlex

from uptls_vocab import FINDINGS, FailKind, Verdict, finding_key

from . import md_escape

A, R, W = FailKind.UNEXPECTED_ACCEPT, FailKind.UNEXPECTED_REFUSAL, FailKind.WRONG_OBSERVATION

KIND_CONSEQUENCE = {
    A: "the proxy forwards requests over an upstream connection it had to refuse, so the "
       "protection this scenario checks does not hold",
    R: "the proxy refuses an upstream connection its configuration allows, so requests to that "
       "upstream fail",
    W: "the proxy reaches the upstream, but not in the way it was configured to",
}
FAMILY_CONSEQUENCE = {
    ("trust", A): "an upstream whose certificate does not chain to a trusted CA is accepted, so "
                  "anyone who can intercept the upstream connection can impersonate the upstream",
    ("trust", R): "an upstream whose certificate chains to a trusted CA is refused, so requests "
                  "to it fail",
    ("trust", W): "the upstream's certificate is checked, but not against the configured CAs and "
                  "revocation lists, so whom the proxy trusts is not what the configuration says",
    ("name", W): "another name than the configured one is checked or sent, so the upstream is "
                 "authenticated as a host the configuration did not name",
    ("name", A): "a trusted certificate issued for another name is accepted, so any host with a "
                 "certificate from the same CA can impersonate the upstream",
    ("name", R): "an upstream whose certificate matches the configured name is refused, so "
                 "requests to it fail and users are pushed to turn name checking off",
    ("chain-depth", A): "a chain longer than the verification depth is accepted, so the depth "
                        "limit does not narrow which CAs can issue an accepted certificate",
    ("chain-depth", R): "a chain within the verification depth is refused, so requests to that "
                        "upstream fail",
    ("cipher", A): "a cipher the configuration excludes is negotiated, so the upstream "
                   "connection is weaker than configured",
    ("cipher", R): "an upstream sharing a configured cipher is refused, so requests to it fail",
    ("cipher", W): "other ciphers than the configured ones are offered or negotiated, so the "
                   "upstream connection's strength is not what the configuration says",
    ("protocol", A): "a TLS version the configuration excludes is negotiated, so the upstream "
                     "connection can be downgraded",
    ("protocol", R): "a TLS version the configuration allows is refused, so requests to "
                     "upstreams that need it fail",
    ("protocol", W): "other TLS versions than the configured ones are offered or negotiated",
    ("client-cert", A): "a request is forwarded where the client-certificate exchange had to "
                        "stop it",
    ("client-cert", R): "the configured client certificate is not presented, so an upstream "
                        "that requires one refuses the requests",
    ("client-cert", W): "another client identity than the configured one is presented, so the "
                        "upstream authorises the requests as the wrong client",
    ("session", A): "a resumed session lets a connection skip checks its own configuration "
                    "requires, so an upstream those settings reject is reached",
    ("session", R): "a session that should be resumed or replaced fails the connection, so "
                    "requests fail",
    ("session", W): "TLS sessions are reused where the configuration keeps them apart (or not "
                    "where it shares them), so a connection can carry another configuration's "
                    "identity or verification state",
    ("sni", W): "another server name than configured is sent (or one where none should be), so "
                "the upstream may serve another virtual host and the name leaks on the wire",
    ("faults", A): "a broken or incomplete upstream answer is passed on as if it were whole, so "
                   "clients and caches get truncated or corrupted content",
    ("faults", R): "an upstream answer that had to be passed on is refused",
    ("faults", W): "a misbehaving upstream is handled otherwise than documented (another status, "
                   "or too late), so clients wait or get the wrong error",
    ("keepalive", W): "upstream connections are not reused as configured, so every request pays "
                      "a new TLS handshake",
    ("sanity", R): "the proxy cannot make a plain TLS connection to its upstream, so nothing it "
                   "forwards over TLS works",
}


def consequence(res):
    """(sentence, where it came from: "scenario" | "note" | "family" | "kind")."""
    if res.get("consequence"):
        return str(res["consequence"]), "scenario"
    if res.get("verdict") == Verdict.NOTE:
        return str(res.get("reason") or ""), "note"
    kind = res.get("fail_kind") if res.get("fail_kind") in tuple(FailKind) else W
    family = str(res.get("family") or str(res.get("id", "")).split("/")[0])
    if (family, kind) in FAMILY_CONSEQUENCE:
        return FAMILY_CONSEQUENCE[(family, kind)], "family"
    return KIND_CONSEQUENCE[kind], "kind"


def repro_command(res, doc):
    """`make repro` for this result: TARGET as the run was given it (an exec:
    adapter, say), TARGET_BIN when the run named one. Values are shell-quoted."""
    inv = doc.get("invocation") or {}
    target = inv.get("target") or (doc.get("target") or {}).get("name") or "?"
    words = ["make", "repro", f"TARGET={target}",
             f"SCENARIO={res.get('scenario') or res.get('id')}"]
    if inv.get("target_bin"):
        words.append(f"TARGET_BIN={inv['target_bin']}")
    return " ".join(w if re.fullmatch(r"[\w.=/:+,@-]+", w) else shlex.quote(w) for w in words)


def _finding(res, doc):
    sentence, said_by = consequence(res)
    dev = res.get("deviation") or {}
    return {"id": res.get("id"), "title": res.get("title"), "family": res.get("family"),
            "importance": res.get("importance"), "verdict": res.get("verdict"),
            "fail_kind": res.get("fail_kind"), "consequence": sentence,
            "consequence_from": said_by, "source": dev.get("source"),
            "reason": res.get("reason"), "repro": repro_command(res, doc)}


def findings(doc):
    """Every fail, deviation and note of one result file, most important first."""
    out = [r for r in doc.get("scenarios") or [] if r.get("verdict") in FINDINGS]
    return [_finding(r, doc) for r in sorted(out, key=finding_key)]


def compare_findings(m):
    """One row per scenario that is a finding on at least one target of the
    comparison model m, ordered by its most important cell; each row has a
    cell per target that has it (verdict, kind, source, repro) and the
    verdicts of the others."""
    rows = []
    for row in m["rows"]:
        cells = {}
        for col in m["columns"]:
            cell = row["cells"].get(col["label"])
            if col["status"] == "ok" and cell and cell.get("verdict") in FINDINGS:
                cells[col["label"]] = _finding(cell, {"target": col["target"],
                                                      "invocation": col.get("invocation")})
        if not cells:
            continue
        by = {lab: row["cells"][lab] for lab in cells}
        worst = min(cells, key=lambda lab: finding_key(by[lab]))
        rows.append({"id": row["id"], "title": row.get("title"), "family": row.get("family"),
                     "importance": row.get("importance"),
                     "consequence": cells[worst]["consequence"], "targets": cells,
                     "others": {lab: v for lab, v in row["verdicts"].items() if lab not in cells},
                     "_key": finding_key(by[worst])})
    rows.sort(key=lambda r: r["_key"])
    for r in rows:
        del r["_key"]
    return rows


def model_findings(m):
    """The findings rows of a comparison model (compare.json holds them)."""
    return m["findings"] if "findings" in m else compare_findings(m)


def slowest(doc, n=5):
    """The n scenarios with the longest wall time (results without one are left out)."""
    timed = [r for r in doc.get("scenarios") or [] if isinstance(r.get("duration_s"), (int, float))]
    return sorted(timed, key=lambda r: (-r["duration_s"], str(r.get("id"))))[:n]


# -- text ------------------------------------------------------------------------

def _label(f):
    """critical · unexpected-accept · deviation"""
    return " · ".join(str(x) for x in (f["importance"], f["fail_kind"], f["verdict"]) if x)


def findings_lines(doc):
    """The terminal summary's findings, plain text (pytest writes it, nothing is rendered)."""
    fs = findings(doc)
    if not fs:
        return ["uptls findings: none (no fail, deviation or note)"]
    out = [f"uptls findings ({len(fs)}), most important first:"]
    for i, f in enumerate(fs, 1):
        out.append(f"  {i}. [{_clean(_label(f))}] {_clean(f['id'])}")
        out.append(f"     {_clean(f['consequence'])}")
        if f["source"]:
            out.append(f"     source: {_clean(f['source'])}")
        out.append(f"     reproduce: {_clean(f['repro'])}")
    return out


def slowest_lines(doc, n=5):
    s = slowest(doc, n)
    if not s:
        return []
    return [f"uptls slowest {len(s)}: " + ", ".join(f"{_clean(r['id'])} {r['duration_s']:.2f} s" for r in s)]


def _clean(text):
    """One line of plain text: control characters (a terminal escape) made visible."""
    text = re.sub(r"[\x00-\x1f\x7f-\x9f]", lambda m: "\\x%02x" % ord(m.group()), str(text))
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def md_code(text):
    """A command as a Markdown code span when it is made of plain characters only
    (a code span cannot escape anything), else escaped text."""
    text = str(text)
    if re.fullmatch(r"[\w .=/:+,@'-]+", text):
        return f"`{text}`"
    return md_escape(text)


def findings_md(doc):
    """The Markdown findings section of one result file."""
    fs = findings(doc)
    out = [f"## Findings ({len(fs)})", ""]
    if not fs:
        return out + ["No fail, deviation or note: every scenario that ran passed or was "
                      "unsupported.", ""]
    out += ["Every fail, deviation and note, most important first (importance, then "
            "unexpected accept, unexpected refusal, wrong observation, then notes).", ""]
    for i, f in enumerate(fs, 1):
        out.append(f"{i}. **{md_escape(f['id'])}** ({md_escape(_label(f))}): {md_escape(f['consequence'])}  ")
        if f["source"]:
            out.append(f"   Source: {md_escape(f['source'])}  ")
        out.append(f"   Reproduce: {md_code(f['repro'])}")
    return out + [""]


def slowest_md(doc, n=5):
    s = slowest(doc, n)
    if not s:
        return []
    out = [f"## Slowest {len(s)} scenarios", "", "| scenario | wall time (s) | verdict |",
           "|---|---|---|"]
    out += [f"| {md_escape(r['id'])} | {r['duration_s']:.2f} | {md_escape(r.get('verdict'))} |" for r in s]
    return out + [""]


def compare_findings_md(m):
    """compare.md's findings: a verdict per target side by side, then each
    finding's consequence, and per target its source and reproduction."""
    rows = model_findings(m)
    labels = [c["label"] for c in m["columns"]]
    out = [f"## Findings ({len(rows)})", ""]
    if not rows:
        return out + ["No target has a fail, deviation or note.", ""]
    out += ["| # | scenario | importance | " + " | ".join(md_escape(x) for x in labels) + " |",
            "|---|---|---|" + "---|" * len(labels)]
    for i, r in enumerate(rows, 1):
        cells = []
        for x in labels:
            f = r["targets"].get(x)
            cells.append(md_escape(" · ".join(y for y in (f["verdict"], f["fail_kind"]) if y)) if f
                         else md_escape(r["others"].get(x, "absent")))
        out.append(f"| {i} | {md_escape(r['id'])} | {md_escape(r.get('importance') or '')} | "
                   + " | ".join(cells) + " |")
    out.append("")
    for i, r in enumerate(rows, 1):
        out.append(f"{i}. **{md_escape(r['id'])}**: {md_escape(r['consequence'])}")
        for x, f in r["targets"].items():
            line = f"   - **{md_escape(x)}**: {md_escape(_label(f))}"
            if f["consequence"] != r["consequence"]:
                line += f": {md_escape(f['consequence'])}"
            if f["source"]:
                line += f"; source: {md_escape(f['source'])}"
            out.append(line + f"; reproduce: {md_code(f['repro'])}")
    return out + [""]
