"""The goals make bench judges (each holds, fails with why, or is not
available), and one profile per subject whose goal fails."""

import shutil
import tempfile

from bench_common import LOADS, PROXIES, log
from bench_backend import profile_backend
from bench_load import profile_proxy
from bench_profile import profile_command
from bench_suite import make_conformance


GOAL_SUITE_WALL = 5.0

GOAL_SUITE_FLOOR_X = 5.0

GOAL_BACKEND_X = 0.9

GOAL_C_X = 1.25

def goals(doc, args):
    out = []

    def goal(name, holds, figure, why=None, profile=None):
        out.append({"goal": name, "holds": holds, "figure": figure, "why": why,
                    "profile_key": profile})

    suite = doc.get("suite", {}).get("targets", {})
    for t in PROXIES:
        e = suite.get(t, {})
        if e.get("not_available"):
            goal(f"suite {t}: whole catalogue < {GOAL_SUITE_WALL:.0f} s wall", None,
                 "not available: " + e["not_available"])
            goal(f"suite {t}: within {GOAL_SUITE_FLOOR_X:.0f}x the handshake floor", None,
                 "not available")
            continue
        w = e.get("warm_wall_s")
        if w:
            goal(f"suite {t}: whole catalogue < {GOAL_SUITE_WALL:.0f} s wall (warm)",
                 w["median"] < GOAL_SUITE_WALL, f"{w['median']:.2f} s",
                 None if w["median"] < GOAL_SUITE_WALL else "see the profile", f"suite-{t}")
        c = e.get("cold_wall_s")
        if c:
            goal(f"suite {t}: whole catalogue < {GOAL_SUITE_WALL:.0f} s wall (cold PKI)",
                 c["median"] < GOAL_SUITE_WALL, f"{c['median']:.2f} s")
        x = e.get("wall_over_floor")
        if x is not None:
            fl = e["floor_cpu_s"]["median"]
            why = None
            if x > GOAL_SUITE_FLOOR_X:
                cpu = e["cpu_s"]["median"]
                ncpu = doc["machine"]["nproc"] or 1
                busy = cpu / (w["median"] * ncpu)
                why = (f"the catalogue's {sum(e['handshakes'].values())} handshakes cost "
                       f"{fl * 1000:.0f} ms of CPU, all its processes {cpu:.2f} s CPU "
                       f"(see the profile: backend process starts, python, the target); "
                       f"over {w['median']:.2f} s wall on {ncpu} cores that is "
                       f"{busy * 100:.0f}% busy")
                if busy < 0.5:
                    why += (", so most of the wall time is waiting, not computing; "
                            "slowest scenarios by request time: " +
                            ", ".join(f"{x['id']} {x['request_ms']} ms"
                                      for x in (e.get("slowest") or [])[:4]))
                why += (f"; driver run {e['driver_run_s']['median']:.2f} s of the wall, the "
                        f"rest is python/pytest start-up, catalogue load and reports")
            goal(f"suite {t}: wall within {GOAL_SUITE_FLOOR_X:.0f}x the handshake floor",
                 x <= GOAL_SUITE_FLOOR_X, f"{x:.1f}x ({w['median']:.2f} s / {fl:.3f} s CPU)",
                 why, f"suite-{t}")

    load = doc.get("load") or {}
    ref = load.get("proxies", {}).get("reference", {})
    ngx = load.get("proxies", {}).get("nginx", {})
    ratios = load.get("ratios_reference_over_nginx", {})
    for k in LOADS if load else ():
        if ref.get("not_available") or ngx.get("not_available") or k not in ratios:
            why = "not available: " + (ref.get("not_available") or ngx.get("not_available") or "?")
            goal(f"load {k}: reference >= 1.0x nginx requests/s", None, why)
            continue
        r = ratios[k]
        rl, nl = ref["loads"][k], ngx["loads"][k]
        inval = rl.get("invalid") or nl.get("invalid")
        rps = r["rps"]["of_medians"]
        cpu = r["cpu_us_per_req"]["of_medians"]
        p99 = r["p99_ms"]["of_medians"]
        base_why = (f"CPU/request reference {rl['cpu_us_per_req']['median']:.1f} us vs nginx "
                    f"{nl['cpu_us_per_req']['median']:.1f} us; cores kept busy reference "
                    f"{rl['busy']['median']:.2f} vs nginx {nl['busy']['median']:.2f}")
        ru, nu = rl.get("upstream_per_request"), nl.get("upstream_per_request")
        if ru and nu:
            base_why += (f"; upstream handshakes/request {ru['handshakes']:.3f} vs "
                         f"{nu['handshakes']:.3f}, resumed {ru['resumed_share'] * 100:.0f}% vs "
                         f"{nu['resumed_share'] * 100:.0f}%")
        fr, fn = (rl.get("foreign_cores") or {}).get("median"), (nl.get("foreign_cores") or {}).get("median")
        if fr is not None and fn is not None and abs(fr - fn) > 0.2:
            base_why += (f"; CAUTION: other processes kept {fr:.2f} cores busy during the reference "
                         f"runs vs {fn:.2f} during nginx's, so this comparison is skewed by the "
                         f"machine, not only the proxies (re-run on a quiet machine)")
        if rl["busy"]["median"] < 0.9 * nl["busy"]["median"]:
            base_why += ("; the reference proxy is idle part of the time while nginx is not: "
                         "it waits (blocking call, serialised upstream connects, a timer) "
                         "rather than computes" +
                         (", or other processes took its core" if fr and fr > 0.2 else ""))
        if inval:
            base_why += f"; load shape: reference: {rl.get('invalid', 'ok')}, nginx: {nl.get('invalid', 'ok')}"
        need = GOAL_C_X if k == "c" else 1.0
        rps_why = base_why
        if rps < need:
            # req/s = cores busy / CPU per request
            target_cpu = nl["cpu_us_per_req"]["median"] * rl["busy"]["median"] / \
                max(1e-9, nl["busy"]["median"]) / need
            rps_why = (f"{base_why}; at its current cores-busy, {need:.2f}x nginx needs "
                       f"<= {target_cpu:.0f} us CPU/request")
            if k == "c":
                c = doc.get("ceiling") or {}
                if c.get("client_full_hs_per_core"):
                    rps_why += (f" (the public-key operations alone take "
                                f"{1e6 / c['client_full_hs_per_core']:.0f} us: the rest is "
                                f"OpenSSL's per-handshake overhead, see the profile)")
        goal(f"load {k}: reference >= {need:.2f}x nginx requests/s", rps >= need,
             f"{rps:.2f}x ({rl['rps']['median']:,.0f} vs {nl['rps']['median']:,.0f} req/s)",
             None if rps >= need else rps_why, f"proxy-reference-{k}")
        goal(f"load {k}: reference CPU/request <= nginx", cpu <= 1.0,
             f"{cpu:.2f}x ({rl['cpu_us_per_req']['median']:.1f} vs "
             f"{nl['cpu_us_per_req']['median']:.1f} us)",
             None if cpu <= 1.0 else base_why, f"proxy-reference-{k}")
        goal(f"load {k}: reference p99 <= nginx", p99 <= 1.0,
             f"{p99:.2f}x ({rl['p99_ms']['median']:.2f} vs {nl['p99_ms']['median']:.2f} ms)",
             None if p99 <= 1.0 else base_why, f"proxy-reference-{k}")

    be = doc.get("backend", {}).get("ratios_backend_over_nginx", {})
    for mode in ("full", "resumed"):
        if mode not in be:
            continue
        r = be[mode]["rate"]["of_medians"]
        s = doc["backend"]["servers"]
        why = None
        if r < GOAL_BACKEND_X:
            why = (f"server CPU per handshake uptls-backend "
                   f"{s['uptls-backend'][mode]['server_cpu_us_per_hs']['median']:.0f} us vs nginx "
                   f"{s['nginx'][mode]['server_cpu_us_per_hs']['median']:.0f} us")
        goal(f"backend: {mode} handshake rate >= {GOAL_BACKEND_X}x nginx", r >= GOAL_BACKEND_X,
             f"{r:.2f}x ({s['uptls-backend'][mode]['rate_hs_per_s']['median']:,.0f} vs "
             f"{s['nginx'][mode]['rate_hs_per_s']['median']:,.0f} hs/s)", why,
             f"backend-{mode}")
    return out


def attach_profiles(doc, args, gl, load_res):
    """One profile per subject whose goal fails."""
    profiles = {}
    for g in gl:
        key = g.get("profile_key")
        if g["holds"] is not False or not key or key in profiles:
            continue
        log(f"profile: {key}")
        if key.startswith("suite-"):
            t = key[len("suite-"):]
            rd = tempfile.mkdtemp(prefix="uptls-bench-prof-")
            try:
                profiles[key] = profile_command(make_conformance(
                    t, rd, extra=tuple(doc["suite"].get("make_extra", ()))))
            finally:
                shutil.rmtree(rd, ignore_errors=True)
        elif key.startswith("proxy-reference-") and load_res and "_dir" in load_res:
            load = key.rsplit("-", 1)[1]
            profiles[key] = {"reference": profile_proxy(load_res, "reference", load),
                             "nginx": profile_proxy(load_res, "nginx", load)}
        elif key.startswith("backend-"):
            profiles[key] = profile_backend(args, key.split("-", 1)[1])
    doc["profiles"] = profiles
