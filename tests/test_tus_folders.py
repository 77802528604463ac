"""tus uploads into a folder: Upload-Metadata `folder_id`; other users' folders are 404,
and a folder trashed before the upload completes sends the file to the root."""

from __future__ import annotations

import base64

import pytest

from tests.sync_helpers import API, make_folder, names_in


def metadata(**values) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def create(client, headers, length, **values):
    return client.post(
        "/tus/",
        headers={
            **headers,
            "Tus-Resumable": "1.0.0",
            "Upload-Length": str(length),
            "Upload-Metadata": metadata(**values),
        },
    )


def finish(client, headers, location, data):
    return client.patch(
        location,
        data=data,
        headers={
            **headers,
            "Tus-Resumable": "1.0.0",
            "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream",
        },
    )


def test_a_tus_upload_lands_in_its_folder(client, headers):
    folder = make_folder(client, headers, "Camera").get_json()
    created = create(client, headers, 3, filename="a.jpg", folder_id=str(folder["id"]))
    assert created.status_code == 201
    assert finish(client, headers, created.headers["Location"], b"abc").status_code == 204
    assert names_in(client, headers, folder["id"]) == ["a.jpg"]


def test_another_users_folder_is_404(client, auth):
    folder = make_folder(client, auth.headers("ann"), "private").get_json()
    bob = auth.headers("bob")
    assert create(client, bob, 3, filename="a", folder_id=str(folder["id"])).status_code == 404


@pytest.mark.parametrize("folder_id", ["abc", "-1", "1.0"])
def test_a_malformed_folder_id_is_400(client, headers, folder_id):
    assert create(client, headers, 3, filename="a", folder_id=folder_id).status_code == 400


def test_a_folder_trashed_meanwhile_sends_the_file_to_the_root(client, headers):
    folder = make_folder(client, headers, "Camera").get_json()
    created = create(client, headers, 3, filename="a.jpg", folder_id=str(folder["id"]))
    client.delete(f"{API}/folders/{folder['id']}", headers=headers)
    assert finish(client, headers, created.headers["Location"], b"abc").status_code == 204
    assert names_in(client, headers) == ["a.jpg"]
