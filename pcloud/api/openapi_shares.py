"""The OpenAPI document's part for thumbnails, share links and their public pages
(merged into pcloud.api.openapi.document)."""

from __future__ import annotations

from typing import Any

from pcloud.api.openapi import (
    FILE_ID,
    FOLDER_ID,
    ID,
    NEW_ID,
    PATH_ID,
    TUS_RESUMABLE,
    TUS_STATE_HEADERS,
    UPLOAD_ID,
    V1,
    _answer,
    _errors,
    _header,
    _json_body,
    _link,
    _object,
    _operation,
    _path_parameter,
    _query,
    _ref,
    _string,
)
from pcloud.services import shares

Schema = dict[str, Any]
HTML = "text/html"
NULLABLE_TIME = {"type": ["string", "null"]}
MEDIA_FIELDS: Schema = {
    "taken_at": {
        "type": ["string", "null"],
        "description": "Capture time as the camera's clock showed it, with its UTC offset "
        "when known ('2024-05-01T14:00:00+02:00'); null until pcloud has looked at the content",
    },
    "width": {"type": ["integer", "null"]},
    "height": {"type": ["integer", "null"]},
    "duration": {"type": ["number", "null"], "description": "Seconds, for videos"},
}
SHARE = _object(
    [
        "id",
        "type",
        "item_id",
        "name",
        "mode",
        "has_password",
        "expires_at",
        "max_downloads",
        "downloads",
        "uploads",
        "created_at",
        "revoked_at",
        "state",
    ],
    {
        "id": {"type": "integer"},
        "type": _string(enum=["file", "folder"]),
        "item_id": {"type": "integer"},
        "name": {"type": ["string", "null"]},
        "mode": _string(enum=["view", "upload"]),
        "has_password": {"type": "boolean"},
        "expires_at": NULLABLE_TIME,
        "max_downloads": {"type": ["integer", "null"]},
        "downloads": {"type": "integer"},
        "uploads": {"type": "integer"},
        "created_at": _string(),
        "revoked_at": NULLABLE_TIME,
        "state": _string(enum=["active", "revoked", "expired", "used up"]),
    },
)
TOKEN = _path_parameter("token", "The link's secret, from POST /api/v1/shares")
SHARE_ID = {**_path_parameter("share_id", "A link's id"), "schema": PATH_ID}
SIZE = _query("size", type="integer", enum=[256, 1024])
BYTES = {"200": {"description": "The bytes", "content": {"*/*": {}}}}


def _page(description: str) -> Schema:
    return {"description": description, "content": {HTML: {}}}


def _page_operation(summary: str, parameters: list[Schema], **extra: Any) -> Schema:
    return {
        "summary": summary,
        "security": [],
        "parameters": parameters,
        "responses": {
            "200": _page("The page"),
            "401": _page("The link's password page (or a wrong password)"),
            "403": _page("Not what this link is for"),
            "404": {
                "description": "No such link, or nothing of it here (JSON for a URL of no route)",
                "content": {HTML: {}, "application/json": {"schema": _ref("Error")}},
            },
            "410": _page("Expired, revoked, used up, or its file or folder is gone"),
            "429": {**_page("Too many wrong passwords"), "headers": {"Retry-After": {}}},
        },
        **extra,
    }


def _public(summary: str, answers: Schema, *statuses: int, **extra: Any) -> Schema:
    return _operation(summary, answers, 401, 403, 404, 410, *statuses, auth=False, **extra)


def schemas() -> dict[str, Schema]:
    return {"Share": SHARE}


def add_media_fields(document_schemas: dict[str, Schema]) -> None:
    """Files' photo details in entries and changes."""
    for name in ("Entry", "Change"):
        document_schemas[name]["properties"].update(MEDIA_FIELDS)


def paths() -> dict[str, Schema]:
    thumbnail_answers = {
        "200": {"description": "WebP or JPEG (by Accept)", "content": {"image/*": {}}},
        "304": {"description": "Not modified"},
    }
    return {
        f"{V1}/files/{{file_id}}/thumbnail": {
            "get": _operation(
                "A thumbnail of a picture or video (ETag; cached for a year)",
                thumbnail_answers,
                400,
                404,
                415,
                422,
                503,
                parameters=[FILE_ID, SIZE],
            )
        },
        f"{V1}/shares": {
            "post": _operation(
                "Make a share link to a file or folder",
                {
                    "201": _answer(
                        "The link; `path` and `url` are shown this once",
                        {
                            **SHARE,
                            "required": [*SHARE["required"], "path", "url"],
                            "properties": {
                                **SHARE["properties"],
                                "path": _string(),
                                "url": _string(),
                            },
                        },
                        links={
                            "Revoke": _link(
                                f"{V1}/shares/{{share_id}}", "delete", **{"path.share_id": NEW_ID}
                            )
                        },
                    )
                },
                400,
                404,
                body=_json_body(
                    {
                        "file_id": ID,
                        "folder_id": {"anyOf": [ID, {"const": "root"}]},
                        "mode": _string(enum=list(shares.MODES)),
                        "password": _string(minLength=1, maxLength=shares.MAX_PASSWORD),
                        "expires_at": _string(format="date-time", description="In the future"),
                        "expires_in": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": shares.MAX_EXPIRES_IN,
                        },
                        "max_downloads": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": shares.MAX_DOWNLOADS,
                        },
                    },
                    [],
                    # a file or a folder; an upload-only link is a folder's; one expiry
                    oneOf=[{"required": ["file_id"]}, {"required": ["folder_id"]}],
                    **{
                        "not": {"required": ["expires_at", "expires_in"]},
                        "if": {"required": ["mode"], "properties": {"mode": {"const": "upload"}}},
                        "then": {"required": ["folder_id"]},
                    },
                ),
            ),
            "get": _operation(
                "My share links, newest first",
                {
                    "200": _answer(
                        "",
                        _object(["shares"], {"shares": {"type": "array", "items": _ref("Share")}}),
                    )
                },
            ),
        },
        f"{V1}/shares/{{share_id}}": {
            "delete": _operation(
                "Revoke a share link at once",
                {"200": _answer("Revoked", _ref("Message"))},
                404,
                parameters=[SHARE_ID],
            )
        },
        "/s/{token}": {"get": _page_operation("A share link's page", [TOKEN])},
        "/s/{token}/d/{folder_id}": {
            "get": _page_operation("A folder below a shared folder", [TOKEN, FOLDER_ID])
        },
        "/s/{token}/unlock": {
            "post": _page_operation(
                "Send a link's password; 303 to its page with a cookie when right",
                [TOKEN],
                requestBody={
                    "required": True,
                    "content": {
                        "application/x-www-form-urlencoded": {
                            "schema": _object([], {"password": _string()})
                        }
                    },
                },
            )
            | {
                "responses": {
                    **_page_operation("", [])["responses"],
                    "303": {"description": "Right: to the page, with its cookie"},
                }
            }
        },
        "/s/static/{name}": {
            "get": {
                "summary": "The share pages' stylesheets and script",
                "security": [],
                "parameters": [_path_parameter("name", "base.css, share.css or share.js")],
                "responses": {
                    "200": {"description": "", "content": {"text/css": {}, "text/javascript": {}}},
                    "304": {"description": "Not modified"},
                    **_errors(404),
                },
            }
        },
        "/s/{token}/download": {
            "get": _public(
                "A file link's file (counts as a download)", _ranged(), 416, parameters=[TOKEN]
            )
        },
        "/s/{token}/file/{file_id}": {
            "get": _public(
                "A file below a shared folder (counts as a download)",
                _ranged(),
                416,
                parameters=[TOKEN, FILE_ID],
            )
        },
        "/s/{token}/raw": {
            "get": _public(
                "A file link's picture or video, inline (Range)", _ranged(), 416, parameters=[TOKEN]
            )
        },
        "/s/{token}/raw/{file_id}": {
            "get": _public(
                "A picture or video below a shared folder, inline (Range)",
                _ranged(),
                416,
                parameters=[TOKEN, FILE_ID],
            )
        },
        "/s/{token}/thumbnail": {
            "get": _public(
                "A file link's thumbnail",
                thumbnail_answers,
                400,
                415,
                422,
                503,
                parameters=[TOKEN, SIZE],
            )
        },
        "/s/{token}/thumbnail/{file_id}": {
            "get": _public(
                "A thumbnail of a file below a shared folder",
                thumbnail_answers,
                400,
                415,
                422,
                503,
                parameters=[TOKEN, FILE_ID, SIZE],
            )
        },
        "/s/{token}/zip": {
            "get": _public(
                "The shared folder as one streamed ZIP (one download)",
                {"200": {"description": "", "content": {"application/zip": {}}}},
                parameters=[TOKEN],
            )
        },
        "/s/{token}/zip/{folder_id}": {
            "get": _public(
                "A folder below the shared one as one streamed ZIP (one download)",
                {"200": {"description": "", "content": {"application/zip": {}}}},
                parameters=[TOKEN, FOLDER_ID],
            )
        },
        "/s/{token}/tus/": {
            "options": _operation(
                "tus discovery for a file drop",
                {"204": {"description": "As OPTIONS /tus/"}},
                auth=False,
                parameters=[TOKEN],
            ),
            "post": _public(
                "Start an upload into a file drop (tus creation)",
                {
                    "201": {
                        "description": "Created; Location names the upload",
                        "headers": {"Location": {"schema": _string()}, **TUS_STATE_HEADERS},
                    }
                },
                400,
                412,
                413,
                507,
                parameters=[
                    TOKEN,
                    TUS_RESUMABLE,
                    _header("Upload-Length", required=True, minimum=0, type="integer"),
                    _header("Upload-Metadata"),
                ],
            ),
        },
        "/s/{token}/tus/{upload_id}": {
            "options": _operation(
                "tus discovery",
                {"204": {"description": "As OPTIONS /tus/"}},
                auth=False,
                parameters=[TOKEN, UPLOAD_ID],
            ),
            "head": _public(
                "Where a file drop's upload stands",
                {"200": {"description": "Upload-Offset", "headers": TUS_STATE_HEADERS}},
                412,
                parameters=[TOKEN, UPLOAD_ID, TUS_RESUMABLE],
            ),
            "patch": _public(
                "Add bytes to a file drop's upload",
                {"204": {"description": "Stored", "headers": TUS_STATE_HEADERS}},
                400,
                409,
                412,
                413,
                415,
                423,
                460,
                507,
                parameters=[
                    TOKEN,
                    UPLOAD_ID,
                    TUS_RESUMABLE,
                    _header("Upload-Offset", required=True, minimum=0, type="integer"),
                    _header("Upload-Checksum"),
                ],
                body={
                    "required": True,
                    "content": {
                        "application/offset+octet-stream": {"schema": _string(format="binary")}
                    },
                },
            ),
            "delete": _public(
                "Give up a file drop's upload",
                {"204": {"description": "Gone"}},
                412,
                423,
                parameters=[TOKEN, UPLOAD_ID, TUS_RESUMABLE],
            ),
        },
    }


def _ranged() -> Schema:
    return {
        **BYTES,
        "206": {"description": "The requested range", "content": {"*/*": {}}},
        "304": {"description": "Not modified (If-None-Match)"},
    }
