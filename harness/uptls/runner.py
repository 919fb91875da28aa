"""One run: a catalogue of scenarios against one target process.

The pipeline, one module per stage:

    scenario.py   the scenario model: dataclasses and the tables of keys
    catalogue.py  scenario files loaded, validated, selected (SCENARIOS=, SHARD=)
    plan.py       the run plan: jobs (scenarios, wrong-way variants), units, batches
    targets/      the adapters: render the units into a target's config, start,
                  stop it (processes through proc.py)
    backend.py    the mock upstreams (uptls-backend) a job's steps talk to
    client.py     the client: one HTTP request to the target, a Response
    observe.py    observations: the backends' events, per connection
    checks.py     expectation checks: one checker per expectation key, one table
    verdict.py    the verdict: the one place that writes one
    results.py    typed results and the result file (uptls-results/1), which
                  reports/uptls_reports turns into JUnit, Markdown and HTML

This module runs them in order: build the plan, start every job's
backends, render one configuration for all of them (each location under
its own path prefix, each with its own upstream block), start the target
once, run the sanity scenario, then the rest concurrently; for each step
send its requests, read what the backends observed, check it, and give
each scenario its verdict. Everything the run makes lives in one run
folder, removed at the end unless keep=True.
"""

import concurrent.futures as cf
import dataclasses
import datetime
import os
import shutil
import tempfile
import threading
import time

from uptls_vocab import Verdict

from . import UptlsError, checks, client, observe, plan, verdict
from .backend import spec_for, start_listeners
from .catalogue import shard  # noqa: F401  (runner.shard: where callers found it)
from .plan import Job, Unit  # noqa: F401  (runner.Unit, runner.Job: the same)
from .results import StepResult, document
from .targets.base import TargetStartError

SANITY_ID = "sanity/plain-handshake"
SCENARIO_TIMEOUT = 90.0   # a whole scenario; a hanging target cannot stall a run
WORKERS = 8


class Run:
    def __init__(self, target, scenarios, pki, keep=False, progress=None, variants=False,
                 run_root=None):
        self.target = target
        self.pki = pki
        target.pki = pki  # an adapter may need the PKI to decide what it can express
        self.keep = keep
        self._progress = progress or (lambda result: None)
        self.run_dir = tempfile.mkdtemp(prefix=f"uptls-{target.name}-", dir=run_root)
        self.jobs = plan.jobs(scenarios, variants)
        self.lock = threading.Lock()
        self.config = ""
        self.crashes = 0
        self.unattributed_alerts = []

    def _done(self, job, result):
        job.result = result
        self._progress(result.to_json())

    def _about(self, job):
        return plan.about(job, self.config, self.target)

    # -- set-up ---------------------------------------------------------------------
    def _start_backends(self, jobs):
        """Start every job's backends as listeners of a few uptls-backend
        processes (see backend.start_listeners); return the jobs whose
        backends listen. A job whose backend will not start (a bad cipher
        string, say) gets 'error'; the others start without it."""
        specs = {job.key: [spec_for(b, self.pki, self.run_dir, plan.slug(job.index))
                           for b in job.scenario.backends] for job in jobs}
        started, failed, _ = start_listeners(specs, os.path.join(self.run_dir, "backends"))
        for job in jobs:
            if job.key in failed:
                self._done(job, verdict.error(self._about(job),
                                              f"backend did not start: {failed[job.key]}"))
                continue
            job.backends = started[job.key]
            plan.units(job, self.pki)
        return [job for job in jobs if job.key not in failed]

    def execute(self):
        """Run every job; return their results as the result file holds them
        (dicts, in plan order; self.results has them typed)."""
        started = time.monotonic()
        try:
            runnable = []
            for job in self.jobs:
                why = self.target.unsupported(job.scenario)
                if why:
                    self._done(job, verdict.unsupported(self._about(job), why))
                else:
                    runnable.append(job)
            for batch in plan.batches(runnable, self.target):
                self._run_batch(batch)
        finally:
            if not self.keep:
                shutil.rmtree(self.run_dir, ignore_errors=True)
        self.duration = time.monotonic() - started
        self.results = [j.result for j in self.jobs]
        return [res.to_json() for res in self.results]

    def _run_batch(self, jobs):
        # In this thread: see BackendGroup.spawn.
        jobs = self._start_backends(jobs)
        if not jobs:
            return
        units = [u for j in jobs for u in j.units.values()]
        batch_dir = tempfile.mkdtemp(prefix="target-", dir=self.run_dir)
        try:
            for attempt in (1, 2):
                try:
                    self.config = self.target.start(batch_dir, units)
                    break
                except TargetStartError as e:
                    if attempt == 2 or "Address already in use" not in str(e):
                        raise
            # An adapter may answer, at render time, that it cannot express a
            # unit as asked (exec adapters: render's "unsupported").
            cannot = getattr(self.target, "unsupported_units", {})
            for job in [j for j in jobs if j.key in cannot]:
                self._done(job, verdict.unsupported(self._about(job), cannot[job.key]))
            live = [j for j in jobs if j.key not in cannot]
            sanity = [j for j in live if j.key == SANITY_ID]
            rest = [j for j in live if j.key != SANITY_ID]
            for job in sanity:
                self._run_job(job)
                if job.result.verdict != Verdict.PASS:
                    raise SanityError(
                        f"the sanity scenario failed against {self.target.name}: "
                        f"{job.result.reason} -- the target or its adapter is broken, "
                        f"so no other scenario was run (target log: {self.target.log_tail(4)})")
            with cf.ThreadPoolExecutor(WORKERS) as ex:
                list(ex.map(self._run_job, rest))
        finally:
            self.target.stop()
            self._stop_backends(jobs)
            self._check_alerts(jobs)

    def _stop_backends(self, jobs):
        # A process serves the listeners of many jobs; stopping it twice is a no-op.
        for job in jobs:
            for b in job.backends.values():
                b.stop()

    def _check_alerts(self, jobs):
        alerts = self.target.alert_lines()
        if not alerts:
            return
        for job in jobs:
            mine = [a for a in alerts if any(u.prefix in a for u in job.units.values())]
            if mine and job.result:
                job.result = verdict.target_alert(job.result, mine[0].strip())
        self.unattributed_alerts = [a for a in alerts
                                    if not any(u.prefix in a for j in jobs
                                               for u in j.units.values())]

    # -- one scenario ---------------------------------------------------------------
    def _ensure_target(self):
        """A target that crashed is restarted once per crash, so the scenarios
        after the one that took it down still run (that one gets 'error')."""
        with self.lock:
            if not self.target.alive():
                self.crashes += 1
                if self.crashes > 3:
                    return False
                try:
                    self.target.restart()
                except TargetStartError:
                    return False
            return True

    def _run_job(self, job):
        t0 = time.monotonic()
        try:
            if not self._ensure_target():
                result = verdict.error(self._about(job), "the target crashed repeatedly and "
                                       f"could not be restarted ({self.target.log_tail(3)})")
            else:
                result = self._evaluate(job)
        except Exception as e:  # a harness bug must not take the other scenarios down
            result = verdict.error(self._about(job), f"harness error: {type(e).__name__}: {e}")
        # Wall time of this scenario's steps, side by side with the others
        # (WORKERS at a time): what makes a run slow, not a benchmark.
        self._done(job, dataclasses.replace(result, duration_s=round(time.monotonic() - t0, 3)))

    def _evaluate(self, job):
        """Run the job's steps in order; its ScenarioResult."""
        sc, about = job.scenario, self._about(job)
        steps = []
        deadline = time.monotonic() + SCENARIO_TIMEOUT
        for i, step in enumerate(sc.steps, 1):
            unit = job.units[step.location]
            expect, why = checks.resolve(step.expect, self.target)
            if why:
                return verdict.unsupported(about, why)
            marks = observe.marks(job.backends)
            crashes = self.crashes
            responses = []
            host, port = self.target.address(unit)
            for r in range(1, step.requests + 1):
                if not self.target.alive():
                    return verdict.error(about, f"the target exited during this scenario "
                                                f"({self.target.log_tail(3)})")
                if time.monotonic() > deadline:
                    return verdict.error(about, f"scenario timeout ({SCENARIO_TIMEOUT:.0f} s)")
                responses.append(client.request(host, port, f"{unit.prefix}step{i}/req{r}",
                                                step.client))
            conns, unsettled = observe.settle(job.backends, marks)
            # A target that died (or was restarted) under this step decides
            # nothing: its "refusals" were a crash.
            if not self.target.alive() or self.crashes != crashes:
                return verdict.error(about, f"the target died during step {i} "
                                            f"({self.target.log_tail(3)})")
            dead = [n for n, b in job.backends.items() if not b.alive()]
            if dead:
                return verdict.error(about, f"backend(s) {dead} exited during step {i}: "
                                     + "; ".join(job.backends[n].stderr_tail() for n in dead))
            fails = checks.check_step(expect, responses, conns, self.pki, self.target)
            steps.append(StepResult(i, step.location, expect,
                                    observe.view(responses, conns, unsettled), tuple(fails)))
        listed = self.target.deviations()
        return verdict.judge(about, steps, sc.note,
                             deviation=None if job.variant else listed.get(sc.id),
                             deviation_listed=not job.variant and sc.id in listed)


class SanityError(UptlsError):
    pass


def run(target, scenarios, pki, keep=False, progress=None, variants=False, run_root=None):
    """Run scenarios against a target; return the results document (schema uptls-results/1)."""
    target.find_binary()
    info = target.version_info()
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    r = Run(target, scenarios, pki, keep=keep, progress=progress, variants=variants,
            run_root=run_root)
    r.execute()
    return document(info, started, r.duration, r.results, r.unattributed_alerts,
                    r.run_dir if keep else None)
