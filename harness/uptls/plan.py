"""The run plan: which jobs run, where each one's requests go, in which process.

A Job is a scenario as run (or one of its wrong-way variants, id~wrongN);
a Unit is one location of a job in the rendered configuration: its own
path prefix (/u/sNNN/LOCATION/) and its own upstream block, so one target
process serves every job of a batch side by side. Targets that cannot
host two upstream blocks of one host name get several batches.
"""

import dataclasses
import ipaddress

from .results import About


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
    result: object = None       # its ScenarioResult, once it has one


def slug(i):
    return f"s{i:03d}"


def is_ip(host):
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def jobs(scenarios, variants=False):
    """A job per scenario, and with variants=True one per wrong-way variant
    that a configuration can express (a fault variant needs a target
    process of its own)."""
    out = []
    for sc in scenarios:
        out.append(Job(sc.id, sc, len(out)))
        if variants:
            for i, w in enumerate(sc.wrong, 1):
                if w.fault and not (w.proxy or w.drop):
                    continue
                out.append(Job(f"{sc.id}~wrong{i}", sc.with_settings(w.proxy, w.drop, w.location),
                               len(out), variant=w.why))
    return out


def units(job, pki):
    """The job's units, its backends started (job.backends: name -> listener)."""
    sc = job.scenario
    s = slug(job.index)
    for loc in sc.locations:
        servers = [f"127.0.0.1:{job.backends[bn].port}" for bn in loc.backends]
        host = loc.upstream_host
        direct = bool(host and is_ip(host))
        if direct:
            servers = [f"{host}:{job.backends[loc.backends[0]].port}"]
            block = None
        else:
            block = host or f"{s}-{loc.upstream}.uptls.invalid"
        job.units[loc.name] = Unit(sc.id, job.key, s, loc.name, f"/u/{s}/{loc.name}/", block,
                                   servers, direct, dict(loc.settings), pki)


def batches(jobs, target):
    """Split jobs so that no two in one process name the same upstream host
    (for a target with unique_upstream_hosts)."""
    if not getattr(target, "unique_upstream_hosts", False):
        return [jobs] if jobs else []
    out = []
    for job in jobs:
        hosts = {loc.upstream_host for loc in job.scenario.locations
                 if loc.upstream_host and not is_ip(loc.upstream_host)}
        for b in out:
            if not hosts & b[1]:
                b[0].append(job)
                b[1].update(hosts)
                break
        else:
            out.append(([job], set(hosts)))
    return [b[0] for b in out]


def about(job, conf, target):
    """What the job's result says about it, its part of the rendered config included."""
    sc = job.scenario
    return About(job.key, sc.id, sc.family, sc.title, sc.importance, sc.checks, tuple(sc.refs),
                 job.variant, excerpt(job, conf, target) if job.units else None,
                 getattr(sc, "consequence", None), getattr(sc, "note_consequence", None))


def excerpt(job, conf, target):
    """The lines of the rendered config that are this job's: its locations and
    upstream blocks (nginx syntax), or what the target cuts itself."""
    conf = conf or ""
    own = getattr(target, "config_excerpt", None)
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
