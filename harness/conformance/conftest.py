"""pytest plugin: one test per scenario, all run by one target process.

The scenarios pytest selected (after -k, --deselect, ...) are run together
once per session; each test then reports its scenario's verdict. pass,
note and deviation pass (their reason is printed); unsupported is a skip
with the missing capability; fail and error fail with expected vs
observed. A missing target binary or a broken catalogue stops the run with
one line and exit status 2.
"""

import os
import threading

import pytest

from uptls import SCENARIO_DIR, UptlsError, catalogue, pki as pki_mod, targets
from uptls.runner import SANITY_ID, SanityError, run
import uptls_reports
from uptls_vocab import RESULTS_SCHEMA, Verdict


def pytest_addoption(parser):
    g = parser.getgroup("uptls")
    g.addoption("--target", default="reference", help="target adapter name")
    g.addoption("--target-bin", default="", help="path to the target binary")
    g.addoption("--scenarios", default="", help="glob(s) on scenario ids, comma-separated")
    g.addoption("--scenario-dir", default="", help="catalogue folder (default: scenarios/)")
    g.addoption("--report-dir", default="reports/out", help="where results are written")
    g.addoption("--keep", action="store_true", help="keep the run folder and print its path")
    g.addoption("--deviations", default="",
                help="the target's deviation list (TOML) to use instead of the built-in one")
    g.addoption("--shard", default="", help="k/n: run the k-th of n stable slices")
    g.addoption("--baseline", default="", help="earlier result file to compare with")
    g.addoption("--strict-deviations", action="store_true",
                help="a listed deviation that now passes fails the run")


def _die(config, msg):
    """Stop the whole run with exit status 2; pytest prints the message once."""
    pytest.exit(f"uptls: {msg}", returncode=2)


def pytest_configure(config):
    o = config.option
    try:
        config._uptls_target = targets.get(o.target, o.target_bin or None)
        _remove_old_results(o.report_dir, o.target)
        config._uptls_target.find_binary()
        # An exec: adapter names its target only now (describe).
        _remove_old_results(o.report_dir, config._uptls_target.name)
        if o.deviations:
            config._uptls_target.deviations_file = os.path.abspath(o.deviations)
        config._uptls_target.deviations()  # a broken list stops the run here
        config._uptls_pki = pki_mod.build()
        cat = catalogue.load_catalogue(o.scenario_dir or SCENARIO_DIR,
                                    entities=config._uptls_pki.entities)
        if not o.scenario_dir:
            config._uptls_target.check_deviations([s.id for s in cat])
        # The sanity scenario runs first whatever SCENARIOS/SHARD select.
        config._uptls_sanity = {s.id: s for s in cat if s.id == SANITY_ID}
        if o.scenarios:
            cat = catalogue.select(cat, o.scenarios)
        if o.shard:
            cat = catalogue.shard(cat, o.shard)
    except UptlsError as e:
        _die(config, str(e))
    config._uptls_catalogue = {s.id: s for s in cat}
    config._uptls_doc = None
    config._uptls_baseline = _baseline_load(config)


def _remove_old_results(report_dir, name):
    """No earlier result may stand in for this run if it stops early."""
    for ext in ("json", "junit.xml", "md", "html", "baseline.md"):
        try:
            os.remove(os.path.join(report_dir, f"{name}.{ext}"))
        except OSError:
            pass


# -- BASELINE=file: what changed since an earlier result file ---------------------
def _baseline_load(config):
    """Read --baseline before anything runs: an unreadable file stops the run (exit 2)."""
    path = config.option.baseline
    if not path:
        return None
    import json
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        _die(config, f"BASELINE={path}: cannot read it: {e}")
    if not isinstance(doc, dict) or doc.get("schema") != RESULTS_SCHEMA:
        _die(config, f"BASELINE={path}: not a uptls result file (schema {RESULTS_SCHEMA})")
    return doc


def _baseline_report(config, doc, paths):
    """Diff the run with the baseline; write <target>.baseline.md next to the results."""
    from uptls_reports import diff as diff_mod
    base = getattr(config, "_uptls_baseline", None)
    if base is None:
        return
    d = diff_mod.diff_docs(base, doc)
    md = os.path.splitext(paths["json"])[0] + ".baseline.md"
    uptls_reports._atomic_write(md, diff_mod.baseline_markdown(d, config.option.baseline))
    paths["base"] = md
    config._uptls_baseline_lines = diff_mod.baseline_lines(d, config.option.baseline)


def pytest_generate_tests(metafunc):
    if "scenario_id" in metafunc.fixturenames:
        ids = sorted(metafunc.config._uptls_catalogue)
        metafunc.parametrize("scenario_id", ids, ids=ids)


@pytest.fixture(scope="session")
def results(request):
    config = request.config
    if config._uptls_doc is None:
        selected = [item.callspec.params["scenario_id"] for item in request.session.items
                    if hasattr(item, "callspec") and "scenario_id" in item.callspec.params]
        # The sanity scenario always runs first, selected or not.
        pool = {**config._uptls_sanity, **config._uptls_catalogue}
        ids = set(selected) | set(config._uptls_sanity)
        scenarios = [pool[i] for i in sorted(ids)]
        tr = config.pluginmanager.get_plugin("terminalreporter")
        capman = config.pluginmanager.get_plugin("capturemanager")

        lock = threading.Lock()

        def progress(res):
            # One line per scenario as it finishes, past pytest's capture.
            if tr and capman:
                with lock, capman.global_and_fixture_disabled():
                    tr.write_line(f"  {res['verdict']:<11} {res['id']}"
                                  + ("" if res["verdict"] == Verdict.PASS
                                     else f"  -- {res['reason'][:160]}"))
        target = config._uptls_target
        if tr and capman:
            with capman.global_and_fixture_disabled():
                tr.write_line(f"uptls: {len(scenarios)} scenario(s) against {target.name} "
                              f"({target.binary})")
        try:
            doc = run(target, scenarios, config._uptls_pki, keep=config.option.keep,
                      progress=progress)
        except (SanityError, UptlsError) as e:
            _die(config, str(e))
        # A sanity run that SCENARIOS/SHARD did not select was a gate, not a
        # result: keep it out of the results so shards merge without overlap.
        gates = [r for r in doc["scenarios"] if r["id"] not in config._uptls_catalogue]
        if gates:
            doc["scenarios"] = [r for r in doc["scenarios"] if r["id"] in config._uptls_catalogue]
            doc["gate"] = [{k: r[k] for k in ("id", "verdict", "reason")} for r in gates]
            for r in gates:
                doc["summary"][r["verdict"]] -= 1
        # How this run was asked for: the reports' `make repro` commands repeat it.
        doc["invocation"] = {"target": config.option.target,
                             "target_bin": config.option.target_bin or None}
        paths = uptls_reports.write_all(doc, config.option.report_dir)
        _baseline_report(config, doc, paths)
        config._uptls_doc = doc
        config._uptls_paths = paths
    return {r["id"]: r for r in config._uptls_doc["scenarios"]}


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    doc = getattr(config, "_uptls_doc", None)
    if not doc:
        return
    from uptls_reports.findings import findings_lines, slowest_lines
    # Findings first: every fail, deviation and note, most important first.
    for line in findings_lines(doc):
        terminalreporter.write_line(line)
    s = doc["summary"]
    terminalreporter.write_line(
        f"uptls {doc['target']['name']} {doc['target']['version']}: " +
        ", ".join(f"{v} {s[v]}" for v in s) + f" in {doc['duration_s']} s")
    for line in slowest_lines(doc):
        terminalreporter.write_line(line)
    for kind, path in config._uptls_paths.items():
        terminalreporter.write_line(f"  {kind:5} {path}")
    if doc.get("run_dir"):
        terminalreporter.write_line(f"  run folder kept: {doc['run_dir']}")
    for sid in doc.get("stale_deviations", []):
        terminalreporter.write_line(f"  stale deviation: {sid} is listed as a deviation but "
                                    "passes (STRICT=1 makes this fail the run)", yellow=True)
    for line in doc.get("target_alerts", []):
        terminalreporter.write_line(f"  target log alert (fails the run): {line.strip()}",
                                    red=True)
    for line in getattr(config, "_uptls_baseline_lines", None) or []:
        terminalreporter.write_line(line)


def pytest_sessionfinish(session, exitstatus):
    """An [alert]/[emerg] or sanitizer line that names no scenario (a worker
    that crashed, say) still fails the run."""
    doc = getattr(session.config, "_uptls_doc", None)
    if doc and doc.get("target_alerts") and session.exitstatus == 0:
        session.exitstatus = 1
