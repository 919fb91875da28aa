"""docs/ci-matrix.yml, run locally: the shards of each target merged by
`make compare RESULTS=...` give the same comparison as the unsharded run,
and the merge job's gate fails on a new fail and only then.

The shard count, the shard list and the commands are read from the
workflow file, so the test and the workflow cannot drift apart. Two quick
targets (uptls-proxy and nginx) and a few families keep it short.
"""

import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest

from helpers import built
from uptls import ROOT, targets

WORKFLOW = os.path.join(ROOT, "docs", "ci-matrix.yml")
QUICK = ["reference", "nginx"]
FAMILIES = "trust/*,name/*,client-input/*"


def workflow():
    with open(WORKFLOW, encoding="utf-8") as f:
        text = f.read()
    n = int(re.search(r"^\s*SHARDS:\s*(\d+)", text, re.M).group(1))
    shards = [int(x) for x in re.search(r"^\s*shard:\s*\[([^\]]*)\]", text, re.M)
              .group(1).split(",")]
    tlist = re.search(r"^\s*target:\s*\[([^\]]*)\]", text, re.M | re.S).group(1)
    return text, n, shards, [t.strip() for t in tlist.replace("\n", " ").split(",") if t.strip()]


def make(*args, timeout=600):
    return subprocess.run(["make", "-s", "--no-print-directory", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def verdicts(compare_json):
    with open(compare_json, encoding="utf-8") as f:
        m = json.load(f)
    cols = {c["label"]: c["summary"] for c in m["columns"]}
    cells = {(r["id"], label): v for r in m["rows"] for label, v in r["verdicts"].items()}
    return cols, cells


def test_workflow_covers_every_target_and_shard():
    text, n, shards, listed = workflow()
    assert shards == list(range(1, n + 1)), f"shard list {shards} is not 1..SHARDS={n}"
    assert sorted(listed) == sorted(targets.TARGETS), \
        f"the matrix lists {sorted(listed)}, the adapters are {sorted(targets.TARGETS)}"
    for needle in ("SHARD=${{ matrix.shard }}/$SHARDS", "actions/upload-artifact",
                   "actions/download-artifact", "make compare RESULTS=results/",
                   "COMPARE_BASELINE=", "GITHUB_STEP_SUMMARY"):
        assert needle in text, f"docs/ci-matrix.yml lost '{needle}'"


@pytest.fixture(scope="module")
def runs():
    built()
    _, n, shards, _ = workflow()
    tmp = tempfile.mkdtemp(prefix="uptls-ci-matrix-")
    try:
        results = os.path.join(tmp, "results")
        for t in QUICK:
            for k in shards:
                # The matrix job's command (docs/ci-matrix.yml), with a family filter.
                out = os.path.join(results, f"uptls-{t}-{k}")
                r = make("conformance", f"TARGET={t}", f"SHARD={k}/{n}", f"SCENARIOS={FAMILIES}",
                         f"REPORT_DIR={out}")
                assert os.path.exists(os.path.join(out, f"{t}.json")), r.stdout + r.stderr
        merged = os.path.join(tmp, "merged")
        r = make("compare", f"RESULTS={results}/", f"REPORT_DIR={merged}")
        assert os.path.exists(os.path.join(merged, "compare.json")), r.stdout + r.stderr
        whole = os.path.join(tmp, "whole")
        r = make("compare", f"TARGETS={' '.join(QUICK)}", f"SCENARIOS={FAMILIES}",
                 f"REPORT_DIR={whole}")
        assert os.path.exists(os.path.join(whole, "compare.json")), r.stdout + r.stderr
        yield tmp, results, merged, whole
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_merged_shards_equal_the_unsharded_comparison(runs):
    _, _, merged, whole = runs
    mcols, mcells = verdicts(os.path.join(merged, "compare.json"))
    wcols, wcells = verdicts(os.path.join(whole, "compare.json"))
    assert sorted(mcols) == sorted(wcols) == sorted(QUICK)
    assert mcols == wcols, f"column summaries differ: merged {mcols}, unsharded {wcols}"
    assert mcells == wcells, {k: (mcells.get(k), wcells.get(k))
                              for k in set(mcells) | set(wcells) if mcells.get(k) != wcells.get(k)}
    with open(os.path.join(merged, "compare.json"), encoding="utf-8") as f:
        m = json.load(f)
    overlaps = [c for c in m["columns"] if c.get("overlaps")]
    assert not overlaps, "shards overlapped"


def test_gate_fails_on_a_new_fail_only(runs):
    tmp, results, merged, _ = runs
    base = os.path.join(merged, "compare.json")
    # The same results against themselves: nothing new, exit 0.
    again = os.path.join(tmp, "again")
    r = make("compare", f"RESULTS={results}/", f"REPORT_DIR={again}", f"COMPARE_BASELINE={base}")
    assert r.returncode == 0, r.stdout + r.stderr
    # One shard's passing scenario turned into a fail: the gate names it and fails.
    bad = os.path.join(tmp, "bad-results")
    shutil.copytree(results, bad)
    path = os.path.join(bad, "uptls-nginx-1", "nginx.json")
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    victim = next(s for s in doc["scenarios"] if s["verdict"] == "pass")
    victim["verdict"] = "fail"
    doc["summary"]["pass"] -= 1
    doc["summary"]["fail"] += 1
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f)
    out = os.path.join(tmp, "gated")
    r = make("compare", f"RESULTS={bad}/", f"REPORT_DIR={out}", f"COMPARE_BASELINE={base}")
    # (make turns the compare's exit 1 into its own 2)
    assert r.returncode != 0 and "1 new fail/error" in r.stdout, r.stdout + r.stderr
    with open(os.path.join(out, "compare.baseline.md"), encoding="utf-8") as f:
        md = f.read()
    assert victim["id"] in md and "nginx" in md, md
    # Against a baseline that already had that fail, it is not new: exit 0.
    r = make("compare", f"RESULTS={bad}/", f"REPORT_DIR={os.path.join(tmp, 'g2')}",
             f"COMPARE_BASELINE={os.path.join(out, 'compare.json')}")
    assert r.returncode == 0, r.stdout + r.stderr
