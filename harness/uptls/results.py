"""Results, typed: what a run found, and the result file it is written as.

Inside the driver a result is a frozen dataclass; to_json() gives the dict
the result file holds (schema uptls-results/1, see reports/uptls_vocab),
field for field and in the same order as before the types existed, so a
report writer reads old and new files alike. A field that is None is left
out of the file; a report writer may add fields of its own.

    Response        what the client got for one request (client.py)
    Failure         one expectation that did not hold (checks.py)
    StepResult      one step: expected, observed, failures
    About           what a result says about its scenario (id, title, refs...)
    ScenarioResult  About + the verdict (written only by verdict.py)
    document()      the whole result file of a run
"""

import dataclasses

from uptls_vocab import RESULTS_SCHEMA, FailKind, Verdict, empty_summary


def _json(obj, omit=()):
    """A dataclass as a dict in field order, leaving out the fields named in
    omit when they are None."""
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)
            if not (f.name in omit and getattr(obj, f.name) is None)}


@dataclasses.dataclass(frozen=True)
class Response:
    """One request's answer as the client saw it. status is the HTTP status,
    or "no response: ..." when there was none; complete is None then."""
    status: int | str
    backend: str | None
    complete: bool | None = None
    note: str | None = None
    error: str | None = None
    body: str | None = None
    time_ms: float = 0.0

    @property
    def answered(self):
        return isinstance(self.status, int)

    def to_json(self):
        return _json(self, omit=("complete", "note", "error", "body"))


@dataclasses.dataclass(frozen=True)
class Failure:
    kind: FailKind
    message: str

    def to_json(self):
        return {"kind": str(self.kind), "message": self.message}


@dataclasses.dataclass(frozen=True)
class StepResult:
    step: int
    location: str
    expected: dict      # the step's expectation as checked (resolved, see checks.resolve)
    observed: dict      # observe.view(): responses and connections, as the report shows them
    failures: tuple     # (Failure, ...)

    def to_json(self):
        return {"step": self.step, "location": self.location, "expected": self.expected,
                "observed": self.observed, "failures": [f.to_json() for f in self.failures]}


@dataclasses.dataclass(frozen=True)
class About:
    """The scenario (or wrong-way variant) a result is about."""
    id: str                 # scenario id, + "~wrongN" for a variant
    scenario: str
    family: str
    title: str
    importance: str
    checks: str
    refs: tuple
    variant: str | None = None          # the variant's `why`
    config_excerpt: str | None = None   # the part of the rendered config that is its own
    consequence: str | None = None      # the scenario's: what a fail/deviation gives away
    note_consequence: str | None = None  # the scenario's: what its note means for a user


@dataclasses.dataclass(frozen=True)
class ScenarioResult:
    about: About
    verdict: Verdict
    reason: str
    steps: tuple | None = None      # (StepResult, ...) when the steps ran to the end
    fail_kind: FailKind | None = None
    deviation: dict | None = None   # the listed deviation that explains the fail
    stale_deviation: bool = False   # listed as a deviation, yet it passes
    duration_s: float | None = None  # wall time of the scenario's own steps (runner.py)

    @property
    def id(self):
        return self.about.id

    def to_json(self):
        a = self.about
        out = {"id": a.id, "scenario": a.scenario, "family": a.family, "title": a.title,
               "importance": a.importance, "verdict": str(self.verdict), "reason": self.reason,
               "checks": a.checks, "refs": list(a.refs)}
        if a.variant:
            out["variant"] = a.variant
        if a.config_excerpt is not None:
            out["config_excerpt"] = a.config_excerpt
        if self.steps is not None:
            out["steps"] = [s.to_json() for s in self.steps]
        if self.fail_kind is not None:
            out["fail_kind"] = str(self.fail_kind)
        if self.deviation is not None:
            out["deviation"] = self.deviation
        if self.stale_deviation:
            out["stale_deviation"] = True
        # The consequence that fits the verdict: a finding's first sentence
        # in the reports (uptls_reports.findings), which fall back to a
        # sentence per family and fail kind when the scenario has none.
        said = {Verdict.FAIL: a.consequence, Verdict.DEVIATION: a.consequence,
                Verdict.NOTE: a.note_consequence}.get(self.verdict)
        if said:
            out["consequence"] = said
        if self.duration_s is not None:
            out["duration_s"] = self.duration_s
        return out


def document(info, started, duration, results, alerts=(), run_dir=None):
    """The result file of one run (schema uptls-results/1): the target's
    version_info(), when it started, how long it took, every ScenarioResult."""
    summary = empty_summary()
    for res in results:
        summary[str(res.verdict)] += 1
    doc = {"schema": RESULTS_SCHEMA,
           "target": {k: info.get(k) for k in ("name", "version", "binary", "openssl",
                                               "tls_library") if info.get(k) is not None},
           "target_detail": info.get("detail"),
           "started": started, "duration_s": round(duration, 2),
           "summary": summary, "scenarios": [res.to_json() for res in results]}
    stale = [res.id for res in results if res.stale_deviation]
    if stale:
        doc["stale_deviations"] = stale
    if alerts:
        doc["target_alerts"] = list(alerts)[:50]
    if run_dir:
        doc["run_dir"] = run_dir
    if info.get("faults"):
        doc["target"]["faults"] = info["faults"]
    return doc
