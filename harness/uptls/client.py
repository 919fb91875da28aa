"""The client: one HTTP request to the target, and what came back.

Each request is a new client connection (Connection: close), so every
request can make the proxy open (or reuse) an upstream connection of its
own choosing. The body is read to the end of its framing: an answer cut
short must show (Response.complete = False, with why in .error).
"""

import http.client
import time

from .results import Response

REQUEST_TIMEOUT = 15.0    # the rendered proxy timeouts are 5 s connect, 10 s read
MAX_BODY = 1 << 20


def request(host, port, path, client=None):
    """GET path from host:port; a Response, never an exception. client: a
    step's [client] table (scenario.CLIENT_KEYS), what a client controls."""
    headers = {"Connection": "close", "User-Agent": "uptls"}
    if client:
        headers.update(client.get("headers") or {})
        if client.get("host"):
            headers["Host"] = client["host"]
        if client.get("absolute_form"):
            path = f"http://{client['absolute_form']}{path}"
    conn = http.client.HTTPConnection(host, port, timeout=REQUEST_TIMEOUT)
    t0 = time.monotonic()

    def took():
        return round((time.monotonic() - t0) * 1000, 1)

    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
    except (OSError, http.client.HTTPException) as e:
        conn.close()
        return Response(status=f"no response: {type(e).__name__}: {e}", backend=None,
                        time_ms=took())
    status, backend = resp.status, resp.getheader("X-Uptls-Backend")
    complete, note, error = True, None, None
    try:
        body = resp.read(MAX_BODY)
        # read(amt) returns short at EOF instead of raising: what the
        # Content-Length still promised is in resp.length.
        if resp.length:
            if len(body) >= MAX_BODY:
                note = f"body larger than {MAX_BODY} bytes, not read to the end"
            else:
                complete = False
                error = (f"body ended after {len(body)} bytes, {resp.length} "
                         "short of its Content-Length")
    except http.client.IncompleteRead as e:
        body, complete = e.partial, False
        error = f"body ended after {len(e.partial)} bytes, before its framing did"
    except (OSError, http.client.HTTPException) as e:
        body, complete = b"", False
        error = f"{type(e).__name__}: {e}"
    finally:
        conn.close()
    return Response(status=status, backend=backend, complete=complete, note=note, error=error,
                    body=body.decode(errors="replace")[:200], time_ms=took())
