"""make limbo: an x509-limbo suite through a target proxy.

    python3 -m uptls.limbo_run --suite FILE --target T [--target-bin B]
        [--include GLOBS] [--exclude GLOBS] [--report-dir DIR] [--keep]

Every selected case gets a verdict: the SERVER cases a target can run go
through runner.run (the catalogue's runner) in batches of BATCH cases, each
batch one target process and one uptls-backend process (PARALLEL batches at
a time); the others are
`unsupported` with the reason (limbo.case_unsupported, the time window and
re-keying in limbo_prep). Writes into REPORT_DIR/limbo/: the uptls result
file and reports (<target>.json/.md/.html/.junit.xml), the LimboResult
(<target>.limbo-result.json) and the agreement summary
(<target>.limbo-summary.md). Exit 0 when no case fails or errors, 1
otherwise, 2 with one line for a malformed suite or a target that will
not start.
"""

import argparse
import concurrent.futures as cf
import datetime
import os
import shutil
import sys
import tempfile
import time

from . import UptlsError, limbo, limbo_prep, targets
from .runner import run
from .targets.base import TargetStartError

BATCH = 64        # = backend.GROUP_SIZE: one uptls-backend process per batch
PARALLEL = 2      # batches at once: one starts or stops while the other runs
VERDICTS = ("pass", "fail", "deviation", "note", "unsupported", "error")


def _decided(scenario, reason, verdict="unsupported"):
    """A result in the runner's shape for a case decided without a run."""
    return {"id": scenario.id, "scenario": scenario.id, "family": "limbo",
            "title": scenario.title, "importance": scenario.importance,
            "verdict": verdict, "reason": reason, "checks": scenario.checks,
            "refs": list(scenario.refs)}


def run_suite(suite, target_name, target_bin=None, include="", exclude="", keep=False,
              progress=None, now=None):
    """Run a suite; return (results document, [Case], {scenario id: Case})."""
    t0 = time.monotonic()
    cases = limbo.select(limbo.load(suite), include, exclude)
    target = targets.get(target_name, target_bin or None)
    target.find_binary()
    info = target.version_info()
    now = now or datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    scen = {c.id: limbo.to_scenario(c, suite) for c in cases}
    results, runnable = {}, []
    for c in cases:
        why = limbo.case_unsupported(c, target) or limbo_prep.time_unsupported(c, now)
        if why:
            results[c.id] = _decided(scen[c.id], why)
            if progress:
                progress(results[c.id])
        else:
            runnable.append(c)
    # /dev/shm when there is one: a suite writes thousands of small files
    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    work = tempfile.mkdtemp(prefix=f"uptls-limbo-{target.name}-", dir=shm)
    # Targets that drop to another user when started as root (Squid's
    # cache_effective_user, Apache's workers) must reach the run folders
    # below, as they do under /tmp in a catalogue run; keys stay 0600.
    os.chmod(work, 0o711)
    by_sid = {scen[c.id].id: c for c in runnable}
    say = progress or (lambda r: None)

    def linked(res):  # a documented deviation is shown as one at once
        if res["id"] in by_sid:
            limbo.link_deviation(by_sid[res["id"]], res, target)
        say(res)

    def one_batch(job):
        # Files first (re-keying included), so one batch prepares while the
        # other runs; then its own adapter instance (an adapter holds one
        # process). Every process is started and stopped in this one thread
        # (backend.BackendGroup.spawn: PR_SET_PDEATHSIG is per thread).
        i, chunk = job
        pki, why = limbo_prep.prepare(chunk, os.path.join(work, f"pki-{i}"))
        out = [_decided(scen[cid], reason) for cid, reason in why.items()]
        for r in out:
            say(r)
        chunk = [c for c in chunk if c.id not in why]
        if not chunk:
            return {"scenarios": out}
        t = targets.get(target_name, target_bin or None)
        t.version_info = lambda: info   # asked once per suite, not once per batch
        try:
            doc = run(t, [scen[c.id] for c in chunk], pki, keep=keep, progress=linked,
                      run_root=work)
        except TargetStartError as e:  # this batch's configuration: its cases error
            doc = {"scenarios": [_decided(scen[c.id], f"the target did not start with this "
                                          f"batch: {e}", "error") for c in chunk]}
        doc["scenarios"] += out
        return doc

    try:
        chunks = [runnable[i:i + BATCH] for i in range(0, len(runnable), BATCH)]
        with cf.ThreadPoolExecutor(PARALLEL) as ex:
            docs = list(ex.map(one_batch, enumerate(chunks)))
        for doc in docs:
            for res in doc["scenarios"]:
                c = by_sid[res["id"]]
                results[c.id] = limbo.link_deviation(c, res, target)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    ordered = [results[c.id] for c in cases]
    summary = {v: 0 for v in VERDICTS}
    for r in ordered:
        summary[r["verdict"]] += 1
    duration = time.monotonic() - t0
    doc = {"schema": "uptls-results/1",
           "target": {k: info.get(k) for k in ("name", "version", "binary", "openssl")},
           "target_detail": info.get("detail"),
           "started": now.isoformat(timespec="seconds"), "duration_s": round(duration, 2),
           "summary": summary, "scenarios": ordered,
           "limbo": {"suite": os.path.abspath(suite), "cases": len(cases),
                     "ran": sum(1 for r in ordered if r["verdict"] != "unsupported"),
                     "batches": len(docs),
                     "cases_per_s": round(len(cases) / duration, 1) if duration else None}}
    alerts = [a for d in docs for a in d.get("target_alerts", [])]
    if alerts:
        doc["target_alerts"] = alerts[:50]
    if keep:
        doc["run_dir"] = work
    return doc, cases


def main(argv=None):
    ap = argparse.ArgumentParser(prog="make limbo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--suite", required=True, help="x509-limbo JSON (LIMBO=)")
    ap.add_argument("--target", default="reference")
    ap.add_argument("--target-bin", default="")
    ap.add_argument("--include", default="", help="globs on case ids (LIMBO_INCLUDE=)")
    ap.add_argument("--exclude", default="", help="globs on case ids (LIMBO_EXCLUDE=)")
    ap.add_argument("--report-dir", default="reports/out")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--quiet", action="store_true", help="no line per case")
    a = ap.parse_args(argv)
    from . import limbo_out  # the report writers sit beside the runner's

    def progress(res):
        if not a.quiet and res["verdict"] != "pass":
            print(f"  {res['verdict']:<11} {res['id']}  -- {res['reason'][:160]}", flush=True)
    out_dir = os.path.join(a.report_dir, "limbo")
    try:
        doc, cases = run_suite(a.suite, a.target, a.target_bin, a.include, a.exclude, a.keep,
                               progress)
        paths = limbo_out.write(doc, cases, out_dir)
    except UptlsError as e:
        print(f"uptls: {e}", file=sys.stderr)
        return 2
    for line in limbo_out.summary_lines(doc, cases):
        print(line)
    for kind, path in paths.items():
        print(f"  {kind:8} {path}")
    if doc.get("run_dir"):
        print(f"  run folder kept: {doc['run_dir']}")
    s = doc["summary"]
    return 1 if s["fail"] or s["error"] or doc.get("target_alerts") else 0


if __name__ == "__main__":
    sys.exit(main())
