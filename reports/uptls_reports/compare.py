"""Side by side: several result files (schema uptls-results/1) as one matrix.

    load_results(paths)  -> [(path, doc)] and notes for files that are not results
    merge(loaded)        -> columns: one per target (name + faults, version, OpenSSL);
                            shards of one target merge into one column, overlaps noted
    model(columns)       -> the comparison (what compare.json holds): rows of
                            scenarios x columns, disagreements, fingerprints,
                            and the findings side by side (findings.compare_findings)
    write_compare(m, dir) -> compare.json, and compare.md and compare.html as
                            compare_md.compare_markdown(m) and
                            compare_html.compare_html(m) draw them

A target that could not run at all is a column of its own with status
"error" and the reason (error_column()); every cell of it reads "error".
Every string that came from a peer is escaped where it lands (html.escape
in HTML, md_escape in Markdown); nothing from a result file is ever placed
inside the page's script.
"""

import datetime
import glob
import json
import os

from uptls_vocab import RESULTS_SCHEMA as RESULT_SCHEMA, Verdict, empty_summary
from uptls_vocab.tls import extension_name, split_suites

from . import _atomic_write

SCHEMA = "uptls-compare/1"
SANITY_ID = "sanity/plain-handshake"
FINGERPRINT_FIELDS = (("versions", "versions"), ("tls12_suites", "TLS 1.2 suites"),
                      ("tls13_suites", "TLS 1.3 suites"), ("groups", "groups"),
                      ("sigalgs", "signature algorithms"), ("alpn", "ALPN"),
                      ("extensions", "extensions, in order"))


# -- loading and merging -------------------------------------------------------------

def load_results(paths):
    """Read result files; return ([(path, doc)], [notes about skipped files])."""
    loaded, notes = [], []
    for p in paths:
        try:
            with open(p, encoding="utf-8") as f:
                doc = json.load(f)
        except (OSError, ValueError) as e:
            notes.append(f"{p}: not read: {e}")
            continue
        if not isinstance(doc, dict) or doc.get("schema") != RESULT_SCHEMA:
            if not (isinstance(doc, dict) and str(doc.get("schema", "")).startswith("uptls-compare")):
                notes.append(f"{p}: skipped: not a result file (schema "
                             f"{doc.get('schema') if isinstance(doc, dict) else None!r})")
            continue
        loaded.append((p, doc))
    return loaded, notes


def result_files(folder):
    """Every *.json under folder (recursively), compare.json excluded, in a stable order."""
    found = glob.glob(os.path.join(folder, "**", "*.json"), recursive=True)
    return sorted(p for p in found if os.path.basename(p) != "compare.json")


def target_label(target):
    name = str(target.get("name") or "?")
    if target.get("faults"):
        name += "+" + "+".join(target["faults"])
    return name


def _column_key(doc):
    t = doc.get("target") or {}
    return (target_label(t), str(t.get("version")), str(t.get("openssl")))


def merge(loaded, tags=None):
    """Group result docs by target; shards of one target become one column.

    A scenario id present in two files of the same target is an overlap: the
    first file (in path order) wins and the column's notes say so, with both
    verdicts when they differ."""
    groups = {}
    for path, doc in loaded:
        # tags: {path: run label} keeps runs of one target that the user asked
        # for separately (TARGETS="nginx=objs/nginx nginx") in separate columns.
        key = _column_key(doc) + ((tags or {}).get(path),)
        groups.setdefault(key, []).append((path, doc))
    columns = []
    for key, members in groups.items():
        first = members[0][1]
        col = {"label": key[0], "tag": key[3], "status": "ok",
               "target": dict(first.get("target") or {}),
               # how the run was asked for (TARGET=, TARGET_BIN=): the repro command's
               "invocation": first.get("invocation"),
               "target_detail": first.get("target_detail"), "files": [],
               "started": min(str(d.get("started", "")) for _, d in members),
               "duration_s": round(sum(float(d.get("duration_s") or 0) for _, d in members), 2),
               "scenarios": {}, "notes": [], "overlaps": [], "target_alerts": []}
        origin = {}
        for path, doc in members:
            if path:
                col["files"].append(path)
            col["target_alerts"] += list(doc.get("target_alerts") or [])
            for res in doc.get("scenarios") or []:
                rid = res.get("id")
                if rid in col["scenarios"]:
                    prev = col["scenarios"][rid]
                    ov = {"id": rid, "kept": origin[rid], "dropped": path or "(unnamed)",
                          "kept_verdict": prev.get("verdict"), "dropped_verdict": res.get("verdict")}
                    col["overlaps"].append(ov)
                    continue
                col["scenarios"][rid] = res
                origin[rid] = path or "(unnamed)"
        if len(members) > 1:
            col["notes"].append(f"merged from {len(members)} result files "
                                f"({len(col['scenarios'])} scenarios)")
        if col["overlaps"]:
            files = sorted({o["dropped"] for o in col["overlaps"]} | {o["kept"] for o in col["overlaps"]})
            differ = [o["id"] for o in col["overlaps"] if o["kept_verdict"] != o["dropped_verdict"]]
            col["notes"].append(
                f"overlap: {len(col['overlaps'])} scenario(s) appear in more than one file "
                f"({', '.join(files)}); the first file's result is kept"
                + (f"; verdicts differ for {', '.join(differ)}" if differ else ""))
        col["summary"] = _summary(col["scenarios"].values())
        columns.append(col)
    _unique_labels(columns)
    return columns


def error_column(name, reason):
    """A target that could not run: one column whose every cell is an error."""
    return {"label": name, "status": "error", "error": reason, "target": {"name": name},
            "files": [], "scenarios": {}, "notes": [], "overlaps": [], "target_alerts": [],
            "summary": _summary([])}


def _summary(results):
    s = empty_summary()
    for r in results:
        v = r.get("verdict")
        s[v] = s.get(v, 0) + 1
    return s


def _unique_labels(columns):
    by = {}
    for c in columns:
        by.setdefault(c["label"], []).append(c)
    for label, cols in by.items():
        if len(cols) < 2:
            continue
        for c in cols:
            c["label"] = f"{label} {c['target'].get('version')}"
        if len({c["label"] for c in cols}) < len(cols):
            for c in cols:
                c["label"] += f" ({c['target'].get('openssl')})"
        if len({c["label"] for c in cols}) < len(cols):
            for c in cols:
                c["label"] += f" {c['target'].get('binary')}"
        if len({c["label"] for c in cols}) < len(cols):
            for i, c in enumerate(cols, 1):
                c["label"] = f"{c.get('tag') or label + ' #' + str(i)}"


# -- the comparison model ----------------------------------------------------------

def _hellos(res):
    for st in res.get("steps") or []:
        for c in (st.get("observed") or {}).get("connections") or []:
            if c.get("hello"):
                yield c["hello"]


def fingerprint(scenarios):
    """What a target offers by default, from the ClientHello of a scenario that
    leaves protocols and ciphers unset: the one whose expectation is the
    documented default version set, else the sanity scenario."""
    def is_default(res):
        # offered_versions_default, offered_versions_default_wire, or the
        # runner's _default_source once it has resolved the former.
        return any(k == "_default_source" or k.startswith("offered_versions_default")
                   for st in res.get("steps") or [] for k in (st.get("expected") or {}))
    ordered = sorted(scenarios.values(), key=lambda r: str(r.get("id")))
    candidates = [r for r in ordered if is_default(r) and not r.get("variant")]
    candidates += [r for r in ordered if r.get("id") == SANITY_ID]
    for res in candidates:
        hello = next(_hellos(res), None)
        if hello is None:
            continue
        tls12, tls13 = split_suites(hello.get("ciphers"))
        return {"source": res["id"],
                "versions": list(hello.get("versions") or []),
                "tls12_suites": tls12,
                "tls13_suites": tls13,
                "groups": list(hello.get("groups") or []),
                "sigalgs": list(hello.get("sigalgs") or []),
                "alpn": list(hello.get("alpn") or []),
                "extensions": [extension_name(x) for x in hello.get("extensions") or []]}
    return {"source": None, "why": "no ClientHello from a scenario that leaves protocols and "
                                   "ciphers unset (default-versions or sanity scenario)"}


def model(columns, notes=()):
    """The comparison: columns (targets) and rows (scenarios), as compare.json holds it."""
    rows = {}
    for col in columns:
        for rid, res in col["scenarios"].items():
            row = rows.setdefault(rid, {"id": rid})
            for k in ("scenario", "family", "title", "importance", "checks", "refs", "variant"):
                if row.get(k) in (None, "", []) and res.get(k) not in (None, "", []):
                    row[k] = res.get(k)
    out_rows = []
    for rid in sorted(rows, key=lambda i: (str(rows[i].get("family")), i)):
        row = rows[rid]
        row.setdefault("family", rid.split("/")[0])
        cells, ran = {}, []
        for col in columns:
            if col["status"] == "error":
                cells[col["label"]] = {"verdict": Verdict.ERROR, "reason": col["error"]}
            elif rid in col["scenarios"]:
                cells[col["label"]] = col["scenarios"][rid]
                ran.append(col["scenarios"][rid].get("verdict"))
            else:
                cells[col["label"]] = None
        row["verdicts"] = {k: (c or {}).get("verdict", "absent") for k, c in cells.items()}
        row["disagree"] = len(set(ran)) > 1
        row["cells"] = cells
        out_rows.append(row)
    for col in columns:
        if col["status"] == "ok":
            missing = [r["id"] for r in out_rows if col["label"] in r["cells"]
                       and r["cells"][col["label"]] is None]
            col["missing"] = missing
            if missing:
                col["notes"].append(f"{len(missing)} scenario(s) other columns have are absent "
                                    f"here: {', '.join(missing[:10])}"
                                    + (" ..." if len(missing) > 10 else ""))
            col["fingerprint"] = fingerprint(col["scenarios"])
    cols_out = []
    for col in columns:
        c = {k: v for k, v in col.items() if k != "scenarios"}
        cols_out.append(c)
    m = {"schema": SCHEMA,
         "generated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
         "columns": cols_out, "notes": list(notes), "rows": out_rows,
         "disagreements": [r["id"] for r in out_rows if r["disagree"]]}
    from .findings import compare_findings  # it reads the model this builds
    m["findings"] = compare_findings(m)
    return m


def compare_docs(docs, errors=(), notes=(), paths=None):
    """Convenience: result docs (+ (name, reason) errors) -> model. paths:
    the docs' result files, shown under "ran" in the targets table (none
    shown without them)."""
    cols = merge([((paths or [])[i] if i < len(paths or []) else None, d)
                  for i, d in enumerate(docs)])
    cols += [error_column(n, r) for n, r in errors]
    return model(cols, notes)


def write_compare(m, report_dir, stem="compare"):
    from .compare_html import compare_html   # the writers import this module's names
    from .compare_md import compare_markdown
    paths = {"json": os.path.join(report_dir, f"{stem}.json"),
             "md": os.path.join(report_dir, f"{stem}.md"),
             "html": os.path.join(report_dir, f"{stem}.html")}
    _atomic_write(paths["json"], json.dumps(m, indent=1, ensure_ascii=False) + "\n")
    _atomic_write(paths["md"], compare_markdown(m))
    _atomic_write(paths["html"], compare_html(m))
    return paths
