"""The verdict checks themselves fail on the observations a broken proxy makes.

Some misbehaviours (a proxy passing a truncated body on as complete, one
hanging past its timeout) are not expressible as a configuration of a
real proxy; these tests feed check_step the observations such a proxy
would produce and assert the check fails, and the right way.
"""

from uptls import verdict
from uptls.checks import check_step
from uptls.observe import summarize
from uptls.results import About, Failure, Response, StepResult


def _resp(status=200, backend="b1", complete=True, ms=10.0):
    return Response(status=status, backend=backend, complete=complete, time_ms=ms)


def _conn(conn=1, ok=True, requests=1, resumed=False, sni=None, versions=("TLSv1.3",),
          psk=False):
    return [{"event": "accept", "name": "b1", "conn": conn},
            {"event": "client_hello", "name": "b1", "conn": conn, "versions": list(versions),
             "sni": sni, "psk_offered": psk, "ticket_offered": False, "ciphers": []},
            {"event": "handshake", "name": "b1", "conn": conn, "ok": ok, "resumed": resumed,
             "version": "TLSv1.3", "cipher": "TLS_AES_128_GCM_SHA256"},
            *([{"event": "request", "name": "b1", "conn": conn}] * requests)]


def kinds(expect, responses, events):
    return [f.kind for f in check_step(expect, responses, summarize(events), pki=None)]


def test_truncated_body_passed_as_complete_is_an_unexpected_accept():
    exp = {"result": "reached", "truncation_signalled": True}
    assert kinds(exp, [_resp(complete=True)], _conn()) == ["unexpected-accept"]
    assert kinds(exp, [_resp(complete=False)], _conn()) == []
    assert kinds(exp, [_resp(status=502, backend=None)], _conn()) == []


def test_answer_after_the_bound_fails():
    exp = {"result": "refused", "within_s": 4}
    assert kinds(exp, [_resp(502, None, ms=8000)], _conn(ok=False, requests=0)) == \
        ["wrong-observation"]
    assert kinds(exp, [_resp(502, None, ms=3000)], _conn(ok=False, requests=0)) == []


def test_refused_but_forwarded_is_an_unexpected_accept():
    exp = {"result": "refused"}
    assert kinds(exp, [_resp(200)], _conn()) == ["unexpected-accept"]


def test_accepted_but_cut_short_fails():
    exp = {"result": "accepted"}
    assert kinds(exp, [_resp(200, complete=False)], _conn()) == ["wrong-observation"]


def test_cut_answer_fails_answers_whole():
    exp = {"result": "reached", "answers_whole": True}
    assert kinds(exp, [_resp(200, complete=False)], _conn()) == ["wrong-observation"]
    assert kinds(exp, [_resp(502, None)], _conn()) == []


def test_resumption_expectations():
    events = _conn(1) + _conn(2, resumed=True) + _conn(3, resumed=False)
    responses = [_resp()] * 3
    assert kinds({"result": "accepted", "resumed": "all-after-first"}, responses, events) == \
        ["wrong-observation"]
    assert kinds({"result": "accepted", "resumed": "none"}, responses, events) == \
        ["wrong-observation"]


def test_sni_and_versions():
    events = _conn(sni="10.0.0.1", versions=("TLSv1.3", "TLSv1.2"))
    assert kinds({"result": "accepted", "sni": "absent"}, [_resp()], events) == \
        ["wrong-observation"]
    assert kinds({"result": "accepted", "offered_versions": ["TLSv1.3"]}, [_resp()], events) == \
        ["wrong-observation"]


def test_session_carried_to_another_server():
    events = _conn(1, psk=True)
    assert kinds({"result": "accepted", "fresh_first_contact": True}, [_resp()], events) == \
        ["wrong-observation"]


# -- from step results to a verdict (verdict.judge) ----------------------------------

ABOUT = About("fam/x", "fam/x", "fam", "t", "high", "c", ("r",))


def _step(i, *kinds):
    return StepResult(i, "main", {}, {}, tuple(Failure(k, f"{k} at {i}") for k in kinds))


def test_first_failing_step_decides_the_fail_kind():
    res = verdict.judge(ABOUT, [_step(1), _step(2, "wrong-observation", "unexpected-accept")])
    assert (res.verdict, res.fail_kind) == ("fail", "wrong-observation")
    assert res.reason == "step 2: wrong-observation at 2; unexpected-accept at 2"


def test_a_deviation_explains_only_its_own_failure():
    dev = {"kind": "unexpected-accept", "reason": "why", "source": "doc", "step": 2}
    steps = [_step(1), _step(2, "unexpected-accept")]
    assert verdict.judge(ABOUT, steps, deviation=dev, deviation_listed=True).verdict == "deviation"
    other = verdict.judge(ABOUT, [_step(1, "unexpected-accept")], deviation=dev,
                          deviation_listed=True)
    assert other.verdict == "fail" and "not the one it explains" in other.reason
    wrong_kind = verdict.judge(ABOUT, [_step(1), _step(2, "wrong-observation")], deviation=dev)
    assert wrong_kind.verdict == "fail"


def test_a_listed_deviation_that_passes_is_stale_and_a_note_stays_a_note():
    res = verdict.judge(ABOUT, [_step(1)], note="soft", deviation_listed=True)
    assert res.verdict == "note" and res.stale_deviation
    assert res.to_json()["stale_deviation"] is True
    assert verdict.judge(ABOUT, [_step(1)]).verdict == "pass"
    alerted = verdict.target_alert(verdict.judge(ABOUT, [_step(1)]), "[alert] x")
    assert alerted.verdict == "error" and alerted.reason == "target log: [alert] x"
