"""From observations to a verdict.

Each step's expectation is a closed vocabulary (scenario.EXPECT_KEYS). An
expectation is checked against what the backends saw on the wire and what
the client got back, never against the target's own logs. A failed check
says which way it failed:

- unexpected-accept: the proxy forwarded what it had to refuse (the
  dangerous one);
- unexpected-refusal: it refused what it had to forward;
- wrong-observation: it did something, but not what was configured (the
  wrong SNI, versions, certificate, a session not resumed...).
"""

import dataclasses

VERDICTS = ("pass", "fail", "deviation", "note", "unsupported", "error")
FAIL_KINDS = ("unexpected-accept", "unexpected-refusal", "wrong-observation")

SCSV = {"TLS_EMPTY_RENEGOTIATION_INFO_SCSV", "TLS_FALLBACK_SCSV", "0x00FF", "0x5600",
        "0x00ff"}


def is_tls13_suite(name):
    return name.startswith("TLS_AES_") or name.startswith("TLS_CHACHA20_") \
        or name in ("0x1301", "0x1302", "0x1303", "0x1304", "0x1305")


@dataclasses.dataclass
class Failure:
    kind: str
    message: str


def summarize(events):
    """Per-connection view of one backend's events: hello + handshake + requests."""
    conns = {}
    for e in events:
        c = conns.setdefault((e.get("name"), e.get("conn")),
                             {"backend": e.get("name"), "conn": e.get("conn"),
                              "hello": None, "handshake": None, "requests": 0})
        ev = e.get("event")
        if ev == "client_hello":
            c["hello"] = e
        elif ev == "handshake":
            c["handshake"] = e
        elif ev == "request":
            c["requests"] += 1
    return [conns[k] for k in sorted(conns, key=lambda k: (str(k[0]), k[1] or 0))]


def observed_view(responses, conns):
    """What the report shows as 'observed' for a step."""
    hs = []
    for c in conns:
        h = c["handshake"] or {}
        hello = c["hello"] or {}
        item = {"backend": c["backend"], "conn": c["conn"], "ok": h.get("ok"),
                "requests": c["requests"]}
        if h.get("ok"):
            item.update({k: h.get(k) for k in ("version", "cipher", "resumed", "sni")})
            cc = h.get("client_cert")
            item["client_cert"] = ({k: cc.get(k) for k in ("subject", "sha256", "chain_len",
                                                           "verify")} if cc else None)
        elif c["handshake"] is not None:
            item["error"] = h.get("error")
            if h.get("alert"):
                item["alert"] = h.get("alert")
        if hello:
            item["hello"] = {k: hello.get(k) for k in ("versions", "ciphers", "groups",
                                                       "sigalgs", "sni", "alpn",
                                                       "session_id_len", "ticket_offered",
                                                       "psk_offered")}
        hs.append(item)
    return {"responses": responses, "connections": hs}


def check_step(expect, responses, conns, pki, target=None):
    """Return a list of Failures (empty = the step holds)."""
    fails = []
    reached = {c["backend"] for c in conns if c["requests"] > 0}
    hellos = [c["hello"] for c in conns if c["hello"]]
    statuses = [r["status"] for r in responses]
    from_backend = [r for r in responses if r.get("backend")]

    result = expect.get("result")
    if result == "accepted":
        bad = [r for r in responses if r["status"] != 200 or not r.get("backend")]
        if bad:
            fails.append(Failure("unexpected-refusal",
                                 f"expected every request forwarded (200 from a backend); got "
                                 f"statuses {statuses}" + _errors_of(conns)))
        elif any(r.get("complete") is False for r in responses):
            fails.append(Failure("wrong-observation",
                                 "a forwarded answer was cut short: " + "; ".join(
                                     r.get("error", "?") for r in responses
                                     if r.get("complete") is False)))
    elif result == "reached":
        if not reached:
            fails.append(Failure("unexpected-refusal",
                                 f"expected the request to reach the backend; none did "
                                 f"(statuses {statuses})" + _errors_of(conns)))
    elif result == "refused":
        # A TCP proxy (nginx stream) cannot answer 5xx: it refuses by closing.
        closes = getattr(target, "refusal_closes_connection", False)
        if reached or from_backend:
            fails.append(Failure("unexpected-accept",
                                 f"expected no request to reach a backend; "
                                 f"{sorted(reached) or 'a backend'} received requests "
                                 f"(statuses {statuses})"))
        elif any(not (isinstance(s, int) and s >= 500 or closes and _closed(s) and conns)
                 for s in statuses):
            fails.append(Failure("wrong-observation",
                                 f"expected a 5xx answer for each refused request; got {statuses}"))

    ok = [c for c in conns if c["handshake"] and c["handshake"].get("ok")]

    def need_handshakes(what):
        if not ok:
            fails.append(Failure("wrong-observation",
                                 f"cannot check {what}: no completed handshake was observed"
                                 + _errors_of(conns)))
            return False
        return True

    def need_hellos(what):
        if not hellos:
            fails.append(Failure("wrong-observation",
                                 f"cannot check {what}: no ClientHello was observed"))
            return False
        return True

    if "client_cert" in expect and need_handshakes("the client certificate"):
        want = expect["client_cert"]
        for c in ok:
            got = c["handshake"].get("client_cert")
            if want == "none":
                if got:
                    fails.append(Failure("wrong-observation",
                                         f"expected no client certificate; conn {c['conn']} "
                                         f"presented '{got.get('subject')}'"))
            else:
                ent = pki.entity(want)
                if not got:
                    fails.append(Failure("wrong-observation",
                                         f"expected client certificate '{want}' "
                                         f"({ent['subject']}); conn {c['conn']} presented none"))
                elif got.get("sha256") != ent["sha256"]:
                    fails.append(Failure("wrong-observation",
                                         f"expected client certificate '{want}' sha256 "
                                         f"{ent['sha256'][:16]}…; got '{got.get('subject')}' "
                                         f"{str(got.get('sha256'))[:16]}…"))
    if "client_chain_len" in expect and need_handshakes("the client chain"):
        # A resumed handshake carries no Certificate message: check full ones.
        for c in [c for c in ok if not c["handshake"].get("resumed")]:
            got = (c["handshake"].get("client_cert") or {}).get("chain_len", 0)
            if got != expect["client_chain_len"]:
                fails.append(Failure("wrong-observation",
                                     f"expected the proxy to send {expect['client_chain_len']} "
                                     f"certificate(s); conn {c['conn']} sent {got}"))

    # Exact sets offered in every ClientHello: (key, what, which offered items).
    for key, what, items in (
            ("offered_versions", "versions", lambda h: set(h.get("versions") or [])),
            ("offered_ciphers", "TLS<=1.2 suites",
             lambda h: {c for c in h.get("ciphers") or []
                        if c not in SCSV and not is_tls13_suite(c)}),
            ("offered_ciphersuites", "TLS 1.3 suites",
             lambda h: {c for c in h.get("ciphers") or [] if is_tls13_suite(c)})):
        if key not in expect or not need_hellos(f"offered {what}"):
            continue
        want = set(expect[key])
        for h in hellos:
            got = items(h)
            if got != want:
                fails.append(Failure("wrong-observation",
                                     f"expected {what} offered {sorted(want)}; the ClientHello "
                                     f"offered {sorted(got)} (extra {sorted(got - want)}, "
                                     f"missing {sorted(want - got)})"))
                break
    if "offered_versions_exclude" in expect and need_hellos("offered versions"):
        for h in hellos:
            extra = set(h.get("versions") or []) & set(expect["offered_versions_exclude"])
            if extra:
                fails.append(Failure("wrong-observation",
                                     f"the ClientHello offered {sorted(extra)}, which must not "
                                     "be offered"))
                break
    if "negotiated_version" in expect and need_handshakes("the negotiated version"):
        got = sorted({c["handshake"].get("version") for c in ok})
        if got != [expect["negotiated_version"]]:
            fails.append(Failure("wrong-observation",
                                 f"expected {expect['negotiated_version']} negotiated; got {got}"))

    if "offered_ciphers_exclude" in expect and need_hellos("offered ciphers"):
        for h in hellos:
            bad = [c for c in h.get("ciphers") or [] if c not in SCSV and
                   any(x in c for x in expect["offered_ciphers_exclude"])]
            if bad:
                fails.append(Failure("wrong-observation",
                                     f"the ClientHello offered excluded suites {bad}"))
                break
    if "negotiated_cipher" in expect and need_handshakes("the negotiated cipher"):
        got = sorted({c["handshake"].get("cipher") for c in ok})
        if got != [expect["negotiated_cipher"]]:
            fails.append(Failure("wrong-observation",
                                 f"expected cipher {expect['negotiated_cipher']}; got {got}"))

    # "none" holds vacuously when no handshake completed (a refusal by an alert
    # inside the handshake, as HAProxy and Apache refuse): nothing was resumed.
    if "resumed" in expect and (expect["resumed"] == "none" and not ok
                                or need_handshakes("resumption")):
        flags = [bool(c["handshake"].get("resumed")) for c in ok]
        want = expect["resumed"]
        if want == "none" and any(flags):
            fails.append(Failure("wrong-observation",
                                 f"expected no resumed session; resumed per handshake: {flags}"))
        elif want == "all" and not all(flags):
            fails.append(Failure("wrong-observation",
                                 f"expected every handshake resumed; resumed per handshake: {flags}"))
        elif want == "all-after-first":
            if len(flags) < 2:
                fails.append(Failure("wrong-observation",
                                     f"expected at least 2 handshakes to see resumption; saw "
                                     f"{len(flags)} (upstream connection reused instead?)"))
            elif flags[0] or not all(flags[1:]):
                fails.append(Failure("wrong-observation",
                                     f"expected the first handshake full and every later one "
                                     f"resumed; resumed per handshake: {flags}"))

    if "sni" in expect and need_hellos("SNI"):
        want = None if expect["sni"] == "absent" else expect["sni"]
        got = [h.get("sni") for h in hellos]
        if any(g != want for g in got):
            fails.append(Failure("wrong-observation",
                                 f"expected SNI {want or 'absent'}; the ClientHellos carried "
                                 f"{sorted({str(g) for g in got})}"))

    if "handshakes" in expect:
        n = sum(1 for c in conns if c["handshake"] is not None)
        if n != expect["handshakes"]:
            fails.append(Failure("wrong-observation",
                                 f"expected {expect['handshakes']} TLS handshake(s) for "
                                 f"{len(responses)} request(s); the backends saw {n}"))
    if expect.get("fresh_first_contact") and need_hellos("sessions offered"):
        first = {}
        for c in conns:
            if c["hello"] and c["backend"] not in first:
                first[c["backend"]] = c["hello"]
        carried = [b for b, h in first.items() if h.get("psk_offered") or h.get("ticket_offered")]
        if carried:
            fails.append(Failure("wrong-observation",
                                 f"the first ClientHello to {carried} already offered a session "
                                 "(PSK or ticket): a session was carried over from another "
                                 "server or location"))

    for bn in expect.get("backend_seen", []):
        if bn not in reached:
            fails.append(Failure("wrong-observation",
                                 f"expected backend '{bn}' to receive a request; it received none"))
    for bn in expect.get("backend_not_seen", []):
        if any(c["backend"] == bn for c in conns):
            fails.append(Failure("wrong-observation",
                                 f"expected no connection to backend '{bn}'; it saw "
                                 f"{sum(1 for c in conns if c['backend'] == bn)}"))

    if expect.get("offered_versions_default_wire") and need_hellos("offered versions"):
        getter = getattr(target, "documented_default_protocols", None)
        protos, source = getter() if getter else (None, None)
        if not protos:
            fails.append(Failure("wrong-observation",
                                 "cannot check the default versions: the target documents no "
                                 "default protocol set"))
        else:
            order = ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"]
            top = max(protos, key=order.index)
            for h in hellos:
                has_sv = 43 in (h.get("extensions") or [])   # supported_versions
                got = h.get("versions") or []
                if "TLSv1.3" in protos:
                    ok_hello = has_sv and set(got) == set(protos)
                    want = f"supported_versions listing exactly {sorted(protos)}"
                else:
                    ok_hello = not has_sv and h.get("legacy_version") == top
                    want = f"no supported_versions and legacy version {top}"
                if not ok_hello:
                    fails.append(Failure("wrong-observation",
                                         f"expected the documented default ({source}): {want}; the "
                                         f"ClientHello had supported_versions "
                                         f"{'present' if has_sv else 'absent'}, legacy version "
                                         f"{h.get('legacy_version')}, versions {got}"))
                    break

    if expect.get("resumed_per_backend") and need_handshakes("resumption per backend"):
        per = {}
        for c in ok:
            per.setdefault(c["backend"], []).append(bool(c["handshake"].get("resumed")))
        for bn, flags in sorted(per.items()):
            if len(flags) < 2 or flags[0] or not all(flags[1:]):
                fails.append(Failure("wrong-observation",
                                     f"expected backend '{bn}' to see a full handshake, then only "
                                     f"resumed ones; resumed per handshake: {flags}"))
    if "status_in" in expect:
        odd = [st for st in statuses if st not in expect["status_in"]]
        if odd:
            fails.append(Failure("wrong-observation",
                                 f"expected every status in {expect['status_in']}; got {statuses}"))
    if "within_s" in expect:
        slow = [r["time_ms"] for r in responses if r["time_ms"] > expect["within_s"] * 1000]
        if slow:
            fails.append(Failure("wrong-observation",
                                 f"expected every answer within {expect['within_s']} s; took "
                                 f"{[round(t / 1000, 2) for t in slow]} s"))
    if expect.get("answers_whole"):
        cut = [r for r in responses if not (isinstance(r["status"], int) and
                                            (r["status"] >= 500 or r.get("complete")))]
        if cut:
            fails.append(Failure("wrong-observation",
                                 f"expected each answer to be a 5xx or complete; got "
                                 f"{[(r['status'], r.get('error')) for r in cut]}"))
    if expect.get("truncation_signalled"):
        passed_off = [r for r in responses if isinstance(r["status"], int)
                      and r["status"] < 500 and r.get("complete")]
        if passed_off:
            fails.append(Failure("unexpected-accept",
                                 f"the backend cut its body short, yet {len(passed_off)} answer(s) "
                                 f"reached the client as complete (status "
                                 f"{[r['status'] for r in passed_off]}, "
                                 f"{[len(r.get('body', '')) for r in passed_off]} bytes shown)"))
    return fails


def _closed(status):
    """The client's connection was closed or reset with no answer (not a timeout)."""
    return isinstance(status, str) and ("RemoteDisconnected" in status or
                                        "ConnectionReset" in status or
                                        "BadStatusLine" in status)


def _errors_of(conns):
    errs = sorted({str(c["handshake"].get("error")) for c in conns
                   if c["handshake"] and not c["handshake"].get("ok")})
    return f"; backend saw handshake errors: {errs}" if errs else ""
