"""TLS names as uptls-backend reports them, defined once.

uptls-backend names a cipher suite as OpenSSL does (SSL_CIPHER_get_name)
and writes one OpenSSL does not know as its code point, "0x%02X%02X"
(harness/backend/backend_tls.c); versions as "TLSv1" ... "TLSv1.3".
"""

# TLS versions in order, as scenarios and uptls-backend spell them.
PROTOCOLS = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")

# TLS 1.3 cipher suites (RFC 8446 B.4): IANA names and code points.
TLS13_SUITES = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_CCM_SHA256",
                "TLS_AES_128_CCM_8_SHA256")
TLS13_CODES = ("0x1301", "0x1302", "0x1303", "0x1304", "0x1305")

# Signalling values in the cipher suite list, not suites: the renegotiation
# SCSV (RFC 5746 3.3, 0x00FF) and the fallback SCSV (RFC 7507, 0x5600), by
# name and by code point (a backend built without the name writes the code).
SCSV_NAMES = ("TLS_EMPTY_RENEGOTIATION_INFO_SCSV", "TLS_FALLBACK_SCSV")
SCSV_CODES = ("0x00FF", "0x5600")


_TLS13 = frozenset(TLS13_SUITES) | {c.upper() for c in TLS13_CODES}
_SCSV = frozenset(SCSV_NAMES) | {c.upper() for c in SCSV_CODES}


def is_tls13_suite(name):
    return str(name) in _TLS13 or str(name).upper() in _TLS13


def is_scsv(name):
    return str(name) in _SCSV or str(name).upper() in _SCSV


def split_suites(ciphers):
    """A ClientHello's cipher list as (TLS <= 1.2 suites, TLS 1.3 suites), SCSVs left out."""
    suites = [c for c in ciphers or [] if not is_scsv(c)]
    return ([c for c in suites if not is_tls13_suite(c)], [c for c in suites if is_tls13_suite(c)])
