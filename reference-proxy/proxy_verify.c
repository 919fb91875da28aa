/*
 * A memo of passed chain verifications, one per SSL_CTX (so per location:
 * its trust store, proxy_ssl_verify_depth, CRLs and flags are fixed for the
 * life of the SSL_CTX).
 *
 * Why: with OpenSSL 3.0, X509_verify_cert() is ~15% of the instructions of
 * a full client handshake (callgrind over bench load (c): building the
 * chain through the store, the leaf's signature, extension and name checks),
 * and a proxy presents the same upstream chain on every new connection.
 *
 * What it changes: nothing observable. OpenSSL calls the cert-verify
 * callback (SSL_CTX_set_cert_verify_callback(3)) in place of
 * X509_verify_cert() with the peer's chain as sent; the callback answers
 * "verified" only when, for this SSL_CTX, the same bytes were verified
 * before and passed, under the same names, and the time since then cannot
 * have changed the answer:
 * - the key is the exact DER of every certificate the peer sent, in order,
 *   plus the host and IP names and the depth in the X509_STORE_CTX's
 *   parameters (SSL_set1_host(), SSL_CTX_set_verify_depth()); entries are
 *   compared byte for byte, never by a digest alone;
 * - only a verification that returned 1 with X509_V_OK is remembered (a
 *   failure is always verified again, and logged by the verify callback);
 * - an entry lasts until the earliest notAfter of the verified chain
 *   (trust anchor included), the earliest nextUpdate of the store's CRLs,
 *   and the earliest future lastUpdate of a CRL or notBefore of a store
 *   certificate (OpenSSL picks the newest CRL valid now, and a certificate
 *   not yet valid can become an anchor), at most PROXY_VMEMO_TTL seconds,
 *   and is dropped if the clock goes back.
 * A miss calls X509_verify_cert() exactly as OpenSSL would have.
 */
#include "proxy.h"

#include <openssl/x509v3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROXY_VMEMO_SLOTS 16
#define PROXY_VMEMO_TTL 300

struct proxy_vmemo_entry {
    unsigned char *key;
    size_t key_len;
    uint64_t hash;
    time_t since;
    time_t until;
};

struct proxy_vmemo {
    struct proxy_vmemo_entry e[PROXY_VMEMO_SLOTS];
    unsigned next;      /* the slot replaced next (round robin) */
    unsigned char *buf; /* the key being built */
    size_t buf_len, buf_size;
};

static int proxy_vmemo_index = -1;

static void
proxy_vmemo_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    struct proxy_vmemo *m = ptr;
    size_t i;

    if (m == NULL) {
        return;
    }
    for (i = 0; i < PROXY_VMEMO_SLOTS; i++) {
        free(m->e[i].key);
    }
    free(m->buf);
    free(m);
}

static void
proxy_vmemo_put(struct proxy_vmemo *m, const void *p, size_t n)
{
    if (m->buf_len + n > m->buf_size) {
        size_t size = m->buf_size ? m->buf_size : 4096;
        unsigned char *b;

        while (size < m->buf_len + n) {
            size *= 2;
        }
        b = realloc(m->buf, size);
        if (b == NULL) {
            proxy_log_error(PROXY_LOG_EMERG, 0, "out of memory");
            abort();
        }
        m->buf = b;
        m->buf_size = size;
    }
    memcpy(m->buf + m->buf_len, p, n);
    m->buf_len += n;
}

static void
proxy_vmemo_put_str(struct proxy_vmemo *m, const char *s)
{
    uint32_t n = s ? (uint32_t) strlen(s) : UINT32_MAX;

    proxy_vmemo_put(m, &n, sizeof(n));
    if (s) {
        proxy_vmemo_put(m, s, n);
    }
}

/* The key: names and depth of the check, then each certificate's DER, each
 * preceded by its length. 0 on success. */
static int
proxy_vmemo_key(struct proxy_vmemo *m, X509_STORE_CTX *xs)
{
    X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(xs);
    STACK_OF(X509) *sent = X509_STORE_CTX_get0_untrusted(xs);
    X509 *leaf = X509_STORE_CTX_get0_cert(xs);
    char *ip = X509_VERIFY_PARAM_get1_ip_asc(param);
    int32_t depth = X509_VERIFY_PARAM_get_depth(param);
    int i, n, num = sent ? sk_X509_num(sent) : 0;
    const char *host;

    m->buf_len = 0;
    for (i = 0; (host = X509_VERIFY_PARAM_get0_host(param, i)) != NULL; i++) {
        proxy_vmemo_put_str(m, host);
    }
    proxy_vmemo_put_str(m, NULL);
    proxy_vmemo_put_str(m, ip);
    OPENSSL_free(ip);
    proxy_vmemo_put(m, &depth, sizeof(depth));
    /* OpenSSL passes the peer's whole chain, leaf first, as untrusted */
    if (num == 0 || sk_X509_value(sent, 0) != leaf) {
        return -1;
    }
    for (i = 0; i < num; i++) {
        unsigned char *der = NULL;
        uint32_t len;

        n = i2d_X509(sk_X509_value(sent, i), &der);
        if (n <= 0) {
            return -1;
        }
        len = (uint32_t) n;
        proxy_vmemo_put(m, &len, sizeof(len));
        proxy_vmemo_put(m, der, len);
        OPENSSL_free(der);
    }
    return 0;
}

static uint64_t
proxy_vmemo_hash(const unsigned char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a: a pre-check only */

    while (n--) {
        h = (h ^ *p++) * 1099511628211ULL;
    }
    return h;
}

static time_t
proxy_asn1_time_t(const ASN1_TIME *t)
{
    struct tm tm;

    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1) {
        return 0;
    }
    return timegm(&tm);
}

/* Lowers *until to t when t is a time in (now, *until). */
static void
proxy_vmemo_bound(time_t *until, time_t t, time_t now)
{
    if (t > now && t < *until) {
        *until = t;
    }
}

/* Until when the answer for this chain cannot change with time alone; 0
 * when it cannot be told (then nothing is remembered). */
static time_t
proxy_vmemo_until(X509_STORE_CTX *xs, time_t now)
{
    STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(xs);
    STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(X509_STORE_CTX_get0_store(xs));
    time_t until = now + PROXY_VMEMO_TTL, t;
    int i;

    if (chain == NULL || sk_X509_num(chain) == 0) {
        return 0;
    }
    for (i = 0; i < sk_X509_num(chain); i++) {
        t = proxy_asn1_time_t(X509_get0_notAfter(sk_X509_value(chain, i)));
        if (t <= now) {
            return 0;
        }
        proxy_vmemo_bound(&until, t, now);
    }
    for (i = 0; objs && i < sk_X509_OBJECT_num(objs); i++) {
        X509_OBJECT *o = sk_X509_OBJECT_value(objs, i);
        X509_CRL *crl = X509_OBJECT_get0_X509_CRL(o);
        X509 *x = X509_OBJECT_get0_X509(o);

        if (crl) {
            /* a CRL without nextUpdate never expires */
            proxy_vmemo_bound(&until, proxy_asn1_time_t(X509_CRL_get0_nextUpdate(crl)), now);
            proxy_vmemo_bound(&until, proxy_asn1_time_t(X509_CRL_get0_lastUpdate(crl)), now);
        } else if (x) {
            proxy_vmemo_bound(&until, proxy_asn1_time_t(X509_get0_notBefore(x)), now);
        }
    }
    return until;
}

static int
proxy_vmemo_verify(X509_STORE_CTX *xs, void *arg)
{
    struct proxy_vmemo *m = arg;
    struct proxy_vmemo_entry *e;
    time_t now = time(NULL);
    uint64_t h;
    size_t i;
    int rc;

    if (proxy_vmemo_key(m, xs) != 0) {
        return X509_verify_cert(xs);
    }
    h = proxy_vmemo_hash(m->buf, m->buf_len);
    for (i = 0; i < PROXY_VMEMO_SLOTS; i++) {
        e = &m->e[i];
        if (e->key && e->hash == h && e->key_len == m->buf_len
            && memcmp(e->key, m->buf, m->buf_len) == 0) {
            if (now >= e->since && now < e->until) {
                X509_STORE_CTX_set_error(xs, X509_V_OK);
                return 1;
            }
            free(e->key);
            e->key = NULL;
            break;
        }
    }

    rc = X509_verify_cert(xs);
    if (rc == 1 && X509_STORE_CTX_get_error(xs) == X509_V_OK) {
        time_t until = proxy_vmemo_until(xs, now);

        if (until > now) {
            e = &m->e[m->next];
            m->next = (m->next + 1) % PROXY_VMEMO_SLOTS;
            free(e->key);
            e->key = malloc(m->buf_len);
            if (e->key) {
                memcpy(e->key, m->buf, m->buf_len);
                e->key_len = m->buf_len;
                e->hash = h;
                e->since = now;
                e->until = until;
            }
        }
    }
    return rc;
}

/* Called once the SSL_CTX's store, depth and CRLs are final. */
int
proxy_vmemo_attach(SSL_CTX *ctx)
{
    struct proxy_vmemo *m;

    if (proxy_vmemo_index < 0) {
        proxy_vmemo_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, proxy_vmemo_free);
        if (proxy_vmemo_index < 0) {
            return -1;
        }
    }
    m = proxy_xcalloc(1, sizeof(*m));
    if (SSL_CTX_set_ex_data(ctx, proxy_vmemo_index, m) != 1) {
        free(m);
        return -1;
    }
    SSL_CTX_set_cert_verify_callback(ctx, proxy_vmemo_verify, m);
    return 0;
}
