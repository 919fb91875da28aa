"""One run: a catalogue of scenarios against one target process.

Order: build the PKI (cached), start every scenario's backends, render one
configuration for all of them (each location under its own path prefix,
each with its own upstream block), start the target once, run the sanity
scenario, then the rest concurrently; read the backends' observations and
give each scenario its verdict. Everything the run makes lives in one run
folder, removed at the end unless keep=True.
"""

import concurrent.futures as cf
import dataclasses
import datetime
import http.client
import ipaddress
import os
import shutil
import tempfile
import threading
import time

from . import UptlsError
from .backend import spec_for, start_listeners
from .targets.base import TargetStartError
from .verdict import check_step, observed_view, summarize

SANITY_ID = "sanity/plain-handshake"
REQUEST_TIMEOUT = 15.0    # the rendered proxy timeouts are 5 s connect, 10 s read
MAX_BODY = 1 << 20
SETTLE_TIMEOUT = 5.0
SCENARIO_TIMEOUT = 90.0   # a whole scenario; a hanging target cannot stall a run
WORKERS = 8


@dataclasses.dataclass
class Unit:
    """One location of one scenario (or wrong-way variant) in the rendered config."""
    scenario_id: str
    key: str            # scenario id (+ ~wrongN)
    slug: str
    location: str
    prefix: str
    upstream_block: str
    servers: list
    direct: bool
    settings: dict
    pki: object


@dataclasses.dataclass
class Job:
    """A scenario as run: the scenario, its variant label, its backends and units."""
    key: str
    scenario: object
    index: int
    variant: str | None = None
    backends: dict = dataclasses.field(default_factory=dict)
    units: dict = dataclasses.field(default_factory=dict)
    result: dict | None = None


def shard(scenarios, spec):
    """SHARD=k/n: a stable k-th slice (by sorted id), so n jobs cover all once."""
    try:
        k, n = (int(x) for x in spec.split("/"))
        if not 1 <= k <= n:
            raise ValueError
    except ValueError:
        raise UptlsError(f"SHARD={spec}: expected k/n with 1 <= k <= n, e.g. SHARD=2/4") from None
    ordered = sorted(scenarios, key=lambda s: s.id)
    return [s for i, s in enumerate(ordered) if i % n == k - 1]


def _slug(i):
    return f"s{i:03d}"


def _is_ip(host):
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


class Run:
    def __init__(self, target, scenarios, pki, keep=False, progress=None, variants=False,
                 run_root=None):
        self.target = target
        self.pki = pki
        target.pki = pki  # an adapter may need the PKI to decide what it can express
        self.keep = keep
        self.progress = progress or (lambda result: None)
        self.run_dir = tempfile.mkdtemp(prefix=f"uptls-{target.name}-", dir=run_root)
        self.jobs = []
        self.lock = threading.Lock()
        for sc in scenarios:
            self.jobs.append(Job(sc.id, sc, len(self.jobs)))
            if variants:
                for i, w in enumerate(sc.wrong, 1):
                    if w.fault and not (w.proxy or w.drop):
                        continue  # a fault variant needs its own target process
                    self.jobs.append(Job(f"{sc.id}~wrong{i}",
                                         sc.with_settings(w.proxy, w.drop, w.location),
                                         len(self.jobs), variant=w.why))

    # -- set-up ---------------------------------------------------------------------
    def _start_backends(self, jobs):
        """Start every job's backends as listeners of a few uptls-backend
        processes (see backend.start_listeners); return the jobs whose
        backends listen. A job whose backend will not start (a bad cipher
        string, say) gets 'error'; the others start without it."""
        specs = {job.key: [spec_for(b, self.pki, self.run_dir, _slug(job.index))
                           for b in job.scenario.backends] for job in jobs}
        started, failed, _ = start_listeners(specs, os.path.join(self.run_dir, "backends"))
        for job in jobs:
            if job.key in failed:
                job.result = self._result(job, "error", f"backend did not start: {failed[job.key]}")
                self.progress(job.result)
                continue
            job.backends = started[job.key]
            self._units(job)
        return [job for job in jobs if job.key not in failed]

    def _units(self, job):
        sc = job.scenario
        slug = _slug(job.index)
        for loc in sc.locations:
            servers = [f"127.0.0.1:{job.backends[bn].port}" for bn in loc.backends]
            host = loc.upstream_host
            direct = bool(host and _is_ip(host))
            if direct:
                servers = [f"{host}:{job.backends[loc.backends[0]].port}"]
                block = None
            else:
                block = host or f"{slug}-{loc.upstream}.uptls.invalid"
            job.units[loc.name] = Unit(sc.id, job.key, slug, loc.name,
                                       f"/u/{slug}/{loc.name}/", block, servers, direct,
                                       dict(loc.settings), self.pki)

    def execute(self):
        """Run every job; return the list of scenario results (dicts)."""
        started = time.monotonic()
        try:
            runnable = []
            for job in self.jobs:
                why = self.target.unsupported(job.scenario)
                if why:
                    job.result = self._result(job, "unsupported", why)
                    self.progress(job.result)
                else:
                    runnable.append(job)
            for batch in self._batches(runnable):
                self._run_batch(batch)
        finally:
            if not self.keep:
                shutil.rmtree(self.run_dir, ignore_errors=True)
        self.duration = time.monotonic() - started
        return [j.result for j in self.jobs]

    def _batches(self, jobs):
        """Split jobs so that no two in one process name the same upstream host."""
        if not getattr(self.target, "unique_upstream_hosts", False):
            return [jobs] if jobs else []
        batches = []
        for job in jobs:
            hosts = {loc.upstream_host for loc in job.scenario.locations
                     if loc.upstream_host and not _is_ip(loc.upstream_host)}
            for b in batches:
                if not hosts & b[1]:
                    b[0].append(job)
                    b[1].update(hosts)
                    break
            else:
                batches.append(([job], set(hosts)))
        return [b[0] for b in batches]

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
            sanity = [j for j in jobs if j.key == SANITY_ID]
            rest = [j for j in jobs if j.key != SANITY_ID]
            for job in sanity:
                self._run_job(job)
                if job.result["verdict"] != "pass":
                    raise SanityError(
                        f"the sanity scenario failed against {self.target.name}: "
                        f"{job.result['reason']} -- the target or its adapter is broken, "
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
            if mine and job.result and job.result["verdict"] != "error":
                job.result["verdict"] = "error"
                job.result["reason"] = f"target log: {mine[0].strip()}"
        self.unattributed_alerts = [a for a in alerts
                                    if not any(u.prefix in a for j in jobs
                                               for u in j.units.values())]

    # -- one scenario ---------------------------------------------------------------
    def _ensure_target(self):
        """A target that crashed is restarted once per crash, so the scenarios
        after the one that took it down still run (that one gets 'error')."""
        with self.lock:
            if not self.target.alive():
                self.crashes = getattr(self, "crashes", 0) + 1
                if self.crashes > 3:
                    return False
                try:
                    self.target.restart()
                except TargetStartError:
                    return False
            return True

    def _run_job(self, job):
        try:
            if not self._ensure_target():
                job.result = self._result(job, "error", "the target crashed repeatedly and "
                                          f"could not be restarted ({self.target.log_tail(3)})")
            else:
                job.result = self._evaluate(job)
        except Exception as e:  # a harness bug must not take the other scenarios down
            job.result = self._result(job, "error", f"harness error: {type(e).__name__}: {e}")
        self.progress(job.result)

    def _evaluate(self, job):
        sc = job.scenario
        steps_out, failure = [], None
        deadline = time.monotonic() + SCENARIO_TIMEOUT
        for i, step in enumerate(sc.steps, 1):
            unit = job.units[step.location]
            expect = dict(step.expect)
            if expect.pop("offered_versions_default", False):
                protos, source = self.target.documented_default_protocols()
                if protos is None:
                    return self._result(job, "unsupported",
                                        "the target documents no default protocol set")
                expect["offered_versions"] = protos
                expect["_default_source"] = source
            marks = {n: len(b.events()) for n, b in job.backends.items()}
            crashes = getattr(self, "crashes", 0)
            responses = []
            for r in range(1, step.requests + 1):
                if not self.target.alive():
                    return self._result(job, "error", f"the target exited during this scenario "
                                                      f"({self.target.log_tail(3)})")
                if time.monotonic() > deadline:
                    return self._result(job, "error", f"scenario timeout ({SCENARIO_TIMEOUT:.0f} s)")
                responses.append(self._request(unit, f"{unit.prefix}step{i}/req{r}",
                                               getattr(step, "client", None)))
            conns, unsettled = self._settle(job, marks)
            # A target that died (or was restarted) under this step decides
            # nothing: its "refusals" were a crash.
            if not self.target.alive() or getattr(self, "crashes", 0) != crashes:
                return self._result(job, "error", f"the target died during step {i} "
                                                  f"({self.target.log_tail(3)})")
            dead = [n for n, b in job.backends.items() if not b.alive()]
            if dead:
                return self._result(job, "error", f"backend(s) {dead} exited during step {i}: "
                                    + "; ".join(job.backends[n].stderr_tail() for n in dead))
            fails = check_step({k: v for k, v in expect.items() if not k.startswith("_")},
                               responses, conns, self.pki, self.target)
            observed = observed_view(responses, conns)
            if unsettled:
                observed["unsettled"] = (f"{unsettled} connection(s) accepted with no handshake "
                                         f"outcome within {SETTLE_TIMEOUT:.0f} s")
            steps_out.append({"step": i, "location": step.location, "expected": expect,
                              "observed": observed,
                              "failures": [dataclasses.asdict(f) for f in fails]})
            if fails and failure is None:
                failure = (i, fails)
        res = self._result(job, "pass", "every expectation held")
        res["steps"] = steps_out
        if failure:
            i, fails = failure
            res["verdict"] = "fail"
            res["fail_kind"] = fails[0].kind
            res["reason"] = f"step {i}: " + "; ".join(f.message for f in fails)
            dev = self.target.deviations().get(sc.id) if not job.variant else None
            if dev and dev["kind"] == fails[0].kind and dev.get("step", i) == i:
                res["verdict"] = "deviation"
                res["deviation"] = dev
                res["reason"] = f"known deviation: {dev['reason']} ({dev['source']}) -- {res['reason']}"
            elif dev:
                # A listed deviation explains one failure, not any failure.
                res["reason"] += (f" [a deviation is listed for this scenario, but for "
                                  f"{dev['kind']} at step {dev.get('step', 'any')}: this "
                                  "failure is not the one it explains]")
        else:
            if sc.note:
                res["verdict"] = "note"
                res["reason"] = sc.note
            if not job.variant and sc.id in self.target.deviations():
                res["stale_deviation"] = True
                res["reason"] += " (listed as a deviation for this target, but it passes)"
        return res

    def _request(self, unit, path, client=None):
        host, port = self.target.address(unit)
        conn = http.client.HTTPConnection(host, port, timeout=REQUEST_TIMEOUT)
        t0 = time.monotonic()
        headers = {"Connection": "close", "User-Agent": "uptls"}
        if client:  # a step's [client]: what a client controls (scenario.CLIENT_KEYS)
            headers.update(client.get("headers") or {})
            if client.get("host"):
                headers["Host"] = client["host"]
            if client.get("absolute_form"):
                path = f"http://{client['absolute_form']}{path}"
        try:
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            return {"status": f"no response: {type(e).__name__}: {e}", "backend": None,
                    "time_ms": round((time.monotonic() - t0) * 1000, 1)}
        out = {"status": resp.status, "backend": resp.getheader("X-Uptls-Backend"),
               "complete": True}
        try:
            # Read to the end of the framing: a body cut short must show.
            body = resp.read(MAX_BODY)
            # read(amt) returns short at EOF instead of raising: what the
            # Content-Length still promised is in resp.length.
            if resp.length:
                if len(body) >= MAX_BODY:
                    out["note"] = f"body larger than {MAX_BODY} bytes, not read to the end"
                else:
                    out["complete"] = False
                    out["error"] = (f"body ended after {len(body)} bytes, {resp.length} "
                                    "short of its Content-Length")
        except http.client.IncompleteRead as e:
            body, out["complete"] = e.partial, False
            out["error"] = f"body ended after {len(e.partial)} bytes, before its framing did"
        except (OSError, http.client.HTTPException) as e:
            body, out["complete"] = b"", False
            out["error"] = f"{type(e).__name__}: {e}"
        finally:
            conn.close()
        out["body"] = body.decode(errors="replace")[:200]
        out["time_ms"] = round((time.monotonic() - t0) * 1000, 1)
        return out

    def _settle(self, job, marks, timeout=None):
        """The step's connections, once every accepted one has a handshake
        outcome, and how many had none in time (a proxy still trying a
        stalled backend after the client got its answer, say)."""
        deadline = time.monotonic() + (timeout or SETTLE_TIMEOUT)
        while True:
            events = []
            for n, b in job.backends.items():
                events += b.events()[marks[n]:]
            accepts = sum(1 for e in events if e.get("event") == "accept")
            outcomes = sum(1 for e in events if e.get("event") == "handshake")
            if accepts <= outcomes or time.monotonic() > deadline:
                return summarize(events), max(0, accepts - outcomes)
            time.sleep(0.01)

    def _result(self, job, verdict, reason):
        sc = job.scenario
        res = {"id": job.key, "scenario": sc.id, "family": sc.family, "title": sc.title,
               "importance": sc.importance, "verdict": verdict, "reason": reason,
               "checks": sc.checks, "refs": list(sc.refs)}
        if job.variant:
            res["variant"] = job.variant
        if job.units:
            res["config_excerpt"] = self._excerpt(job)
        return res

    def _excerpt(self, job):
        conf = getattr(self, "config", "") or ""
        own = getattr(self.target, "config_excerpt", None)
        if own:  # a target whose config is not nginx syntax cuts its own excerpt
            return own(conf, list(job.units.values()))
        out, keep = [], False
        prefixes = {u.prefix for u in job.units.values()}
        blocks = {u.upstream_block for u in job.units.values() if u.upstream_block}
        for line in conf.splitlines():
            s = line.strip()
            if s.startswith("location ") and any(p in s for p in prefixes) or \
                    s.startswith("upstream ") and any(f" {b} " in s for b in blocks):
                keep = True
            if keep:
                out.append(line.strip() if s.startswith(("location", "upstream")) else
                           "    " + s if s != "}" else "}")
                if s == "}":
                    keep = False
        return "\n".join(out)


class SanityError(UptlsError):
    pass


def run(target, scenarios, pki, keep=False, progress=None, variants=False, run_root=None):
    """Run scenarios against a target; return the results document (schema uptls-results/1)."""
    target.find_binary()
    info = target.version_info()
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    r = Run(target, scenarios, pki, keep=keep, progress=progress, variants=variants,
            run_root=run_root)
    results = r.execute()
    summary = {v: 0 for v in ("pass", "fail", "deviation", "note", "unsupported", "error")}
    for res in results:
        summary[res["verdict"]] += 1
    doc = {"schema": "uptls-results/1",
           "target": {k: info.get(k) for k in ("name", "version", "binary", "openssl",
                                                   "tls_library") if info.get(k) is not None},
           "target_detail": info.get("detail"),
           "started": started, "duration_s": round(r.duration, 2),
           "summary": summary, "scenarios": results}
    stale = [res["id"] for res in results if res.get("stale_deviation")]
    if stale:
        doc["stale_deviations"] = stale
    if getattr(r, "unattributed_alerts", None):
        doc["target_alerts"] = r.unattributed_alerts[:50]
    if keep:
        doc["run_dir"] = r.run_dir
    if info.get("faults"):
        doc["target"]["faults"] = info["faults"]
    return doc
