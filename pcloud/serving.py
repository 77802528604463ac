"""What pcloud's HTTP server (pcloud.server) and the app (pcloud.api) tell each other.

The server knows no routes. When a request's headers are complete, before any byte of its
body is read, it calls the app's `previews(method, path, headers, body_length)` and
acts on the Preview it returns: who receives the body as it arrives, whether the view may
run in the event loop, how large the body may be, or a refusal to answer at once (the
body never read). After the app has run, it reads who was signed in from the WSGI
environ, for the access log. This module imports nothing, so that either side can use it
without knowing the other.
"""

# WSGI environ keys.
RECEIVED_BODY = "pcloud.received_body"  # the BodyReceiver that took the body, if one did
SIGNED_IN_USER = "pcloud.user_id"  # who the request spoke for (set by the app's sign-in check)
ANSWER_LINE = "pcloud.answer"  # the app's answer line, "200 OK" (kept by the server for its log)


class BodyReceiver:
    """Takes a request's body piece by piece as the server reads it from the connection,
    before the view runs (the view finds it under RECEIVED_BODY). A contract, written as
    the methods a receiver has; nothing here is called."""

    def receive(self, data: bytes) -> None:
        """The body's next bytes, as they arrive. Never raises: errors wait for the view."""

    def close(self) -> None:
        """The request is over: undo whatever the view did not take."""

    def broken(self) -> None:
        """The connection broke off (or the server stopped) before the whole body arrived,
        so the view never runs: keep what may be kept of what did arrive. Never raises.
        close() follows."""


class Refusal:
    """An answer the server gives from the headers alone, before reading the body, then
    closing the connection (the body is never read): a 401 for an upload without a valid
    sign-in, a 507 for one whose Content-Length is past the quota."""

    __slots__ = ("code", "reason", "body", "headers")

    def __init__(self, code: int, reason: str, body: bytes, headers: tuple = ()) -> None:
        self.code = code  # 401
        self.reason = reason  # "Unauthorized"
        self.body = body  # the JSON answer, `{"error": "..."}`
        self.headers = headers  # extra (name, value) pairs


class Preview:
    """What the app tells the server of a request once its headers are in."""

    __slots__ = ("receiver", "quick", "body_limit", "too_large", "refusal", "environ")

    def __init__(
        self,
        receiver: "BodyReceiver | None" = None,
        quick: bool = False,
        body_limit: "int | None" = None,
        too_large: str = "",
        refusal: "Refusal | None" = None,
        environ: "dict | None" = None,
    ) -> None:
        self.receiver = receiver  # who takes the body as it arrives; None: buffer it
        self.quick = quick  # the view may run in the event loop (it never waits long)
        self.body_limit = body_limit  # the largest body allowed, bytes; None: the server's
        self.too_large = too_large  # what a 413 for a body past body_limit says
        self.refusal = refusal  # answer this at once, without reading the body
        self.environ = environ  # added to the request's WSGI environ, for the app


class ServedApp:
    """What one worker process serves, made in that process (after the fork): the WSGI
    app, its previews (called with the method, the path, the headers as waitress keeps
    them, upper case with `_` for `-`, the body's length: None when chunked, and the
    query string), and what to call when the worker stops."""

    __slots__ = ("wsgi", "previews", "close")

    def __init__(self, wsgi: object, previews: object, close: object) -> None:
        self.wsgi = wsgi  # a WSGI callable
        self.previews = previews  # (method, path, headers, body_length, query) -> Preview
        self.close = close  # () -> None


NO_PREVIEW = Preview()
