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


# TLS ExtensionType names (IANA "TLS ExtensionType Values") for the ones a
# ClientHello commonly carries; any other shows as its number.
EXTENSION_NAMES = {
    0: "server_name", 1: "max_fragment_length", 5: "status_request", 10: "supported_groups",
    11: "ec_point_formats", 13: "signature_algorithms", 15: "heartbeat",
    16: "application_layer_protocol_negotiation", 18: "signed_certificate_timestamp",
    21: "padding", 22: "encrypt_then_mac", 23: "extended_master_secret",
    27: "compress_certificate", 28: "record_size_limit", 35: "session_ticket",
    41: "pre_shared_key", 42: "early_data", 43: "supported_versions", 44: "cookie",
    45: "psk_key_exchange_modes", 49: "post_handshake_auth", 50: "signature_algorithms_cert",
    51: "key_share", 17513: "application_settings", 65037: "encrypted_client_hello",
    65281: "renegotiation_info",
}


def extension_name(code):
    """'name (code)' for an extension number, the number alone if unnamed."""
    name = EXTENSION_NAMES.get(code) if isinstance(code, int) else None
    return f"{name} ({code})" if name else str(code)
