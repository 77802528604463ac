"""A signed-in user's share links, under /api/v1/shares: make one, list them, revoke one.
(The links' public pages are pcloud.api.share_pages.)"""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, jsonify, request

from pcloud.api.context import current_user_id, json_body, login_required, pcloud
from pcloud.api.tree import PREFIX
from pcloud.errors import BadRequest
from pcloud.models import Share, utc_now
from pcloud.moments import parse_moment
from pcloud.services import shares, tree
from pcloud.services.entries import iso_millis

blueprint = Blueprint("shares", __name__, url_prefix=PREFIX)


@blueprint.post("/shares")
@login_required
def create_share():
    body = json_body()
    new = shares.create(
        pcloud().settings,
        current_user_id(),
        file_id=body.get("file_id"),
        folder_id=body.get("folder_id"),
        mode=body.get("mode", shares.VIEW),
        password=body.get("password"),
        expires_at=_expiry(body),
        max_downloads=body.get("max_downloads"),
        ip_address=request.remote_addr,
    )
    path = f"/s/{new.token}"
    return jsonify(
        {**share_json(new.share), "path": path, "url": request.host_url.rstrip("/") + path}
    ), 201


@blueprint.get("/shares")
@login_required
def list_shares():
    return jsonify(
        {"shares": [share_json(share) for share, _ in shares.list_of(current_user_id())]}
    )


@blueprint.delete("/shares/<id:share_id>")
@login_required
def revoke_share(share_id: int):
    shares.revoke(share_id, current_user_id(), ip_address=request.remote_addr)
    return jsonify({"message": "The link no longer works"})


def _expiry(body: dict):
    if body.get("expires_at") is not None and body.get("expires_in") is not None:
        raise BadRequest("Send 'expires_at' or 'expires_in', not both")
    seconds = body.get("expires_in")
    if seconds is not None:
        if (seconds := tree.whole_number(seconds, 1, shares.MAX_EXPIRES_IN)) is None:
            raise BadRequest("'expires_in' must be a whole number of seconds")
        return utc_now() + timedelta(seconds=seconds)
    text = body.get("expires_at")
    if text is None:
        return None
    if not isinstance(text, str):
        raise BadRequest("'expires_at' must be ISO 8601 text")
    try:
        return parse_moment(text)
    except ValueError:
        raise BadRequest("'expires_at' must be ISO 8601, e.g. 2026-12-31T23:59:00Z") from None


def share_json(share: Share) -> dict:
    """What the owner is told of a link (never its token, which is not kept)."""
    item_type, item_id, name = shares.item_of(share)
    return {
        "id": share.id,
        "type": item_type,
        "item_id": item_id,
        "name": name,
        "mode": share.mode,
        "has_password": share.password_hash is not None,
        "expires_at": None if share.expires_at is None else iso_millis(share.expires_at),
        "max_downloads": share.max_downloads,
        "downloads": share.downloads,
        "uploads": share.uploads,
        "created_at": iso_millis(share.created_at),
        "revoked_at": None if share.revoked_at is None else iso_millis(share.revoked_at),
        "state": shares.state(share),
    }
