"""The verdict: the one place that writes one.

Every ScenarioResult is made here, from what the run found:

- judge(): the steps ran to the end; the first step with a failure decides
  (fail, or deviation when the target's deviation list explains exactly
  that failure), else pass (note when the scenario's soft expectation is
  what held);
- unsupported(): the target cannot express what the scenario needs;
- error(): nothing could be decided (a crash, a timeout, a harness bug);
- target_alert(): the target logged an alert naming the scenario's path,
  which overrides whatever the steps said.

The vocabulary (Verdict, FailKind) is uptls_vocab's, shared with the report
writers.
"""

import dataclasses

from uptls_vocab import Verdict

from .results import ScenarioResult


def unsupported(about, reason):
    return ScenarioResult(about, Verdict.UNSUPPORTED, reason)


def error(about, reason):
    return ScenarioResult(about, Verdict.ERROR, reason)


def target_alert(result, line):
    """An [alert]/[emerg] or sanitizer line of the target naming the scenario."""
    if result.verdict == Verdict.ERROR:
        return result
    return dataclasses.replace(result, verdict=Verdict.ERROR, reason=f"target log: {line}")


def judge(about, steps, note=None, deviation=None, deviation_listed=False):
    """steps: the StepResults, in order. deviation: the target's listed
    deviation for this scenario ({kind, reason, source, step?}), None for a
    wrong-way variant (a variant must fail, whatever the target's list says).
    deviation_listed: the scenario is on that list at all."""
    steps = tuple(steps)
    failed = next((st for st in steps if st.failures), None)
    if failed is None:
        verdict, reason = (Verdict.NOTE, note) if note else (Verdict.PASS, "every expectation held")
        if deviation_listed:
            reason += " (listed as a deviation for this target, but it passes)"
        return ScenarioResult(about, verdict, reason, steps, stale_deviation=deviation_listed)
    i, first = failed.step, failed.failures[0]
    reason = f"step {i}: " + "; ".join(f.message for f in failed.failures)
    if deviation and deviation["kind"] == first.kind and deviation.get("step", i) == i:
        return ScenarioResult(about, Verdict.DEVIATION,
                              f"known deviation: {deviation['reason']} ({deviation['source']}) "
                              f"-- {reason}", steps, first.kind, deviation)
    if deviation:
        # A listed deviation explains one failure, not any failure.
        reason += (f" [a deviation is listed for this scenario, but for {deviation['kind']} at "
                   f"step {deviation.get('step', 'any')}: this failure is not the one it "
                   "explains]")
    return ScenarioResult(about, Verdict.FAIL, reason, steps, first.kind)
