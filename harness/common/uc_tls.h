/*
 * uc_tls: names of protocol versions as OpenSSL spells them (SSL_get_version,
 * SSL_CONF's MinProtocol, nginx's ssl_protocols) and their wire numbers
 * (RFC 8446 4.2.1: 0x0304 for TLS 1.3 ...; OpenSSL's TLS1_3_VERSION ...),
 * and X.509 names as text.
 */
#ifndef UC_TLS_H
#define UC_TLS_H

#include <stddef.h>

#include <openssl/x509.h>

struct uc_tls_version {
    const char *name;
    int version;
};

/* SSLv2, SSLv3, TLSv1, TLSv1.1, TLSv1.2, TLSv1.3: oldest first. */
extern const struct uc_tls_version uc_tls_versions[];
extern const size_t uc_tls_num_versions;

/* The wire number of a name ("TLSv1.2" -> 0x0303), or 0 if unknown. */
int uc_tls_version_by_name(const char *name);
/* The name of a wire number, or NULL if unknown. */
const char *uc_tls_version_name(int version);
/* The name, or "0xXXXX" written into buf for an unknown number. */
const char *uc_tls_version_text(unsigned version, char *buf, size_t buf_len);
/* Writes the names of the versions from min to max (wire numbers, both
 * included), separated by ", ", into out. */
void uc_tls_version_list(int min, int max, char *out, size_t out_len);

/* A distinguished name as `openssl x509 -nameopt RFC2253` prints it (so
 * non-ASCII is escaped as \XX), NUL-terminated in *out (the caller frees
 * it). Returns 0, or -1 (out of memory, or OpenSSL could not print it). */
int uc_x509_name_rfc2253(const X509_NAME *name, char **out);

/* Writes len bytes as lowercase hex and a NUL into out (2 * len + 1). */
void uc_hex_encode(const unsigned char *in, size_t len, char *out);
/* The SHA-256 of the certificate's DER in lowercase hex (a fingerprint as
 * `openssl x509 -fingerprint -sha256` shows it, without colons). Returns 0,
 * or -1 if OpenSSL failed. */
int uc_x509_sha256_hex(const X509 *cert, char out_hex[65]);

#endif
