/*
 * Fault switches: named misbehaviours of the mock backend, selected with
 * --fault NAME (repeatable). Each entry is documented by a comment that
 * starts with its own name, in the manner of BoringSSL's ProtocolBugs.
 */
#include "backend.h"

/* Lookup, the list in error messages and the help lines come from this
 * table (harness/common/uc_switch.h): a new fault is one row here and one
 * bit in enum backend_fault. */
const struct uc_switch backend_faults[] = {
    /* stall-handshake: accept the TCP connection and never send a byte;
     * what the client sends is read and discarded. Checks the proxy's
     * connect/handshake timeout. */
    {"stall-handshake", BACKEND_FAULT_STALL_HANDSHAKE,
     "accept TCP, never answer (the ClientHello is read and dropped)"},
    /* close-after-client-hello: read and log the ClientHello, then close the
     * TCP connection without sending anything (no alert). */
    {"close-after-client-hello", BACKEND_FAULT_CLOSE_AFTER_CLIENT_HELLO,
     "log the ClientHello, then close TCP without an alert"},
    /* alert-after-client-hello: read and log the ClientHello, then send a
     * fatal handshake_failure alert (from the ClientHello callback). */
    {"alert-after-client-hello", BACKEND_FAULT_ALERT_AFTER_CLIENT_HELLO,
     "log the ClientHello, then send a fatal handshake_failure alert"},
    /* non-tls: answer the first bytes the client sends with a plaintext
     * "HTTP/1.1 200 OK" response and close: a backend that does not speak
     * TLS on this port. */
    {"non-tls", BACKEND_FAULT_NON_TLS,
     "answer the ClientHello with plaintext HTTP/1.1 200 OK bytes, then close"},
    /* omit-intermediate: present only the leaf certificate even if --cert
     * holds a chain (a misconfigured server). */
    {"omit-intermediate", BACKEND_FAULT_OMIT_INTERMEDIATE,
     "present only the leaf certificate of --cert"},
    /* truncate-body: announce Content-Length: 1000, send 100 bytes of body,
     * then close the TCP connection without close_notify. */
    {"truncate-body", BACKEND_FAULT_TRUNCATE_BODY,
     "Content-Length 1000, send 100 body bytes, close without close_notify"},
    /* reset-after-headers: send the response headers, then reset the
     * connection (SO_LINGER 0 + close) instead of sending the body. */
    {"reset-after-headers", BACKEND_FAULT_RESET_AFTER_HEADERS,
     "send the response headers, then RST (SO_LINGER 0)"},
    /* huge-headers: answer with a response header block larger than 64 KiB
     * (filler X-Uptls-Filler-N headers); the body is unchanged. */
    {"huge-headers", BACKEND_FAULT_HUGE_HEADERS,
     "send a response header block larger than 64 KiB"},
    /* slow-response: send each response one byte per TLS record, one every
     * 50 ms. */
    {"slow-response", BACKEND_FAULT_SLOW_RESPONSE,
     "send the response one byte every 50 ms"},
};

const size_t backend_num_faults = UC_SWITCH_COUNT(backend_faults);
