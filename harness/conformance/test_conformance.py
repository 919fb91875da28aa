"""Each scenario of the catalogue is one test (its id is the scenario id)."""

import pytest

import uptls_reports
from uptls_vocab import Verdict


def test_scenario(scenario_id, results, request):
    res = results[scenario_id]
    v = res["verdict"]
    if v == Verdict.UNSUPPORTED:
        pytest.skip(f"unsupported: {res['reason']}")
    if v == Verdict.FAIL:
        pytest.fail(uptls_reports._detail(res), pytrace=False)
    if v == Verdict.ERROR:
        pytest.fail("ERROR " + uptls_reports._detail(res), pytrace=False)
    if res.get("stale_deviation") and request.config.option.strict_deviations:
        pytest.fail(f"listed as a deviation but passes (--strict): {res['reason']}",
                    pytrace=False)
