"""The scenario model: what a scenario is, and the tables of its keys.

A scenario is one TOML file under scenarios/; its path without ".toml" is
its id (scenarios/trust/unknown-root.toml -> "trust/unknown-root"), and its
folder is its family. catalogue.py loads the files and checks every key
against the tables below (and a step's `expect` against checks.EXPECTATIONS);
scenario_help.py writes them all into scenarios/README.md.

Shape:

    title, importance, checks, refs, requires, note, consequence, note_consequence
    [proxy]          the upstream-TLS settings of the one location
    [[location]]     extra locations (name, upstream, backends + settings)
    [[backend]]      mock upstream servers
    [[step]]         requests and what must be observed
    [[wrong]]        wrong-way variants that must make the scenario fail
"""

import dataclasses

from uptls_vocab import Importance
from uptls_vocab.tls import PROTOCOLS  # noqa: F401  (scenario.PROTOCOLS, as before)

IMPORTANCE = tuple(str(i) for i in Importance)
CLIENT_AUTH = ("none", "request", "require")

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
STEP_KEYS = {
    "location": (str, "which location the requests go to (default: the first)"),
    "requests": (int, "sequential requests, each on a new client connection"),
    "expect": (dict, "what must be observed: keys of checks.EXPECTATIONS"),
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
    "consequence": (str, "one sentence: what an attacker or a user gets when the expectation "
                         "does not hold (a fail or deviation); reports lead with it (default: "
                         "a sentence for the family and the way it failed)"),
    "note_consequence": (str, "one sentence: what a user gets when the `note` holds"),
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
    consequence: str | None = None       # what a fail/deviation gives an attacker or a user
    note_consequence: str | None = None  # what a user gets when the note holds

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


def __getattr__(name):
    """Names that moved when loading became catalogue.py (load_catalogue,
    select, ...) and the expectation keys became checks.EXPECTATIONS, for
    callers written before."""
    if name == "EXPECT_KEYS":
        from .checks import EXPECTATIONS
        return {k: (e.type, e.help) for k, e in EXPECTATIONS.items()}
    if name in ("load_file", "load_catalogue", "select", "scenario_id", "SCENARIO_DIR"):
        from . import catalogue
        return getattr(catalogue, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
