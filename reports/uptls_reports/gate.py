"""The CI gate of a merged comparison: cells that are newly bad against a baseline.

new_bad(model, baseline) compares two comparisons (compare.json, schema
uptls-compare/1, as compare.model() makes them) cell by cell: a cell is
newly bad when its verdict is fail or error now and was neither in the
baseline's same row and column (a row or column the baseline lacks counts
as not bad before). Columns are matched by label (target name, plus version
or tag when two columns share a name).
"""

BAD = ("fail", "error")


def load(path):
    import json
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    if not isinstance(doc, dict) or not str(doc.get("schema", "")).startswith("uptls-compare"):
        raise ValueError(f"{path}: not a uptls comparison (compare.json)")
    return doc


def new_bad(model, baseline):
    """[(column label, scenario id, verdict now, verdict in the baseline or None)]."""
    before = {r["id"]: r.get("verdicts") or {} for r in baseline.get("rows") or []}
    out = []
    for r in model.get("rows") or []:
        for label, v in (r.get("verdicts") or {}).items():
            old = before.get(r["id"], {}).get(label)
            if v in BAD and old not in BAD:
                out.append((label, r["id"], v, old))
    return out


def markdown(bad, baseline_path):
    if not bad:
        return f"\n## Against the baseline\n\nNo new fail or error against `{baseline_path}`.\n"
    lines = [f"\n## Against the baseline\n\n{len(bad)} new fail/error against "
             f"`{baseline_path}`:\n"]
    lines += [f"- **{label}** `{sid}`: {v} (baseline: {old or 'absent'})"
              for label, sid, v, old in bad]
    return "\n".join(lines) + "\n"
