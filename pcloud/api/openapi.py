"""The OpenAPI 3.1 document of the whole API, served at /openapi.json.

Written as data beside the routes it describes; the tests keep it true: every route of
the app is documented and every documented route exists (tests/test_openapi.py), real
answers are checked against these schemas, and schemathesis fuzzes a running
`pcloud serve` from this document.
"""

from __future__ import annotations

import base64
from typing import Any

from flask import Blueprint, current_app, jsonify

from pcloud import __version__
from pcloud.services import (
    changes,
    folders,
    from_content,
    names,
    sessions,
    tree,
    upload_check,
    users,
)
from pcloud.services.uploads.hashes import CHECKSUM_ALGORITHMS

blueprint = Blueprint("openapi", __name__)

JSON = "application/json"
Schema = dict[str, Any]


PASSWORD_POLICY = (
    "At least PASSWORD_MIN_LENGTH characters (8 unless the server says otherwise), and "
    "neither the username nor the email (else 400)"
)


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _string(**extra: Any) -> Schema:
    return {"type": "string", **extra}


def _object(required: list[str], properties: dict[str, Schema], **extra: Any) -> Schema:
    return {"type": "object", "required": required, "properties": properties, **extra}


TIMESTAMP = _string(description="ISO 8601 UTC, ending in Z", examples=["2026-11-25T09:30:00Z"])

# What the routes accept, as they check it (the constants are theirs): a client that
# keeps to these schemas is served, and a fuzzer that does reaches past the validation.
NOT_NUL = r"^[^\x00]*$"  # no stored text may hold NUL (context.json_body)
CONTROL = names.CONTROL_CHARACTERS.pattern[1:-1]  # inside [...]
NAME_CHARACTER = rf"[^/\\{CONTROL}]"
NAME = _string(
    minLength=1,
    maxLength=names.MAX_NAME_BYTES,
    pattern=rf"^{NAME_CHARACTER}*[^./\\{CONTROL}]{NAME_CHARACTER}*$",
    description=f"A file or folder name: at most {names.MAX_NAME_BYTES} bytes in UTF-8, no '/', "
    "'\\' or control characters, not only dots",
)
FILLED = _string(minLength=1, pattern=NOT_NUL)  # a field the route requires non-empty
SHA256 = _string(pattern="^[0-9a-fA-F]{64}$", description="SHA-256, hexadecimal")
MOMENT_IN = {
    "anyOf": [
        _string(format="date-time"),
        # from year 1 to 9999
        {"type": "integer", "minimum": -62135596800000, "maximum": 253402300799999},
    ],
    "description": "ISO 8601 (UTC when no offset is given), or epoch milliseconds",
}
USERNAME = _string(
    minLength=1,
    maxLength=users.MAX_USERNAME_LENGTH,
    pattern=rf"^[^{users.USERNAME_FORBIDDEN.pattern[1:-1]}]+$",
    description="No spaces, '@', '/', '\\' or control characters",
)
EMAIL = _string(
    maxLength=users.MAX_EMAIL_LENGTH,
    pattern=rf"^{users.EMAIL_SHAPE.pattern}$",
)
MESSAGE_ONLY = _object(["message"], {"message": _string()})

SCHEMAS: dict[str, Schema] = {
    "Error": _object(
        ["error"],
        {"error": _string(), "message": _string(), "retry_after": {"type": "integer"}},
        description="Every error. `message` only on Google sign-in's 409; `retry_after` on 429.",
    ),
    "Message": MESSAGE_ONLY,
    "SignedIn": _object(
        ["message", "access_token", "refresh_token"],
        {"message": _string(), "access_token": _string(), "refresh_token": _string()},
    ),
    "Refreshed": _object(
        ["access_token"],
        {
            "access_token": _string(),
            "refresh_token": _string(description="Only when rotation was asked for"),
        },
    ),
    "FileEntry": _object(
        ["filename", "file_type", "size", "modified_at"],
        {
            "filename": _string(),
            "file_type": _string(
                enum=["image", "video", "pdf", "text", "audio", "archive", "generic"]
            ),
            "size": {"type": "integer", "minimum": 0},
            "modified_at": TIMESTAMP,
        },
    ),
    "Session": _object(
        [
            "id",
            "current",
            "device_name",
            "user_agent",
            "ip_address",
            "method",
            "created_at",
            "last_seen_at",
            "expires_at",
        ],
        {
            "id": _string(),
            "current": {"type": "boolean"},
            "device_name": {"type": ["string", "null"]},
            "user_agent": {"type": ["string", "null"]},
            "ip_address": {"type": ["string", "null"]},
            "method": _string(enum=["password", "google", "legacy", "app-password"]),
            "created_at": TIMESTAMP,
            "last_seen_at": TIMESTAMP,
            "expires_at": TIMESTAMP,
        },
    ),
    "Me": _object(
        [
            "id",
            "username",
            "email",
            "google_linked",
            "has_password",
            "created_at",
            "session_id",
            "usage_bytes",
            "versions_bytes",
            "quota_bytes",
        ],
        {
            "id": {"type": "integer"},
            "username": _string(),
            "email": _string(),
            "google_linked": {"type": "boolean"},
            "has_password": {"type": "boolean"},
            "created_at": TIMESTAMP,
            "session_id": _string(),
            "usage_bytes": {
                "type": "integer",
                "description": "What counts in the quota: files (trash included) and versions",
            },
            "versions_bytes": {
                "type": "integer",
                "description": "The part of usage_bytes that earlier versions take",
            },
            "quota_bytes": {"type": ["integer", "null"]},
        },
    ),
}


def _json_body(properties: dict[str, Schema], required: list[str], **extra: Any) -> Schema:
    """A required JSON object body. Its text fields refuse NUL, as context.json_body does."""
    properties = {
        name: {**schema, "pattern": NOT_NUL}
        if schema.get("type") == "string" and "pattern" not in schema
        else schema
        for name, schema in properties.items()
    }
    return {
        "required": True,
        "content": {JSON: {"schema": _object(required, properties, **extra)}},
    }


def _answer(description: str, schema: Schema | None = None, **extra: Any) -> Schema:
    answer: Schema = {"description": description, **extra}
    if schema is not None:
        answer["content"] = {JSON: {"schema": schema}}
    return answer


def _errors(*statuses: int) -> dict[str, Schema]:
    texts = {
        400: "Missing or malformed field, or malformed JSON",
        401: "No valid access token (or credentials)",
        403: "Refused on this server: the account is disabled, registration is closed "
        "(or not open to this email), or Google sign-in is not enabled (share links: not "
        "what this link is for; folders: the root cannot be renamed, moved, copied or "
        "deleted)",
        404: "Not found (also anything of another user's)",
        405: "Method not allowed",
        409: "Conflict",
        410: "Gone (an expired upload; an unknown or too old cursor: list again; a share "
        "link expired, revoked or used up)",
        412: "Precondition failed (If-Match; tus: Tus-Resumable missing or not 1.0.0)",
        413: "Too large",
        415: "Wrong Content-Type (thumbnails: not a picture or a video)",
        416: "Range not satisfiable",
        422: "A picture or video that cannot be decoded (broken, too large, no frame)",
        423: "Another request is writing this upload",
        429: "Too many failed sign-ins",
        460: "Upload-Checksum does not match",
        503: "Unavailable: Google's certificates or the database cannot be reached",
        507: "Over the user's quota",
    }
    answers = {str(status): _answer(texts[status], _ref("Error")) for status in statuses}
    if "429" in answers:
        answers["429"]["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
    return answers


def _operation(
    summary: str,
    answers: dict[str, Schema],
    *error_statuses: int,
    body: Schema | None = None,
    auth: bool = True,
    parameters: list[Schema] | None = None,
) -> Schema:
    operation: Schema = {"summary": summary, "responses": {**answers, **_errors(*error_statuses)}}
    if auth:
        operation["security"] = [{"bearer": []}]
        operation["responses"].update(_errors(401))
    else:
        operation["security"] = []
    if body is not None:
        operation["requestBody"] = body
    if parameters:
        operation["parameters"] = parameters
    return operation


def _path_parameter(name: str, description: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


def _header(name: str, required: bool = False, **schema: Any) -> Schema:
    return {"name": name, "in": "header", "required": required, "schema": schema or _string()}


FILE_PART = _string(contentMediaType="application/octet-stream", description="The bytes")
FILENAME = _path_parameter("filename", "The file's name as listed (URL-encoded)")
SESSION_ID = _path_parameter("session_id", "A session's id, from GET /sessions")
UPLOAD_ID = _path_parameter("upload_id", "The id at the end of the upload's Location")
TUS_RESUMABLE = _header("Tus-Resumable", required=True, enum=["1.0.0"])
DEVICE_NAME = _string(
    maxLength=sessions.MAX_DEVICE_NAME,
    pattern=rf"^[^{CONTROL}]*$",
    description="Shown in the session list",
)
TUS_METADATA = r"^(filename|name) [A-Za-z0-9+/]+={0,2}(,[a-z_]+ [A-Za-z0-9+/]*={0,2})*$"
# Each algorithm's digest in base64, of its own length
TUS_CHECKSUM = "^({})$".format(
    "|".join(
        f"{name} [A-Za-z0-9+/]{{{len(encoded.rstrip('='))}}}{'=' * encoded.count('=')}"
        for name, make in CHECKSUM_ALGORITHMS.items()
        for encoded in [base64.b64encode(make().digest()).decode()]
    )
)


def _upload_links() -> dict[str, Schema]:
    """A new tus upload's id, from the end of its Location."""
    upload_id = {"path.upload_id": "$response.header.Location#regex:/tus/([^/?]+)$"}
    return {
        "Status": _link("/tus/{upload_id}", "head", **upload_id),
        "Append": _link("/tus/{upload_id}", "patch", **upload_id),
        "Terminate": _link("/tus/{upload_id}", "delete", **upload_id),
    }


TUS_STATE_HEADERS = {
    "Upload-Offset": {"schema": {"type": "integer"}},
    "Upload-Expires": {"schema": _string()},
    "Tus-Resumable": {"schema": _string()},
}


def _paths(password_min_length: int) -> dict[str, Schema]:
    password = _string(
        minLength=password_min_length,
        maxLength=users.MAX_PASSWORD_BYTES // 4,  # the limit is in bytes of UTF-8
        description=PASSWORD_POLICY,
    )
    return {
        "/": {
            "get": _operation(
                "Say that the server is running",
                {"200": {"description": "Plain text", "content": {"text/plain": {}}}},
                auth=False,
            )
        },
        "/openapi.json": {
            "get": _operation(
                "This document",
                {"200": _answer("The OpenAPI document", {"type": "object"})},
                auth=False,
            )
        },
        "/register": {
            "post": _operation(
                "Create an account (while REGISTRATION is open, for emails REGISTRATION_EMAILS "
                "allows)",
                {"201": _answer("Created", MESSAGE_ONLY)},
                400,
                403,
                409,
                body=_json_body(
                    {
                        "username": USERNAME,
                        "email": EMAIL,
                        "password": password,
                    },
                    ["username", "email", "password"],
                ),
                auth=False,
            )
        },
        "/login": {
            "post": _operation(
                "Sign in with a password: a new device session",
                {"200": _answer("Signed in", _ref("SignedIn"))},
                400,
                401,
                403,
                429,
                body=_json_body(
                    {
                        "login_identifier": {**FILLED, "description": "Username or email"},
                        "password": FILLED,
                        "device_name": DEVICE_NAME,
                    },
                    ["login_identifier", "password"],
                ),
                auth=False,
            )
        },
        "/login/google": {
            "post": _operation(
                "Sign in with a Google ID token (creating the account the first time)",
                {"200": _answer("Signed in", _ref("SignedIn"))},
                400,
                401,
                403,
                409,
                503,
                body=_json_body(
                    {"google_token": FILLED, "device_name": DEVICE_NAME}, ["google_token"]
                ),
                auth=False,
            )
        },
        "/token/refresh": {
            "post": _operation(
                "A new access token (and, with rotate, a new refresh token)",
                {"200": _answer("Refreshed", _ref("Refreshed"))},
                400,
                401,
                body=_json_body(
                    {"refresh_token": FILLED, "rotate": {"type": "boolean"}},
                    ["refresh_token"],
                ),
                auth=False,
            )
        },
        "/logout": {
            "post": _operation(
                "End the session a refresh token belongs to",
                {"200": _answer("Signed out", MESSAGE_ONLY)},
                400,
                401,
                body=_json_body({"refresh_token": FILLED}, ["refresh_token"]),
                auth=False,
            )
        },
        "/me": {"get": _operation("The signed-in account", {"200": _answer("", _ref("Me"))})},
        "/password": {
            "post": _operation(
                "Change the password; every other session ends",
                {
                    "200": _answer(
                        "Changed",
                        _object(
                            ["message", "sessions_revoked"],
                            {"message": _string(), "sessions_revoked": {"type": "integer"}},
                        ),
                    )
                },
                400,
                429,
                body=_json_body(
                    {"old_password": FILLED, "new_password": password},
                    ["old_password", "new_password"],
                ),
            )
        },
        "/sessions": {
            "get": _operation(
                "The account's live sessions, most recently used first",
                {
                    "200": _answer(
                        "",
                        _object(
                            ["sessions"], {"sessions": {"type": "array", "items": _ref("Session")}}
                        ),
                    )
                },
            )
        },
        "/sessions/{session_id}": {
            "delete": _operation(
                "Sign one device out, at once",
                {
                    "200": _answer(
                        "Revoked",
                        _object(["message", "id"], {"message": _string(), "id": _string()}),
                    )
                },
                404,
                parameters=[SESSION_ID],
            )
        },
        "/sessions/revoke-all": {
            "post": _operation(
                "Sign out everywhere (keep_current: except this device)",
                {
                    "200": _answer(
                        "Revoked",
                        _object(
                            ["message", "revoked"],
                            {"message": _string(), "revoked": {"type": "integer"}},
                        ),
                    )
                },
                400,
                body=_json_body({"keep_current": {"type": "boolean"}}, []),
            )
        },
        "/files": {
            "get": _operation(
                "Every file, sorted by name case-insensitively",
                {"200": _answer("", {"type": "array", "items": _ref("FileEntry")})},
            )
        },
        "/upload": {
            "post": _operation(
                "Upload a file (multipart field `file`); a taken name gets _1, _2, ...",
                {
                    "201": _answer(
                        "Stored",
                        _object(["message", "file"], {"message": _string(), "file": _string()}),
                    )
                },
                400,
                413,
                body={
                    "required": True,
                    "content": {
                        "multipart/form-data": {"schema": _object(["file"], {"file": FILE_PART})}
                    },
                },
            )
        },
        "/download/{filename}": {
            "get": _operation(
                "The file's bytes, as an attachment; Range, ETag, If-None-Match, If-Range",
                {
                    "200": {"description": "The bytes", "content": {"*/*": {}}},
                    "206": {"description": "The requested range", "content": {"*/*": {}}},
                    "304": {"description": "Not modified (If-None-Match)"},
                    "416": _answer("Range not satisfiable", _ref("Error")),
                },
                404,
                parameters=[FILENAME],
            )
        },
        "/delete/{filename}": {
            "delete": _operation(
                "Delete a file",
                {"200": _answer("Deleted", MESSAGE_ONLY)},
                404,
                parameters=[FILENAME],
            )
        },
        "/rename": {
            "put": _operation(
                "Rename a file",
                {
                    "200": _answer(
                        "Renamed",
                        _object(
                            ["message", "old_filename", "new_filename"],
                            {
                                "message": _string(),
                                "old_filename": _string(),
                                "new_filename": _string(),
                            },
                        ),
                    )
                },
                400,
                404,
                409,
                body=_json_body(
                    {"old_filename": FILLED, "new_filename": NAME},
                    ["old_filename", "new_filename"],
                ),
            )
        },
        "/tus/": {
            "options": _operation(
                "tus discovery: version, extensions, limits",
                {"204": {"description": "Tus-Version, Tus-Extension, Tus-Max-Size"}},
                auth=False,
            ),
            "post": _operation(
                "tus creation (and creation-with-upload)",
                {
                    "201": {
                        "description": "Created; Location names the upload",
                        "headers": {"Location": {"schema": _string()}, **TUS_STATE_HEADERS},
                        "links": _upload_links(),
                    }
                },
                400,
                409,
                412,
                413,
                415,
                460,
                parameters=[
                    TUS_RESUMABLE,
                    {
                        **_header("Upload-Length", minimum=0, type="integer"),
                        "description": "The upload's size; or send Upload-Defer-Length: 1 "
                        "instead (not both), and Upload-Length in a later PATCH",
                    },
                    _header("Upload-Defer-Length", enum=["1"]),
                    {
                        **_header("Upload-Metadata", required=True, pattern=TUS_METADATA),
                        "description": "Comma-separated `key base64-value` pairs: `filename` "
                        "(or `name`) is required; `modified_at`, `folder_id` optional",
                    },
                ],
            ),
        },
        "/tus/{upload_id}": {
            "options": _operation(
                "tus discovery",
                {"204": {"description": "As OPTIONS /tus/"}},
                auth=False,
                parameters=[UPLOAD_ID],
            ),
            "head": _operation(
                "Where an upload stands",
                {
                    "200": {
                        "description": "Upload-Offset and the rest",
                        "headers": TUS_STATE_HEADERS,
                    }
                },
                404,
                410,
                412,
                parameters=[UPLOAD_ID, TUS_RESUMABLE],
            ),
            "patch": _operation(
                "Add bytes at Upload-Offset",
                {"204": {"description": "Stored", "headers": TUS_STATE_HEADERS}},
                400,
                404,
                409,
                410,
                412,
                413,
                415,
                423,
                460,
                parameters=[
                    UPLOAD_ID,
                    TUS_RESUMABLE,
                    _header("Upload-Offset", required=True, minimum=0, type="integer"),
                    _header("Upload-Checksum", pattern=TUS_CHECKSUM),
                ],
                body={
                    "required": True,
                    "content": {
                        "application/offset+octet-stream": {"schema": _string(format="binary")}
                    },
                },
            ),
            "delete": _operation(
                "tus termination: forget the upload and its bytes",
                {"204": {"description": "Gone"}},
                404,
                410,
                412,
                423,
                parameters=[UPLOAD_ID, TUS_RESUMABLE],
            ),
        },
    }


# --- The sync API (/api/v1) -----------------------------------------------------------

V1 = "/api/v1"
ID = {"type": "integer", "minimum": 0, "maximum": tree.MAX_ID}  # what a row can have
PATH_ID = {**ID, "maximum": 10**18 - 1}  # pcloud.api.IdConverter's 18 digits
SCHEMAS.update(
    {
        "Entry": _object(
            ["type", "id", "name", "parent_id", "size", "modified_at", "sha256", "etag"],
            {
                "type": _string(enum=["file", "folder"]),
                "id": {"type": "integer"},
                "name": _string(),
                "parent_id": {"type": ["integer", "null"]},
                "size": {"type": ["integer", "null"]},
                "modified_at": TIMESTAMP,
                "sha256": {"type": ["string", "null"]},
                "etag": _string(),
                "file_type": {"type": ["string", "null"]},
            },
            description="A file or a folder. A folder's etag changes when anything below it does.",
        ),
        "Change": _object(
            ["cursor", "kind", "type", "id", "name", "at"],
            {
                "cursor": _string(),
                "kind": _string(
                    enum=["created", "modified", "moved", "renamed", "deleted", "restored"]
                ),
                "type": _string(
                    enum=["file", "folder", "version"],
                    description="A version's parent_id is its file's id",
                ),
                "id": {"type": "integer"},
                "parent_id": {"type": ["integer", "null"]},
                "name": {"type": ["string", "null"]},
                "at": TIMESTAMP,
            },
        ),
    }
)
ENTRY = _ref("Entry")
FOLDER_REF = {
    **_path_parameter("ref", "A folder's id, or `root`"),
    "schema": _string(pattern="^(root|[0-9]{1,18})$"),
}
FOLDER_ID = {**_path_parameter("folder_id", "A folder's id"), "schema": PATH_ID}
FILE_ID = {**_path_parameter("file_id", "A file's id"), "schema": PATH_ID}
ON_CONFLICT = {
    "name": "on_conflict",
    "in": "query",
    "description": "fail: a taken name is 409; rename: name_1.ext, ...",
    "schema": _string(enum=["fail", "rename"]),
}
ON_UPLOAD_CONFLICT = {
    **ON_CONFLICT,
    "description": ON_CONFLICT["description"] + "; replace: new content for that file",
    "schema": _string(enum=["fail", "rename", "replace"]),
}


NULLABLE_ID = {**ID, "type": ["integer", "null"]}
FROM_CONTENT = _object(
    ["sha256", "name"],
    {"sha256": SHA256, "name": NAME, "folder_id": NULLABLE_ID, "modified_at": MOMENT_IN},
)


def _one_of_given(*fields: str) -> list[Schema]:
    """anyOf: at least one of these fields, not null."""
    return [
        {"required": [field], "properties": {field: {"not": {"type": "null"}}}} for field in fields
    ]


# --- OpenAPI links: what one answer gives the next request (schemathesis follows them) ---

NEW_ID = "$response.body#/id"


def _link(path: str, method: str, **parameters: str) -> Schema:
    """A link to the operation at `path` and `method` of this document; parameters
    named `in.name` (path.file_id), values runtime expressions or constants."""
    pointer = path.replace("~", "~0").replace("/", "~1")
    return {"operationRef": f"#/paths/{pointer}/{method}", "parameters": parameters}


def _body_link(path: str, method: str, body: dict[str, str]) -> Schema:
    return {**_link(path, method), "requestBody": body}


def _folder_links(expression: str = NEW_ID) -> dict[str, Schema]:
    """What a folder's id (in an answer) leads to."""
    ref, folder_id = {"path.ref": expression}, {"path.folder_id": expression}
    return {
        "List": _link(f"{V1}/folders/{{ref}}", "get", **ref),
        "Zip": _link(f"{V1}/folders/{{ref}}/zip", "get", **ref),
        "UploadInto": _link(f"{V1}/folders/{{ref}}/files", "post", **ref),
        "CreateInside": _body_link(f"{V1}/folders", "post", {"parent_id": expression}),
        "RenameOrMove": _link(f"{V1}/folders/{{folder_id}}", "patch", **folder_id),
        "Copy": _link(f"{V1}/folders/{{folder_id}}/copy", "post", **folder_id),
        "Trash": _link(f"{V1}/folders/{{folder_id}}", "delete", **folder_id),
        "Share": _body_link(f"{V1}/shares", "post", {"folder_id": expression}),
    }


def _file_links(expression: str = NEW_ID) -> dict[str, Schema]:
    """What a file's id (in an answer) leads to."""
    file_id = {"path.file_id": expression}
    return {
        "Get": _link(f"{V1}/files/{{file_id}}", "get", **file_id),
        "Download": _link(f"{V1}/files/{{file_id}}/content", "get", **file_id),
        "Thumbnail": _link(f"{V1}/files/{{file_id}}/thumbnail", "get", **file_id),
        "Versions": _link(f"{V1}/files/{{file_id}}/versions", "get", **file_id),
        "RenameOrMove": _link(f"{V1}/files/{{file_id}}", "patch", **file_id),
        "Copy": _link(f"{V1}/files/{{file_id}}/copy", "post", **file_id),
        "Trash": _link(f"{V1}/files/{{file_id}}", "delete", **file_id),
        "Share": _body_link(f"{V1}/shares", "post", {"file_id": expression}),
        "SameContent": _body_link(
            f"{V1}/files/from-content", "post", {"sha256": "$response.body#/sha256"}
        ),
    }


def _restore_link(item_type: str) -> dict[str, Schema]:
    """A trashed item's way back: its id is the one the request named."""
    return {
        "Restore": _link(
            f"{V1}/trash/{{item_type}}/{{item_id}}/restore",
            "post",
            **{"path.item_type": item_type, "path.item_id": f"$request.path.{item_type}_id"},
        )
    }


def _version_links() -> dict[str, Schema]:
    """The newest version listed, and the file the request named."""
    ids = {
        "path.file_id": "$request.path.file_id",
        "path.version_id": "$response.body#/versions/0/id",
    }
    return {
        "Download": _link(f"{V1}/files/{{file_id}}/versions/{{version_id}}/content", "get", **ids),
        "Restore": _link(f"{V1}/files/{{file_id}}/versions/{{version_id}}/restore", "post", **ids),
        "Delete": _link(f"{V1}/files/{{file_id}}/versions/{{version_id}}", "delete", **ids),
    }


def _query(name: str, **schema: Any) -> Schema:
    return {"name": name, "in": "query", "schema": schema}


def _sync_paths() -> dict[str, Schema]:
    # A rename and/or a move: at least one of the two (a null folder is no move).
    moved = _json_body(
        {"name": NAME, "parent_id": NULLABLE_ID}, [], anyOf=_one_of_given("name", "parent_id")
    )
    file_moved = _json_body(
        {"name": NAME, "folder_id": NULLABLE_ID}, [], anyOf=_one_of_given("name", "folder_id")
    )
    return {
        f"{V1}/app-passwords": {
            "post": _operation(
                "A new app password for one device's WebDAV sign-in (shown once; a session)",
                {
                    "201": _answer(
                        "Created: sign in at /dav/ with the username and this password",
                        _object(
                            ["id", "device_name", "username", "password", "webdav_path"],
                            {
                                "id": _string(description="Its session's id"),
                                "device_name": _string(),
                                "username": _string(),
                                "password": _string(),
                                "webdav_path": _string(),
                                "message": _string(),
                            },
                        ),
                    )
                },
                400,
                body=_json_body({"device_name": DEVICE_NAME}, ["device_name"]),
            )
        },
        f"{V1}/folders": {
            "post": _operation(
                "Create a folder",
                {"201": _answer("Created", ENTRY, links=_folder_links())},
                400,
                404,
                409,
                body=_json_body({"name": NAME, "parent_id": NULLABLE_ID}, ["name"]),
                parameters=[ON_CONFLICT],
            )
        },
        f"{V1}/folders/{{ref}}": {
            "get": _operation(
                "One page of a folder: folders first, then files; ETag and If-None-Match",
                {
                    "200": _answer(
                        "The page",
                        _object(
                            ["folder", "entries", "total", "next_offset", "cursor"],
                            {
                                "folder": ENTRY,
                                "entries": {"type": "array", "items": ENTRY},
                                "total": {"type": "integer"},
                                "next_offset": {"type": ["integer", "null"]},
                                "cursor": _string(description="The change feed's, from before"),
                            },
                        ),
                    ),
                    "304": {"description": "Not modified"},
                },
                400,
                404,
                parameters=[
                    FOLDER_REF,
                    _query("offset", type="integer", minimum=0),
                    _query("limit", type="integer", minimum=1, maximum=folders.MAX_PAGE),
                    _query("sort", type="string", enum=["name", "modified_at", "size", "taken_at"]),
                    _query("order", type="string", enum=["asc", "desc"]),
                ],
            )
        },
        f"{V1}/folders/{{folder_id}}": {
            "patch": _operation(
                "Rename and/or move a folder (never into itself)",
                {"200": _answer("Done", ENTRY, links=_folder_links())},
                400,
                403,
                404,
                409,
                body=moved,
                parameters=[FOLDER_ID, ON_CONFLICT],
            ),
            "delete": _operation(
                "Move a folder to the trash",
                {"200": _answer("Trashed", MESSAGE_ONLY, links=_restore_link("folder"))},
                403,
                404,
                parameters=[FOLDER_ID],
            ),
        },
        f"{V1}/folders/{{folder_id}}/copy": {
            "post": _operation(
                "Copy a folder and everything in it (no bytes are copied)",
                {"201": _answer("Copied", ENTRY, links=_folder_links())},
                400,
                403,
                404,
                409,
                507,
                body=moved,
                parameters=[FOLDER_ID, ON_CONFLICT],
            )
        },
        f"{V1}/folders/{{ref}}/files": {
            "post": _operation(
                "Upload a file into a folder (multipart `file`, optional `modified_at`)",
                {"201": _answer("Stored", ENTRY, links=_file_links())},
                400,
                404,
                409,
                413,
                507,
                body={
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": _object(
                                ["file"],
                                {
                                    "file": FILE_PART,
                                    "modified_at": _string(format="date-time"),
                                },
                            )
                        }
                    },
                },
                parameters=[FOLDER_REF, ON_UPLOAD_CONFLICT],
            )
        },
        f"{V1}/files/{{file_id}}": {
            "get": _operation(
                "A file's details", {"200": _answer("", ENTRY)}, 404, parameters=[FILE_ID]
            ),
            "patch": _operation(
                "Rename and/or move a file",
                {"200": _answer("Done", ENTRY, links=_file_links())},
                400,
                404,
                409,
                body=file_moved,
                parameters=[FILE_ID, ON_CONFLICT],
            ),
            "delete": _operation(
                "Move a file to the trash",
                {"200": _answer("Trashed", MESSAGE_ONLY, links=_restore_link("file"))},
                404,
                parameters=[FILE_ID],
            ),
        },
        f"{V1}/files/{{file_id}}/content": {
            "get": _operation(
                "A file's bytes; Range, ETag, If-None-Match, If-Range",
                {
                    "200": {"description": "The bytes", "content": {"*/*": {}}},
                    "206": {"description": "The requested range", "content": {"*/*": {}}},
                    "304": {"description": "Not modified"},
                    "416": _answer("Range not satisfiable", _ref("Error")),
                },
                404,
                parameters=[FILE_ID],
            )
        },
        f"{V1}/files/{{file_id}}/copy": {
            "post": _operation(
                "Copy a file (a new name for the same bytes)",
                {"201": _answer("Copied", ENTRY, links=_file_links())},
                400,
                404,
                409,
                507,
                body=file_moved,
                parameters=[FILE_ID, ON_CONFLICT],
            )
        },
        f"{V1}/files/from-content": {
            "post": _operation(
                "Make a file from content the user already has: no upload",
                {"201": _answer("Created", ENTRY, links=_file_links())},
                400,
                404,
                409,
                507,
                body=_json_body(FROM_CONTENT["properties"], FROM_CONTENT["required"]),
                parameters=[ON_CONFLICT],
            )
        },
        f"{V1}/files/from-content/batch": {
            "post": _operation(
                "Make up to 1,000 files from content the user already has",
                {
                    "200": _answer(
                        "One result each, in order",
                        _object(
                            ["results"],
                            {"results": {"type": "array", "items": {"type": "object"}}},
                        ),
                    )
                },
                400,
                413,
                body=_json_body(
                    {
                        "files": {
                            "type": "array",
                            "items": FROM_CONTENT,
                            "maxItems": from_content.MAX_BATCH,
                        }
                    },
                    ["files"],
                ),
                parameters=[ON_CONFLICT],
            )
        },
        f"{V1}/upload-check": {
            "post": _operation(
                "For each SHA-256: present (with paths), trashed, deleted earlier, or absent",
                {
                    "200": _answer(
                        "One result per hash, in order",
                        _object(
                            ["results"],
                            {
                                "results": {
                                    "type": "array",
                                    "items": _object(
                                        ["sha256", "status"],
                                        {
                                            "sha256": _string(),
                                            "status": _string(
                                                enum=["present", "trashed", "deleted", "absent"]
                                            ),
                                            "paths": {
                                                "type": "array",
                                                "items": _string(),
                                                "maxItems": 10,
                                            },
                                            "more_paths": {"type": "boolean"},
                                            "deleted_at": TIMESTAMP,
                                        },
                                    ),
                                }
                            },
                        ),
                    )
                },
                400,
                413,
                body=_json_body(
                    {
                        "sha256": {
                            "type": "array",
                            "items": SHA256,
                            "maxItems": upload_check.MAX_HASHES,
                        }
                    },
                    ["sha256"],
                ),
            )
        },
        f"{V1}/deleted-content": {
            "delete": _operation(
                "Forget which content was deleted (upload-check says absent again)",
                {"200": _answer("", _object(["forgotten"], {"forgotten": {"type": "integer"}}))},
            )
        },
        f"{V1}/trash": {
            "get": _operation(
                "What is in the trash",
                {
                    "200": _answer(
                        "",
                        _object(["entries"], {"entries": {"type": "array", "items": ENTRY}}),
                    )
                },
            ),
            "delete": _operation(
                "Empty the trash for good",
                {"200": _answer("", _object(["purged"], {"purged": {"type": "integer"}}))},
            ),
        },
        f"{V1}/trash/{{item_type}}/{{item_id}}/restore": {
            "post": _operation(
                "Restore to the old place (renamed if taken; to the root if the folder is gone)",
                {"200": _answer("Restored", ENTRY)},
                404,
                409,
                parameters=[
                    {
                        **_path_parameter("item_type", "file or folder"),
                        "schema": _string(enum=["file", "folder"]),
                    },
                    {**_path_parameter("item_id", "Its id"), "schema": PATH_ID},
                ],
            )
        },
        f"{V1}/changes": {
            "get": _operation(
                "What changed since a cursor, oldest first; 410: list again",
                {
                    "200": _answer(
                        "",
                        _object(
                            ["changes", "cursor", "has_more"],
                            {
                                "changes": {"type": "array", "items": _ref("Change")},
                                "cursor": _string(),
                                "has_more": {"type": "boolean"},
                            },
                        ),
                    )
                },
                400,
                410,
                parameters=[
                    _query("cursor", type="string", pattern="^[0-9]{1,18}$"),
                    _query("limit", type="integer", minimum=1, maximum=changes.MAX_PAGE),
                    {
                        **_query("versions", type="string", enum=["true", "false"]),
                        "description": "true: changes to files' versions too (type version)",
                    },
                ],
            )
        },
        f"{V1}/changes/cursor": {
            "get": _operation(
                "The feed's newest cursor (start following from now)",
                {"200": _answer("", _object(["cursor"], {"cursor": _string()}))},
            )
        },
    }


SCHEMAS["Version"] = _object(
    [
        "id",
        "file_id",
        "size",
        "sha256",
        "etag",
        "modified_at",
        "replaced_at",
        "replaced_by_user_id",
        "replaced_by_session_id",
    ],
    {
        "id": {"type": "integer"},
        "file_id": {"type": "integer"},
        "size": {"type": "integer", "minimum": 0},
        "sha256": _string(),
        "etag": _string(),
        "modified_at": TIMESTAMP,
        "replaced_at": TIMESTAMP,
        "replaced_by_user_id": {"type": ["integer", "null"]},
        "replaced_by_session_id": {"type": ["string", "null"], "description": "A session id"},
    },
    description="Earlier content of a file, kept when new content replaced it.",
)
VERSION_ID = {**_path_parameter("version_id", "A version's id"), "schema": PATH_ID}


def _version_paths() -> dict[str, Schema]:
    return {
        f"{V1}/files/{{file_id}}/versions": {
            "get": _operation(
                "A file's earlier versions, newest first",
                {
                    "200": _answer(
                        "",
                        _object(
                            ["versions"],
                            {"versions": {"type": "array", "items": _ref("Version")}},
                        ),
                        links=_version_links(),
                    )
                },
                404,
                parameters=[FILE_ID],
            )
        },
        f"{V1}/files/{{file_id}}/versions/{{version_id}}/content": {
            "get": _operation(
                "A version's bytes; Range, ETag, If-None-Match, If-Range",
                {
                    "200": {"description": "The bytes", "content": {"*/*": {}}},
                    "206": {"description": "The requested range", "content": {"*/*": {}}},
                    "304": {"description": "Not modified"},
                    "416": _answer("Range not satisfiable", _ref("Error")),
                },
                404,
                parameters=[FILE_ID, VERSION_ID],
            )
        },
        f"{V1}/files/{{file_id}}/versions/{{version_id}}/restore": {
            "post": _operation(
                "Make a version the file's content again (the current one becomes a version)",
                {"200": _answer("Restored", ENTRY, links=_file_links())},
                404,
                parameters=[FILE_ID, VERSION_ID],
            )
        },
        f"{V1}/files/{{file_id}}/versions/{{version_id}}": {
            "delete": _operation(
                "Delete a version for good",
                {"200": _answer("Deleted", MESSAGE_ONLY)},
                404,
                parameters=[FILE_ID, VERSION_ID],
            )
        },
    }


ZIP = {"application/zip": {"schema": {"type": "string", "format": "binary"}}}
WEB_HEADER = _header("Pcloud-Web", required=True, enum=["1"])


def _web_paths() -> dict[str, Schema]:
    """The web app's pages, its cookie-held session, and its cookie-authenticated reads
    (pcloud.web). The session routes want `Pcloud-Web: 1` and this server's Origin."""
    access = _object(
        ["access_token", "expires_in"],
        {"message": _string(), "access_token": _string(), "expires_in": {"type": "integer"}},
    )
    cookie = {"description": "Set-Cookie: the HttpOnly, SameSite=Strict session cookies"}
    page = {"200": {"description": "A file of the web app", "content": {"text/html": {}}}}
    features = _object(
        ["name", "version", "registration", "google_sign_in"],
        {
            "name": _string(),
            "version": _string(),
            "registration": {"type": "boolean"},
            "google_sign_in": {"type": "boolean"},
        },
    )
    return {
        f"{V1}/server": {
            "get": _operation(
                "What this server offers before sign-in: open registration, Google sign-in",
                {"200": _answer("The server's features", features)},
                auth=False,
            )
        },
        "/app/": {"get": _operation("The web app", page, auth=False)},
        "/app/{name}": {
            "get": _operation(
                "One of the web app's static files",
                {"200": {"description": "The file", "content": {"*/*": {}}}},
                404,
                auth=False,
                parameters=[_path_parameter("name", "The file's path below /app/")],
            )
        },
        f"{V1}/web/session": {
            "post": _operation(
                "Sign the web app in: the refresh token goes into an HttpOnly cookie",
                {"200": _answer("Signed in", access, headers={"Set-Cookie": cookie})},
                400,
                401,
                403,
                429,
                body=_json_body(
                    {"login_identifier": FILLED, "password": FILLED},
                    ["login_identifier", "password"],
                ),
                auth=False,
                parameters=[WEB_HEADER],
            ),
            "delete": _operation(
                "Sign the web app out: end the cookie's session, clear the cookies",
                {"200": _answer("Signed out", MESSAGE_ONLY)},
                403,
                auth=False,
                parameters=[WEB_HEADER],
            ),
        },
        f"{V1}/web/session/refresh": {
            "post": _operation(
                "A new access token from the session cookie",
                {"200": _answer("Refreshed", access)},
                401,
                403,
                auth=False,
                parameters=[WEB_HEADER],
            )
        },
        f"{V1}/web/content/files/{{file_id}}": {
            "get": _operation(
                "A file's bytes, for <video>, <img> and links (cookie-authenticated; Range)",
                {"200": {"description": "The bytes"}, "206": {"description": "A range"}},
                401,
                404,
                auth=False,
                parameters=[FILE_ID],
            )
        },
        f"{V1}/web/content/folders/{{ref}}/zip": {
            "get": _operation(
                "A folder and all below it as a ZIP (cookie-authenticated)",
                {"200": {"description": "The archive, made as it is sent", "content": ZIP}},
                401,
                404,
                auth=False,
                parameters=[FOLDER_REF],
            )
        },
        f"{V1}/folders/{{ref}}/zip": {
            "get": _operation(
                "A folder and all below it as a ZIP, streamed (stored, not compressed)",
                {"200": {"description": "The archive, made as it is sent", "content": ZIP}},
                404,
                parameters=[FOLDER_REF],
            )
        },
    }


def document(metrics: bool = False, password_min_length: int = 8) -> Schema:
    """The whole document; /metrics appears when it is on."""
    from pcloud.api import openapi_shares  # it builds on this module's helpers

    paths = {
        **_paths(password_min_length),
        **_sync_paths(),
        **_version_paths(),
        **_web_paths(),
        **openapi_shares.paths(),
    }
    openapi_shares.add_media_fields(SCHEMAS)
    SCHEMAS.update(openapi_shares.schemas())
    if metrics:
        paths["/metrics"] = {
            "get": {
                "summary": "Prometheus metrics (Authorization: Bearer <METRICS_TOKEN>)",
                "security": [{"metrics": []}],
                "responses": {
                    "200": {"description": "Prometheus text format", "content": {"text/plain": {}}},
                    **_errors(401),
                },
            }
        }
    for operations in paths.values():
        for operation in operations.values():
            operation["responses"].update(_errors(405))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pcloud",
            "version": __version__,
            "description": 'A self-hosted personal cloud. Every error is JSON `{"error": ...}`.',
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "metrics": {"type": "http", "scheme": "bearer"},
            },
        },
    }


@blueprint.get("/openapi.json")
def openapi_json():
    cached = current_app.extensions.get("pcloud.openapi")
    if cached is None:
        settings = current_app.extensions["pcloud"].settings
        cached = current_app.extensions["pcloud.openapi"] = document(
            metrics=bool(settings.metrics_token), password_min_length=settings.password_min_length
        )
    return jsonify(cached)
