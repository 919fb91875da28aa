"""Section 3, ceiling: `openssl speed ecdsap256 ecdhp256` -> full handshakes/s
per core, client side, server side and both."""

import re
import subprocess

from bench_common import log


def section_ceiling(args):
    argv = ["openssl", "speed", "-seconds", str(args.speed_seconds), "ecdsap256", "ecdhp256"]
    log("ceiling: " + " ".join(argv))
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    m1 = re.search(r"256 bits ecdsa \(nistp256\)\s+\S+\s+\S+\s+([\d.]+)\s+([\d.]+)", r.stdout)
    m2 = re.search(r"256 bits ecdh \(nistp256\)\s+\S+\s+([\d.]+)", r.stdout)
    if not (m1 and m2):
        return {"command": " ".join(argv), "error": "could not parse openssl speed output"}
    sign, verify, ecdh = float(m1.group(1)), float(m1.group(2)), float(m2.group(1))
    # Client side of a TLS 1.3 full handshake with P-256 ECDHE to server-a
    # (leaf signed by the trusted root): verify CertificateVerify + verify the
    # leaf's signature, one ECDHE key generation (costed as one ECDSA sign:
    # both are one fixed-base scalar multiplication), one ECDH derivation.
    client_s = 2 / verify + 1 / sign + 1 / ecdh
    server_s = 1 / sign + 1 / sign + 1 / ecdh      # sign CertificateVerify, keygen, derive
    return {"command": " ".join(argv), "ecdsa_sign_per_s": sign,
            "ecdsa_verify_per_s": verify, "ecdh_per_s": ecdh,
            "client_full_hs_per_core": 1 / client_s,
            "server_full_hs_per_core": 1 / server_s,
            "both_sides_full_hs_per_core": 1 / (client_s + server_s),
            "how": "client = 2 ECDSA verify + 1 keygen (~1 sign) + 1 ECDH; server = 1 sign + "
                   "1 keygen + 1 ECDH; public-key operations only (no hashing, AEAD, "
                   "X.509 parsing, syscalls)"}
