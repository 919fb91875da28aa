/* uc_tls: TLS version names and numbers, X.509 names as text (uc_tls.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "uc_tls.h"

const struct uc_tls_version uc_tls_versions[] = {
    { "SSLv2", SSL2_VERSION },
    { "SSLv3", SSL3_VERSION },
    { "TLSv1", TLS1_VERSION },
    { "TLSv1.1", TLS1_1_VERSION },
    { "TLSv1.2", TLS1_2_VERSION },
    { "TLSv1.3", TLS1_3_VERSION },
};

const size_t uc_tls_num_versions = sizeof(uc_tls_versions) / sizeof(uc_tls_versions[0]);

int
uc_tls_version_by_name(const char *name)
{
    for (size_t i = 0; i < uc_tls_num_versions; i++) {
        if (strcmp(uc_tls_versions[i].name, name) == 0)
            return uc_tls_versions[i].version;
    }
    return 0;
}

const char *
uc_tls_version_name(int version)
{
    for (size_t i = 0; i < uc_tls_num_versions; i++) {
        if (uc_tls_versions[i].version == version)
            return uc_tls_versions[i].name;
    }
    return NULL;
}

const char *
uc_tls_version_text(unsigned version, char *buf, size_t buf_len)
{
    const char *name = version <= 0xffff ? uc_tls_version_name((int) version) : NULL;

    if (name != NULL)
        return name;
    snprintf(buf, buf_len, "0x%04X", version);
    return buf;
}

void
uc_tls_version_list(int min, int max, char *out, size_t out_len)
{
    size_t used = 0;

    if (out_len == 0)
        return;
    out[0] = '\0';
    for (size_t i = 0; i < uc_tls_num_versions; i++) {
        const struct uc_tls_version *v = &uc_tls_versions[i];
        int n;

        if (v->version < min || v->version > max)
            continue;
        n = snprintf(out + used, out_len - used, "%s%s", used ? ", " : "", v->name);
        if (n < 0 || (size_t) n >= out_len - used)
            return;
        used += (size_t) n;
    }
}

int
uc_x509_name_rfc2253(const X509_NAME *name, char **out)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL;
    long len;
    int rc = -1;

    *out = NULL;
    if (bio == NULL || X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) < 0)
        goto end;
    len = BIO_get_mem_data(bio, &data);
    if (len < 0)
        goto end;
    *out = strndup(data != NULL ? data : "", (size_t) len);
    if (*out != NULL)
        rc = 0;
end:
    BIO_free(bio);
    return rc;
}

void
uc_hex_encode(const unsigned char *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0xf];
    }
    out[2 * len] = '\0';
}

int
uc_x509_sha256_hex(const X509 *cert, char out_hex[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;

    if (X509_digest(cert, EVP_sha256(), md, &md_len) != 1 || md_len != 32)
        return -1;
    uc_hex_encode(md, md_len, out_hex);
    return 0;
}
