"""Scenario files: loading and strict validation.

A scenario is one TOML file under scenarios/; its path without ".toml" is
its id (scenarios/trust/unknown-root.toml -> "trust/unknown-root"), and its
folder is its family. Every key is checked against the tables below: an
unknown key, a value of the wrong type or outside its allowed values is a
load error that names the file and the key. Nothing is run from a catalogue
that did not load cleanly.

Shape (see scenarios/README.md for the full reference):

    title, importance, checks, refs, requires, note
    [proxy]          the upstream-TLS settings of the one location
    [[location]]     extra locations (name, upstream, backends + settings)
    [[backend]]      mock upstream servers
    [[step]]         requests and what must be observed
    [[wrong]]        wrong-way variants that must make the scenario fail
"""

import dataclasses
import glob
import os
import re
import tomllib

from . import SCENARIO_DIR, UptlsError

IMPORTANCE = ("critical", "high", "medium", "low")
PROTOCOLS = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
CLIENT_AUTH = ("none", "request", "require")
RESULTS = ("accepted", "refused", "reached")
RESUMED = ("none", "all-after-first", "all")

# The abstract upstream-TLS settings (DESIGN.md). Each maps to one nginx
# directive; an adapter declares which of them its target can express.
# name -> (type, help)
PROXY_SETTINGS = {
    "client_certificate": (str, "PKI entity whose chain and key the proxy presents"),
    "client_key_password": (bool, "the key is encrypted; give the proxy its password file"),
    "trusted_ca": (list, "PKI entities (CAs) the proxy trusts for the upstream's chain"),
    "verify": (bool, "verify the upstream's certificate"),
    "verify_depth": (int, "verification depth, in the nginx/OpenSSL meaning"),
    "verify_name": (str, "name checked against the upstream's certificate"),
    "send_sni": (bool, "send the server_name extension"),
    "sni_name": (str, "name sent in the server_name extension"),
    "protocols": (list, "TLS versions the proxy may use"),
    "ciphers": (str, "TLS <= 1.2 cipher list (OpenSSL syntax)"),
    "ciphersuites": (str, "TLS 1.3 ciphersuites (OpenSSL syntax)"),
    "session_reuse": (bool, "reuse TLS sessions with the upstream"),
    "crl": (list, "PKI CAs whose CRLs the proxy checks"),
    "keepalive": (int, "idle upstream connections kept per worker (0 = none)"),
    # Not TLS, but what the faults family needs to bound a refusal in time.
    "connect_timeout": (int, "seconds to connect and complete the TLS handshake"),
    "read_timeout": (int, "seconds between two reads from the upstream"),
}
# Not settings but shape: which upstream group and host name a location uses.
LOCATION_KEYS = {
    "name": (str, "location name, used by steps"),
    "upstream": (str, "upstream group name; locations naming the same one share it"),
    "upstream_host": (str, "host name in proxy_pass (default: unique per upstream)"),
    "backends": (list, "backend names in the upstream group (default: all)"),
}
BACKEND_KEYS = {
    "name": (str, "backend name"),
    "certificate": (str, "PKI entity the backend presents (its chain.pem and key)"),
    "client_auth": (str, "none | request | require"),
    "client_ca": (list, "PKI CAs the backend trusts for client certificates"),
    "min_proto": (str, "lowest TLS version the backend accepts"),
    "max_proto": (str, "highest TLS version the backend accepts"),
    "ciphers": (str, "backend's TLS <= 1.2 cipher list"),
    "ciphersuites": (str, "backend's TLS 1.3 ciphersuites"),
    "session_cache": (bool, "backend keeps a server-side session cache"),
    "tickets": (bool, "backend issues session tickets"),
    "close_after_response": (bool, "backend closes each connection after answering"),
    "faults": (list, "uptls-backend fault switches"),
}
EXPECT_KEYS = {
    "result": (str, "accepted | refused | reached (the request reached a backend, "
                    "whatever the client got)"),
    "client_cert": (str, "PKI entity the backend must have received, or 'none'"),
    "client_chain_len": (int, "certificates the proxy sent, leaf included"),
    "offered_versions": (list, "exact set of TLS versions in the ClientHello"),
    "offered_versions_default": (bool, "the offered set is the target's documented default"),
    "offered_versions_exclude": (list, "TLS versions that must not be offered"),
    "negotiated_version": (str, "TLS version of every completed handshake"),
    "offered_ciphers": (list, "exact set of TLS <= 1.2 suites offered (SCSVs ignored)"),
    "offered_ciphers_exclude": (list, "substrings no offered TLS <= 1.2 suite may contain"),
    "offered_ciphersuites": (list, "exact set of TLS 1.3 suites offered"),
    "negotiated_cipher": (str, "cipher of every completed handshake"),
    "resumed": (str, "none | all-after-first | all"),
    "sni": (str, "SNI every ClientHello carries, or 'absent'"),
    "handshakes": (int, "exact number of TLS handshakes the backends saw (keepalive)"),
    "fresh_first_contact": (bool, "the first ClientHello each backend sees offers no session "
                                  "(no PSK, no ticket) -- sessions are never carried across servers"),
    "status_in": (list, "every answer's status is one of these (e.g. [502, 504])"),
    "within_s": (int, "every answer (or the client's end of it) arrives within this many seconds"),
    "truncation_signalled": (bool, "a body the backend cut short is never passed on as "
                                   "complete: each answer is a 5xx or ends before its framing"),
    "answers_whole": (bool, "each answer is a 5xx or complete per its framing, never cut"),
    "backend_seen": (list, "backends that must have received at least one request"),
    "backend_not_seen": (list, "backends that must have received no connection at all"),
    "offered_versions_default_wire": (bool, "the ClientHello shows the target's documented default "
                                            "version set as far as the wire can: with TLS 1.3 in it, "
                                            "supported_versions lists exactly the set; without, no "
                                            "supported_versions and the legacy version is the set's "
                                            "highest (a pre-1.3 hello does not show its floor)"),
    "resumed_per_backend": (bool, "for each backend on its own: its first handshake is full and "
                                  "every later one resumed (needs 2+ handshakes per backend)"),
}
STEP_KEYS = {
    "location": (str, "which location the requests go to (default: the first)"),
    "requests": (int, "sequential requests, each on a new client connection"),
    "expect": (dict, "what must be observed"),
    "client": (dict, "what the client sends beyond the default request (CLIENT_KEYS)"),
}
# What a (hostile) client controls in its request; the default is
# "GET /u/.../stepN/reqM HTTP/1.1" with Host: 127.0.0.1:PORT.
CLIENT_KEYS = {
    "host": (str, "the Host header's value"),
    "absolute_form": (str, "send the request target in absolute-form, http://THIS/path "
                           "(RFC 9112 3.2.2)"),
    "headers": (dict, "extra request headers, name -> value"),
}
WRONG_KEYS = {
    "why": (str, "what is changed the wrong way"),
    "proxy": (dict, "settings overriding the scenario's [proxy] (or every location)"),
    "drop": (list, "settings removed from the scenario's locations"),
    "fault": (str, "uptls-proxy fault switch that breaks the checked directive"),
    "location": (str, "the one location the variant changes (default: every location)"),
    "fails_at_step": (int, "the step whose expectation the variant must break (default: any)"),
}
TOP_KEYS = {
    "title": (str, "one line"),
    "importance": (str, "critical | high | medium | low"),
    "checks": (str, "what the scenario checks and why it matters"),
    "refs": (list, "documented semantics the expectations rest on"),
    "requires": (list, "extra capabilities beyond the settings used"),
    "note": (str, "a soft expectation: when it holds the verdict is 'note', with this text"),
    "proxy": (dict, "the upstream-TLS settings of the main location"),
    "location": (list, "extra locations"),
    "backend": (list, "mock upstream servers"),
    "step": (list, "requests and expectations"),
    "wrong": (list, "wrong-way variants that must fail"),
}
REQUIRED_TOP = ("title", "importance", "checks", "refs", "backend", "step")

# Capabilities that are not proxy settings but that a scenario can require.
EXTRA_CAPABILITIES = {
    "upstream_group": "an upstream group of several servers",
    "tls10": "TLS 1.0/1.1 with a lowered security level",
    "shared_upstream": "two locations sharing one upstream group",
    "ip_upstream": "an IP literal as the upstream host",
}


@dataclasses.dataclass(frozen=True)
class Location:
    name: str
    upstream: str
    upstream_host: str | None
    backends: tuple
    settings: dict


@dataclasses.dataclass(frozen=True)
class Backend:
    name: str
    certificate: str
    options: dict


@dataclasses.dataclass(frozen=True)
class Step:
    location: str
    requests: int
    expect: dict
    client: dict | None = None


@dataclasses.dataclass(frozen=True)
class Wrong:
    why: str
    proxy: dict
    drop: tuple
    fault: str | None
    fails_at_step: int | None = None
    location: str | None = None


@dataclasses.dataclass(frozen=True)
class Scenario:
    id: str
    family: str
    path: str
    title: str
    importance: str
    checks: str
    refs: tuple
    requires: tuple
    note: str | None
    locations: tuple
    backends: tuple
    steps: tuple
    wrong: tuple

    def capabilities(self):
        """Every abstract setting and extra capability the scenario needs."""
        need = set(self.requires)
        for loc in self.locations:
            need.update(loc.settings)
        return need

    def with_settings(self, overrides, drop=(), location=None):
        """A copy whose locations (or the one named) carry changed settings."""
        locs = []
        for loc in self.locations:
            if location and loc.name != location:
                locs.append(loc)
                continue
            s = {k: v for k, v in loc.settings.items() if k not in drop}
            s.update(overrides)
            locs.append(dataclasses.replace(loc, settings=s))
        return dataclasses.replace(self, locations=tuple(locs))


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
    if errors:
        raise UptlsError("\n".join(errors))

    backends = []
    for i, b in enumerate(data["backend"]):
        where = f"[[backend]] #{i + 1}: "
        if not isinstance(b, dict):
            errors.append(f"{_where(path)}: {where}must be a table")
            continue
        _check_table(path, where, b, BACKEND_KEYS, errors)
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
    for i, st in enumerate(data["step"]):
        where = f"[[step]] #{i + 1}: "
        if not isinstance(st, dict):
            errors.append(f"{_where(path)}: {where}must be a table")
            continue
        _check_table(path, where, st, STEP_KEYS, errors)
        exp = st.get("expect", {})
        if not isinstance(exp, dict) or not exp:
            errors.append(f"{_where(path)}: {where}needs an 'expect' table: a step that "
                          "expects nothing cannot fail")
            exp = {}
        _check_table(path, where + "expect: ", exp, EXPECT_KEYS, errors)
        if "result" not in exp:
            errors.append(f"{_where(path)}: {where}expect needs 'result' (accepted | refused)")
        _check_choice(path, where, "result", exp.get("result"), RESULTS, errors)
        _check_choice(path, where, "resumed", exp.get("resumed"), RESUMED, errors)
        for key in ("offered_versions", "offered_versions_exclude"):
            for p in exp.get(key, []) or []:
                _check_choice(path, where, key, p, PROTOCOLS, errors)
        for key in ("backend_seen", "backend_not_seen"):
            for bn in exp.get(key, []) or []:
                if bn not in names:
                    errors.append(f"{_where(path)}: {where}{key} names unknown backend '{bn}'")
        loc = st.get("location", lnames[0] if lnames else "main")
        if loc not in lnames:
            errors.append(f"{_where(path)}: {where}unknown location '{loc}'")
        client = st.get("client")
        if isinstance(client, dict):
            _check_table(path, where + "client: ", client, CLIENT_KEYS, errors)
            for k, v in (client.get("headers") or {}).items() \
                    if isinstance(client.get("headers"), dict) else ():
                if not isinstance(v, str) or not re.fullmatch(r"[A-Za-z0-9-]+", k):
                    errors.append(f"{_where(path)}: {where}client: headers: '{k}' must be a "
                                  "header name with a string value")
        n = st.get("requests", 1)
        if isinstance(n, int) and not 1 <= n <= 50:
            errors.append(f"{_where(path)}: {where}'requests' must be 1..50")
        steps.append(Step(loc, n, exp, client if isinstance(client, dict) else None))

    wrong = []
    for i, w in enumerate(data.get("wrong", [])):
        where = f"[[wrong]] #{i + 1}: "
        if not isinstance(w, dict):
            errors.append(f"{_where(path)}: {where}must be a table")
            continue
        _check_table(path, where, w, WRONG_KEYS, errors)
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
            cc = st.expect.get("client_cert")
            if cc and cc != "none":
                refs.append(("expect: client_cert", cc))
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
        wrong=tuple(wrong))


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
    import fnmatch
    pats = [p.strip() for p in pattern.split(",") if p.strip()]
    out = [s for s in scenarios if any(fnmatch.fnmatchcase(s.id, p) or s.id == p
                                       or fnmatch.fnmatchcase(s.id, p.rstrip("/") + "/*")
                                       for p in pats)]
    if not out:
        raise UptlsError(f"SCENARIOS='{pattern}' matches no scenario id "
                         f"(ids look like 'trust/unknown-root'; families: "
                         f"{', '.join(sorted({s.family for s in scenarios}))})")
    return out
