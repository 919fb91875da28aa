"""uptls-proxy: plain HTTP proxying (framing, keep-alive, pipelining, header
lines in requests and responses).

Run: /usr/bin/python3 -m pytest reference-proxy (all of uptls-proxy's tests;
the shared upstreams, proxy and fixtures are proxy_testlib.py and conftest.py).
"""

import http.client
import json
import re
import socket
import time

import pytest

from proxy_testlib import raw_upstream
from uptls.proc import free_port


def test_plain_proxying(proxy, backends):
    b = backends(tls=False)
    p = proxy(f"server {{ LISTEN location / {{ proxy_pass http://127.0.0.1:{b.port}; }}\n"
              f"location /api/ {{ proxy_pass http://127.0.0.1:{b.port}/v2/; "
              f"proxy_set_header X-Real $remote_addr; proxy_set_header User-Agent \"\"; }}\n"
              f"location = /ret {{ return 201 created; }} }}")
    status, data = p.get("/hello?x=1", headers={"User-Agent": "t", "X-Forwarded-For": "1.2.3.4"})
    assert status == 200
    req = json.loads(data)
    assert req["path"] == "/hello?x=1"
    assert req["headers"]["host"] == f"127.0.0.1:{b.port}"        # $proxy_host
    assert req["headers"]["connection"] == "close"                 # nginx's default
    assert req["headers"]["user-agent"] == "t"
    status, data = p.get("/api/x", headers={"User-Agent": "t"})
    req = json.loads(data)
    assert req["path"] == "/v2/x" and req["headers"]["x-real"] == "127.0.0.1"
    assert "user-agent" not in req["headers"]                      # "" removes it
    assert p.get("/ret") == (201, b"created")
    status, data = p.get("/post", method="POST", body=b"a" * 5000)
    assert json.loads(data)["body"] == "a" * 5000
    # chunked request body, forwarded with a Content-Length
    c = p.conn()
    c.putrequest("POST", "/te-in")
    c.putheader("Transfer-Encoding", "chunked")
    c.endheaders()
    c.send(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    r = c.getresponse()
    req = json.loads(r.read())
    assert req["body"] == "abcde" and req["headers"]["content-length"] == "5"
    c.close()


def test_keepalive_pipelining_and_framing(proxy, backends):
    b = backends(tls=False)
    p = proxy(f"server {{ LISTEN location / {{ proxy_pass http://127.0.0.1:{b.port}; }} }}")
    s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
    s.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /chunked HTTP/1.1\r\nHost: x\r\n\r\n"
              b"GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = _read_all(s)
    assert data.count(b"HTTP/1.1 200 OK") == 3
    assert b'"path": "/a"' in data and b'"path": "/b"' in data
    assert b"Transfer-Encoding: chunked" in data and b"0\r\n\r\n" in data
    assert b"hello" in data and b"world" in data
    assert data.index(b'"/a"') < data.index(b"hello") < data.index(b'"/b"')
    # a truncated upstream body is never passed on as complete
    c = p.conn()
    c.request("GET", "/truncated")
    r = c.getresponse()
    with pytest.raises(http.client.IncompleteRead):
        r.read()
    c.close()
    # a large body with back-pressure arrives whole
    status, data = p.get("/big/3000000")
    assert status == 200 and len(data) == 3000000


def test_pipelined_input_beyond_the_read_ahead_bound(proxy, backends):
    """More pipelined requests than the 64 KiB the proxy reads ahead while one
    is answered: reading pauses and resumes, every request is answered, in
    order."""
    b = backends(tls=False)
    p = proxy(f"server {{ LISTEN location / {{ proxy_pass http://127.0.0.1:{b.port}; }} }}")
    n = 800                                        # ~140 KiB of requests
    reqs = b"".join(f"GET /p{i:04d} HTTP/1.1\r\nHost: x\r\nX-Pad: {'p' * 140}\r\n\r\n"
                    .encode() for i in range(n - 1))
    reqs += f"GET /p{n - 1:04d} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    assert len(reqs) > 2 * 65536
    data = _raw(p.port, reqs)
    paths = [int(x) for x in re.findall(rb'"path": "/p(\d{4})"', data)]
    assert paths == list(range(n))


def test_header_line_arriving_in_small_pieces(proxy, backends):
    """A 20 KB header line sent 1 KB at a time spans several input buffer
    segments (proxy_readln() falls back to evbuffer_readln() past four)."""
    b = backends(tls=False)
    p = proxy(f"server {{ LISTEN location / {{ proxy_pass http://127.0.0.1:{b.port}; }} }}")
    req = (b"GET /long HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 20000
           + b"\r\nConnection: close\r\n\r\n")
    s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
    for i in range(0, len(req), 1000):
        s.sendall(req[i:i + 1000])
        time.sleep(0.002)
    data = _read_all(s)
    assert data.startswith(b"HTTP/1.1 200 OK")
    assert len(b.requests[0]["headers"]["x-long"]) == 20000


def _read_all(s):
    """Everything the socket sends until the peer closes; closes it."""
    out = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    s.close()
    return out


def _raw(port, data):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(data)
    return _read_all(s)


def test_request_header_lines(proxy, backends):
    """One header-line parser for requests and responses: no space after the
    colon and an empty value are valid (nginx: 200); whitespace in the name
    or before the colon, an empty name and a folded line are 400."""
    b = backends(tls=False)
    p = proxy(f"server {{ LISTEN location / {{ proxy_pass http://127.0.0.1:{b.port}; }} }}")
    out = _raw(p.port, b"GET /h HTTP/1.1\r\nHost: x\r\nX-A:b\r\nX-Empty:\r\nX-T: \t v \t\r\n"
               b"Connection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 "), out[:200]
    seen = json.loads(out.split(b"\r\n\r\n", 1)[1])["headers"]
    assert seen["x-a"] == "b" and seen["x-empty"] == "" and seen["x-t"] == "v"
    for bad in (b"X A: b", b"X-A : b", b"X-A\t: b", b": b", b"X-A", b" X-A: b"):
        out = _raw(p.port, b"GET /h HTTP/1.1\r\nHost: x\r\n" + bad + b"\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 400 "), (bad, out[:200])
    assert p.get("/after")[0] == 200


def test_response_header_lines(proxy):
    good = raw_upstream(b"HTTP/1.1 200 OK\r\nX-Up:v\r\nX-Empty:\r\n")
    bad = {h: raw_upstream(b"HTTP/1.1 200 OK\r\n" + h + b"\r\n")
           for h in (b"X Up: v", b"X-Up : v", b": v", b"X-Up")}
    locs = "".join(f"location /bad{i}/ {{ proxy_pass http://127.0.0.1:{s.getsockname()[1]}; }}\n"
                   for i, s in enumerate(bad.values()))
    p = proxy(f"server {{ LISTEN location / {{ proxy_pass http://127.0.0.1:"
              f"{good.getsockname()[1]}; }}\n{locs} }}")
    try:
        out = _raw(p.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head, body = out.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 200 ") and body == b"ok", out
        assert b"\r\nX-Up: v" in head and b"\r\nX-Empty: \r\n" in head + b"\r\n", head
        for i, h in enumerate(bad):
            assert p.get(f"/bad{i}/")[0] == 502, h
        assert p.error_log().count("upstream sent invalid header") >= len(bad)
    finally:
        good.close()
        for s in bad.values():
            s.close()


def test_plain_upstream_down_is_502(proxy):
    p = proxy(f"server {{ LISTEN location / {{ proxy_pass http://127.0.0.1:{free_port()}; }} }}")
    assert p.get("/")[0] == 502
    assert "connect() failed (111: Connection refused) while connecting to upstream" in p.error_log()
