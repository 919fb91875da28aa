"""The result file's vocabulary, defined once: what its writer (the driver,
harness/uptls) and its readers (the report writers, reports/uptls_reports)
both speak.

It lives here, beside uptls_reports and not inside harness/, because the
report writers run standalone (PYTHONPATH=reports: `make report`, `make
compare RESULTS=dir/` over result files made elsewhere) and must not need
the driver; the driver already has reports/ on its path (it writes its
reports through uptls_reports), and harness/uptls/__init__.py adds it when
a caller did not. Stdlib only, no imports from either side.

    Verdict      pass | fail | deviation | note | unsupported | error
    FailKind     how a fail failed: unexpected-accept | unexpected-refusal |
                 wrong-observation (most dangerous first)
    Importance   critical | high | medium | low (most important first)
    FINDINGS     the verdicts a report lists first (fail, deviation, note),
                 in the order finding_key() gives them
    tls          TLS names: protocol versions, TLS 1.3 suites, SCSVs

Each is a StrEnum: a member is its own string ("pass" == Verdict.PASS), so
result files stay plain JSON and old result files read back unchanged.
"""

import enum

RESULTS_SCHEMA = "uptls-results/1"


class Verdict(enum.StrEnum):
    """A scenario's verdict. The order is the result file's summary order."""
    PASS = "pass"                # every expectation held
    FAIL = "fail"                # one did not (see FailKind)
    DEVIATION = "deviation"      # a fail the target's deviation list explains, with a source
    NOTE = "note"                # a soft expectation (the scenario's `note`) held
    UNSUPPORTED = "unsupported"  # the target cannot express what the scenario needs
    ERROR = "error"              # nothing could be decided (a crash, a timeout, a harness bug)


# Worst first: the order reports list verdicts in.
WORST_FIRST = (Verdict.FAIL, Verdict.ERROR, Verdict.DEVIATION, Verdict.NOTE,
               Verdict.UNSUPPORTED, Verdict.PASS)
# A run with one of these did not go as documented (exit status 1).
BAD = (Verdict.FAIL, Verdict.ERROR)


class FailKind(enum.StrEnum):
    """Which way a failed check failed. The order is severity, worst first."""
    UNEXPECTED_ACCEPT = "unexpected-accept"    # forwarded what it had to refuse
    UNEXPECTED_REFUSAL = "unexpected-refusal"  # refused what it had to forward
    WRONG_OBSERVATION = "wrong-observation"    # did something, not what was configured


class Importance(enum.StrEnum):
    """A scenario's importance. The order is rank, most important first."""
    CRITICAL = "critical"  # an attacker gains
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


def rank(vocabulary, value, default=9):
    """The position of value (a member or its string) in the order of
    vocabulary (Verdict, FailKind, Importance); default when it has no such
    value: rank(Importance, "critical") == 0."""
    try:
        return list(vocabulary).index(vocabulary(value))
    except ValueError:
        return default


# What a report leads with: every result that says something about the
# target (not pass, not unsupported; an error says something about the run).
FINDINGS = (Verdict.FAIL, Verdict.DEVIATION, Verdict.NOTE)


def finding_key(result):
    """The one order of findings, used by every report writer:

    1. importance, critical first (a scenario's importance is what is at
       stake when its expectation does not hold);
    2. which way it failed, unexpected-accept first, then unexpected-refusal,
       then wrong-observation; a note (a soft expectation that held: a
       documented behaviour worth knowing, not a failure) comes after every
       fail and deviation of the same importance;
    3. fail before deviation (a deviation is a fail with a sourced explanation);
    4. scenario id, for a stable order.

    result: a result file's scenario dict (verdict, importance, fail_kind, id)."""
    verdict = result.get("verdict")
    kind = len(FailKind) if verdict == Verdict.NOTE else rank(FailKind, result.get("fail_kind"),
                                                                len(FailKind) - 1)
    return (rank(Importance, result.get("importance"), len(Importance)), kind,
            rank(Verdict, verdict), str(result.get("id")))


def empty_summary():
    """{verdict: 0} in summary order, the shape of a result file's summary."""
    return {str(v): 0 for v in Verdict}
