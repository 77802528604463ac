"""What a route needs from the request: the app's Pcloud, the JSON body, the signed-in user."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import wraps
from typing import Any, TypeVar

from flask import current_app, g, request

from pcloud.config import Settings
from pcloud.core import Pcloud
from pcloud.errors import BadRequest, PayloadTooLarge, Unauthorized
from pcloud.services import sessions
from pcloud.services.sessions import Client, SignedIn
from pcloud.serving import RECEIVED_BODY, SIGNED_IN_USER
from pcloud.sizes import format_size

MAX_JSON_BYTES = 64 * 1024
# View attributes that pcloud.api.bodies reads when a request's headers are in.
RECEIVES_BODY = "pcloud_receives_body"  # how the server may receive its body (receives_body)
QUICK = "pcloud_quick"  # set by @quick
SIGNS_IN = "pcloud_signs_in"  # set by @login_required: a body is refused early without sign-in
BODY_LIMIT = "pcloud_body_limit"  # set by @limits_body
# The WSGI environ key of the sign-in already checked from the headers, before the body
# arrived (pcloud.api.bodies): the view need not check it again.
SIGNED_IN = "pcloud.signed_in"
View = TypeVar("View", bound=Callable[..., Any])


def pcloud() -> Pcloud:
    return current_app.extensions["pcloud"]


def receives_body(kind: str) -> Callable[[View], View]:
    """Mark a view whose request body the server may receive as it arrives, into the
    store, instead of buffering it first: "multipart" (a file upload) or "tus" (a piece
    of a resumable upload). The view then finds it with received_body()."""

    def mark(view: View) -> View:
        setattr(view, RECEIVES_BODY, kind)
        return view

    return mark


def limits_body(limit: Callable[[Settings], int], too_large: str) -> Callable[[View], View]:
    """Hold a view's request body to `limit(settings)` bytes instead of the upload limit;
    the server refuses a larger one from its Content-Length, before reading it, with a
    413 saying `too_large` (its `{size}`: the limit, as format_size writes it)."""

    def mark(view: View) -> View:
        setattr(view, BODY_LIMIT, (limit, too_large))
        return view

    return mark


def quick(view: View) -> View:
    """Mark a view that answers from the database and the local disk alone, in a few
    milliseconds, never waiting on anything else (the network, a password hash, hashing
    a whole file): the server may run it in its event loop instead of handing it to a
    worker thread (see pcloud.server.loop.LoopDispatcher). Unmarked views run in threads."""
    setattr(view, QUICK, True)
    return view


QuickTest = Callable[[dict[str, Any], Mapping[str, str], dict[str, list[str]]], object]
# The WSGI environ key of what a @quick_when test found, for its view (quick_found()).
QUICK_FOUND = "pcloud.quick_found"


def quick_when(test: QuickTest) -> Callable[[View], View]:
    """Mark a view quick for the requests that `test(route arguments, headers, query)`
    says are (headers as waitress keeps them: `ACCEPT`; the query string parsed, as
    urllib's parse_qs gives it): a thumbnail already made is sent from the disk, one not
    made yet waits on a decoder, in a thread. The test runs before the request's body
    arrives, so it must itself be quick (a lookup or two). A test answering anything
    truthy but True (what its lookup found) makes the request quick and hands that to
    the view, as quick_found(): the view need not look it up again."""

    def mark(view: View) -> View:
        setattr(view, QUICK, test)
        return view

    return mark


def quick_found() -> Any | None:
    """What the view's @quick_when test found when the request's headers came in (None
    under a server that does not run the test, such as Flask's test client)."""
    return request.environ.get(QUICK_FOUND)


def received_body() -> Any | None:
    """What the server received of this request's body before the view ran, if anything."""
    return request.environ.get(RECEIVED_BODY)


def json_body(max_bytes: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """The request's JSON object. Raises BadRequest for anything else."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise PayloadTooLarge(f"JSON body is larger than {format_size(max_bytes)}")
    request.max_content_length = max_bytes  # also bounds a body of unknown length
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise BadRequest("Request body must be a JSON object")
    for field, value in body.items():
        # No stored text may hold NUL (PostgreSQL cannot), so no lookup should see one.
        if isinstance(value, str) and "\x00" in value:
            raise BadRequest(f"'{field}' may not contain NUL characters")
    return body


def required(body: dict[str, Any], *fields: str) -> list[str]:
    """The values of text fields that must be present and non-empty, in order."""
    missing = [field for field in fields if body.get(field) in (None, "")]
    if missing:
        raise BadRequest(f"Missing field: {', '.join(missing)}")
    for field in fields:
        if not isinstance(body[field], str):
            raise BadRequest(f"'{field}' must be a string")
    return [body[field] for field in fields]


def login_required(view: View) -> View:
    """Let the request through only with a valid `Authorization: Bearer <access token>`."""

    @wraps(view)
    def authenticated_view(*args: Any, **kwargs: Any) -> Any:
        environ = request.environ
        signed_in = environ.get(SIGNED_IN)  # checked before the body arrived, if it had one
        if signed_in is None:
            signed_in = authenticate(
                pcloud(), request.headers.get("Authorization"), request.remote_addr
            )
        g.signed_in = signed_in
        environ[SIGNED_IN_USER] = signed_in.user_id  # for the access log
        return view(*args, **kwargs)

    setattr(authenticated_view, SIGNS_IN, True)
    return authenticated_view  # type: ignore[return-value]


def authenticate(app: Pcloud, header: str | None, ip_address: str | None = None) -> SignedIn:
    """Who an `Authorization: Bearer <access token>` header speaks for. Raises
    Unauthorized. (login_required, and a tus piece whose connection broke off before
    its view could run, pcloud.api.tus.receive_piece.)"""
    if not header:
        raise Unauthorized("Missing Authorization header")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise Unauthorized("Authorization header must be 'Bearer <access token>'")
    claims = app.access_tokens.claims(token)
    return sessions.check_access(claims, ip_address)


def signed_in() -> SignedIn:
    """Who the request speaks for (in a view behind login_required)."""
    return g.signed_in


def current_user_id() -> int:
    return g.signed_in.user_id


def current_session_id() -> str:
    return g.signed_in.session_id


def client(device_name: str | None = None) -> Client:
    """The device making this request, as its session records it."""
    return Client(
        ip_address=request.remote_addr,
        user_agent=request.headers.get("User-Agent"),
        device_name=sessions.validate_device_name(device_name),
    )
