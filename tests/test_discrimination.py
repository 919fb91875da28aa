"""Every scenario passes against a correct proxy and fails against a broken one.

A verdict is evidence only if it can come out the other way: each scenario
is run against nginx and uptls-proxy as configured (it must pass, or be a
listed deviation) and with each of its wrong-way variants (a setting
changed the wrong way: it must fail), and against uptls-proxy with the fault
switch that breaks the directive it checks (it must fail).
"""

import re

import pytest

from helpers import by_id, catalogue, run_target

IDS = [s.id for s in catalogue()]
VARIANTS = [f"{s.id}~wrong{i}" for s in catalogue() for i, w in enumerate(s.wrong, 1)
            if w.proxy or w.drop]
FAULTED = sorted({(w.fault, s.id) for s in catalogue() for w in s.wrong if w.fault})


@pytest.fixture(scope="module", params=["reference", "nginx"])
def doc(request):
    return request.param, by_id(run_target(request.param, variants=True))


@pytest.mark.parametrize("sid", IDS)
def test_scenario_holds_on_a_correct_proxy(doc, sid):
    target, results = doc
    res = results[sid]
    assert res["verdict"] in ("pass", "note", "deviation"), \
        f"{target}: {sid}: {res['verdict']}: {res['reason']}"
    if target == "reference":
        assert res["verdict"] in ("pass", "note"), \
            f"the reference proxy must not need a deviation: {res['reason']}"


@pytest.mark.parametrize("vid", VARIANTS)
def test_wrong_way_variant_fails(doc, vid):
    target, results = doc
    res = results[vid]
    assert res["verdict"] == "fail", \
        f"{target}: {vid} ({res.get('variant')}) should fail but is {res['verdict']}: {res['reason']}"
    sid, n = vid.split("~wrong")
    want = next(s for s in catalogue() if s.id == sid).wrong[int(n) - 1].fails_at_step
    if want:
        assert res["reason"].startswith(f"step {want}:"), \
            f"{vid} should fail at step {want}: {res['reason']}"


@pytest.fixture(scope="module")
def fault_runs():
    cache = {}

    def get(fault):
        if fault not in cache:
            ids = {sid for f, sid in FAULTED if f == fault}
            cache[fault] = by_id(run_target("reference", [s for s in catalogue() if s.id in ids],
                                            faults=(fault,)))
        return cache[fault]
    return get


@pytest.mark.parametrize("fault,sid", FAULTED, ids=[f"{f}:{s}" for f, s in FAULTED])
def test_fault_switch_makes_scenario_fail(fault_runs, fault, sid):
    res = fault_runs(fault)[sid]
    assert res["verdict"] == "fail", \
        f"uptls-proxy --fault {fault}: {sid} should fail but is {res['verdict']}: {res['reason']}"
    want = next(w.fails_at_step for s in catalogue() if s.id == sid
                for w in s.wrong if w.fault == fault)
    if want:
        assert res["reason"].startswith(f"step {want}:"), \
            f"uptls-proxy --fault {fault}: {sid} should fail at step {want}: {res['reason']}"


# The catalogue's certificate gaps closed by issue 14: each is run above like
# every scenario (passes on a correct proxy, fails under each wrong-way
# variant); this keeps them from leaving the catalogue unnoticed.
ISSUE14_SCENARIOS = (
    "trust/sha1-signed-leaf-refused", "trust/rsa1024-leaf-refused",
    "trust/intermediate-only-trusted-refused", "trust/intermediate-trusted-leaf-only-accepted",
    "trust/crl-missing-for-intermediate-refused",
    "client-cert/intermediate-only-in-trusted-file-not-sent",
    "trust/cross-signed-valid-path-accepted")


@pytest.mark.parametrize("sid", ISSUE14_SCENARIOS)
def test_issue14_scenario_has_wrong_way_variants(sid):
    sc = next((s for s in catalogue() if s.id == sid), None)
    assert sc is not None, f"{sid} left the catalogue"
    assert [w for w in sc.wrong if w.proxy or w.drop] and sc.refs
    assert f"{sid}~wrong1" in VARIANTS


# -- the targets that cannot express every setting ----------------------------
# caddy, node-http-proxy and stunnel run the same catalogue with its
# wrong-way variants. A scenario holds (pass, note or a sourced deviation) or
# is unsupported with the setting and its source; a variant of a scenario
# the target expresses fails, unless the target's deviation list explains
# (entry 'ID~wrongN', with a source) why it cannot, or the variant itself
# asks for a setting the target cannot express. Each such case is a skip
# that names why, never a pass.
from uptls import targets as _targets  # noqa: E402

PARTIAL = ["caddy", "node-http-proxy", "stunnel"]


def _installed(name):
    try:
        _targets.get(name).find_binary()
        return True
    except Exception:
        return False


@pytest.fixture(scope="module", params=[
    pytest.param(t, marks=pytest.mark.skipif(not _installed(t), reason=f"{t} is not installed "
                                             f"(make deps TARGET={t})")) for t in PARTIAL])
def partial_doc(request):
    return request.param, by_id(run_target(request.param, variants=True))


@pytest.mark.parametrize("sid", IDS)
def test_scenario_holds_or_is_unsupported_with_its_source(partial_doc, sid):
    target, results = partial_doc
    res = results[sid]
    assert res["verdict"] in ("pass", "note", "deviation", "unsupported"), \
        f"{target}: {sid}: {res['verdict']}: {res['reason']}"
    assert not res.get("stale_deviation"), f"{target}: {sid}: listed deviation now passes"
    if res["verdict"] == "deviation":
        assert res["deviation"]["source"], f"{target}: {sid}: deviation without a source"
    if res["verdict"] == "unsupported":
        # "setting: why (source)": the setting is named, a source follows.
        assert re.match(r"[a-z_0-9 ]+[:\[ ]", res["reason"]) and "(" in res["reason"], \
            f"{target}: {sid}: unsupported without the setting and its source: {res['reason']}"
        pytest.skip(f"{target} cannot express it: {res['reason']}")


@pytest.mark.parametrize("vid", VARIANTS)
def test_wrong_way_variant_fails_where_expressible(partial_doc, vid):
    target, results = partial_doc
    res, sid = results[vid], vid.split("~wrong")[0]
    base = results[sid]
    if base["verdict"] == "unsupported":
        pytest.skip(f"{target} cannot express {sid}: {base['reason']}")
    listed = _targets.get(target).deviations().get(vid)
    if listed:
        assert listed["source"]
        assert res["verdict"] != "fail", f"{target}: {vid} is listed as unable to fail, but fails"
        pytest.skip(f"{target}: {vid} cannot fail: {listed['reason']} ({listed['source']})")
    if res["verdict"] == "unsupported":
        pytest.skip(f"{target} cannot express the variant ({res['variant']}): {res['reason']}")
    want = next(s for s in catalogue() if s.id == sid).wrong[int(vid.split("~wrong")[1]) - 1]
    dev_step = base.get("deviation", {}).get("step")
    if want.fails_at_step and dev_step and dev_step < want.fails_at_step:
        pytest.skip(f"{target}: {sid} already deviates at step {dev_step} (listed: "
                    f"{base['deviation']['source']}), so step {want.fails_at_step}, where "
                    "the variant would show, is not reached as the variant needs")
    assert res["verdict"] == "fail", \
        f"{target}: {vid} ({res.get('variant')}) should fail but is {res['verdict']}: {res['reason']}"
    if want.fails_at_step:
        assert res["reason"].startswith(f"step {want.fails_at_step}:"), \
            f"{target}: {vid} should fail at step {want.fails_at_step}: {res['reason']}"
