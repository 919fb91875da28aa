"""bench.html: a self-contained page (inline SVG and CSS, no external resource)."""

import html

COLORS = {"nginx": "#3b7dd8", "reference": "#e07b39", "uptls-backend": "#e07b39",
          "floor": "#8a8a8a", "reference / nginx": "#7a5cc4"}


def _nice_max(v):
    if v <= 0:
        return 1.0
    import math
    e = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * e:
            return m * e
    return 10 * e


def _tick(v, vmax):
    if vmax >= 100 or float(v).is_integer():
        return f"{v:,.0f}"
    return f"{v:.1f}" if vmax >= 10 else f"{v:.2f}"


def bar_chart(title, unit, groups, series, note="", per_group_scale=False, line_at=None):
    """groups: [(group label, {series: stat dict or None})]. per_group_scale:
    each group has its own scale (no shared axis; the labels carry the values).
    line_at: a dashed horizontal line at that value (e.g. 1.0 for ratios)."""
    W, H, left, top, bottom = 640, 260, 64, 34, 46
    plot_w, plot_h = W - left - 16, H - top - bottom

    def gmax(vals):
        m = 0.0
        for s in series:
            v = vals.get(s)
            if isinstance(v, dict):
                m = max(m, v.get("max") or v["median"])
        return m
    vmax = max([gmax(v) for _, v in groups] + [line_at or 0])
    vmax = _nice_max(vmax * 1.08 if vmax else 1.0)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'viewBox="0 0 {W} {H}" role="img" aria-label="{html.escape(title)}">',
           f'<text x="{left}" y="18" class="t">{html.escape(title)}</text>']
    if not per_group_scale:
        for i in range(5):
            v = vmax * i / 4
            yy = top + plot_h - (v / vmax) * plot_h
            out.append(f'<line x1="{left}" x2="{W - 16}" y1="{yy:.1f}" y2="{yy:.1f}" class="g"/>')
            out.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" class="a" '
                       f'text-anchor="end">{_tick(v, vmax)}</text>')
    else:
        yy = top + plot_h
        out.append(f'<line x1="{left}" x2="{W - 16}" y1="{yy}" y2="{yy}" class="g"/>')
    if line_at is not None:
        yy = top + plot_h - (line_at / vmax) * plot_h
        out.append(f'<line x1="{left}" x2="{W - 16}" y1="{yy:.1f}" y2="{yy:.1f}" class="r"/>')
    out.append(f'<text x="14" y="{top + plot_h / 2:.0f}" class="a" '
               f'transform="rotate(-90 14 {top + plot_h / 2:.0f})" text-anchor="middle">'
               f'{html.escape(unit)}</text>')
    gw = plot_w / max(1, len(groups))
    bw = min(60, gw * 0.7 / max(1, len(series)))
    for gi, (glabel, vals) in enumerate(groups):
        scale = _nice_max(gmax(vals) * 1.08) if per_group_scale and gmax(vals) else vmax
        y = lambda v: top + plot_h - (v / scale) * plot_h   # noqa: E731
        gx = left + gi * gw + (gw - bw * len(series)) / 2
        for si, s in enumerate(series):
            x = gx + si * bw
            v = vals.get(s)
            if isinstance(v, dict):
                yy = y(v["median"])
                out.append(f'<rect x="{x + 2:.1f}" y="{yy:.1f}" width="{bw - 4:.1f}" '
                           f'height="{top + plot_h - yy:.1f}" fill="{COLORS.get(s, "#999")}">'
                           f'<title>{html.escape(s)}: median {v["median"]:,.3g} '
                           f'(min {v["min"]:,.3g}, max {v["max"]:,.3g})</title></rect>')
                cx = x + bw / 2
                out.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(v["min"]):.1f}" '
                           f'y2="{y(v["max"]):.1f}" class="w"/>')
                for e in ("min", "max"):
                    out.append(f'<line x1="{cx - 5:.1f}" x2="{cx + 5:.1f}" y1="{y(v[e]):.1f}" '
                               f'y2="{y(v[e]):.1f}" class="w"/>')
                m = v["median"]
                lab = f"{m:,.0f}" if m >= 100 else f"{m:.2f}" if m < 10 else f"{m:.1f}"
                out.append(f'<text x="{cx:.1f}" y="{min(y(v["max"]), yy) - 4:.1f}" class="v" '
                           f'text-anchor="middle">{lab}</text>')
            else:
                out.append(f'<text x="{x + bw / 2:.1f}" y="{top + plot_h - 6:.1f}" class="na" '
                           f'text-anchor="middle">n/a</text>')
        out.append(f'<text x="{left + gi * gw + gw / 2:.1f}" y="{top + plot_h + 16:.1f}" '
                   f'class="a" text-anchor="middle">{html.escape(glabel)}</text>')
    lx = left
    for s in series:
        out.append(f'<rect x="{lx}" y="{H - 16}" width="12" height="12" fill="{COLORS.get(s, "#999")}"/>'
                   f'<text x="{lx + 16}" y="{H - 6}" class="a">{html.escape(s)}</text>')
        lx += 24 + 8 * len(s)
    if note:
        out.append(f'<text x="{lx + 10}" y="{H - 6}" class="a">{html.escape(note)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def render(doc):
    charts = []
    ld = doc.get("load") or {}
    loads = ld.get("loads") or {}
    short = {"a": "(a) keepalive", "b": "(b) new conn + resumption", "c": "(c) full handshake"}
    if ld:
        for key, title, unit, pgs in (
                ("rps", "Requests per second (higher is better; own scale per load)", "req/s", True),
                ("cpu_us_per_req", "Proxy CPU per request (lower is better)", "µs/request", False),
                ("p99_ms", "p99 latency (lower is better)", "ms", False)):
            groups = []
            for k in loads:
                vals = {p: ld["proxies"].get(p, {}).get("loads", {}).get(k, {}).get(key)
                        for p in ("nginx", "reference")}
                groups.append((short.get(k, k), vals))
            charts.append(bar_chart(title, unit, groups, ["nginx", "reference"],
                                    "bars: median; whiskers: min-max", per_group_scale=pgs))
        rat = ld.get("ratios_reference_over_nginx") or {}
        if rat:
            groups = []
            names = {"rps": "req/s", "cpu_us_per_req": "CPU/req", "p99_ms": "p99"}
            for k in loads:
                for m, lab in names.items():
                    pr = (rat.get(k, {}).get(m) or {}).get("per_run")
                    groups.append((f"{k}: {lab}", {"reference / nginx": pr}))
            charts.append(bar_chart("reference / nginx, paired per run (dashed: 1.0)",
                                    "ratio", groups, ["reference / nginx"], line_at=1.0))
    s = doc.get("suite")
    if s:
        groups = []
        for key, label in (("warm_wall_s", "warm wall"), ("cold_wall_s", "cold PKI"),
                           ("cpu_s", "CPU, all processes"), ("floor_cpu_s", "handshake floor CPU")):
            groups.append((label, {t: s["targets"].get(t, {}).get(key)
                                   for t in ("nginx", "reference")}))
        charts.append(bar_chart("make conformance, whole catalogue", "seconds", groups,
                                ["nginx", "reference"]))
    b = doc.get("backend")
    if b and b.get("servers"):
        groups = [(f"{mode} handshakes", {srv: b["servers"][srv][mode]["rate_hs_per_s"]
                                          for srv in ("nginx", "uptls-backend")})
                  for mode in ("full", "resumed")]
        charts.append(bar_chart("TLS server handshake rate (higher is better)", "handshakes/s",
                                groups, ["nginx", "uptls-backend"]))
    goals = "".join(
        f'<li class="{ {True: "ok", False: "bad", None: "na"}[g["holds"]] }">'
        f'{ {True: "holds", False: "fails", None: "n/a"}[g["holds"]] }: {html.escape(g["goal"])} '
        f'— {html.escape(str(g["figure"]))}'
        + (f'<br><small>why: {html.escape(g["why"])}</small>' if g.get("why") and g["holds"] is False else "")
        + "</li>" for g in doc.get("goals", []))
    m = doc["machine"]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>uptls bench</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1400px; }}
.charts {{ display: flex; flex-wrap: wrap; gap: 12px; }}
svg {{ border: 1px solid #ddd; background: #fff; }}
.t {{ font-weight: 600; font-size: 14px; }} .a {{ font-size: 11px; fill: #444; }}
.v {{ font-size: 11px; fill: #111; }} .na {{ font-size: 12px; fill: #a00; }}
.g {{ stroke: #eee; }} .r {{ stroke: #a00; stroke-dasharray: 4 3; }} .w {{ stroke: #111; stroke-width: 1.2; }}
li.ok {{ color: #176117; }} li.bad {{ color: #a01010; }} li.na {{ color: #777; }}
pre {{ background: #f6f6f6; padding: 10px; overflow-x: auto; font-size: 12px; }}
</style></head><body>
<h1>uptls bench</h1>
<p>{m['nproc']} × {html.escape(m['cpu'])}, {html.escape(m['openssl'])}, nginx {html.escape(m['nginx'])},
kernel {html.escape(m['kernel'])}; started {html.escape(doc['started'])};
{doc['runs']} runs per figure (bars: median, whiskers: min–max).</p>
<div class="charts">
{"".join(charts)}
</div>
<h2>Goals</h2><ul>{goals}</ul>
<h2>Table</h2><pre>{html.escape(doc.get('table', ''))}</pre>
</body></html>
"""
