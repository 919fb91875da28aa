"""compare.html: the side-by-side comparison (compare.model()) as one
self-contained page (no network, no external scripts, fonts or images).
Every string from a result file is escaped where it lands; nothing from it
is ever placed inside the page's script."""

import html
import json

from uptls_vocab import Importance, rank
from uptls_vocab.tls import is_tls13_suite

from . import VERDICT_ORDER
from .compare import FINGERPRINT_FIELDS
from .findings import model_findings


def _e(x):
    return html.escape("" if x is None else str(x), quote=True)


def _j(x):
    return _e(json.dumps(x, ensure_ascii=False))


CSS = """
:root{--pass:#1a7f37;--fail:#cf222e;--deviation:#bf8700;--note:#0969da;--unsupported:#6e7781;
--error:#8250df;--absent:#d0d7de;--bg:#fff;--fg:#1f2328;--muted:#59636e;--line:#d0d7de}
*{box-sizing:border-box}
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:var(--bg);margin:1.2em}
h1{font-size:1.4em;margin:.2em 0}h2{font-size:1.15em;margin:1.2em 0 .4em}
table{border-collapse:collapse}th,td{border:1px solid var(--line);padding:3px 6px;vertical-align:top;text-align:left}
th{background:#f6f8fa}
.muted{color:var(--muted)}.small{font-size:12px}
code,pre{font:12px/1.35 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre{white-space:pre-wrap;word-break:break-all;background:#f6f8fa;padding:4px;margin:2px 0}
.v{display:inline-block;min-width:6.5em;padding:1px 6px;border-radius:3px;color:#fff;font-weight:600;text-align:center}
.v.pass{background:var(--pass)}.v.fail{background:var(--fail)}.v.deviation{background:var(--deviation)}
.v.note{background:var(--note)}.v.unsupported{background:var(--unsupported)}.v.error{background:var(--error)}
.v.absent{background:#fff;color:var(--muted);border:1px dashed var(--absent)}
td.cell.pass{background:#dafbe1}td.cell.fail{background:#ffebe9}td.cell.deviation{background:#fff8c5}
td.cell.note{background:#ddf4ff}td.cell.unsupported{background:#f6f8fa}td.cell.error{background:#fbefff}
tr.family th{background:#eaeef2;font-size:1.05em}
tr.row.disagree td.sid{border-left:5px solid var(--fail)}
.dmark{color:var(--fail);font-weight:700}
details>summary{cursor:pointer}details.err{max-width:40em}
.detail{min-width:28em;max-width:46em;padding:4px 0}
.detail table{margin:3px 0;font-size:12px;max-width:100%}.detail td{word-break:break-word}.detail th,.detail td{padding:1px 4px}
.controls{position:sticky;top:0;background:var(--bg);padding:6px 0;border-bottom:1px solid var(--line);z-index:2}
.controls label{margin-right:1.2em}
.fp td{font:12px/1.5 ui-monospace,monospace;max-width:24em}.fp td span{display:inline-block;margin-right:.7em}.fp .uncommon{font-weight:700;color:#953800}
.notes li{color:#953800}
table.findings td{max-width:34em}.consequence{margin-top:2px}
"""

JS = r"""
(function(){
  var q = new URLSearchParams(location.search);
  var h = new URLSearchParams(location.hash.replace(/^#/, ''));
  function param(k){ return q.get(k) || h.get(k); }
  var only = document.getElementById('only-disagree');
  var sort = document.getElementById('sort');
  var text = document.getElementById('text');
  var matrix = document.getElementById('matrix');
  var top = document.getElementById('top');
  var bodies = Array.prototype.slice.call(matrix.tBodies).filter(function(tb){ return tb !== top; });
  var allRows = Array.prototype.slice.call(matrix.querySelectorAll('tr.row'));
  var home = {};
  bodies.forEach(function(tb){ home[tb.dataset.family] = tb; });
  function apply(){
    var od = only.checked, t = text.value.toLowerCase(), mode = sort.value;
    document.body.setAttribute('data-only', od ? 'disagree' : 'all');
    document.body.setAttribute('data-sort', mode);
    var rows = allRows.slice();
    rows.sort(function(a, b){
      var ka = +a.dataset.order, kb = +b.dataset.order;
      if (mode === 'importance') { ka += 1e5 * +a.dataset.rank; kb += 1e5 * +b.dataset.rank; }
      if (mode === 'worst') { ka += 1e5 * +a.dataset.worst; kb += 1e5 * +b.dataset.worst; }
      return ka - kb;
    });
    var count = {}, shown = 0;
    rows.forEach(function(r){
      // "disagreements first": those rows leave their family for the top group.
      var tb = (mode === 'disagree' && r.dataset.disagree === '1') ? top : home[r.dataset.family];
      tb.appendChild(r);
      var hide = (od && r.dataset.disagree !== '1') || (t && r.dataset.id.toLowerCase().indexOf(t) < 0);
      r.hidden = hide;
      if (!hide) { shown++; count[tb.id || tb.dataset.family] = (count[tb.id || tb.dataset.family] || 0) + 1; }
    });
    top.hidden = !count.top;
    bodies.forEach(function(tb){ tb.hidden = !count[tb.dataset.family]; });
    document.getElementById('shown').textContent = shown;
  }
  if (param('only') === 'disagree') only.checked = true;
  if (param('sort')) sort.value = param('sort');
  if (param('q')) text.value = param('q');
  only.addEventListener('change', apply); sort.addEventListener('change', apply);
  text.addEventListener('input', apply);
  document.getElementById('expand').addEventListener('click', function(){
    var open = this.dataset.open !== '1'; this.dataset.open = open ? '1' : '0';
    this.textContent = open ? 'collapse all' : 'expand all';
    Array.prototype.forEach.call(document.querySelectorAll('#matrix tr.row:not([hidden]) details'),
      function(d){ d.open = open; });
  });
  apply();
})();
"""


def _vbadge(v):
    v = v or "absent"
    return f'<span class="v {_e(v)}">{_e(v)}</span>'


def _list(xs):
    return _e(", ".join(str(x) for x in xs)) if xs else '<span class="muted">—</span>'


def _hello_html(hello):
    ciphers = [c for c in hello.get("ciphers") or []]
    rows = [("versions", _list(hello.get("versions") or [])),
            ("TLS 1.2 suites", _list([c for c in ciphers if not is_tls13_suite(c)])),
            ("TLS 1.3 suites", _list([c for c in ciphers if is_tls13_suite(c)])),
            ("groups", _list(hello.get("groups") or [])),
            ("sigalgs", _list(hello.get("sigalgs") or [])),
            ("SNI", _e(hello.get("sni")) if hello.get("sni") is not None else '<span class="muted">none</span>'),
            ("ALPN", _list(hello.get("alpn") or [])),
            ("session", _e(f"id len {hello.get('session_id_len')}, ticket {hello.get('ticket_offered')}, "
                           f"psk {hello.get('psk_offered')}"))]
    return "<table>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"


def _cv(v):
    """A connection field: text as is, structures (an alert) as JSON; escaped."""
    return _j(v) if isinstance(v, (dict, list)) else _e(v)


CONN_FIELDS = ("backend", "conn", "ok", "version", "cipher", "resumed", "sni", "requests",
               "error", "alert")


def _step_html(st):
    out = [f"<div><b>step {_e(st.get('step'))}</b> (location {_e(st.get('location'))})</div>"]
    exp = st.get("expected") or {}
    out.append("<table><tr><th>expected</th><td>" + "<br>".join(
        f"{_e(k)} = <code>{_j(v)}</code>" for k, v in exp.items()) + "</td></tr>")
    obs = st.get("observed") or {}
    resp = obs.get("responses") or []
    out.append("<tr><th>responses</th><td>" + "<br>".join(
        f"status <code>{_e(r.get('status'))}</code> from backend {_e(r.get('backend'))}"
        + "".join(f"<br><span class=small>{_e(k)}: {_e(v)}</span>"
                  for k, v in (r.get("headers") or {}).items())
        for r in resp) + "</td></tr>")
    for f in st.get("failures") or []:
        out.append(f"<tr><th>✗ {_e(f.get('kind'))}</th><td>{_e(f.get('message'))}</td></tr>")
    out.append("</table>")
    conns = obs.get("connections") or []
    if conns:
        out.append("<table><tr>" + "".join(f"<th>{k}</th>" for k in CONN_FIELDS)
                   + "<th>client cert</th></tr>")
        for c in conns:
            cc = c.get("client_cert")
            ccs = (f"{_e(cc.get('subject'))}<br><span class=muted>chain {_e(cc.get('chain_len'))}, "
                   f"verify {_e(cc.get('verify'))}</span>") if cc else '<span class="muted">none</span>'
            out.append("<tr>" + "".join(f"<td>{_cv(c.get(k)) if k in c else ''}</td>"
                                        for k in CONN_FIELDS) + f"<td>{ccs}</td></tr>")
        out.append("</table>")
        for c in conns:
            if c.get("hello"):
                out.append(f"<div class=small>ClientHello, {_e(c.get('backend'))} conn "
                           f"{_e(c.get('conn'))}:</div>" + _hello_html(c["hello"]))
                break
    return "".join(out)


def _cell_detail(res):
    out = ['<div class="detail">', f"<div>{_e(res.get('reason'))}</div>"]
    if res.get("fail_kind"):
        out.append(f"<div>fail kind: <b>{_e(res['fail_kind'])}</b></div>")
    if res.get("deviation"):
        d = res["deviation"]
        out.append(f"<div>deviation: {_e(d.get('reason'))} (source: {_e(d.get('source'))})</div>")
    if res.get("variant"):
        out.append(f"<div>variant: {_e(res['variant'])}</div>")
    for st in res.get("steps") or []:
        out.append(_step_html(st))
    if res.get("config_excerpt"):
        out.append(f"<div class=small>config excerpt:</div><pre>{_e(res['config_excerpt'])}</pre>")
    out.append("</div>")
    return "".join(out)


def _scenario_detail(row):
    refs = "".join(f"<li>{_e(r)}</li>" for r in row.get("refs") or [])
    return ('<div class="detail">'
            f"<div><b>{_e(row.get('title'))}</b></div>"
            f"<div>importance: {_e(row.get('importance'))}; family: {_e(row.get('family'))}</div>"
            + (f"<pre>{_e(str(row.get('checks') or '').strip())}</pre>" if row.get("checks") else "")
            + (f"<div>refs:</div><ul>{refs}</ul>" if refs else "") + "</div>")


def _header_html(cols, m):
    out = ["<table><tr><th>target</th><th>version</th><th>TLS library</th><th>binary</th>"
           "<th>started</th><th>s</th>" + "".join(f"<th>{_vbadge(v)}</th>" for v in VERDICT_ORDER)
           + "<th>status</th></tr>"]
    for c in cols:
        t, s = c["target"], c["summary"]
        if c["status"] == "ok":
            status = "ran"
            if c.get("files"):
                status += f'<div class="muted small">{_e(", ".join(c["files"]))}</div>'
        else:
            err = str(c.get("error") or "")
            status = (f'<b>could not run</b>: {_e(err)}' if len(err) <= 160 else
                      f'<details class="err"><summary><b>could not run</b>: {_e(err[:160])}…'
                      f'</summary>{_e(err)}</details>')
        out.append(f"<tr class=\"col-head\" data-target=\"{_e(c['label'])}\">"
                   f"<th>{_e(c['label'])}</th><td>{_e(t.get('version') or '—')}</td>"
                   f"<td>{_e((t.get('tls_library') or t.get('openssl')) or '—')}</td><td><code>{_e(t.get('binary') or '—')}</code></td>"
                   f"<td>{_e(c.get('started') or '—')}</td><td>{_e(c.get('duration_s', '—'))}</td>"
                   + "".join(f"<td>{s.get(v, 0)}</td>" for v in VERDICT_ORDER)
                   + f"<td>{status}</td></tr>")
    out.append("</table>")
    notes = [(None, n) for n in m.get("notes") or []]
    notes += [(c["label"], n) for c in cols for n in c.get("notes") or []]
    notes += [(c["label"], f"target log alert: {a}") for c in cols for a in c.get("target_alerts") or []]
    if notes:
        out.append('<ul class="notes">' + "".join(
            f"<li>{'<b>' + _e(lab) + '</b>: ' if lab else ''}{_e(n)}</li>" for lab, n in notes)
            + "</ul>")
    return "".join(out)


def _fingerprint_html(cols):
    ran = [c for c in cols if c["status"] == "ok"]
    if not ran:
        return "<p>No target ran.</p>"
    fps = [c.get("fingerprint") or {} for c in ran]
    out = ['<table class="fp"><tr><th></th>' + "".join(f"<th>{_e(c['label'])}</th>" for c in ran)
           + "</tr><tr><th>taken from</th>"
           + "".join(f"<td>{_e(f.get('source') or f.get('why'))}</td>" for f in fps) + "</tr>"]
    for key, name in FINGERPRINT_FIELDS:
        have = [f for f in fps if f.get("source")]
        common = set.intersection(*[set(f.get(key) or []) for f in have]) if have else set()
        out.append(f"<tr><th>{_e(name)}</th>")
        for f in fps:
            items = f.get(key) or []
            out.append("<td>" + (" ".join(
                f'<span class="{"" if x in common else "uncommon"}">{_e(x)}</span>' for x in items)
                or '<span class="muted">—</span>') + "</td>")
        out.append("</tr>")
    out.append("</table><p class=\"small muted\">Items in bold are not offered by every target "
               "shown. Taken from the first ClientHello of the named scenario, which leaves "
               "protocols and ciphers unset.</p>")
    return "".join(out)


def _findings_html(m):
    """The findings section: one row per finding (uptls_vocab.finding_key
    order), a cell per target with its verdict, kind, source and the command
    that reproduces it."""
    rows = model_findings(m)
    labels = [c["label"] for c in m["columns"]]
    out = [f'<section id="findings"><h2>Findings ({len(rows)})</h2>']
    if not rows:
        return "".join(out) + "<p>No fail, deviation or note.</p></section>"
    out.append('<p class="small muted">Every fail, deviation and note, most important first '
               "(importance, then unexpected accept, unexpected refusal, wrong observation, "
               "then notes).</p>")
    out.append('<table class="findings"><tr><th>#</th><th>importance</th><th>scenario and '
               "consequence</th>" + "".join(f"<th>{_e(x)}</th>" for x in labels) + "</tr>")
    for i, r in enumerate(rows, 1):
        out.append(f'<tr class="finding" data-id="{_e(r["id"])}"><td>{i}</td>'
                   f"<td>{_e(r.get('importance'))}</td><td><code>{_e(r['id'])}</code>"
                   f'<div class="consequence">{_e(r["consequence"])}</div></td>')
        for x in labels:
            f = r["targets"].get(x)
            if f is None:
                out.append(f'<td class="muted">{_vbadge(r["others"].get(x))}</td>')
                continue
            out.append(f'<td class="cell {_e(f["verdict"])}">{_vbadge(f["verdict"])}'
                       + (f" <b>{_e(f['fail_kind'])}</b>" if f["fail_kind"] else "")
                       + (f'<div class="small">{_e(f["consequence"])}</div>'
                          if f["consequence"] != r["consequence"] else "")
                       + (f'<div class="small">source: {_e(f["source"])}</div>'
                          if f["source"] else "")
                       + f'<div class="small">reproduce: <code>{_e(f["repro"])}</code></div></td>')
        out.append("</tr>")
    return "".join(out) + "</table></section>"


def _worst(verdicts):
    order = {v: i for i, v in enumerate(VERDICT_ORDER)}
    return min([order.get(v, len(order)) for v in verdicts] or [len(order)])


def compare_html(m, title="uptls: side-by-side comparison"):
    cols = m["columns"]
    labels = [c["label"] for c in cols]
    dis = len(m["disagreements"])
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{_e(title)}</title><style>{CSS}</style></head><body>",
           f"<h1>{_e(title)}</h1>",
           f'<p class="muted">Generated {_e(m.get("generated"))}; {len(m["rows"])} scenarios, '
           f'{len(cols)} target(s), <span id="n-disagree">{dis}</span> disagreement(s).</p>',
           _findings_html(m), "<h2>Targets</h2>", _header_html(cols, m),
           "<h2>Fingerprint: what each target offers by default</h2>", _fingerprint_html(cols),
           "<h2>Scenarios</h2>",
           '<div class="controls">'
           '<label><input type="checkbox" id="only-disagree"> only rows where targets disagree '
           f'(<span class="dmark">◆</span> {dis})</label>'
           '<label>order <select id="sort"><option value="family">by family</option>'
           '<option value="disagree">disagreements first</option>'
           '<option value="worst">worst verdict first</option>'
           '<option value="importance">by importance</option></select></label>'
           '<label>filter <input id="text" type="search" placeholder="scenario id"></label>'
           '<button type="button" id="expand">expand all</button> '
           '<span class="muted small"><span id="shown"></span> shown; click a verdict for '
           'expected vs observed, the ClientHello and the config</span></div>',
           '<table id="matrix"><thead><tr><th>scenario</th><th>importance</th>'
           + "".join(f'<th class="target" data-target="{_e(x)}">{_e(x)}</th>' for x in labels)
           + "</tr></thead>"]
    out.append(f'<tbody id="top" hidden><tr class="family"><th colspan="{2 + len(labels)}">'
               f'<span class="dmark">◆</span> where the targets disagree</th></tr></tbody>')
    families = {}
    for r in m["rows"]:
        families.setdefault(r["family"], []).append(r)
    order = 0
    for fi, (fam, rows) in enumerate(families.items()):
        fdis = any(r["disagree"] for r in rows)
        out.append(f'<tbody class="family" data-family="{_e(fam)}" data-order="{fi}" '
                   f'data-disagree="{1 if fdis else 0}">'
                   f'<tr class="family"><th colspan="{2 + len(labels)}">{_e(fam)}</th></tr>')
        for r in rows:
            order += 1
            worst = _worst([v for v in r["verdicts"].values()])
            out.append(
                f'<tr class="row{" disagree" if r["disagree"] else ""}" data-id="{_e(r["id"])}" '
                f'data-family="{_e(fam)}" '
                f'data-disagree="{1 if r["disagree"] else 0}" data-order="{order}" '
                f'data-rank="{rank(Importance, r.get("importance"))}" data-worst="{worst}">'
                f'<td class="sid"><details><summary>'
                + ('<span class="dmark" title="targets disagree">◆</span> ' if r["disagree"] else "")
                + f'<code title="{_e(r.get("title"))}">{_e(r["id"])}</code></summary>{_scenario_detail(r)}</details></td>'
                f'<td>{_e(r.get("importance"))}</td>')
            for x in labels:
                cell = r["cells"][x]
                v = (cell or {}).get("verdict", "absent")
                if cell is None:
                    out.append(f'<td class="cell absent" data-target="{_e(x)}">{_vbadge("absent")}</td>')
                else:
                    out.append(f'<td class="cell {_e(v)}" data-target="{_e(x)}" data-verdict="{_e(v)}">'
                               f'<details><summary>{_vbadge(v)}</summary>{_cell_detail(cell)}'
                               f'</details></td>')
            out.append("</tr>")
        out.append("</tbody>")
    out.append("</table>")
    out.append('<p class="small muted">Query parameters (or #fragment): only=disagree, '
               'sort=family|disagree|worst|importance, q=text.</p>')
    out.append(f"<script>{JS}</script></body></html>")
    return "\n".join(out) + "\n"
