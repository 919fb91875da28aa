"""The catalogue: scenario files loaded, validated, and selected.

Every key of a file is checked against the tables of scenario.py (and a
step's `expect` against checks.EXPECTATIONS): an unknown key, a value of
the wrong type or outside its allowed values is a load error that names
the file and the key. All errors of all files are collected and raised
together; nothing is run from a catalogue that did not load cleanly.
SCENARIOS= selects by id glob (select), SHARD=k/n by stable slice (shard).
"""

import fnmatch
import glob
import os
import re
import tomllib

from . import SCENARIO_DIR, UptlsError
from .checks import EXPECTATIONS
from .scenario import (BACKEND_KEYS, CLIENT_AUTH, CLIENT_KEYS, EXTRA_CAPABILITIES, IMPORTANCE, LOCATION_KEYS,
                       PROTOCOLS, PROXY_SETTINGS, REQUIRED_TOP, STEP_KEYS, TOP_KEYS, WRONG_KEYS,
                       Backend, Location, Scenario, Step, Wrong)

EXPECT_KEYS = {k: (e.type, e.help) for k, e in EXPECTATIONS.items()}


def _where(path):
    return os.path.relpath(path)


def _check_table(path, where, table, spec, errors):
    for key, value in table.items():
        if key not in spec:
            allowed = ", ".join(sorted(spec))
            errors.append(f"{_where(path)}: {where}unknown key '{key}' (allowed: {allowed})")
            continue
        typ = spec[key][0]
        ok = isinstance(value, typ) and not (typ is int and isinstance(value, bool))
        if not ok:
            errors.append(f"{_where(path)}: {where}'{key}' must be {typ.__name__}, "
                          f"not {type(value).__name__} ({value!r})")


def _check_choice(path, where, key, value, choices, errors):
    if value is not None and value not in choices:
        errors.append(f"{_where(path)}: {where}'{key}' = {value!r} is not one of "
                      f"{', '.join(choices)}")


def _check_settings(path, where, settings, errors):
    _check_table(path, where, settings, PROXY_SETTINGS, errors)
    for p in settings.get("protocols", []) or []:
        _check_choice(path, where, "protocols", p, PROTOCOLS, errors)
    if "verify_depth" in settings and isinstance(settings["verify_depth"], int) \
            and settings["verify_depth"] < 0:
        errors.append(f"{_where(path)}: {where}'verify_depth' must be >= 0")


def _array_of_tables(path, name, items, spec, errors):
    """(index, where, table) for each [[name]] that is a table, its keys
    checked against spec (what is wrong goes to errors)."""
    for i, table in enumerate(items):
        where = f"[[{name}]] #{i + 1}: "
        if not isinstance(table, dict):
            errors.append(f"{_where(path)}: {where}must be a table")
            continue
        _check_table(path, where, table, spec, errors)
        yield i, where, table


def _check_expect(path, where, exp, backends, errors):
    """Each expectation's value against its table row: its choices (of each
    item, for a list), the backends it names."""
    for key, value in exp.items():
        e = EXPECTATIONS.get(key)
        if e is None or not isinstance(value, e.type):
            continue  # reported by _check_table
        for v in value if isinstance(value, list) else [value]:
            if e.choices:
                _check_choice(path, where, key, v, e.choices, errors)
            if e.names == "backend" and v not in backends:
                errors.append(f"{_where(path)}: {where}{key} names unknown backend '{v}'")


def scenario_id(path, root=SCENARIO_DIR):
    rel = os.path.relpath(path, root)
    return rel[:-len(".toml")].replace(os.sep, "/")


def load_file(path, root=SCENARIO_DIR, entities=None):
    """Load and validate one scenario file; raise UptlsError naming it."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise UptlsError(f"{_where(path)}: TOML syntax error: {e}") from None
    except OSError as e:
        raise UptlsError(f"{_where(path)}: cannot read: {e.strerror}") from None

    errors = []
    sid = scenario_id(path, root)
    if "/" not in sid:
        errors.append(f"{_where(path)}: a scenario lives in a family folder "
                      "(scenarios/FAMILY/NAME.toml)")
    if not re.fullmatch(r"[a-z0-9][a-z0-9./_-]*", sid):
        errors.append(f"{_where(path)}: id '{sid}' may use only a-z 0-9 . _ - /")
    _check_table(path, "", data, TOP_KEYS, errors)
    for key in REQUIRED_TOP:
        if key not in data:
            errors.append(f"{_where(path)}: missing required key '{key}'")
    _check_choice(path, "", "importance", data.get("importance"), IMPORTANCE, errors)
    for cap in data.get("requires", []) if isinstance(data.get("requires"), list) else []:
        if cap not in EXTRA_CAPABILITIES and cap not in PROXY_SETTINGS:
            errors.append(f"{_where(path)}: requires: unknown capability '{cap}' (known: "
                          f"{', '.join(sorted(set(EXTRA_CAPABILITIES) | set(PROXY_SETTINGS)))})")
    if "note_consequence" in data and "note" not in data:
        errors.append(f"{_where(path)}: note_consequence without a note (it says what a user "
                      "gets when the note holds)")
    if errors:
        raise UptlsError("\n".join(errors))

    backends = []
    for i, where, b in _array_of_tables(path, "backend", data["backend"], BACKEND_KEYS, errors):
        for key in ("name", "certificate"):
            if key not in b:
                errors.append(f"{_where(path)}: {where}missing '{key}'")
        _check_choice(path, where, "client_auth", b.get("client_auth"), CLIENT_AUTH, errors)
        _check_choice(path, where, "min_proto", b.get("min_proto"), PROTOCOLS, errors)
        _check_choice(path, where, "max_proto", b.get("max_proto"), PROTOCOLS, errors)
        opts = {k: v for k, v in b.items() if k not in ("name", "certificate")}
        backends.append(Backend(b.get("name", "?"), b.get("certificate", "?"), opts))
    names = [b.name for b in backends]
    if len(set(names)) != len(names):
        errors.append(f"{_where(path)}: backend names must be unique: {names}")

    locations = []
    proxy = data.get("proxy", {})
    if not isinstance(proxy, dict):
        errors.append(f"{_where(path)}: [proxy] must be a table")
        proxy = {}
    main = {k: v for k, v in proxy.items() if k not in LOCATION_KEYS}
    shape = {k: v for k, v in proxy.items() if k in LOCATION_KEYS and k != "name"}
    _check_settings(path, "[proxy]: ", main, errors)
    _check_table(path, "[proxy]: ", shape, LOCATION_KEYS, errors)
    raw_locations = [dict(shape, name="main", **main)]
    for i, loc in enumerate(data.get("location", [])):
        if not isinstance(loc, dict) or "name" not in loc:
            errors.append(f"{_where(path)}: [[location]] #{i + 1}: needs a 'name'")
            continue
        s = {k: v for k, v in loc.items() if k not in LOCATION_KEYS}
        _check_settings(path, f"[[location]] {loc['name']}: ", s, errors)
        raw_locations.append(loc)
    for loc in raw_locations:
        settings = {k: v for k, v in loc.items() if k not in LOCATION_KEYS}
        bnames = tuple(loc.get("backends", names))
        for bn in bnames:
            if bn not in names:
                errors.append(f"{_where(path)}: location '{loc['name']}' names unknown "
                              f"backend '{bn}'")
        locations.append(Location(loc["name"], loc.get("upstream", loc["name"]),
                                  loc.get("upstream_host"), bnames, settings))
    lnames = [loc.name for loc in locations]
    if len(set(lnames)) != len(lnames):
        errors.append(f"{_where(path)}: location names must be unique: {lnames}")

    steps = []
    for i, where, st in _array_of_tables(path, "step", data["step"], STEP_KEYS, errors):
        exp = st.get("expect", {})
        if not isinstance(exp, dict) or not exp:
            errors.append(f"{_where(path)}: {where}needs an 'expect' table: a step that "
                          "expects nothing cannot fail")
            exp = {}
        _check_table(path, where + "expect: ", exp, EXPECT_KEYS, errors)
        if "result" not in exp:
            errors.append(f"{_where(path)}: {where}expect needs 'result' (accepted | refused)")
        _check_expect(path, where, exp, names, errors)
        loc = st.get("location", lnames[0] if lnames else "main")
        if loc not in lnames:
            errors.append(f"{_where(path)}: {where}unknown location '{loc}'")
        client = st.get("client")
        if isinstance(client, dict):
            _check_table(path, where + "client: ", client, CLIENT_KEYS, errors)
            headers = client.get("headers")
            for k, v in (headers.items() if isinstance(headers, dict) else ()):
                if not isinstance(v, str) or not re.fullmatch(r"[A-Za-z0-9-]+", k):
                    errors.append(f"{_where(path)}: {where}client: headers: '{k}' must be a "
                                  "header name with a string value")
        n = st.get("requests", 1)
        if isinstance(n, int) and not 1 <= n <= 50:
            errors.append(f"{_where(path)}: {where}'requests' must be 1..50")
        steps.append(Step(loc, n, exp, client if isinstance(client, dict) else None))

    wrong = []
    for i, where, w in _array_of_tables(path, "wrong", data.get("wrong", []), WRONG_KEYS, errors):
        if "why" not in w:
            errors.append(f"{_where(path)}: {where}missing 'why'")
        if isinstance(w.get("proxy"), dict):
            _check_settings(path, where + "proxy: ", w["proxy"], errors)
        for k in w.get("drop", []) or []:
            if k not in PROXY_SETTINGS:
                errors.append(f"{_where(path)}: {where}drop: unknown setting '{k}'")
        if not (w.get("proxy") or w.get("drop") or w.get("fault")):
            errors.append(f"{_where(path)}: {where}changes nothing (needs proxy, drop or fault)")
        if "fails_at_step" in w and not 1 <= w["fails_at_step"] <= len(data["step"]):
            errors.append(f"{_where(path)}: {where}fails_at_step must name one of the "
                          f"{len(data['step'])} step(s)")
        wrong.append(Wrong(w.get("why", ""), w.get("proxy", {}), tuple(w.get("drop", [])),
                           w.get("fault"), w.get("fails_at_step"), w.get("location")))
        if w.get("location") and w["location"] not in lnames:
            errors.append(f"{_where(path)}: {where}unknown location '{w['location']}'")

    if entities is not None:
        refs = [(f"[[backend]] {b.name}: certificate", b.certificate) for b in backends]
        for b in backends:
            refs += [(f"[[backend]] {b.name}: client_ca", e) for e in b.options.get("client_ca", [])]
        for loc in locations:
            s = loc.settings
            if "client_certificate" in s:
                refs.append((f"location {loc.name}: client_certificate", s["client_certificate"]))
            for key in ("trusted_ca", "crl"):
                refs += [(f"location {loc.name}: {key}", e) for e in s.get(key, [])]
        for st in steps:
            for key, e in EXPECTATIONS.items():
                value = st.expect.get(key)
                if e.names == "entity" and value and value not in e.words:
                    refs.append((f"expect: {key}", value))
        for where, ent in refs:
            if ent not in entities:
                errors.append(f"{_where(path)}: {where}: no PKI entity '{ent}' in "
                              "fixtures/pki.toml")
    if errors:
        raise UptlsError("\n".join(errors))

    return Scenario(
        id=sid, family=sid.split("/")[0], path=path, title=data["title"],
        importance=data["importance"], checks=data["checks"], refs=tuple(data["refs"]),
        requires=tuple(data.get("requires", [])), note=data.get("note"),
        locations=tuple(locations), backends=tuple(backends), steps=tuple(steps),
        wrong=tuple(wrong), consequence=data.get("consequence"),
        note_consequence=data.get("note_consequence"))


def load_catalogue(root=SCENARIO_DIR, pattern=None, entities=None):
    """Load every scenario under root; pattern is a glob on ids (or a comma list).

    All load errors are collected and raised together, so one run shows
    every broken file at once.
    """
    paths = sorted(glob.glob(os.path.join(root, "**", "*.toml"), recursive=True))
    scenarios, errors, seen = [], [], {}
    for path in paths:
        try:
            sc = load_file(path, root, entities)
        except UptlsError as e:
            errors.append(str(e))
            continue
        if sc.id in seen:
            errors.append(f"{_where(path)}: duplicate scenario id '{sc.id}' "
                          f"(also {_where(seen[sc.id])})")
            continue
        seen[sc.id] = path
        scenarios.append(sc)
    if errors:
        raise UptlsError("\n".join(errors))
    if pattern:
        scenarios = select(scenarios, pattern)
    return scenarios


def select(scenarios, pattern):
    pats = [p.strip() for p in pattern.split(",") if p.strip()]
    out = [s for s in scenarios if any(fnmatch.fnmatchcase(s.id, p) or s.id == p
                                       or fnmatch.fnmatchcase(s.id, p.rstrip("/") + "/*")
                                       for p in pats)]
    if not out:
        raise UptlsError(f"SCENARIOS='{pattern}' matches no scenario id "
                         f"(ids look like 'trust/unknown-root'; families: "
                         f"{', '.join(sorted({s.family for s in scenarios}))})")
    return out


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
