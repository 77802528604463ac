"""The server's own answers, in the API's one error shape: `{"error": "..."}` JSON.

Waitress answers what it refuses itself (a body past the limit, a malformed request,
headers too large, a transfer coding it does not know, a crash) in plain text; pcloud's
connection (connection.py) answers each with the text below instead, and so do the
refusals the server adds: a request whose headers took too long (408), a client with too
many connections (503), and the app's early refusals (pcloud.serving.Refusal). Sizes are
written for people (pcloud.sizes.format_size).
"""

from __future__ import annotations

import json

from pcloud.sizes import format_size

JSON = ("Content-Type", "application/json")
TOO_LARGE = "Request body is larger than this server accepts ({size})"
HEADERS_TOO_LARGE = "Request headers are larger than this server accepts ({size})"
MALFORMED = "Malformed request: {detail}"
NOT_IMPLEMENTED = "Transfer-Encoding is not supported: send Content-Length, or chunked"
INTERNAL = "Internal server error"
HEADER_TIMEOUT = "The request's headers did not arrive within {seconds} s"
TOO_MANY_CONNECTIONS = (
    "Too many connections from your address (at most {limit}): close some and try again"
)


def json_body(text: str) -> bytes:
    """`{"error":"..."}`, compact, as Flask's jsonify writes it for the API's errors."""
    return json.dumps({"error": text}, separators=(",", ":")).encode()


def waitress_error_text(code: int, detail: str, body_limit: int, header_limit: int) -> str:
    """What the client hears of an error waitress found in its request (`detail`:
    waitress's own words; `body_limit` and `header_limit`: the largest allowed, bytes)."""
    if code == 413:
        return TOO_LARGE.format(size=format_size(body_limit))
    if code == 431:
        return HEADERS_TOO_LARGE.format(size=format_size(header_limit))
    if code == 400:
        return MALFORMED.format(detail=detail.rstrip(".") or "bad syntax")
    if code == 501:
        return NOT_IMPLEMENTED
    return INTERNAL


def raw_answer(line: str, text: str) -> bytes:
    """A whole HTTP answer that closes the connection, for refusals outside any request
    (the 408 of a request that never finished its headers, the 503 of one connection too
    many): written straight to the socket."""
    body = json_body(text)
    head = (
        f"HTTP/1.1 {line}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body
