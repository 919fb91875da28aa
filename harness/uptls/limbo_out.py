"""What make limbo writes: the LimboResult and the agreement summary.

LimboResult is x509-limbo's result format (limbo/models.py LimboResult /
TestcaseResult / ActualResult; tests/limbo-result.schema.json transcribes
it): `version` 1, `harness`, `results[]` of id, actual_result and context.
actual_result is what the proxy did: SUCCESS when the request reached the
backend (the chain was accepted), FAILURE when the proxy refused it,
SKIPPED (context = the reason) for a case not run or run without an
outcome (error).
"""

import collections
import json
import os

import uptls_reports


def actual(res, case):
    """SUCCESS / FAILURE / SKIPPED of one result."""
    v = res["verdict"]
    if v in ("unsupported", "error"):
        return "SKIPPED"
    expected = case.expected_result
    if v in ("pass", "note"):
        return expected
    # fail / deviation: the proxy did the opposite of what was expected
    return "SUCCESS" if res.get("fail_kind") == "unexpected-accept" else "FAILURE"


def _observed(res):
    """One line of what the proxy did: client status, backend handshake outcome."""
    bits = []
    for st in res.get("steps", []):
        obs = st.get("observed", {})
        bits += [f"client status {r.get('status')}" for r in obs.get("responses", [])]
        for c in obs.get("connections", []):
            hs = "handshake ok" if c.get("ok") else f"handshake failed: {c.get('error')}"
            bits.append(hs)
    return "; ".join(bits)


def limbo_result(doc, cases):
    t = doc["target"]
    by_sid = {f"limbo/{c.id}": c for c in cases}
    out = []
    for res in doc["scenarios"]:
        c = by_sid[res["id"]]
        act = actual(res, c)
        ctx = None
        if act == "SKIPPED":
            ctx = f"{res['verdict']}: {res['reason']}"
        elif act == "FAILURE" or res["verdict"] != "pass":
            ctx = "; ".join(x for x in (res["reason"] if res["verdict"] != "pass" else "",
                                         _observed(res)) if x) or None
        out.append({"id": c.id, "actual_result": act, "context": ctx})
    return {"version": 1, "harness": f"uptls-{t['name']}-{t['version']}", "results": out}


def namespaces(doc, cases):
    """{namespace: Counter of verdicts (fail split by kind)}."""
    by_sid = {f"limbo/{c.id}": c for c in cases}
    ns = collections.defaultdict(collections.Counter)
    for res in doc["scenarios"]:
        v = res["verdict"]
        if v == "fail":
            v = res.get("fail_kind", "fail")
        ns[by_sid[res["id"]].namespace][v] += 1
    return ns


def summary_lines(doc, cases):
    t, s = doc["target"], doc["summary"]
    lim = doc["limbo"]
    out = [f"uptls limbo {t['name']} {t['version']}: {lim['cases']} case(s), {lim['ran']} run in "
           f"{lim['batches']} batch(es), {doc['duration_s']} s = {lim['cases_per_s']} cases/s; "
           + ", ".join(f"{v} {s[v]}" for v in s if s[v])]
    out.append(f"  {'namespace':<24} {'agree':>7} {'pass':>5} {'u-acc':>5} {'u-ref':>5} "
               f"{'dev':>4} {'unsup':>5} {'err':>4}")
    # unexpected accepts first (the dangerous disagreement), then refusals
    rows = sorted(namespaces(doc, cases).items(),
                  key=lambda kv: (-kv[1]["unexpected-accept"], -kv[1]["unexpected-refusal"], kv[0]))
    for name, n in rows:
        ran = n["pass"] + n["note"] + n["unexpected-accept"] + n["unexpected-refusal"] + \
            n["deviation"]
        agree = f"{100 * (n['pass'] + n['note']) / ran:.0f}%" if ran else "-"
        out.append(f"  {name:<24} {agree:>7} {n['pass'] + n['note']:>5} "
                   f"{n['unexpected-accept']:>5} {n['unexpected-refusal']:>5} "
                   f"{n['deviation']:>4} {n['unsupported']:>5} {n['error']:>4}")
    for kind in ("unexpected-accept", "unexpected-refusal"):
        bad = [r for r in doc["scenarios"] if r["verdict"] == "fail" and r.get("fail_kind") == kind]
        if bad:
            out.append(f"  {kind} ({len(bad)}):")
            out += [f"    {r['id']}: {r['reason'][:200]}" for r in bad]
    return out


def write(doc, cases, out_dir):
    """The usual result files and reports, the LimboResult and the summary."""
    paths = uptls_reports.write_all(doc, out_dir)
    name = doc["target"]["name"]
    paths["limbo"] = os.path.join(out_dir, f"{name}.limbo-result.json")
    uptls_reports._atomic_write(paths["limbo"],
                                json.dumps(limbo_result(doc, cases), indent=1) + "\n")
    paths["summary"] = os.path.join(out_dir, f"{name}.limbo-summary.md")
    uptls_reports._atomic_write(paths["summary"], "```\n" + "\n".join(
        summary_lines(doc, cases)) + "\n```\n")
    return paths
