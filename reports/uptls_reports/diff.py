"""What changed between two result files of a target (BASELINE=file).

diff_docs(old, new) is pure: two result docs (schema uptls-results/1) in,
one change record out. baseline_markdown() and baseline_lines() render it
for <target>.baseline.md and the terminal summary.
"""

from uptls_vocab import BAD, Verdict

from . import MARK, md_escape

# Observations compared per step: (label, connections it is read from, how).
# Each is compared as the set of distinct values over the step's
# connections, so a connection that opened and closed without a handshake,
# or one more connection with the same outcome, is not a change.
OBSERVATIONS = (
    ("negotiated version", "ok", lambda c: c.get("version")),
    ("negotiated cipher", "ok", lambda c: c.get("cipher")),
    ("offered versions", "all", lambda c: (c.get("hello") or {}).get("versions")),
    ("SNI", "all", lambda c: (c.get("hello") or {}).get("sni") if c.get("hello") else c.get("sni")),
    ("resumed", "ok", lambda c: c.get("resumed")),
)


def _norm(v):
    return tuple(v) if isinstance(v, list) else v


def _observations(res):
    """{(step, label): sorted distinct values} for one scenario result."""
    out = {}
    for st in res.get("steps") or []:
        conns = (st.get("observed") or {}).get("connections") or []
        for label, which, get in OBSERVATIONS:
            pool = [c for c in conns if which == "all" or c.get("ok")]
            if label == "SNI":
                pool = [c for c in pool if c.get("hello") or c.get("ok")]
            vals = {_norm(get(c)) for c in pool}
            if label != "SNI":
                vals.discard(None)
            out[(st.get("step"), label)] = sorted(vals, key=repr)
    return out


def diff_docs(old, new):
    """Changes from old to new. Returns a dict:
    target: {field: [old, new]} for name/version/binary/openssl that differ;
    new_bad: now fail/error, before neither (or the scenario is new);
    new_pass: now pass, before not;
    verdict_changes: every scenario present in both whose verdict changed;
    observations: [{id, step, what, old, new}] for the same scenario's steps;
    added, removed: scenario ids; unchanged: how many results are the same."""
    o = {r["id"]: r for r in old.get("scenarios") or []}
    n = {r["id"]: r for r in new.get("scenarios") or []}
    ot, nt = old.get("target") or {}, new.get("target") or {}
    d = {"target": {k: [ot.get(k), nt.get(k)] for k in ("name", "version", "binary", "openssl")
                    if ot.get(k) != nt.get(k)},
         "old_started": old.get("started"), "new_started": new.get("started"),
         "new_bad": [], "new_pass": [], "verdict_changes": [], "observations": [],
         "added": sorted(set(n) - set(o)), "removed": sorted(set(o) - set(n)), "unchanged": 0}
    for rid in sorted(n):
        nr = n[rid]
        nv = nr.get("verdict")
        orr = o.get(rid)
        ov = orr.get("verdict") if orr else None
        ch = {"id": rid, "old": ov, "new": nv, "reason": nr.get("reason", ""),
              "importance": nr.get("importance")}
        if nv in BAD and ov not in BAD:
            d["new_bad"].append(ch)
        if nv == Verdict.PASS and orr is not None and ov != Verdict.PASS:
            d["new_pass"].append(ch)
        if orr is None:
            continue
        changed = ov != nv
        if changed:
            d["verdict_changes"].append(ch)
        oo, no = _observations(orr), _observations(nr)
        for key in sorted(set(oo) | set(no), key=lambda k: (k[0] or 0, k[1])):
            if oo.get(key) != no.get(key):
                changed = True
                d["observations"].append({"id": rid, "step": key[0], "what": key[1],
                                          "old": oo.get(key), "new": no.get(key)})
        if not changed:
            d["unchanged"] += 1
    return d


def has_changes(d):
    return any(d[k] for k in ("target", "new_bad", "new_pass", "verdict_changes",
                              "observations", "added", "removed"))


def _v(v):
    return MARK.get(v, "(absent)") if v else "(absent)"


def _val(x):
    if isinstance(x, (list, tuple)):
        return "{" + ", ".join(_val(v) if isinstance(v, (list, tuple)) else
                               ("none" if v is None else str(v)) for v in x) + "}"
    return "none" if x is None else str(x)


def baseline_markdown(d, baseline_path=""):
    name = (d["target"].get("name") or [None, None])[1]
    L = [f"# uptls: changes since the baseline", "",
         f"Baseline `{md_escape(baseline_path)}` (started {md_escape(d['old_started'])}) → this run "
         f"(started {md_escape(d['new_started'])}).", ""]
    if name:
        L.append(f"Target name changed: {md_escape(d['target']['name'][0])} → {md_escape(name)}.")
    for k, (a, b) in d["target"].items():
        if k != "name":
            L.append(f"- target {k}: {md_escape(a)} → {md_escape(b)}")
    if not has_changes(d):
        L += ["No change: every scenario has the same verdict and observations "
              f"({d['unchanged']} scenarios)."]
        return "\n".join(L) + "\n"
    L += ["", "| new fail/error | new pass | verdict changes | observation changes | added | removed | unchanged |",
          "|---|---|---|---|---|---|---|",
          f"| {len(d['new_bad'])} | {len(d['new_pass'])} | {len(d['verdict_changes'])} | "
          f"{len({o['id'] for o in d['observations']})} | {len(d['added'])} | {len(d['removed'])} | "
          f"{d['unchanged']} |"]
    listed = {c["id"] for c in d["new_bad"] + d["new_pass"]}
    sections = (("New fails and errors", d["new_bad"]), ("New passes", d["new_pass"]),
                ("Other verdict changes", [c for c in d["verdict_changes"]
                                           if c["id"] not in listed]))
    for title, items in sections:
        if items:
            L += ["", f"## {title}", "", "| scenario | before | now | reason |", "|---|---|---|---|"]
            L += [f"| {md_escape(c['id'])} | {_v(c['old'])} | {_v(c['new'])} | "
                  f"{md_escape(str(c['reason'])[:300])} |" for c in items]
    if d["observations"]:
        L += ["", "## Changed observations", "", "| scenario | step | what | before | now |",
              "|---|---|---|---|---|"]
        L += [f"| {md_escape(o['id'])} | {o['step']} | {o['what']} | {md_escape(_val(o['old']))} | "
              f"{md_escape(_val(o['new']))} |" for o in d["observations"]]
    if d["added"]:
        L += ["", "## Scenarios added", ""] + [f"- {md_escape(i)}" for i in d["added"]]
    if d["removed"]:
        L += ["", "## Scenarios removed", ""] + [f"- {md_escape(i)}" for i in d["removed"]]
    return "\n".join(L) + "\n"


def baseline_lines(d, baseline_path=""):
    """A short plain-text section for the terminal summary."""
    if not has_changes(d):
        return [f"uptls baseline {baseline_path}: no change ({d['unchanged']} scenarios)"]
    L = [f"uptls baseline {baseline_path}: {len(d['new_bad'])} new fail/error, "
         f"{len(d['new_pass'])} new pass, {len(d['verdict_changes'])} verdict change(s), "
         f"{len({o['id'] for o in d['observations']})} scenario(s) observed differently, "
         f"{len(d['added'])} added, {len(d['removed'])} removed"]
    for k, (a, b) in d["target"].items():
        L.append(f"  target {k}: {a} -> {b}")
    for c in d["verdict_changes"]:
        L.append(f"  {c['id']}: {c['old']} -> {c['new']}")
    for c in d["new_bad"]:
        if c["old"] is None:
            L.append(f"  {c['id']}: (new scenario) {c['new']}")
    for o in d["observations"][:20]:
        L.append(f"  {o['id']} step {o['step']}: {o['what']} {_val(o['old'])} -> {_val(o['new'])}")
    if len(d["observations"]) > 20:
        L.append(f"  ... {len(d['observations']) - 20} more in the .baseline.md")
    for i in d["added"]:
        L.append(f"  + {i}")
    for i in d["removed"]:
        L.append(f"  - {i}")
    return L
