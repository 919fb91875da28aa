"""Observations: what the backends saw on the wire, per connection.

uptls-backend writes one JSON line per event (accept, client_hello,
handshake, request); a step's events are read once every connection the
step opened has its handshake outcome (settle), grouped per connection
(summarize), and shown in the result as view() draws them. Facts only:
what they mean is checks.py's business.
"""

import dataclasses
import time

SETTLE_TIMEOUT = 5.0


@dataclasses.dataclass(frozen=True)
class Connection:
    """One TLS connection a backend accepted: its ClientHello and handshake
    events (uptls-backend's JSON lines, None when not logged) and how many
    requests came over it."""
    backend: str | None
    conn: int | None
    hello: dict | None
    handshake: dict | None
    requests: int

    @property
    def ok(self):
        """The handshake completed."""
        return bool(self.handshake and self.handshake.get("ok"))

    @property
    def resumed(self):
        return bool((self.handshake or {}).get("resumed"))


def summarize(events):
    """Per-connection view of backends' events: hello + handshake + requests."""
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
    return [Connection(**conns[k]) for k in sorted(conns, key=lambda k: (str(k[0]), k[1] or 0))]


def marks(backends):
    """Where each backend's events stand now: settle() reads what comes after."""
    return {n: len(b.events()) for n, b in backends.items()}


def settle(backends, since, timeout=None):
    """The connections since the marks, once every accepted one has a
    handshake outcome, and how many had none in time (a proxy still trying
    a stalled backend after the client got its answer, say)."""
    deadline = time.monotonic() + (timeout or SETTLE_TIMEOUT)
    while True:
        events = []
        for n, b in backends.items():
            events += b.events()[since[n]:]
        accepts = sum(1 for e in events if e.get("event") == "accept")
        outcomes = sum(1 for e in events if e.get("event") == "handshake")
        if accepts <= outcomes or time.monotonic() > deadline:
            return summarize(events), max(0, accepts - outcomes)
        time.sleep(0.01)


def view(responses, conns, unsettled=0):
    """What the report shows as 'observed' for a step."""
    hs = []
    for c in conns:
        h = c.handshake or {}
        hello = c.hello or {}
        item = {"backend": c.backend, "conn": c.conn, "ok": h.get("ok"), "requests": c.requests}
        if h.get("ok"):
            item.update({k: h.get(k) for k in ("version", "cipher", "resumed", "sni")})
            cc = h.get("client_cert")
            item["client_cert"] = ({k: cc.get(k) for k in ("subject", "sha256", "chain_len",
                                                           "verify")} if cc else None)
        elif c.handshake is not None:
            item["error"] = h.get("error")
            if h.get("alert"):
                item["alert"] = h.get("alert")
        if hello:
            item["hello"] = {k: hello.get(k) for k in ("versions", "ciphers", "groups",
                                                       "sigalgs", "sni", "alpn",
                                                       "session_id_len", "ticket_offered",
                                                       "psk_offered", "extensions")}
        hs.append(item)
    out = {"responses": [r.to_json() for r in responses], "connections": hs}
    if unsettled:
        out["unsettled"] = (f"{unsettled} connection(s) accepted with no handshake "
                            f"outcome within {SETTLE_TIMEOUT:.0f} s")
    return out
