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
    { "stall-handshake", BACKEND_FAULT_STALL_HANDSHAKE,
        "accept TCP, never answer (the ClientHello is read and dropped)" },
    /* close-after-client-hello: read and log the ClientHello, then close the
     * TCP connection without sending anything (no alert). */
    { "close-after-client-hello", BACKEND_FAULT_CLOSE_AFTER_CLIENT_HELLO,
        "log the ClientHello, then close TCP without an alert" },
    /* alert-after-client-hello: read and log the ClientHello, then send a
     * fatal handshake_failure alert (from the ClientHello callback). */
    { "alert-after-client-hello", BACKEND_FAULT_ALERT_AFTER_CLIENT_HELLO,
        "log the ClientHello, then send a fatal handshake_failure alert" },
    /* non-tls: answer the first bytes the client sends with a plaintext
     * "HTTP/1.1 200 OK" response and close: a backend that does not speak
     * TLS on this port. */
    { "non-tls", BACKEND_FAULT_NON_TLS,
        "answer the ClientHello with plaintext HTTP/1.1 200 OK bytes, then close" },
    /* omit-intermediate: present only the leaf certificate even if --cert
     * holds a chain (a misconfigured server). */
    { "omit-intermediate", BACKEND_FAULT_OMIT_INTERMEDIATE,
        "present only the leaf certificate of --cert" },
    /* truncate-body: announce Content-Length: 1000, send 100 bytes of body,
     * then close the TCP connection without close_notify. */
    { "truncate-body", BACKEND_FAULT_TRUNCATE_BODY,
        "Content-Length 1000, send 100 body bytes, close without close_notify" },
    /* reset-after-headers: send the response headers, then reset the
     * connection (SO_LINGER 0 + close) instead of sending the body. */
    { "reset-after-headers", BACKEND_FAULT_RESET_AFTER_HEADERS,
        "send the response headers, then RST (SO_LINGER 0)" },
    /* huge-headers: answer with a response header block larger than 64 KiB
     * (filler X-Uptls-Filler-N headers); the body is unchanged. */
    { "huge-headers", BACKEND_FAULT_HUGE_HEADERS,
        "send a response header block larger than 64 KiB" },
    /* slow-response: send each response one byte per TLS record, one every
     * 50 ms. */
    { "slow-response", BACKEND_FAULT_SLOW_RESPONSE, "send the response one byte every 50 ms" },

    /* ---- TLS layer: backend_fault_tls.c, _chain.c, _flight.c ---- */
    /* hello-request-before-response: TLS 1.2. After reading the request,
     * send a HelloRequest (SSL_renegotiate + SSL_do_handshake), then the
     * whole response at once. RFC 5246 7.4.1.1: the client may ignore it or
     * answer no_renegotiation; either way the response is whole. */
    { "hello-request-before-response", BACKEND_FAULT_HELLO_REQUEST_BEFORE_RESPONSE,
        "TLS 1.2: a HelloRequest, then the whole response" },
    /* hello-request-mid-body: TLS 1.2. The HelloRequest comes after the
     * headers and half of the body; the rest follows at once. */
    { "hello-request-mid-body", BACKEND_FAULT_HELLO_REQUEST_MID_BODY,
        "TLS 1.2: a HelloRequest after the headers and half the body, then the rest" },
    /* renegotiate-other-cert: TLS 1.2. A HelloRequest before the response;
     * the renegotiation is a full handshake (no resumption) presenting a
     * fresh self-signed certificate for the same name, and the response is
     * sent only once it completed. A client that declines gets no response
     * (OpenSSL's server ends on no_renegotiation). */
    { "renegotiate-other-cert", BACKEND_FAULT_RENEGOTIATE_OTHER_CERT,
        "TLS 1.2: renegotiate to an untrusted certificate, respond only after it" },
    /* key-update-before-response: TLS 1.3. After reading the request, a
     * KeyUpdate with update_requested (SSL_key_update), then the response.
     * RFC 8446 4.6.3: the client updates its keys and answers with its own. */
    { "key-update-before-response", BACKEND_FAULT_KEY_UPDATE_BEFORE_RESPONSE,
        "TLS 1.3: a KeyUpdate (update_requested), then the whole response" },
    /* key-update-mid-body: TLS 1.3. The KeyUpdate (update_requested) comes
     * after the headers and half of the body. */
    { "key-update-mid-body", BACKEND_FAULT_KEY_UPDATE_MID_BODY,
        "TLS 1.3: a KeyUpdate (update_requested) after the headers and half the body" },
    /* key-update-flood: TLS 1.3. 32 KeyUpdates (update_not_requested) in a
     * row before the response: bounded at BoringSSL's limit of consecutive
     * KeyUpdates, so a compliant client must take them all. */
    { "key-update-flood", BACKEND_FAULT_KEY_UPDATE_FLOOD,
        "TLS 1.3: 32 KeyUpdates in a row, then the whole response" },
    /* hello-retry-request: accept only the secp384r1 group, which clients
     * list but do not key-share first: the server answers the first
     * ClientHello with a HelloRetryRequest (RFC 8446 4.1.4). Replaces
     * "post-handshake CertificateRequest to a client without
     * post_handshake_auth": OpenSSL 3.0's server cannot send one
     * (SSL_verify_client_post_handshake needs the extension). */
    { "hello-retry-request", BACKEND_FAULT_HELLO_RETRY_REQUEST,
        "accept only secp384r1: a HelloRetryRequest for clients that key-share x25519" },
    /* chain-reversed: the intermediates of --cert in reverse order (leaf
     * first still). RFC 8446 4.4.2 asks clients to accept any order. */
    { "chain-reversed", BACKEND_FAULT_CHAIN_REVERSED,
        "present the intermediates in reverse order (leaf first)" },
    /* chain-duplicate: every intermediate of --cert twice in a row. */
    { "chain-duplicate", BACKEND_FAULT_CHAIN_DUPLICATE, "present every intermediate twice" },
    /* chain-extra-unrelated: an unrelated certificate right after the leaf,
     * then the intermediates. The extras of the chain faults are copies of
     * the leaf renamed uptls-extra-N.invalid (self-issued, not re-signed:
     * no client checks a certificate that is on no path). */
    { "chain-extra-unrelated", BACKEND_FAULT_CHAIN_EXTRA_UNRELATED,
        "an unrelated certificate (uptls-extra-0.invalid) right after the leaf" },
    /* chain-100-certs: the chain of --cert padded with unrelated
     * certificates to 100 certificates in the Certificate message. */
    { "chain-100-certs", BACKEND_FAULT_CHAIN_100_CERTS,
        "100 certificates: the chain, then unrelated ones" },
    /* chain-60kb: the chain of --cert padded with unrelated certificates
     * (a 4000-byte nsComment each) past 60 KB of DER: four
     * 16 KB records, under OpenSSL's default 100 KB max_cert_list. */
    { "chain-60kb", BACKEND_FAULT_CHAIN_60KB,
        "a certificate list over 60 KB (padded unrelated certificates)" },
    /* dribble-handshake: the server's handshake flight one byte every 5 ms
     * (about 5 s for a one-certificate TLS 1.3 flight): a proxy must bound
     * the whole handshake by its timeout, not each read. */
    { "dribble-handshake", BACKEND_FAULT_DRIBBLE_HANDSHAKE,
        "send the handshake flight one byte every 5 ms" },
    /* garbage-after-server-hello: send the ServerHello record, then
     * plaintext "HTTP/1.1 200 OK" bytes instead of the rest of the flight. */
    { "garbage-after-server-hello", BACKEND_FAULT_GARBAGE_AFTER_SERVER_HELLO,
        "the ServerHello, then plaintext HTTP bytes instead of the rest" },
    /* oversized-record-mid-body: after the headers and half of the body, a
     * record header announcing 18688 bytes (over 2^14+2048, RFC 5246 6.2.3,
     * and 2^14+256, RFC 8446 5.2) with random contents; then close. */
    { "oversized-record-mid-body", BACKEND_FAULT_OVERSIZED_RECORD_MID_BODY,
        "after half the body, an 18688-byte record (over the limit), then close" },
    /* corrupt-record-mid-body: after the headers and half of the body, the
     * rest as one record with a flipped byte (bad MAC/tag), then close.
     * Replaces "alert mid-body": OpenSSL has no call to send an arbitrary
     * alert, and a record that fails authentication is the same fatal
     * error on the client's side (RFC 8446 5.2 bad_record_mac). */
    { "corrupt-record-mid-body", BACKEND_FAULT_CORRUPT_RECORD_MID_BODY,
        "after half the body, a record failing authentication, then close" },
    /* close-notify-after-headers: send the headers (Content-Length of the
     * whole body), then close_notify and no body: a clean TLS close that
     * still cuts the response short. */
    { "close-notify-after-headers", BACKEND_FAULT_CLOSE_NOTIFY_AFTER_HEADERS,
        "send the headers, then close_notify instead of the body" },
    /* reset-after-handshake: complete the handshake, then RST (SO_LINGER 0)
     * before reading the request. */
    { "reset-after-handshake", BACKEND_FAULT_RESET_AFTER_HANDSHAKE,
        "complete the handshake, then RST before reading the request" },
};

const size_t backend_num_faults = UC_SWITCH_COUNT(backend_faults);
