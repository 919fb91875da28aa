"""x509-limbo suites uptls makes itself, for its tests and benchmark.

    python3 -m uptls.limbo_suite OUT.json [--repeat N]

uptls-certgen builds the certificates, keys and CRLs from
fixtures/limbo-pki.toml; this module lays them out as limbo cases (the
format of limbo/models.py Testcase). The cases exercise every field
`make limbo` reads: with and without peer_certificate_key (missing and
null), DNS and IP names, max_chain_depth, a past validation_time inside
and outside the validity, CRLs, features, CLIENT and RFC822 cases, a bad
signature, an unknown field. --repeat N adds N copies of the runnable
cases under bench:: (the benchmark's few hundred cases).
"""

import argparse
import base64
import datetime
import json
import os
import shutil
import sys
import tempfile

from . import ROOT, pki as pki_mod

PKI_FILE = os.path.join(ROOT, "fixtures", "limbo-pki.toml")


def _pem(pki, name, suffix="pem"):
    with open(pki.path(name, suffix)) as f:
        return f.read()


def _tamper(pem):
    """The certificate with the last byte of its signature changed."""
    body = "".join(ln for ln in pem.splitlines() if not ln.startswith("-----"))
    der = bytearray(base64.b64decode(body))
    der[-1] ^= 0x01
    b64 = base64.b64encode(bytes(der)).decode()
    return ("-----BEGIN CERTIFICATE-----\n" + "\n".join(b64[i:i + 64] for i in range(0, len(b64), 64))
            + "\n-----END CERTIFICATE-----\n")


def _iso(t):
    return t.isoformat(timespec="seconds")


def cases(pki, now):
    P = lambda n: _pem(pki, n)                       # noqa: E731
    K = lambda n: _pem(pki, n, "key")                # noqa: E731
    dns = lambda v: {"kind": "DNS", "value": v}      # noqa: E731

    def case(cid, desc, leaf, expected, name=dns("limbo.test"), inter=("lr-int",),
             trusted=("lr-root",), key="yes", **extra):
        tc = {"id": cid, "conflicts_with": [], "features": [], "importance": "high",
              "description": desc, "validation_kind": "SERVER",
              "trusted_certs": [P(t) for t in trusted],
              "untrusted_intermediates": [P(i) for i in inter],
              "peer_certificate": P(leaf) if isinstance(leaf, str) else leaf[0],
              "validation_time": None, "signature_algorithms": [], "key_usage": [],
              "extended_key_usage": ["serverAuth"], "expected_result": expected,
              "expected_peer_name": name, "expected_peer_names": [],
              "max_chain_depth": None, "crls": []}
        if key == "yes":
            tc["peer_certificate_key"] = K(leaf if isinstance(leaf, str) else leaf[1])
        elif key == "null":
            tc["peer_certificate_key"] = None
        else:                                        # an older file: no such field
            pass
        tc.update(extra)
        return tc

    past_in = now - datetime.timedelta(hours=12)
    past_out = now - datetime.timedelta(days=30)
    crls = [_pem(pki, "lr-root", "crl"), _pem(pki, "lr-int", "crl")]
    return [
        case("rfc5280::ok-dns", "A valid chain for limbo.test, with the peer's key.",
             "lr-leaf", "SUCCESS"),
        case("rfc5280::ok-dns-no-key-field", "As ok-dns, from an older file: no "
             "peer_certificate_key field (re-keyed).", "lr-leaf", "SUCCESS", key="absent"),
        case("rfc5280::ok-dns-null-key", "As ok-dns with peer_certificate_key null, like an "
             "online case (re-keyed).", "lr-leaf-rsa", "SUCCESS", key="null"),
        case("rfc5280::ok-wildcard", "*.wild.limbo.test matches a.wild.limbo.test.",
             "lr-leaf", "SUCCESS", name=dns("a.wild.limbo.test")),
        case("rfc5280::wrong-name", "The leaf does not name other.test.", "lr-leaf",
             "FAILURE", name=dns("other.test")),
        case("rfc5280::ok-ip", "The leaf's iPAddress SAN 127.0.0.2 matches the IP name.",
             "lr-leaf-ip", "SUCCESS", name={"kind": "IP", "value": "127.0.0.2"}),
        case("rfc5280::wrong-ip", "The leaf's iPAddress SAN is not 10.9.9.9.",
             "lr-leaf-ip", "FAILURE", name={"kind": "IP", "value": "10.9.9.9"}, key="null"),
        case("rfc5280::untrusted-root", "The chain leads to a root that is not trusted.",
             "lr-leaf-other", "FAILURE", inter=(), trusted=("lr-root",)),
        case("rfc5280::missing-intermediate", "The intermediate is neither sent nor trusted.",
             "lr-leaf", "FAILURE", inter=()),
        case("pathlen::depth-2-allows-2", "Two intermediates, max_chain_depth 2.",
             "lr-leaf-d2", "SUCCESS", inter=("lr-int2", "lr-int"), max_chain_depth=2,
             features=["max-chain-depth"]),
        case("pathlen::depth-1-refuses-2", "Two intermediates, max_chain_depth 1.",
             "lr-leaf-d2", "FAILURE", inter=("lr-int2", "lr-int"), max_chain_depth=1,
             features=["max-chain-depth"]),
        case("pathlen::no-depth-two-intermediates", "Two intermediates, no max_chain_depth: "
             "no depth limit may bind.", "lr-leaf-d2", "SUCCESS", inter=("lr-int2", "lr-int"),
             key="absent"),
        case("rfc5280::expired-leaf", "The leaf expired two days ago.", "lr-leaf-expired",
             "FAILURE"),
        case("rfc5280::past-time-inside-validity", "validation_time 12 hours ago, inside every "
             "certificate's validity.", "lr-leaf", "SUCCESS", validation_time=_iso(past_in)),
        case("rfc5280::past-time-before-validity", "validation_time 30 days ago, before the "
             "leaf's notBefore (its answer then differs from now).", "lr-leaf", "FAILURE",
             validation_time=_iso(past_out)),
        case("crl::revoked-leaf", "The leaf is on its issuer's CRL.", "lr-leaf-revoked",
             "FAILURE", crls=crls, features=["has-crl"]),
        case("crl::not-revoked-leaf", "CRLs for the whole chain; the leaf is not revoked "
             "(re-keyed: the CRLs are re-signed).", "lr-leaf", "SUCCESS", crls=crls,
             features=["has-crl"], key="absent"),
        case("webpki::eku-client-only", "The leaf's EKU is clientAuth only.", "lr-leaf-client",
             "FAILURE"),
        case("webpki::client-validation", "A CLIENT case.", "lr-leaf", "SUCCESS", name=None,
             validation_kind="CLIENT", expected_peer_names=[dns("limbo.test")]),
        case("rfc5280::rfc822-name", "An RFC822 peer name.", "lr-leaf", "FAILURE",
             name={"kind": "RFC822", "value": "a@limbo.test"}),
        case("rfc5280::policy-feature", "A case needing policy checks.", "lr-leaf", "SUCCESS",
             features=["has-policy-constraints"]),
        case("rfc5280::name-with-space", "A peer name no configuration file can carry.",
             "lr-leaf", "FAILURE", name=dns("bad name.limbo.test")),
        case("rfc5280::no-peer-name", "No expected_peer_name: the chain alone.", "lr-leaf",
             "SUCCESS", name=None),
        case("rfc5280::bad-signature-no-key", "The leaf's signature is corrupt and the suite "
             "has no key: re-keying would repair it.", (_tamper(P("lr-leaf")), "lr-leaf"),
             "FAILURE", key="absent"),
        case("rfc5280::bad-signature-with-key", "The leaf's signature is corrupt; the key is "
             "given.", (_tamper(P("lr-leaf")), "lr-leaf"), "FAILURE",
             uptls_unknown_field={"note": "an unknown field: ignored"}),
    ]


BENCH_TEMPLATES = ("rfc5280::ok-dns", "rfc5280::wrong-name", "rfc5280::untrusted-root",
                   "pathlen::depth-1-refuses-2")


def write_suite(path, repeat=0, work=None, now=None):
    """Build the PKI (in work, or a temporary folder) and write the suite."""
    now = now or datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    tmp = tempfile.mkdtemp(prefix="uptls-limbo-pki-", dir=work)
    try:
        tcs = cases(pki_mod.build(PKI_FILE, os.path.join(tmp, "pki")), now)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    by_id = {tc["id"]: tc for tc in tcs}
    for i in range(repeat):
        tc = dict(by_id[BENCH_TEMPLATES[i % len(BENCH_TEMPLATES)]])
        tc["id"] = f"bench::{tc['id'].split('::')[1]}-{i:04d}"
        tcs.append(tc)
    doc = {"version": 1, "uptls_generator": "harness/uptls/limbo_suite.py", "testcases": tcs}
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--repeat", type=int, default=0)
    a = ap.parse_args(argv)
    write_suite(a.out, a.repeat)
    print(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
