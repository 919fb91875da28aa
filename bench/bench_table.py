"""The table make bench prints (and bench.json keeps as "table"), drawn from
the result document alone."""


import benchlib as bl
from bench_common import LOADS, PROXIES, fmt


def table(doc):
    L = []
    m = doc["machine"]
    L.append(f"uptls bench -- {m['nproc']} x {m['cpu']}, {m['openssl']}, nginx {m['nginx']}, "
             f"{doc['runs']} runs each: median [min-max]")
    noise = doc.get("noise")
    if noise and noise["max_foreign_cores"] > 0.2:
        L.append(f"!! other processes kept up to {noise['max_foreign_cores']:.2f} cores busy (median "
                 f"of a measurement; {noise['where']}): absolute figures are noisy, the paired "
                 f"same-run ratios are the robust ones")
    s = doc.get("suite")
    if s:
        L.append("")
        L.append("1. Suite: make conformance, whole catalogue")
        pk = s["pki"]
        L.append(f"   PKI build (uptls-certgen -f, {pk.get('entities')} entities): "
                 f"{fmt(pk.get('cold_s'), 3)} s;  stamp check (warm): {fmt(pk.get('warm_check_s'), 3)} s")
        L.append(f"   {'':34}{'nginx':>28}{'reference':>28}")
        rows = [("scenarios", "scenarios", 0), ("warm wall s", "warm_wall_s", 2),
                ("cold wall s (PKI built by the run)" if s.get("cold_how", "").startswith("make")
                 else "cold wall s (warm + PKI build)", "cold_wall_s", 2),
                ("CPU s (all processes)", "cpu_s", 2), ("driver run s (results)", "driver_run_s", 2),
                ("floor CPU s (same handshakes)", "floor_cpu_s", 3),
                ("wall / floor", "wall_over_floor", 1),
                ("other processes, cores", "foreign_cores", 2)]
        for label, key, nd in rows:
            cells = []
            for t in PROXIES:
                e = s["targets"].get(t, {})
                if e.get("not_available"):
                    cells.append("not available")
                else:
                    v = e.get(key)
                    cells.append(str(v) if key == "scenarios" else fmt(v, nd))
            L.append(f"   {label:34}{cells[0]:>28}{cells[1]:>28}")
        hs = ["/".join(str(s['targets'].get(t, {}).get('handshakes', {}).get(k, '-'))
                       for k in ("full", "resumed", "failed")) if s["targets"].get(t, {}).get("handshakes")
              else "-" for t in PROXIES]
        L.append(f"   {'handshakes full/resumed/failed':34}{hs[0]:>28}{hs[1]:>28}")
        vs = []
        for t in PROXIES:
            sm = s["targets"].get(t, {}).get("summary")
            vs.append(" ".join(f"{k[:4]} {v}" for k, v in sm.items() if v) if sm else "-")
        L.append(f"   {'verdicts (last timed run)':34}{vs[0]:>28}{vs[1]:>28}")
        for t in PROXIES:
            if s["targets"].get(t, {}).get("not_available"):
                L.append(f"   reference not available: {s['targets'][t]['not_available']}"
                         if t == "reference" else f"   {t} not available: {s['targets'][t]['not_available']}")
    ld = doc.get("load")
    if ld:
        L.append("")
        L.append(f"2. Load: {ld['wrk']}; one worker each; TLS 1.3, P-256, verify on; one uptls-backend")
        L.append(f"   {'':26}{'nginx':>26}{'reference':>26}{'ref/nginx':>11}")
        for k, title in LOADS.items():
            L.append(f"   ({k}) {title}")
            for label, key, nd in (("requests/s", "rps", 0), ("p50 ms", "p50_ms", 2),
                                   ("p99 ms", "p99_ms", 2), ("CPU us/request", "cpu_us_per_req", 1),
                                   ("peak RSS MiB", "peak_rss_mib", 1),
                                   ("cores busy (CPU s / s)", "busy", 2),
                                   ("other processes, cores", "foreign_cores", 2)):
                cells = []
                for p in PROXIES:
                    e = ld["proxies"].get(p, {})
                    v = e.get("loads", {}).get(k, {}).get(key)
                    cells.append(fmt(v, nd) if v else ("n/a" if e.get("not_available") else "-"))
                r = bl.ratio(ld["proxies"].get("reference", {}).get("loads", {}).get(k, {}).get(key),
                             ld["proxies"].get("nginx", {}).get("loads", {}).get(k, {}).get(key))
                rt = f"{r:.2f}x" if r else "-"
                L.append(f"     {label:24}{cells[0]:>26}{cells[1]:>26}{rt:>11}")
            ups = []
            for p in PROXIES:
                u = ld["proxies"].get(p, {}).get("loads", {}).get(k, {}).get("upstream_per_request")
                ups.append(f"{u['handshakes']:.3f} hs/req, {u['resumed_share'] * 100:.0f}% res"
                           if u else "-")
            L.append(f"     {'upstream (backend log)':24}{ups[0]:>26}{ups[1]:>26}")
            for p in PROXIES:
                inv = ld["proxies"].get(p, {}).get("loads", {}).get(k, {}).get("invalid")
                if inv:
                    L.append(f"     !! {p}: {inv}")
        for p in PROXIES:
            if ld["proxies"].get(p, {}).get("not_available"):
                L.append(f"   {p}: not available: {ld['proxies'][p]['not_available']}")
    c = doc.get("ceiling")
    if c and "client_full_hs_per_core" in c:
        L.append("")
        L.append(f"3. Ceiling ({c['command']}): ECDSA P-256 sign {c['ecdsa_sign_per_s']:,.0f}/s, "
                 f"verify {c['ecdsa_verify_per_s']:,.0f}/s, ECDH {c['ecdh_per_s']:,.0f}/s")
        L.append(f"   client side of a full handshake: {c['client_full_hs_per_core']:,.0f}/s per core; "
                 f"server side {c['server_full_hs_per_core']:,.0f}/s; both {c['both_sides_full_hs_per_core']:,.0f}/s")
        for p in PROXIES:
            v = (ld or {}).get("proxies", {}).get(p, {}).get("loads", {}).get("c", {}).get("rps")
            if v:
                L.append(f"   load (c) {p}: {v['median']:,.0f} req/s = "
                         f"{v['median'] / c['client_full_hs_per_core'] * 100:.0f}% of the client-side ceiling")
    b = doc.get("backend")
    if b and b.get("servers"):
        L.append("")
        L.append(f"4. Mock backend vs nginx as a TLS server (server-a); client: {b['client']}")
        L.append(f"   {'':30}{'uptls-backend':>26}{'nginx':>26}{'backend/nginx':>15}")
        for mode in ("full", "resumed"):
            for label, key, nd in (("handshakes/s", "rate_hs_per_s", 0),
                                   ("server CPU us/hs", "server_cpu_us_per_hs", 0),
                                   ("other processes, cores", "foreign_cores", 2)):
                cells = [fmt(b["servers"][s][mode][key], nd) for s in ("uptls-backend", "nginx")]
                rk = {"rate_hs_per_s": "rate", "server_cpu_us_per_hs": "server_cpu_per_hs"}.get(key)
                r = b["ratios_backend_over_nginx"][mode][rk]["of_medians"] if rk else None
                rt = f"{r:.2f}x" if r else ""
                L.append(f"   {mode + ' ' + label:30}{cells[0]:>26}{cells[1]:>26}{rt:>15}")
            for s in ("uptls-backend", "nginx"):
                e = b["servers"][s][mode]
                if e.get("failed"):
                    L.append(f"     !! {s}: {e['failed']} failed ({e.get('first_error')})")
                if mode == "resumed" and e.get("resumed", 0) < 0.9 * e["n"] * doc["runs"]:
                    L.append(f"     !! {s}: only {e['resumed']} of {e['n'] * doc['runs']} resumed")
    L.append("")
    L.append("Goals")
    for g in doc.get("goals", []):
        mark = {True: "HOLDS", False: "FAILS", None: "N/A  "}[g["holds"]]
        L.append(f"   [{mark}] {g['goal']}: {g['figure']}")
        if g["holds"] is False and g.get("why"):
            L.append(f"           why: {g['why']}")
    for key, prof in (doc.get("profiles") or {}).items():
        L.append("")
        L.append(f"Profile {key}")
        items = prof.items() if "reference" in prof else [(None, prof)]
        for who, p in items:
            head = f"   {who}: " if who else "   "
            if not p.get("tool"):
                L.append(f"{head}no profile: {p.get('why')}")
                continue
            L.append(f"{head}{p['tool']}")
            if p.get("by_process"):
                L.append("     by process: " + "; ".join(x.strip() for x in p["by_process"][:6]))
            if p.get("by_dso"):
                L.append("     by object: " + "; ".join(x.strip() for x in p["by_dso"][:6]))
            for row in p.get("top", [])[:12]:
                L.append(f"     {row}")
    return "\n".join(L)
