/*
 * Chain and group faults: the certificate list a listener presents, changed
 * once its SSL_CTX holds the chain of --cert (the leaf, then its
 * intermediates), and the groups it accepts. The extra certificates are
 * self-signed P-256 certificates made at start-up, unrelated to any PKI
 * entity; the fault table and documentation are in backend_fault.c.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "backend.h"

#define CHAIN_100 100         /* chain-100-certs: certificates in the message */
#define CHAIN_BIG_BYTES 61440 /* chain-60kb: DER bytes of the certificate list */
#define CHAIN_BIG_PAD 4000    /* chain-60kb: nsComment bytes per extra certificate */

static int
add_ext(X509 *cert, int nid, const char *value)
{
    X509V3_CTX v3;
    X509_EXTENSION *ext;
    int ok;

    X509V3_set_ctx(&v3, cert, cert, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (ext == NULL)
        return 0;
    ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

/* An nsComment extension of pad bytes. */
static int
add_padding(X509 *cert, size_t pad)
{
    char *comment = OPENSSL_malloc(pad + 1);
    int ok = comment != NULL;

    if (ok) {
        memset(comment, 'u', pad);
        comment[pad] = '\0';
        ok = add_ext(cert, NID_netscape_comment, comment);
    }
    OPENSSL_free(comment);
    return ok;
}

int
backend_fault_selfsigned(const char *cn, size_t pad, X509 **certp, EVP_PKEY **keyp)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *cert = X509_new();
    X509_NAME *name = X509_NAME_new();
    char san[300];
    int ok;

    ok = key != NULL && cert != NULL && name != NULL && X509_set_version(cert, X509_VERSION_3)
        && ASN1_INTEGER_set(X509_get_serialNumber(cert), (long) (pad + 1))
        && X509_NAME_add_entry_by_txt(
            name, "CN", MBSTRING_UTF8, (const unsigned char *) cn, -1, -1, 0)
        && X509_set_subject_name(cert, name) && X509_set_issuer_name(cert, name)
        && X509_gmtime_adj(X509_getm_notBefore(cert), -86400)
        && X509_gmtime_adj(X509_getm_notAfter(cert), 86400L * 30) && X509_set_pubkey(cert, key);
    snprintf(san, sizeof(san), "DNS:%s", cn);
    ok = ok && add_ext(cert, NID_subject_alt_name, san);
    if (ok && pad > 0)
        ok = add_padding(cert, pad);
    ok = ok && X509_sign(cert, key, EVP_sha256()) > 0;
    X509_NAME_free(name);
    if (!ok) {
        X509_free(cert);
        EVP_PKEY_free(key);
        return -1;
    }
    *certp = cert;
    if (keyp != NULL)
        *keyp = key;
    else
        EVP_PKEY_free(key);
    return 0;
}

/* Appends an unrelated certificate: a copy of tmpl named
 * uptls-extra-N.invalid (subject and issuer), with serial N+1. It is not
 * signed again: it is on no path, so no client checks its signature, and
 * 100 of them cost no key generation or signing at start-up (which is slow
 * under valgrind). */
static int
push_extra(STACK_OF(X509) * chain, X509 *tmpl, size_t n)
{
    char cn[64];
    X509 *x = X509_dup(tmpl);
    X509_NAME *name = X509_NAME_new();
    int ok;

    snprintf(cn, sizeof(cn), "uptls-extra-%zu.invalid", n);
    ok = x != NULL && name != NULL
        && X509_NAME_add_entry_by_txt(
            name, "CN", MBSTRING_UTF8, (const unsigned char *) cn, -1, -1, 0)
        && X509_set_subject_name(x, name) && X509_set_issuer_name(x, name)
        && ASN1_INTEGER_set(X509_get_serialNumber(x), (long) n + 1) && i2d_re_X509_tbs(x, NULL) > 0
        && /* a decoded copy keeps its old encoding otherwise */
        sk_X509_push(chain, x);
    X509_NAME_free(name);
    if (!ok)
        X509_free(x);
    return ok;
}

static size_t
der_len(X509 *x)
{
    int n = i2d_X509(x, NULL);
    return n > 0 ? (size_t) n : 0;
}

int
backend_fault_chain_apply(SSL_CTX *ctx, uint64_t f, char *err, size_t err_len)
{
    STACK_OF(X509) *old = NULL, *chain = NULL;
    X509 *tmpl = NULL, *big = NULL;
    size_t bytes;
    int ok = 1, n, i;

    if (f & BACKEND_FAULT_HELLO_RETRY_REQUEST) {
        /* hello-retry-request: only secp384r1, which OpenSSL-based clients
         * list but do not key-share first (they send x25519). */
        if (SSL_CTX_set1_groups_list(ctx, "secp384r1") != 1) {
            snprintf(err, err_len, "--fault hello-retry-request: cannot set the groups");
            return -1;
        }
    }
    if (!(f
            & (BACKEND_FAULT_CHAIN_REVERSED | BACKEND_FAULT_CHAIN_DUPLICATE
                | BACKEND_FAULT_CHAIN_EXTRA_UNRELATED | BACKEND_FAULT_CHAIN_100_CERTS
                | BACKEND_FAULT_CHAIN_60KB)))
        return 0;
    /* The template of the extras is a copy of the leaf (renamed by
     * push_extra), the 60 KB one with a padding nsComment: no key is made
     * and nothing signed at start-up. */
    if (SSL_CTX_get0_chain_certs(ctx, &old) != 1 || (chain = sk_X509_new_null()) == NULL
        || (tmpl = X509_dup(SSL_CTX_get0_certificate(ctx))) == NULL
        || ((f & BACKEND_FAULT_CHAIN_60KB)
            && ((big = X509_dup(tmpl)) == NULL || !add_padding(big, CHAIN_BIG_PAD)
                || i2d_re_X509_tbs(big, NULL) <= 0))) {
        sk_X509_free(chain);
        X509_free(tmpl);
        X509_free(big);
        snprintf(err, err_len, "--fault: cannot read the chain of --cert or make a certificate");
        return -1;
    }
    n = old ? sk_X509_num(old) : 0;
    if (f & BACKEND_FAULT_CHAIN_EXTRA_UNRELATED)
        ok = push_extra(chain, tmpl, 0); /* right after the leaf */
    for (i = 0; ok && i < n; i++) {
        /* chain-reversed: the intermediates root-side first */
        X509 *x = sk_X509_value(old, (f & BACKEND_FAULT_CHAIN_REVERSED) ? n - 1 - i : i);
        ok = X509_up_ref(x) && sk_X509_push(chain, x);
        if (ok && (f & BACKEND_FAULT_CHAIN_DUPLICATE))
            ok = X509_up_ref(x) && sk_X509_push(chain, x);
    }
    if (f & BACKEND_FAULT_CHAIN_100_CERTS) {
        /* the leaf is the 100th */
        for (size_t k = 1; ok && sk_X509_num(chain) < CHAIN_100 - 1; k++)
            ok = push_extra(chain, tmpl, k);
    }
    if (f & BACKEND_FAULT_CHAIN_60KB) {
        X509 *leaf = SSL_CTX_get0_certificate(ctx);
        bytes = leaf ? der_len(leaf) : 0;
        for (i = 0; i < sk_X509_num(chain); i++)
            bytes += der_len(sk_X509_value(chain, i));
        for (size_t k = 1000; ok && bytes < CHAIN_BIG_BYTES; k++) {
            ok = push_extra(chain, big, k);
            if (ok)
                bytes += der_len(sk_X509_value(chain, sk_X509_num(chain) - 1));
        }
    }
    X509_free(tmpl);
    X509_free(big);
    /* set0 takes the stack; SSL_MODE_NO_AUTO_CHAIN keeps it as it is. */
    if (!ok || SSL_CTX_set0_chain(ctx, chain) != 1) {
        sk_X509_pop_free(chain, X509_free);
        ERR_clear_error();
        snprintf(err, err_len, "--fault: cannot build the faulty chain");
        return -1;
    }
    return 0;
}
