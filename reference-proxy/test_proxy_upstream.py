"""uptls-proxy: upstream connections (keepalive, request bodies, the last
record before a close, round robin and failover, proxy_next_upstream,
client aborts, stale connections, timeouts) and workers.

Run: /usr/bin/python3 -m pytest reference-proxy (all of uptls-proxy's tests;
the shared upstreams, proxy and fixtures are proxy_testlib.py and conftest.py).
"""

import json
import signal
import socket
import ssl
import threading
import time

from proxy_testlib import raw_upstream, tls_loc
from uptls.proc import free_port, wait_until


def test_upstream_keepalive(proxy, backends, pki):
    b = backends(pki)
    p = proxy(f"upstream ka {{ server 127.0.0.1:{b.port}; keepalive 4; }}\n"
              f"server {{ LISTEN location / {{ proxy_pass https://ka; proxy_http_version 1.1; "
              f"proxy_set_header Connection \"\"; proxy_ssl_verify on; proxy_ssl_name localhost; "
              f"proxy_ssl_trusted_certificate {pki}/root.pem; }}\n"
              f"location /nk/ {{ proxy_pass https://ka; }} }}")
    conns = {json.loads(p.get(f"/{i}")[1])["conn"] for i in range(5)}
    assert len(conns) == 1 and len(b.handshakes) == 1
    conns = {json.loads(p.get(f"/nk/{i}")[1])["conn"] for i in range(3)}
    assert len(conns) == 3                       # Connection: close by default


def test_large_request_bodies_over_kept_alive_tls(proxy, backends, pki):
    """A request body near the 1 MiB limit goes whole to a TLS upstream, twice
    on one kept-alive connection (the request is written by the upstream write
    event's own callback, partly now and the rest as the socket drains)."""
    b = backends(pki)
    p = proxy(f"upstream ka {{ server 127.0.0.1:{b.port}; keepalive 2; }}\n"
              f"server {{ LISTEN location / {{ proxy_pass https://ka; proxy_http_version 1.1; "
              f"proxy_set_header Connection \"\"; }} }}")
    for i in range(2):
        body = bytes([65 + i]) * 1000000
        status, data = p.get(f"/up{i}", method="POST", body=body)
        assert status == 200
        got = json.loads(data)
        assert got["body"] == body.decode() and got["path"] == f"/up{i}"
    assert len({r["conn"] for r in b.requests}) == 1


def _tls_close_with_last_record(pki, first, last):
    """A TLS upstream that answers with record `first`, then `last` and its
    close_notify in one TCP segment (libevent 2.1 reads both in one go)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)

    def serve():
        for _ in range(2):
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(pki / "server.chain.pem", pki / "server.key")
            inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
            tls = ctx.wrap_bio(inc, out, server_side=True)
            conn.settimeout(5)
            try:
                req = b""
                while b"\r\n\r\n" not in req:    # handshake, then the request
                    try:
                        req += tls.read(65536)
                    except ssl.SSLWantReadError:
                        conn.sendall(out.read())
                        inc.write(conn.recv(65536))
                conn.sendall(out.read())
                tls.write(first)
                conn.sendall(out.read())
                time.sleep(0.2)
                tls.write(last)
                try:
                    tls.unwrap()
                except ssl.SSLError:
                    pass
                conn.sendall(out.read())
                time.sleep(0.2)
            except OSError:
                pass
            finally:
                conn.close()
    threading.Thread(target=serve, daemon=True).start()
    return srv


def test_last_record_before_the_upstream_close(proxy, pki):
    """The record before an upstream's close_notify is used even when both
    arrive together and the input holds a partial line (a header block, a
    read-until-close body): the close is handled after the data before it."""
    hdr = _tls_close_with_last_record(
        pki, b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * 6000,
        b"\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
    eof = _tls_close_with_last_record(
        pki, b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"a" * 6000, b"TAIL")
    p = proxy("server { LISTEN "
              f"location /h {{ proxy_pass https://127.0.0.1:{hdr.getsockname()[1]}; }}\n"
              f"location /e {{ proxy_pass https://127.0.0.1:{eof.getsockname()[1]}; }} }}")
    status, data = p.get("/h")
    assert (status, data) == (200, b"hello")
    status, data = p.get("/e")
    assert status == 200 and data == b"a" * 6000 + b"TAIL"
    hdr.close()
    eof.close()


def test_round_robin_weights_and_failover(proxy, backends, pki):
    b1, b2 = backends(pki), backends(pki)
    dead = free_port()
    p = proxy(f"upstream rr {{ server 127.0.0.1:{b1.port} weight=2; server 127.0.0.1:{b2.port}; }}\n"
              f"upstream fo {{ server 127.0.0.1:{dead}; server 127.0.0.1:{b1.port}; }}\n"
              f"upstream none {{ server 127.0.0.1:{dead}; server 127.0.0.1:{free_port()}; }}\n"
              f"upstream bad {{ server 127.0.0.1:{backends(pki, cert='server-untrusted').port}; "
              f"server 127.0.0.1:{b2.port}; }}\n"
              f"server {{ LISTEN location /rr {{ proxy_pass https://rr; }}\n"
              f"location /fo {{ proxy_pass https://fo; }}\n"
              f"location /none {{ proxy_pass https://none; }}\n"
              f"location /bad {{ proxy_pass https://bad; proxy_ssl_verify on; proxy_ssl_name localhost; "
              f"proxy_ssl_trusted_certificate {pki}/root.pem; }} }}")
    for _ in range(6):
        assert p.get("/rr")[0] == 200
    assert (len(b1.requests), len(b2.requests)) == (4, 2)
    for _ in range(3):
        assert p.get("/fo")[0] == 200
    assert p.get("/none")[0] == 502
    before = len(b2.requests)
    for _ in range(2):
        assert p.get("/bad")[0] == 200          # verification failure: next server
    assert len(b2.requests) == before + 2


def test_next_upstream_conditions(proxy, backends):
    """proxy_next_upstream beyond error and timeout, as nginx's
    ngx_http_upstream_test_next() and ngx_http_upstream_next(): a listed
    status moves on only while another server is left, a sent POST also needs
    non_idempotent, an invalid header is a 502 unless invalid_header is set."""
    s500 = raw_upstream(b"HTTP/1.1 500 Internal Server Error\r\n").getsockname()[1]
    bad = raw_upstream(b"HTTP/1.1 200 OK\r\nBroken header line\r\n").getsockname()[1]
    s404 = raw_upstream(b"HTTP/1.1 404 Not Found\r\n").getsockname()[1]
    good = backends(tls=False).port

    def group(name, first):
        return f"upstream {name} {{ server 127.0.0.1:{first}; server 127.0.0.1:{good}; }}\n"
    p = proxy(group("a", s500) + group("b", s500) + group("c", bad) + group("d", bad)
              + group("e", s500) + group("f", s500)
              + f"upstream g {{ server 127.0.0.1:{s500}; }}\n"
              + f"upstream h {{ server 127.0.0.1:{s404}; server 127.0.0.1:{free_port()}; }}\n"
              + "server { LISTEN location /a { proxy_pass http://a; }\n"
              + "location /b { proxy_pass http://b; proxy_next_upstream error timeout http_500; }\n"
              + "location /c { proxy_pass http://c; }\n"
              + "location /d { proxy_pass http://d; proxy_next_upstream invalid_header; }\n"
              + "location /e { proxy_pass http://e; proxy_next_upstream http_500; }\n"
              + "location /f { proxy_pass http://f; proxy_next_upstream http_500 non_idempotent; }\n"
              + "location /g { proxy_pass http://g; proxy_next_upstream http_500; }\n"
              + "location /h { proxy_pass http://h; proxy_next_upstream http_404; } }")

    def statuses(path, method="GET"):
        return sorted(p.get(path, method=method, body=b"x" if method == "POST" else None)[0]
                      for _ in range(4))
    assert statuses("/a") == [200, 200, 500, 500]      # by default a 500 is an answer
    assert statuses("/b") == [200] * 4                 # then the 500 server is down (max_fails 1)
    assert statuses("/c") == [200, 200, 200, 502]      # invalid header: 502, server marked failed
    assert statuses("/d") == [200] * 4
    assert statuses("/e", "POST") == [200, 200, 500, 500]
    assert statuses("/f", "POST") == [200] * 4
    assert statuses("/g") == [500] * 4                 # no other server: passed on as it is
    # the other server is down after its connect error (not retried: no
    # "error"); a 404 does not count as a failure, and moving on from it
    # finds no live server: 502 (nginx's NGX_HTTP_UPSTREAM_FT_NOLIVE)
    assert statuses("/h") == [502] * 4


def test_client_abort_closes_the_upstream_and_keeps_serving(proxy, backends):
    """A client that goes away while its request is answered aborts it (nginx:
    "client prematurely closed connection", proxy_ignore_client_abort off):
    the upstream connection is closed and the proxy keeps serving."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    seen = {}

    def slow():
        conn, _ = srv.accept()
        conn.recv(65536)
        conn.settimeout(5)
        try:
            seen["eof"] = conn.recv(1) == b""      # the proxy closed its side
        except OSError:
            seen["eof"] = False
        conn.close()
    threading.Thread(target=slow, daemon=True).start()
    good = backends(tls=False)
    p = proxy(f"server {{ LISTEN location /slow {{ proxy_pass http://127.0.0.1:"
              f"{srv.getsockname()[1]}; }} location / {{ proxy_pass http://127.0.0.1:{good.port}; }} }}")
    c = socket.create_connection(("127.0.0.1", p.port))
    c.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.3)
    c.close()
    wait_until(lambda: "eof" in seen, timeout=5)
    srv.close()
    assert seen.get("eof") is True
    assert "client prematurely closed connection" in p.error_log()
    assert p.get("/")[0] == 200


def test_stale_keepalive_connection_retry(proxy):
    """A cached connection the upstream closes when the next request arrives
    (its keepalive race) is retried on a new connection as nginx does: for a
    GET, not for a POST already sent, not with proxy_next_upstream off."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)

    def conn_loop(conn):
        f = conn.makefile("rb")
        try:
            for n in range(2):
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = f.readline()
                    if not line:
                        return
                    head += line
                length = int(([l.split(b":")[1] for l in head.split(b"\r\n")
                               if l.lower().startswith(b"content-length:")] or [b"0"])[0])
                f.read(length)
                if n == 1:
                    return                       # closes without answering
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        finally:
            conn.close()

    def loop():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=conn_loop, args=(conn,), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()
    port = srv.getsockname()[1]
    ka = 'proxy_http_version 1.1; proxy_set_header Connection "";'
    p = proxy("".join(f"upstream {n} {{ server 127.0.0.1:{port}; keepalive 4; }}\n"
                      for n in ("a", "b", "c"))
              + f"server {{ LISTEN location /a {{ proxy_pass http://a; {ka} }}\n"
              f"location /b {{ proxy_pass http://b; {ka} }}\n"
              f"location /c {{ proxy_pass http://c; {ka} proxy_next_upstream off; }} }}")
    assert [p.get("/a")[0] for _ in range(2)] == [200, 200]
    assert p.get("/b")[0] == 200
    assert p.get("/b", method="POST", body=b"x")[0] == 502
    assert [p.get("/c")[0] for _ in range(2)] == [200, 502]
    srv.close()


def test_timeouts_are_504(proxy):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)                                   # accepts, never answers
    try:
        p = proxy(f"server {{ LISTEN location / {{ proxy_pass https://127.0.0.1:{s.getsockname()[1]}; "
                  f"proxy_connect_timeout 300ms; }} }}")
        assert p.get("/")[0] == 504
        assert "upstream timed out" in p.error_log()
    finally:
        s.close()


def test_workers_and_graceful_quit(proxy, backends, pki):
    b = backends(pki)
    p = proxy(f"server {{ LISTEN {tls_loc(pki, b)} }}", workers=3)
    for _ in range(10):
        assert p.get("/")[0] == 200
    pid_file = p.tmp / "proxy.pid"
    assert pid_file.read_text().strip() == str(p.proc.pid)
    p.stop(signal.SIGQUIT)
    assert p.proc.returncode == 0 and not pid_file.exists()
