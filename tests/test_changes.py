"""The change feed: every change in order after a cursor, paged; 410 for an unknown or
purged cursor, telling the client to list again."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest

from pcloud.models import Change, utc_now
from pcloud.services import changes
from tests.sync_helpers import API, listing, make_folder, put_file


def feed(client, headers, cursor, **query):
    return client.get(f"{API}/changes", headers=headers, query_string={"cursor": cursor, **query})


def test_the_feed_tells_every_kind_of_change_in_order(client, headers):
    start = client.get(f"{API}/changes/cursor", headers=headers).get_json()["cursor"]
    folder = make_folder(client, headers, "Docs").get_json()
    entry = put_file(client, headers, "a.txt").get_json()
    client.patch(f"{API}/files/{entry['id']}", headers=headers, json={"name": "b.txt"})
    client.patch(f"{API}/files/{entry['id']}", headers=headers, json={"folder_id": folder["id"]})
    client.delete(f"{API}/files/{entry['id']}", headers=headers)
    client.post(f"{API}/trash/file/{entry['id']}/restore", headers=headers)
    client.post("/upload", headers=headers, data={"file": (io.BytesIO(b"c"), "c.txt")})
    client.put("/rename", headers=headers, json={"old_filename": "c.txt", "new_filename": "d.txt"})
    client.delete("/delete/d.txt", headers=headers)
    page = feed(client, headers, start).get_json()
    assert page["has_more"] is False
    kinds = [(c["kind"], c["type"], c["name"]) for c in page["changes"]]
    assert kinds == [
        ("created", "folder", "Docs"),
        ("created", "file", "a.txt"),
        ("renamed", "file", "b.txt"),
        ("moved", "file", "b.txt"),
        ("deleted", "file", "b.txt"),
        ("restored", "file", "b.txt"),
        ("created", "file", "c.txt"),
        ("renamed", "file", "d.txt"),
        ("deleted", "file", "d.txt"),
    ]
    replaced = put_file(client, headers, "e.txt", b"1").get_json()
    put_file(client, headers, "e.txt", b"2", on_conflict="replace")
    [last] = feed(client, headers, page["cursor"]).get_json()["changes"][-1:]
    assert (last["kind"], last["id"]) == ("modified", replaced["id"])
    assert page["changes"][3]["parent_id"] == folder["id"]


def test_the_feed_pages_with_its_cursor(client, headers):
    start = listing(client, headers)["cursor"]
    for number in range(5):
        make_folder(client, headers, f"f{number}")
    first = feed(client, headers, start, limit=2).get_json()
    assert [c["name"] for c in first["changes"]] == ["f0", "f1"] and first["has_more"]
    second = feed(client, headers, first["cursor"], limit=10).get_json()
    assert [c["name"] for c in second["changes"]] == ["f2", "f3", "f4"]
    assert not second["has_more"]


def test_a_tus_upload_is_in_the_feed(client, headers):
    start = listing(client, headers)["cursor"]
    response = client.post(
        "/tus/",
        headers={
            **headers,
            "Tus-Resumable": "1.0.0",
            "Upload-Length": "0",
            "Upload-Metadata": "filename ZW1wdHkudHh0",
        },
    )
    assert response.status_code == 201
    [change] = feed(client, headers, start).get_json()["changes"]
    assert (change["kind"], change["name"]) == ("created", "empty.txt")


def test_other_users_changes_are_not_in_my_feed(client, auth):
    ann, bob = auth.headers("ann"), auth.headers("bob")
    start = listing(client, bob)["cursor"]
    make_folder(client, ann, "anns")
    assert feed(client, bob, start).get_json()["changes"] == []


def test_a_cursor_from_the_future_is_410(client, headers):
    response = feed(client, headers, "999999")
    assert response.status_code == 410
    assert response.get_json()["relist"] is True


def test_a_cursor_older_than_the_history_kept_is_410(client, headers, pcloud):
    start = listing(client, headers)["cursor"]
    make_folder(client, headers, "old")
    make_folder(client, headers, "new")
    Change.update(at=utc_now() - timedelta(days=100)).where(Change.name == "old").execute()
    assert changes.purge() == 1
    response = feed(client, headers, start)
    assert response.status_code == 410
    assert "list your folders again" in response.get_json()["error"]
    fresh = listing(client, headers)["cursor"]
    assert feed(client, headers, fresh).status_code == 200


@pytest.mark.parametrize("cursor", ["", "abc", "-1", "1.5", "9" * 40])
def test_malformed_cursors_are_400(client, headers, cursor):
    assert feed(client, headers, cursor).status_code == 400


def test_a_feed_without_a_cursor_is_400(client, headers):
    assert client.get(f"{API}/changes", headers=headers).status_code == 400


def test_purging_everything_keeps_the_newest_change_so_cursors_stay_valid(client, headers):
    make_folder(client, headers, "a")
    make_folder(client, headers, "b")
    Change.update(at=utc_now() - timedelta(days=100)).execute()
    assert changes.purge() == 1
    cursor = listing(client, headers)["cursor"]
    make_folder(client, headers, "c")
    [change] = feed(client, headers, cursor).get_json()["changes"]
    assert change["name"] == "c"


def tree_from_feed(client, headers, root_id, cursor) -> set[tuple]:
    """What a client that only follows the feed believes the tree is."""
    items: dict[tuple[str, int], tuple[int | None, str]] = {}
    while True:
        page = feed(client, headers, cursor).get_json()
        for change in page["changes"]:
            key = (change["type"], change["id"])
            if change["kind"] == "deleted":
                items.pop(key, None)
            else:
                items[key] = (change["parent_id"], change["name"])
        cursor = page["cursor"]
        if not page["has_more"]:
            break
    folders = {
        item_id: parent for (kind, item_id), (parent, _n) in items.items() if kind == "folder"
    }

    def reachable(parent):
        seen = set()
        while parent != root_id:
            if parent not in folders or parent in seen:
                return False
            seen.add(parent)
            parent = folders[parent]
        return True

    return {
        (kind, item_id, parent, name)
        for (kind, item_id), (parent, name) in items.items()
        if reachable(parent)
    }


def tree_from_listings(client, headers, folder="root") -> set[tuple]:
    found = set()
    for entry in listing(client, headers, folder)["entries"]:
        found.add((entry["type"], entry["id"], entry["parent_id"], entry["name"]))
        if entry["type"] == "folder":
            found |= tree_from_listings(client, headers, entry["id"])
    return found


def test_a_client_that_follows_the_feed_sees_the_tree_as_it_is(client, headers):
    first = listing(client, headers)
    root_id, cursor = first["folder"]["id"], first["cursor"]
    a = make_folder(client, headers, "a").get_json()
    b = make_folder(client, headers, "b", a["id"]).get_json()
    c = make_folder(client, headers, "c").get_json()
    one = put_file(client, headers, "1.txt", b"1", folder=b["id"]).get_json()
    two = put_file(client, headers, "2.txt", b"2").get_json()
    gone = put_file(client, headers, "3.txt", b"3", folder=c["id"]).get_json()
    client.patch(f"{API}/files/{one['id']}", headers=headers, json={"name": "uno.txt"})
    client.patch(f"{API}/folders/{b['id']}", headers=headers, json={"parent_id": c["id"]})
    client.post(f"{API}/folders/{c['id']}/copy", headers=headers, json={"name": "c2"})
    client.patch(f"{API}/files/{two['id']}", headers=headers, json={"folder_id": a["id"]})
    client.delete(f"{API}/files/{gone['id']}", headers=headers)
    client.delete(f"{API}/folders/{a['id']}", headers=headers)
    client.post(f"{API}/trash/file/{two['id']}/restore", headers=headers)
    inner = make_folder(client, headers, "inner", c["id"]).get_json()
    put_file(client, headers, "kept.txt", b"k", folder=inner["id"])
    client.delete(f"{API}/folders/{inner['id']}", headers=headers)
    client.post(f"{API}/trash/folder/{inner['id']}/restore", headers=headers)
    put_file(client, headers, "uno.txt", b"new", folder=b["id"], on_conflict="replace")
    client.post("/upload", headers=headers, data={"file": (io.BytesIO(b"4"), "4.txt")})
    client.put("/rename", headers=headers, json={"old_filename": "4.txt", "new_filename": "5.txt"})
    assert tree_from_feed(client, headers, root_id, cursor) == tree_from_listings(client, headers)


def test_a_file_gc_drops_for_lost_bytes_is_a_deleted_change(client, headers, runner, settings):
    entry = put_file(client, headers, "lost.txt", b"soon gone").get_json()
    cursor = listing(client, headers)["cursor"]
    from pcloud.models import StoredFile

    key = StoredFile.get_by_id(entry["id"]).blob_key
    (settings.upload_folder / "blobs" / key[:2] / key).unlink()
    assert runner.invoke("files", "gc").exit_code == 0
    [change] = feed(client, headers, cursor).get_json()["changes"]
    assert (change["kind"], change["id"]) == ("deleted", entry["id"])
