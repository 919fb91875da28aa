"""Expectation checks: one small checker per expectation key, in one table.

A step's `expect` is a closed vocabulary: the keys of EXPECTATIONS. Each
is checked against what the backends saw on the wire and what the client
got back (Seen), never against the target's own logs, by its own checker
(as OpenSSL's test/ssl_test.c check_test() calls check_result,
check_alerts, check_protocol...). A checker returns the Failures it found
([] = it held); each says which way it failed (uptls_vocab.FailKind):

- unexpected-accept: the proxy forwarded what it had to refuse (the
  dangerous one);
- unexpected-refusal: it refused what it had to forward;
- wrong-observation: it did something, but not what was configured (the
  wrong SNI, versions, certificate, a session not resumed...).

The table's order is the order checks run in, so the order failures are
reported in (the first one's kind is the step's fail kind). The same table
validates scenario files (catalogue.py) and is the help of
scenarios/README.md (scenario_help.py).
"""

import dataclasses
from typing import Callable

from uptls_vocab import FailKind
from uptls_vocab.tls import PROTOCOLS, is_scsv, is_tls13_suite

from .results import Failure

ACCEPT, REFUSAL, WRONG = (FailKind.UNEXPECTED_ACCEPT, FailKind.UNEXPECTED_REFUSAL,
                          FailKind.WRONG_OBSERVATION)
RESULTS = ("accepted", "refused", "reached")
RESUMED = ("none", "all-after-first", "all")


class Seen:
    """One step's observations, as every checker reads them."""

    def __init__(self, responses, conns, pki=None, target=None):
        self.responses, self.conns, self.pki, self.target = responses, conns, pki, target
        self.reached = {c.backend for c in conns if c.requests > 0}
        self.hellos = [c.hello for c in conns if c.hello]
        self.statuses = [r.status for r in responses]
        self.ok = [c for c in conns if c.ok]   # completed handshakes

    def lacks(self, need, what):
        """[the Failure that says what cannot be checked for want of need
        ("hellos" or "handshakes")], or [] when there is something to check."""
        return self.lacks_hellos(what) if need == "hellos" else self.lacks_handshakes(what)

    def lacks_handshakes(self, what):
        """[the Failure that says what cannot be checked], or [] when a handshake completed."""
        return [] if self.ok else [Failure(WRONG, f"cannot check {what}: no completed handshake "
                                                  "was observed" + self.handshake_errors())]

    def lacks_hellos(self, what):
        return [] if self.hellos else [Failure(WRONG, f"cannot check {what}: no ClientHello "
                                                      "was observed")]

    def handshake_errors(self):
        errs = sorted({str(c.handshake.get("error")) for c in self.conns
                       if c.handshake and not c.handshake.get("ok")})
        return f"; backend saw handshake errors: {errs}" if errs else ""


def closed(status):
    """The client's connection was closed or reset with no answer (not a timeout)."""
    return isinstance(status, str) and ("RemoteDisconnected" in status or
                                        "ConnectionReset" in status or
                                        "BadStatusLine" in status)


# -- result -------------------------------------------------------------------------
def _accepted(s):
    if any(r.status != 200 or not r.backend for r in s.responses):
        return [Failure(REFUSAL, f"expected every request forwarded (200 from a backend); got "
                                 f"statuses {s.statuses}" + s.handshake_errors())]
    cut = [r for r in s.responses if r.complete is False]
    if cut:
        return [Failure(WRONG, "a forwarded answer was cut short: "
                        + "; ".join(r.error or "?" for r in cut))]
    return []


def _reached(s):
    if not s.reached:
        return [Failure(REFUSAL, f"expected the request to reach the backend; none did "
                                 f"(statuses {s.statuses})" + s.handshake_errors())]
    return []


def _refused(s):
    # A TCP proxy (nginx stream) cannot answer 5xx: it refuses by closing.
    closes = getattr(s.target, "refusal_closes_connection", False)
    if s.reached or any(r.backend for r in s.responses):
        return [Failure(ACCEPT, f"expected no request to reach a backend; "
                                f"{sorted(s.reached) or 'a backend'} received requests "
                                f"(statuses {s.statuses})")]
    if any(not (isinstance(st, int) and st >= 500 or closes and closed(st) and s.conns)
           for st in s.statuses):
        return [Failure(WRONG, f"expected a 5xx answer for each refused request; got "
                               f"{s.statuses}")]
    return []


def check_result(s, want):
    return {"accepted": _accepted, "reached": _reached, "refused": _refused}[want](s)


# -- client certificate -------------------------------------------------------------
def check_client_cert(s, want):
    fails = []
    for c in s.ok:
        got = c.handshake.get("client_cert")
        if want == "none":
            if got:
                fails.append(Failure(WRONG, f"expected no client certificate; conn {c.conn} "
                                            f"presented '{got.get('subject')}'"))
            continue
        ent = s.pki.entity(want)
        if not got:
            fails.append(Failure(WRONG, f"expected client certificate '{want}' "
                                        f"({ent['subject']}); conn {c.conn} presented none"))
        elif got.get("sha256") != ent["sha256"]:
            fails.append(Failure(WRONG, f"expected client certificate '{want}' sha256 "
                                        f"{ent['sha256'][:16]}…; got '{got.get('subject')}' "
                                        f"{str(got.get('sha256'))[:16]}…"))
    return fails


def check_client_chain_len(s, want):
    fails = []
    # A resumed handshake carries no Certificate message: check full ones.
    for c in [c for c in s.ok if not c.resumed]:
        got = (c.handshake.get("client_cert") or {}).get("chain_len", 0)
        if got != want:
            fails.append(Failure(WRONG, f"expected the proxy to send {want} certificate(s); "
                                        f"conn {c.conn} sent {got}"))
    return fails


# -- what the ClientHello offered ---------------------------------------------------
def _exact_set(what, items):
    """A checker: every ClientHello offers exactly the wanted set of items(hello)."""
    def check(s, want):
        want = set(want)
        for h in s.hellos:
            got = items(h)
            if got != want:
                return [Failure(WRONG, f"expected {what} offered {sorted(want)}; the ClientHello "
                                       f"offered {sorted(got)} (extra {sorted(got - want)}, "
                                       f"missing {sorted(want - got)})")]
        return []
    return check


check_offered_versions = _exact_set("versions", lambda h: set(h.get("versions") or []))
check_offered_ciphers = _exact_set(
    "TLS<=1.2 suites",
    lambda h: {c for c in h.get("ciphers") or [] if not is_scsv(c) and not is_tls13_suite(c)})
check_offered_ciphersuites = _exact_set(
    "TLS 1.3 suites", lambda h: {c for c in h.get("ciphers") or [] if is_tls13_suite(c)})


def resolve_offered_versions_default(want, target):
    """Before the step: the target's documented default version set becomes
    an offered_versions expectation (the report shows which, and its
    source); a target that documents none cannot run the scenario."""
    if not want:
        return {}, None
    protos, source = target.documented_default_protocols()
    if protos is None:
        return None, "the target documents no default protocol set"
    return {"offered_versions": protos, "_default_source": source}, None


def check_offered_versions_exclude(s, want):
    for h in s.hellos:
        extra = set(h.get("versions") or []) & set(want)
        if extra:
            return [Failure(WRONG, f"the ClientHello offered {sorted(extra)}, which must not "
                                   "be offered")]
    return []


def check_offered_ciphers_exclude(s, want):
    for h in s.hellos:
        bad = [c for c in h.get("ciphers") or [] if not is_scsv(c) and any(x in c for x in want)]
        if bad:
            return [Failure(WRONG, f"the ClientHello offered excluded suites {bad}")]
    return []


def check_offered_versions_default_wire(s, want):
    getter = getattr(s.target, "documented_default_protocols", None)
    protos, source = getter() if getter else (None, None)
    if not protos:
        return [Failure(WRONG, "cannot check the default versions: the target documents no "
                               "default protocol set")]
    top = max(protos, key=PROTOCOLS.index)
    for h in s.hellos:
        has_sv = 43 in (h.get("extensions") or [])   # supported_versions
        got = h.get("versions") or []
        if "TLSv1.3" in protos:
            ok_hello = has_sv and set(got) == set(protos)
            wanted = f"supported_versions listing exactly {sorted(protos)}"
        else:
            ok_hello = not has_sv and h.get("legacy_version") == top
            wanted = f"no supported_versions and legacy version {top}"
        if not ok_hello:
            return [Failure(WRONG, f"expected the documented default ({source}): {wanted}; the "
                                   f"ClientHello had supported_versions "
                                   f"{'present' if has_sv else 'absent'}, legacy version "
                                   f"{h.get('legacy_version')}, versions {got}")]
    return []


def check_sni(s, want):
    want = None if want == "absent" else want
    got = [h.get("sni") for h in s.hellos]
    if any(g != want for g in got):
        return [Failure(WRONG, f"expected SNI {want or 'absent'}; the ClientHellos carried "
                               f"{sorted({str(g) for g in got})}")]
    return []


# -- what the handshakes negotiated ---------------------------------------------------
def _negotiated(field, label):
    def check(s, want):
        got = sorted({c.handshake.get(field) for c in s.ok})
        if got != [want]:
            return [Failure(WRONG, f"expected {label(want)}; got {got}")]
        return []
    return check


check_negotiated_version = _negotiated("version", lambda v: f"{v} negotiated")
check_negotiated_cipher = _negotiated("cipher", lambda v: f"cipher {v}")


# -- sessions and connections -------------------------------------------------------
def check_resumed(s, want):
    # "none" holds vacuously when no handshake completed (a refusal by an alert
    # inside the handshake, as HAProxy and Apache refuse): nothing was resumed.
    if not (want == "none" and not s.ok) and (miss := s.lacks_handshakes("resumption")):
        return miss
    flags = [c.resumed for c in s.ok]
    if want == "none" and any(flags):
        return [Failure(WRONG, f"expected no resumed session; resumed per handshake: {flags}")]
    if want == "all" and not all(flags):
        return [Failure(WRONG, f"expected every handshake resumed; resumed per handshake: "
                               f"{flags}")]
    if want == "all-after-first":
        if len(flags) < 2:
            return [Failure(WRONG, f"expected at least 2 handshakes to see resumption; saw "
                                   f"{len(flags)} (upstream connection reused instead?)")]
        if flags[0] or not all(flags[1:]):
            return [Failure(WRONG, f"expected the first handshake full and every later one "
                                   f"resumed; resumed per handshake: {flags}")]
    return []


def check_resumed_per_backend(s, want):
    fails = []
    per = {}
    for c in s.ok:
        per.setdefault(c.backend, []).append(c.resumed)
    for bn, flags in sorted(per.items()):
        if len(flags) < 2 or flags[0] or not all(flags[1:]):
            fails.append(Failure(WRONG, f"expected backend '{bn}' to see a full handshake, then "
                                        f"only resumed ones; resumed per handshake: {flags}"))
    return fails


def check_handshakes(s, want):
    n = sum(1 for c in s.conns if c.handshake is not None)
    if n != want:
        return [Failure(WRONG, f"expected {want} TLS handshake(s) for {len(s.responses)} "
                               f"request(s); the backends saw {n}")]
    return []


def check_fresh_first_contact(s, want):
    first = {}
    for c in s.conns:
        if c.hello and c.backend not in first:
            first[c.backend] = c.hello
    carried = [b for b, h in first.items() if h.get("psk_offered") or h.get("ticket_offered")]
    if carried:
        return [Failure(WRONG, f"the first ClientHello to {carried} already offered a session "
                               "(PSK or ticket): a session was carried over from another "
                               "server or location")]
    return []


def check_backend_seen(s, want):
    return [Failure(WRONG, f"expected backend '{bn}' to receive a request; it received none")
            for bn in want if bn not in s.reached]


def check_backend_not_seen(s, want):
    return [Failure(WRONG, f"expected no connection to backend '{bn}'; it saw "
                           f"{sum(1 for c in s.conns if c.backend == bn)}")
            for bn in want if any(c.backend == bn for c in s.conns)]


# -- the answers the client got ---------------------------------------------------------
def check_status_in(s, want):
    if any(st not in want for st in s.statuses):
        return [Failure(WRONG, f"expected every status in {want}; got {s.statuses}")]
    return []


def check_within_s(s, want):
    slow = [r.time_ms for r in s.responses if r.time_ms > want * 1000]
    if slow:
        return [Failure(WRONG, f"expected every answer within {want} s; took "
                               f"{[round(t / 1000, 2) for t in slow]} s")]
    return []


def check_answers_whole(s, want):
    cut = [r for r in s.responses if not (r.answered and (r.status >= 500 or r.complete))]
    if cut:
        return [Failure(WRONG, f"expected each answer to be a 5xx or complete; got "
                               f"{[(r.status, r.error) for r in cut]}")]
    return []


def check_truncation_signalled(s, want):
    passed_off = [r for r in s.responses if r.answered and r.status < 500 and r.complete]
    if passed_off:
        return [Failure(ACCEPT, f"the backend cut its body short, yet {len(passed_off)} "
                                f"answer(s) reached the client as complete (status "
                                f"{[r.status for r in passed_off]}, "
                                f"{[len(r.body or '') for r in passed_off]} bytes shown)")]
    return []


# -- the table --------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Expectation:
    key: str
    type: type
    check: Callable | None      # (Seen, wanted value) -> [Failure]
    help: str
    choices: tuple = ()         # allowed values (of each item, for a list)
    names: str | None = None    # "backend" or "entity": the value names one (checked on load)
    words: tuple = ()           # literal values allowed besides names
    # ("hellos" | "handshakes", what): with none observed, the one failure is
    # "cannot check what" (the checker is not called).
    needs: tuple | None = None
    # Before the step: (wanted, target) -> ({key: value} checked instead, None)
    # or (None, why the target cannot run the scenario).
    resolve: Callable | None = None


E = Expectation
EXPECTATIONS = {e.key: e for e in (
    E("result", str, check_result, "what became of the requests: accepted = every one answered "
      "200 by a backend; refused = none reached a backend and every answer is a 5xx; reached = "
      "the request reached a backend, whatever the client got", choices=RESULTS),
    E("client_cert", str, check_client_cert,
      "PKI entity the backend must have received, or 'none'", names="entity", words=("none",),
      needs=("handshakes", "the client certificate")),
    E("client_chain_len", int, check_client_chain_len,
      "certificates the proxy sent, leaf included (full handshakes)",
      needs=("handshakes", "the client chain")),
    E("offered_versions", list, check_offered_versions,
      "exact set of TLS versions in the ClientHello", choices=PROTOCOLS,
      needs=("hellos", "offered versions")),
    E("offered_ciphers", list, check_offered_ciphers,
      "exact set of TLS <= 1.2 suites offered (SCSVs ignored)",
      needs=("hellos", "offered TLS<=1.2 suites")),
    E("offered_ciphersuites", list, check_offered_ciphersuites,
      "exact set of TLS 1.3 suites offered", needs=("hellos", "offered TLS 1.3 suites")),
    E("offered_versions_default", bool, None,
      "the offered set is the target's documented default (resolved before the step into "
      "offered_versions; a target that documents none is 'unsupported')",
      resolve=resolve_offered_versions_default),
    E("offered_versions_exclude", list, check_offered_versions_exclude,
      "TLS versions that must not be offered", choices=PROTOCOLS,
      needs=("hellos", "offered versions")),
    E("negotiated_version", str, check_negotiated_version,
      "TLS version of every completed handshake",
      needs=("handshakes", "the negotiated version")),
    E("offered_ciphers_exclude", list, check_offered_ciphers_exclude,
      "substrings no offered TLS <= 1.2 suite may contain",
      needs=("hellos", "offered ciphers")),
    E("negotiated_cipher", str, check_negotiated_cipher, "cipher of every completed handshake",
      needs=("handshakes", "the negotiated cipher")),
    E("resumed", str, check_resumed, "which completed handshakes resumed a session",
      choices=RESUMED),
    E("sni", str, check_sni, "SNI every ClientHello carries, or 'absent'",
      needs=("hellos", "SNI")),
    E("handshakes", int, check_handshakes,
      "exact number of TLS handshakes the backends saw (keepalive)"),
    E("fresh_first_contact", bool, check_fresh_first_contact,
      "the first ClientHello each backend sees offers no session (no PSK, no ticket) -- "
      "sessions are never carried across servers", needs=("hellos", "sessions offered")),
    E("backend_seen", list, check_backend_seen,
      "backends that must have received at least one request", names="backend"),
    E("backend_not_seen", list, check_backend_not_seen,
      "backends that must have received no connection at all", names="backend"),
    E("offered_versions_default_wire", bool, check_offered_versions_default_wire,
      "the ClientHello shows the target's documented default version set as far as the wire "
      "can: with TLS 1.3 in it, supported_versions lists exactly the set; without, no "
      "supported_versions and the legacy version is the set's highest (a pre-1.3 hello does "
      "not show its floor)", needs=("hellos", "offered versions")),
    E("resumed_per_backend", bool, check_resumed_per_backend,
      "for each backend on its own: its first handshake is full and every later one resumed "
      "(needs 2+ handshakes per backend)", needs=("handshakes", "resumption per backend")),
    E("status_in", list, check_status_in,
      "every answer's status is one of these (e.g. [502, 504])"),
    E("within_s", int, check_within_s,
      "every answer (or the client's end of it) arrives within this many seconds"),
    E("answers_whole", bool, check_answers_whole,
      "each answer is a 5xx or complete per its framing, never cut"),
    E("truncation_signalled", bool, check_truncation_signalled,
      "a body the backend cut short is never passed on as complete: each answer is a 5xx "
      "or ends before its framing"),
)}
del E


def resolve(expect, target):
    """The step's expectation as it will be checked (and reported): keys with
    a resolver replaced by what they resolve to. Returns (expectation, None),
    or (None, why the target cannot run the scenario)."""
    out = dict(expect)
    for e in EXPECTATIONS.values():
        if e.resolve and e.key in out:
            more, why = e.resolve(out.pop(e.key), target)
            if why:
                return None, why
            out.update(more)
    return out, None


def check_step(expect, responses, conns, pki=None, target=None):
    """Every expectation of a (resolved) step, in table order; the Failures
    ([] = the step holds). A bool expectation set to false checks nothing;
    keys starting with "_" are notes for the report."""
    seen = Seen(responses, conns, pki, target)
    fails = []
    for key, e in EXPECTATIONS.items():
        if key not in expect or not e.check or expect[key] is False:
            continue
        if e.needs and (miss := seen.lacks(*e.needs)):
            fails += miss
        else:
            fails += e.check(seen, expect[key])
    return fails
