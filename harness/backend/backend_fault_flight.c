/*
 * Handshake flight faults: the server's handshake output is captured in a
 * memory BIO (the SSL's write BIO; the socket stays its read BIO) and put
 * on the wire by a timer, as the fault says:
 *
 *   dribble-handshake           one byte every DRIBBLE_STEP_MS
 *   garbage-after-server-hello  the first record (the ServerHello), then
 *                               plaintext HTTP bytes; the rest is dropped
 *
 * Once the handshake is done and every captured byte is sent, the socket
 * becomes the write BIO again. The fault table and documentation are in
 * backend_fault.c.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/bio.h>

#include "backend.h"

#define DRIBBLE_STEP_MS 5
#define RAW_RETRY_MS 10

static const char garbage[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

int
backend_fault_flight_on(uint64_t faults)
{
    return (faults & (BACKEND_FAULT_DRIBBLE_HANDSHAKE | BACKEND_FAULT_GARBAGE_AFTER_SERVER_HELLO))
        != 0;
}

static void
arm(struct backend_conn *c, long ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

    if (!evtimer_pending(c->raw_timer, NULL))
        evtimer_add(c->raw_timer, &tv);
}

static int
dribbling(const struct backend_conn *c)
{
    return (c->srv->cfg->faults & BACKEND_FAULT_DRIBBLE_HANDSHAKE) && !c->handshake_done;
}

/* Puts queued raw bytes on the wire: one while dribbling, else all it takes. */
static void
raw_cb(evutil_socket_t fd, short what, void *arg)
{
    struct backend_conn *c = arg;
    size_t len = evbuffer_get_length(c->raw);
    ssize_t n;

    (void) fd;
    (void) what;
    if (len > 0) {
        if (dribbling(c))
            len = 1;
        n = send(c->fd, evbuffer_pullup(c->raw, (ssize_t) len), len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            evbuffer_drain(c->raw, (size_t) n);
        } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            /* the peer is gone: the read side will see it */
            evbuffer_drain(c->raw, evbuffer_get_length(c->raw));
        } else {
            arm(c, RAW_RETRY_MS);
            return;
        }
    }
    if (evbuffer_get_length(c->raw) > 0)
        arm(c, dribbling(c) ? DRIBBLE_STEP_MS : 0);
    else if (c->handshake_done)
        event_active(c->wev, EV_WRITE, 1); /* resume the connection */
}

int
backend_fault_flight_start(struct backend_conn *c)
{
    BIO *mem;

    c->raw = evbuffer_new();
    c->raw_timer = evtimer_new(c->srv->base, raw_cb, c);
    mem = BIO_new(BIO_s_mem());
    if (c->raw == NULL || c->raw_timer == NULL || mem == NULL) {
        BIO_free(mem);
        return -1;
    }
    SSL_set0_wbio(c->ssl, mem); /* the socket BIO stays the read BIO */
    return 0;
}

int
backend_fault_flight_step(struct backend_conn *c, int done)
{
    BIO *wbio = SSL_get_wbio(c->ssl);
    BIO *rbio = SSL_get_rbio(c->ssl);
    char *data;
    long len;

    if (wbio == rbio)
        return 0; /* no longer capturing */
    len = BIO_get_mem_data(wbio, &data);
    if (len > 0 && c->flight_cut) {
        len = 0; /* garbage-after-server-hello: nothing after the garbage */
    } else if (len >= 5 && (c->srv->cfg->faults & BACKEND_FAULT_GARBAGE_AFTER_SERVER_HELLO)) {
        long first = 5 + (((long) (unsigned char) data[3] << 8) | (unsigned char) data[4]);
        if (first > len)
            return 1; /* the ServerHello record is not whole yet */
        evbuffer_add(c->raw, data, (size_t) first);
        evbuffer_add(c->raw, garbage, sizeof(garbage) - 1);
        backend_fault_log(
            c, "garbage-after-server-hello", "the ServerHello record, then plaintext HTTP bytes");
        c->flight_cut = 1;
    } else if (len > 0) {
        if (evbuffer_get_length(c->raw) == 0 && dribbling(c))
            backend_fault_log(c, "dribble-handshake", "handshake output one byte at a time");
        evbuffer_add(c->raw, data, (size_t) len);
    }
    (void) BIO_reset(wbio);
    if (evbuffer_get_length(c->raw) > 0) {
        arm(c, 0);
        return 1;
    }
    if (done && !c->flight_cut && BIO_up_ref(rbio) == 1)
        SSL_set0_wbio(c->ssl, rbio); /* the socket again; frees the memory BIO */
    return 0;
}
