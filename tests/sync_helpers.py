"""Helpers for the sync API's tests (/api/v1)."""

from __future__ import annotations

import io

API = "/api/v1"


def make_folder(client, headers, name, parent_id=None, **query):
    body = {"name": name} if parent_id is None else {"name": name, "parent_id": parent_id}
    return client.post(f"{API}/folders", headers=headers, json=body, query_string=query)


def put_file(client, headers, name, content=b"hello", folder="root", **fields):
    data = {"file": (io.BytesIO(content), name), **fields}
    query = {}
    if "on_conflict" in fields:
        query["on_conflict"] = data.pop("on_conflict")
    return client.post(
        f"{API}/folders/{folder}/files",
        headers=headers,
        data=data,
        query_string=query,
        content_type="multipart/form-data",
    )


def listing(client, headers, folder="root", **query):
    response = client.get(f"{API}/folders/{folder}", headers=headers, query_string=query)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def names_in(client, headers, folder="root"):
    return [entry["name"] for entry in listing(client, headers, folder)["entries"]]
