"""Command line of the report writers (what `make compare` calls).

    python3 -m uptls_reports compare --report-dir D --targets "reference nginx haproxy"
        runs `make conformance TARGET=t REPORT_DIR=D/t` for each target in turn
        (a target that cannot run becomes a column of `error` with its reason),
        then writes D/compare.json, D/compare.md and D/compare.html.
        A target may name its binary: "nginx=/src/nginx/objs/nginx".
    python3 -m uptls_reports compare --report-dir D --results DIR [DIR|FILE ...]
        merges result files made elsewhere (CI jobs, shards) instead.
    python3 -m uptls_reports render FILE.json [--report-dir D]
        re-writes the JUnit, Markdown and HTML of one result file.
    python3 -m uptls_reports diff OLD.json NEW.json
        prints the baseline Markdown (what changed from OLD to NEW).

Exit status of compare: 0 when every column ran and none has a fail or
error, 1 otherwise, 2 when there was nothing to compare. With --baseline
OLD/compare.json: 1 only when a cell is fail/error and was not in OLD
(compare.baseline.md lists them).
"""

import argparse
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

from uptls_vocab import BAD

from . import compare, diff, gate, write_all

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _reason(proc):
    """The one line that says why `make conformance` did not produce a result."""
    lines = [ln.strip() for ln in (proc.stdout + "\n" + proc.stderr).splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith("Exit: uptls:"):
            return ln[len("Exit: "):]
    for ln in reversed(lines):
        if "uptls:" in ln:
            return ln[ln.index("uptls:"):]
    useful = [ln for ln in lines if not ln.startswith(("make:", "make[", "/usr/bin/python3 -m pytest",
                                                         "--target", "--report-dir"))]
    tail = useful[-1] if useful else ""
    return f"make conformance exited {proc.returncode}" + (f": {tail}" if tail else "")


def run_target(name, binary, report_dir, make_args, timeout, subdir=None):
    """Run one target into report_dir/<subdir or name>/; return (result path or None, reason)."""
    out = os.path.join(report_dir, subdir or name)
    shutil.rmtree(out, ignore_errors=True)  # no stale result may stand in for this run
    cmd = ["make", "-s", "--no-print-directory", "-C", ROOT, "conformance", f"TARGET={name}",
           f"REPORT_DIR={os.path.abspath(out)}", f"TARGET_BIN={binary or ''}", *make_args]
    print(f"uptls compare: {name}: make conformance {' '.join(cmd[6:])}", flush=True)
    t0 = time.monotonic()
    # Its own process group: on a timeout the whole run (make, pytest, the
    # target) is stopped, not just make.
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         stdin=subprocess.DEVNULL, errors="replace", start_new_session=True)
    try:
        out_s, err_s = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
        return None, f"make conformance did not finish within {timeout} s"
    proc = subprocess.CompletedProcess(cmd, p.returncode, out_s, err_s)
    # The result file is named by the target: an exec: adapter names its own.
    found = glob.glob(os.path.join(out, "*.json"))
    path = found[0] if len(found) == 1 else os.path.join(out, f"{name}.json")
    took = time.monotonic() - t0
    if os.path.exists(path):
        print(f"uptls compare: {name}: exit {proc.returncode} in {took:.1f} s -> {path}", flush=True)
        return path, None
    why = _reason(proc)
    print(f"uptls compare: {name}: could not run: {why}", flush=True)
    return None, why


def cmd_compare(a):
    notes, loaded, errors = [], [], []
    if a.results:
        paths = []
        for r in a.results:
            if os.path.isdir(r):
                found = compare.result_files(r)
                if not found:
                    notes.append(f"{r}: no *.json result file")
                paths += found
            elif os.path.exists(r):
                paths.append(r)
            else:
                notes.append(f"{r}: not found")
        got, skipped = compare.load_results(paths)
        loaded += got
        notes += skipped
    tags, seen = {}, {}
    for spec in (a.targets or "").split():
        name, _, binary = spec.partition("=")
        seen[name] = seen.get(name, 0) + 1
        base = re.sub(r"[^A-Za-z0-9._-]+", "-", name)  # exec:path/to/adapter
        subdir = base if seen[name] == 1 else f"{base}-{seen[name]}"
        path, why = run_target(name, binary, a.report_dir, a.make_arg, a.timeout, subdir)
        if path:
            tags[path] = subdir
            got, skipped = compare.load_results([path])
            loaded += got
            notes += skipped
            if not got:
                errors.append((name, f"result file unreadable: {skipped}"))
        else:
            errors.append((name, why))
    if not loaded and not errors:
        print("uptls compare: nothing to compare (give TARGETS=... or RESULTS=dir/)", file=sys.stderr)
        return 2
    cols = compare.merge(loaded, tags) + [compare.error_column(n, r) for n, r in errors]
    # Keep the order the user gave for targets they named.
    order = [s.partition("=")[0] for s in (a.targets or "").split()]
    cols.sort(key=lambda c: (order.index(c["target"].get("name")) if c["target"].get("name") in order
                             else len(order), c["label"]))
    m = compare.model(cols, notes)
    paths = compare.write_compare(m, a.report_dir)
    for c in m["columns"]:
        s = c["summary"]
        state = ", ".join(f"{v} {s[v]}" for v in s if s[v]) if c["status"] == "ok" else \
            f"could not run: {c['error']}"
        print(f"  {c['label']:<16} {state}")
        for n in c.get("notes") or []:
            print(f"  {'':<16} note: {n}")
    for n in notes:
        print(f"  note: {n}")
    print(f"  {len(m['disagreements'])} scenario(s) where targets disagree, "
          f"{len(m['findings'])} finding(s) (listed first in compare.md and compare.html)")
    for k, p in paths.items():
        print(f"  {k:5} {p}")
    if a.baseline:
        # CI gate: only a cell that is fail/error now and was not in the
        # baseline comparison fails the run (gate.py).
        try:
            base = gate.load(a.baseline)
        except (OSError, ValueError) as e:
            print(f"uptls compare: BASELINE={a.baseline}: cannot read it: {e}", file=sys.stderr)
            return 2
        new = gate.new_bad(m, base)
        md = gate.markdown(new, a.baseline)
        with open(os.path.join(a.report_dir, "compare.baseline.md"), "w", encoding="utf-8") as f:
            f.write(md)
        print(f"  {len(new)} new fail/error against {a.baseline}")
        for label, sid, v, old in new:
            print(f"    {label}: {sid}: {v} (baseline: {old or 'absent'})")
        return 1 if new else 0
    bad = any(c["status"] != "ok" or any(c["summary"].get(v) for v in BAD)
              for c in m["columns"])
    return 1 if bad else 0


def cmd_render(a):
    with open(a.file, encoding="utf-8") as f:
        doc = json.load(f)
    for k, p in write_all(doc, a.report_dir or os.path.dirname(os.path.abspath(a.file))).items():
        print(f"  {k:5} {p}")
    return 0


def cmd_diff(a):
    docs = []
    for p in (a.old, a.new):
        with open(p, encoding="utf-8") as f:
            docs.append(json.load(f))
    d = diff.diff_docs(*docs)
    sys.stdout.write(diff.baseline_markdown(d, a.old))
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m uptls_reports")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("compare", help="side-by-side report of several targets")
    c.add_argument("--report-dir", default="reports/out")
    c.add_argument("--targets", default="", help='"reference nginx=/path/to/nginx haproxy"')
    c.add_argument("--results", nargs="*", default=[], help="folders or files of results")
    c.add_argument("--make-arg", action="append", default=[],
                   help="extra VAR=value for make conformance (SCENARIOS=..., SHARD=...)")
    c.add_argument("--timeout", type=float, default=1800)
    c.add_argument("--baseline", default="",
                   help="an earlier compare.json: exit 1 only on a fail/error it did not have")
    r = sub.add_parser("render", help="JUnit/Markdown/HTML from one result file")
    r.add_argument("file")
    r.add_argument("--report-dir", default="")
    d = sub.add_parser("diff", help="what changed between two result files")
    d.add_argument("old")
    d.add_argument("new")
    a = ap.parse_args(argv)
    return {"compare": cmd_compare, "render": cmd_render, "diff": cmd_diff}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
