"""The haproxy, apache, nginx-stream, squid, squid-openssl and trafficserver
adapters over the whole catalogue.

Each target runs the catalogue once with its wrong-way variants
(uptls.runner.run(..., variants=True)). Asserted per target:
- no scenario or variant is an 'error';
- no scenario is an unexplained 'fail' (pass, note, a listed deviation or
  unsupported with a reason);
- every wrong-way variant of a scenario the target supports fails (or is
  itself unsupported, when the change asks for something the target cannot
  express), so each verdict could have come out the other way on it;
- the rendered configuration passes the target's own check.
"""

import os
import tempfile

import pytest

from helpers import by_id, catalogue, pki, run_target
from uptls import targets
from uptls.plan import Unit, is_ip, slug
from uptls.runner import Run

TARGETS = ["haproxy", "apache", "nginx-stream", "squid", "squid-openssl", "trafficserver"]


def _available(name):
    try:
        targets.get(name).find_binary()
        return True
    except Exception:
        return False


PARAMS = [pytest.param(t, marks=pytest.mark.skipif(not _available(t),
                                                   reason=f"{t} is not installed"))
          for t in TARGETS]


@pytest.fixture(scope="module", params=PARAMS)
def doc(request):
    return request.param, by_id(run_target(request.param, variants=True))


def test_no_scenario_errors(doc):
    target, results = doc
    bad = {k: r["reason"] for k, r in results.items() if r["verdict"] == "error"}
    assert not bad, f"{target}: scenarios with verdict error: {bad}"


def test_no_unexplained_fail(doc):
    target, results = doc
    bad = {k: r["reason"] for k, r in results.items()
           if not r.get("variant") and r["verdict"] not in
           ("pass", "note", "deviation", "unsupported")}
    assert not bad, f"{target}: scenarios neither passing nor explained: {bad}"
    for k, r in results.items():
        if r["verdict"] == "unsupported":
            assert r["reason"], f"{target}: {k} is unsupported without a reason"
        if r["verdict"] == "deviation":
            assert r["deviation"]["source"], f"{target}: {k}: deviation without a source"


def test_no_stale_deviation(doc):
    target, results = doc
    stale = [k for k, r in results.items() if r.get("stale_deviation")]
    assert not stale, f"{target}: listed deviations that now pass: {stale}"


def test_every_variant_of_a_supported_scenario_fails(doc):
    """A variant may be listed in the target's deviations (key 'ID~wrongN')
    when the target's documented behaviour keeps it from failing."""
    target, results = doc
    listed = targets.get(target).deviations()
    checked, bad = 0, {}
    for k, r in results.items():
        if not r.get("variant"):
            continue
        base = results[r["scenario"]]
        if base["verdict"] == "unsupported" or k in listed:
            continue
        checked += 1
        if r["verdict"] not in ("fail", "unsupported"):
            bad[k] = f"{r['variant']}: {r['verdict']}: {r['reason']}"
    assert checked, f"{target}: no wrong-way variant was checked"
    assert not bad, f"{target}: wrong-way variants that did not fail: {bad}"


# Targets whose catalogue run with variants is in test_discrimination.py
# (they cannot express every setting) but whose own checker validates a
# rendered config: caddy validate.
RENDER_ONLY = [pytest.param(t, marks=pytest.mark.skipif(not _available(t),
                                                        reason=f"{t} is not installed"))
               for t in ["caddy"]]


@pytest.mark.parametrize("name", PARAMS + RENDER_ONLY)
def test_rendered_config_passes_the_targets_check(name):
    """The whole catalogue (variants included) in one config: the target's
    own checker (haproxy -c, apache2 -t, nginx -t) accepts it."""
    t = targets.get(name)
    t.find_binary()
    scenarios = list(catalogue())
    with tempfile.TemporaryDirectory(prefix=f"uptls-render-{name}-") as tmp:
        r = Run(t, scenarios, pki(), variants=True, run_root=tmp)
        jobs = [j for j in r.jobs if not t.unsupported(j.scenario)]
        assert jobs
        for j in jobs:
            for loc in j.scenario.locations:
                # Rendering only: placeholder backend addresses, nothing started.
                host = loc.upstream_host
                direct = bool(host and is_ip(host))
                servers = [f"{host if direct else '127.0.0.1'}:{40000 + i}"
                           for i, _ in enumerate(loc.backends)]
                block = None if direct else (host or f"{slug(j.index)}-{loc.upstream}.uptls.invalid")
                j.units[loc.name] = Unit(j.scenario.id, j.key, slug(j.index), loc.name,
                                         f"/u/{slug(j.index)}/{loc.name}/", block,
                                         servers[:1] if direct else servers, direct,
                                         dict(loc.settings), pki())
        units = [u for j in jobs for u in j.units.values()]
        if getattr(t, "unique_upstream_hosts", False):
            seen, keep = set(), []
            for u in units:
                if u.upstream_block and u.upstream_block in seen and \
                        not u.upstream_block.endswith(".uptls.invalid"):
                    continue
                seen.add(u.upstream_block)
                keep.append(u)
            units = keep
        t.run_dir = os.path.join(tmp, "render")
        os.makedirs(t.run_dir)
        conf = t.render(units, t.run_dir, 40999)
        path = os.path.join(t.run_dir, "target.conf")
        with open(path, "w") as f:
            f.write(conf)
        complaint = t.check_config(path)
        assert complaint is None, f"{name} rejects its rendered configuration:\n{complaint}"
