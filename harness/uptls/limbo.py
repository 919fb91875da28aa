"""x509-limbo suites: loading, and what each case asks of a proxy.

A suite is x509-limbo's JSON (`version` 1; schema limbo-schema.json and the
pydantic models in limbo/models.py of C2SP/x509-limbo). Files from before
peer_certificate_key existed load (the field is optional; online cases
carry null); unknown fields are ignored, as pydantic ignores extra fields.
A malformed file is one UptlsError naming the file and the case.

Each SERVER case becomes one uptls scenario `limbo/<case id>`: the proxy
trusts the case's trusted_certs (one bundle), verifies, checks
expected_peer_name and uses max_chain_depth as its verify depth; the backend
presents peer_certificate followed by untrusted_intermediates. What a proxy
cannot be asked to do is `unsupported` with the reason (case_unsupported).
"""

import dataclasses
import datetime
import fnmatch
import json
import re

from . import UptlsError
from .scenario import Backend, Location, Scenario, Step

# limbo/models.py: TestCaseID, ExpectedResult, ValidationKind, PeerKind.
_ID_COMPONENT = r"[A-Za-z][A-Za-z0-9-.]+"
ID_RE = re.compile(rf"^({_ID_COMPONENT}::)*({_ID_COMPONENT})$")
EXPECTED = ("SUCCESS", "FAILURE")
KINDS = ("CLIENT", "SERVER")
PEER_KINDS = ("RFC822", "DNS", "IP")
NAME_RE = re.compile(r"[A-Za-z0-9.*:_\[\]-]+")  # DNS names (wildcards) and IP literals
IMPORTANCE = {"undetermined": "medium", "low": "low", "medium": "medium", "high": "high",
              "critical": "critical"}

# Features (limbo/models.py Feature: "Consumers that don't understand a
# given feature should skip tests that are marked with it") a proxy's
# upstream verification honours. has-crl and max-chain-depth depend on the
# target (its crl and verify_depth settings); no-cert-policies holds for
# every proxy here: none turns on OpenSSL's policy checking
# (X509_V_FLAG_POLICY_CHECK is never set by nginx, HAProxy or mod_ssl).
FEATURES_HONOURED = {"has-crl", "max-chain-depth", "no-cert-policies"}
FEATURE_WHY = {
    "has-policy-constraints": "the proxy never enables OpenSSL's policy checking "
                              "(X509_V_FLAG_POLICY_CHECK)",
    "has-cert-policies": "the proxy never enables OpenSSL's policy checking "
                         "(X509_V_FLAG_POLICY_CHECK)",
    "denial-of-service": "a denial-of-service case measures a validator's resources, not an "
                         "accept/refuse a proxy's handshake can show",
}
# extended_key_usage: OpenSSL verifies a TLS server's chain for the
# purpose "ssl_server" (ssl/ssl_cert.c ssl_verify_cert_chain), i.e.
# serverAuth; that is the only constraint a proxy applies.
EKU_HONOURED = ({()}, {("serverAuth",)})

# Targets whose upstream verification can run without checking any name
# (a case without expected_peer_name), and how.
NAMELESS = {
    "haproxy": "with 'verify required' and neither 'sni' nor 'verifyhost', HAProxy checks no "
               "name (HAProxy 2.6 configuration.txt 5.2 verify)",
}
NAMELESS_WHY = ("no expected_peer_name: this target checks a peer name whenever it verifies "
                "(nginx: proxy_ssl_name defaults to the proxy_pass host; Apache: "
                "SSLProxyCheckPeerName on), so a chain cannot be verified without one")

# A failure that a catalogue scenario already documents as a sourced
# deviation of the target: (test on the case, failure kind, catalogue id).
DEVIATION_LINKS = (
    (lambda c: (c.peer_name or {}).get("kind") == "IP", "unexpected-refusal",
     "name/ip-upstream-ip-san-accepted"),
)


@dataclasses.dataclass
class Case:
    index: int
    id: str
    raw: dict

    @property
    def slug(self):
        return f"c{self.index:05d}"

    def __getattr__(self, name):
        raw = self.__dict__.get("raw") or {}
        if name == "peer_name":
            return raw.get("expected_peer_name")
        if name in raw or name in _FIELDS:
            return raw.get(name, _FIELDS.get(name, (None, None))[1])
        raise AttributeError(name)

    @property
    def namespace(self):
        return self.id.split("::")[0] if "::" in self.id else "(none)"


# field -> (check, default when missing); None default + required=REQUIRED.
_STR = lambda v: isinstance(v, str)                                    # noqa: E731
_STRS = lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v)  # noqa: E731
_FIELDS = {
    "id": (lambda v: isinstance(v, str) and ID_RE.match(v), None),
    "description": (_STR, None),
    "validation_kind": (lambda v: v in KINDS, None),
    "trusted_certs": (_STRS, None),
    "untrusted_intermediates": (_STRS, None),
    "peer_certificate": (_STR, None),
    "signature_algorithms": (_STRS, None),
    "key_usage": (_STRS, None),
    "extended_key_usage": (_STRS, None),
    "expected_result": (lambda v: v in EXPECTED, None),
    "expected_peer_names": (lambda v: isinstance(v, list) and all(_peer_ok(x) for x in v), None),
    # optional
    "peer_certificate_key": (lambda v: v is None or isinstance(v, str), None),
    "validation_time": (lambda v: v is None or _time_ok(v), None),
    "expected_peer_name": (lambda v: v is None or _peer_ok(v), None),
    "max_chain_depth": (lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)
                                                 and v >= 0), None),
    "crls": (_STRS, []),
    "features": (_STRS, []),
    "importance": (lambda v: v in IMPORTANCE, "undetermined"),
    "conflicts_with": (_STRS, []),
}
REQUIRED = ("id", "description", "validation_kind", "trusted_certs", "untrusted_intermediates",
            "peer_certificate", "signature_algorithms", "key_usage", "extended_key_usage",
            "expected_result", "expected_peer_names")


def _peer_ok(v):
    return isinstance(v, dict) and v.get("kind") in PEER_KINDS and isinstance(v.get("value"), str)


def parse_time(v):
    """An ISO 8601 validation_time (limbo writes +00:00; Z accepted), as UTC."""
    t = datetime.datetime.fromisoformat(v.replace("Z", "+00:00"))
    if t.tzinfo is None:
        raise ValueError("no time zone")
    return t.astimezone(datetime.timezone.utc)


def _time_ok(v):
    try:
        return isinstance(v, str) and parse_time(v) is not None
    except ValueError:
        return False


def load(path):
    """Load and check a suite; return [Case]. Raise UptlsError naming the
    file and the case on anything malformed."""
    try:
        with open(path, "rb") as f:
            doc = json.loads(f.read().decode("utf-8"))
    except OSError as e:
        raise UptlsError(f"LIMBO={path}: cannot read it: {e.strerror}") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise UptlsError(f"LIMBO={path}: not JSON: {e}") from None
    if not isinstance(doc, dict) or doc.get("version") != 1 or \
            not isinstance(doc.get("testcases"), list):
        raise UptlsError(f"LIMBO={path}: not an x509-limbo suite (needs \"version\": 1 and a "
                         "\"testcases\" list)")
    cases, seen = [], set()
    for i, tc in enumerate(doc["testcases"]):
        where = f"LIMBO={path}: case #{i + 1}"
        if isinstance(tc, dict) and isinstance(tc.get("id"), str):
            where += f" ({tc['id']})"
        if not isinstance(tc, dict):
            raise UptlsError(f"{where}: not an object")
        for key in REQUIRED:
            if key not in tc:
                raise UptlsError(f"{where}: missing required field '{key}'")
        for key, (ok, _) in _FIELDS.items():
            if key in tc and not ok(tc[key]):
                raise UptlsError(f"{where}: field '{key}' has an invalid value: "
                                 f"{json.dumps(tc[key])[:120]}")
        if tc["id"] in seen:
            raise UptlsError(f"{where}: duplicated testcase id")
        seen.add(tc["id"])
        cases.append(Case(len(cases) + 1, tc["id"], tc))
    return cases


def select(cases, include="", exclude=""):
    """LIMBO_INCLUDE / LIMBO_EXCLUDE: comma-separated globs on case ids."""
    inc = [p.strip() for p in include.split(",") if p.strip()]
    exc = [p.strip() for p in exclude.split(",") if p.strip()]
    out = [c for c in cases
           if (not inc or any(fnmatch.fnmatchcase(c.id, p) for p in inc))
           and not any(fnmatch.fnmatchcase(c.id, p) for p in exc)]
    if not out:
        raise UptlsError(f"LIMBO_INCLUDE='{include}' LIMBO_EXCLUDE='{exclude}' leave no case "
                         f"of {len(cases)}")
    return out


def case_unsupported(case, target):
    """Why this case cannot be run through this target, or None. Decided from
    the case's fields (the certificate-based reasons come later: time, keys)."""
    if case.validation_kind != "SERVER":
        return ("CLIENT validation: a proxy validates its upstream server; client certificate "
                "validation (expected_peer_names) is not what uptls observes")
    name = case.peer_name
    if name and name["kind"] == "RFC822":
        return "expected_peer_name is an RFC822 (e-mail) name: a TLS proxy checks DNS or IP names"
    for f in case.features:
        if f not in FEATURES_HONOURED:
            return f"feature {f}: " + FEATURE_WHY.get(
                f, "optional behaviour a proxy's OpenSSL verification is not configured for")
    if "has-crl" in case.features and not case.crls:
        return "feature has-crl without crls"
    if case.signature_algorithms:
        return ("signature_algorithms constrains the acceptable algorithms: no proxy setting "
                "expresses such a list for certificate signatures")
    if case.key_usage:
        return "key_usage constrains the leaf's key usages: no proxy setting expresses that"
    if {tuple(case.extended_key_usage)} not in EKU_HONOURED:
        return (f"extended_key_usage {case.extended_key_usage}: a proxy verifies for serverAuth "
                "only (OpenSSL purpose ssl_server)")
    if not case.trusted_certs:
        return "no trusted_certs: a proxy cannot be configured with an empty trusted file"
    if name is None and target.name not in NAMELESS:
        return NAMELESS_WHY
    if name and not NAME_RE.fullmatch(name["value"]):
        return (f"expected_peer_name {name['value']!r}: characters a proxy configuration "
                "cannot carry as a name (uptls writes it into the target's config file)")
    return None


def chain_depth(case):
    """The verify depth the proxy is given: max_chain_depth, or one no path
    of the case can reach (every certificate of the case but the leaf as an
    intermediate, plus one)."""
    if case.max_chain_depth is not None:
        return case.max_chain_depth
    return len(case.untrusted_intermediates) + len(case.trusted_certs) + 1


def entities(case):
    """The LimboPki entities of a case: its trusted bundle, its peer (whose
    issuer_name chain counts the untrusted intermediates, as the HAProxy
    adapter's depth check reads it) and its CRLs."""
    s = case.slug
    n = len(case.untrusted_intermediates)
    ents = {f"{s}-trust": {"kind": "ca"}, f"{s}-crl": {"kind": "ca"},
            f"{s}-peer": {"kind": "leaf", "issuer_name": f"{s}-i1" if n else None, "root": None}}
    for i in range(1, n + 1):
        ents[f"{s}-i{i}"] = {"kind": "ca", "issuer_name": f"{s}-i{i + 1}" if i < n else None,
                             "root": None}
    return ents


def to_scenario(case, suite_path):
    s = case.slug
    settings = {"trusted_ca": [f"{s}-trust"], "verify": True, "verify_depth": chain_depth(case)}
    if case.peer_name:
        settings["verify_name"] = case.peer_name["value"]
    if case.crls:
        settings["crl"] = [f"{s}-crl"]
    expect = {"result": "accepted" if case.expected_result == "SUCCESS" else "refused"}
    desc = case.description.strip()
    return Scenario(
        id=f"limbo/{case.id}", family="limbo", path=suite_path,
        title=(desc.splitlines() or [case.id])[0][:160],
        importance=IMPORTANCE[case.importance], checks=desc,
        refs=(f"x509-limbo testcase {case.id} (expected_result {case.expected_result})",),
        requires=(), note=None,
        locations=(Location("main", "main", None, ("b1",), settings),),
        backends=(Backend("b1", f"{s}-peer", {}),),
        steps=(Step("main", 1, expect),), wrong=())


def link_deviation(case, result, target):
    """A failure a catalogue scenario documents as this target's sourced
    deviation becomes 'deviation', citing it; anything else stays as is."""
    if result.get("verdict") != "fail":
        return result
    for test, kind, sid in DEVIATION_LINKS:
        dev = target.deviations().get(sid)
        if dev and dev.get("kind") == kind == result.get("fail_kind") and test(case):
            result["verdict"] = "deviation"
            result["deviation"] = dict(dev, scenario=sid)
            result["reason"] = (f"known deviation (as {sid}): {dev['reason']} ({dev['source']}) "
                                f"-- {result['reason']}")
    return result
