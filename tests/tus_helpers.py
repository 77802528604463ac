"""Helpers for the tests of resumable (tus) uploads through the app's test client."""

from __future__ import annotations

import base64

TUS = {"Tus-Resumable": "1.0.0"}
PIECE = {**TUS, "Content-Type": "application/offset+octet-stream"}


def metadata(**values: str) -> str:
    return ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in values.items()
    )


def create(client, headers, length: int | None = 10, name="clip.mp4", body=None, **extra):
    request_headers = {**headers, "Upload-Metadata": metadata(filename=name), **extra}
    if length is None:
        request_headers["Upload-Defer-Length"] = "1"
    else:
        request_headers["Upload-Length"] = str(length)
    if body is not None:
        request_headers["Content-Type"] = "application/offset+octet-stream"
    return client.post("/tus/", headers=request_headers, data=body)


def new_upload(client, headers, **kwargs) -> str:
    response = create(client, headers, **kwargs)
    assert response.status_code == 201, response.get_json()
    return response.headers["Location"]


def patch(client, headers, url, offset: int, data: bytes, **extra):
    return client.patch(
        url, headers={**headers, **PIECE, "Upload-Offset": str(offset), **extra}, data=data
    )


def unfinished_upload(client, headers, content: bytes = b"half", length: int = 8) -> str:
    """An unfinished tus upload holding `content`; its id."""
    url = new_upload(client, {**headers, **TUS}, length=length, name="v.mp4")
    patch(client, {**headers, **TUS}, url, 0, content)
    return url.rsplit("/", 1)[1]
