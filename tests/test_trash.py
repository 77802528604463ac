"""The trash: delete moves there, restore puts back (renamed if taken, or into the root),
empty and gc purge for good, with an audit event; the contract's DELETE deletes for good."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pcloud.models import AuditEvent, Blob, StoredFile, utc_now
from pcloud.services import trash
from tests.sync_helpers import API, listing, make_folder, names_in, put_file


def trashed(client, headers):
    response = client.get(f"{API}/trash", headers=headers)
    assert response.status_code == 200
    return response.get_json()["entries"]


def blob_count(settings):
    return len([p for p in (settings.upload_folder / "blobs").rglob("*") if p.is_file()])


def test_a_deleted_file_goes_to_the_trash_and_keeps_its_bytes(client, headers, settings):
    entry = put_file(client, headers, "a.txt", b"keep me").get_json()
    assert client.delete(f"{API}/files/{entry['id']}", headers=headers).status_code == 200
    assert names_in(client, headers) == []
    [item] = trashed(client, headers)
    assert item["name"] == "a.txt" and item["type"] == "file"
    assert item["original_folder_id"] == entry["parent_id"]
    assert blob_count(settings) == 1
    assert client.get(f"{API}/files/{entry['id']}", headers=headers).status_code == 404


def test_restore_puts_a_file_back_where_it_was(client, headers):
    folder = make_folder(client, headers, "Docs").get_json()
    entry = put_file(client, headers, "a.txt", folder=folder["id"]).get_json()
    client.delete(f"{API}/files/{entry['id']}", headers=headers)
    restored = client.post(f"{API}/trash/file/{entry['id']}/restore", headers=headers)
    assert restored.status_code == 200
    assert restored.get_json()["parent_id"] == folder["id"]
    assert names_in(client, headers, folder["id"]) == ["a.txt"]
    assert trashed(client, headers) == []


def test_restore_renames_when_the_name_was_taken_meanwhile(client, headers):
    entry = put_file(client, headers, "a.txt", b"old").get_json()
    client.delete(f"{API}/files/{entry['id']}", headers=headers)
    put_file(client, headers, "a.txt", b"new")
    restored = client.post(f"{API}/trash/file/{entry['id']}/restore", headers=headers)
    assert restored.get_json()["name"] == "a_1.txt"


def test_restore_goes_to_the_root_when_the_folder_is_gone(client, headers):
    folder = make_folder(client, headers, "Docs").get_json()
    entry = put_file(client, headers, "a.txt", folder=folder["id"]).get_json()
    client.delete(f"{API}/files/{entry['id']}", headers=headers)
    client.delete(f"{API}/folders/{folder['id']}", headers=headers)
    restored = client.post(f"{API}/trash/file/{entry['id']}/restore", headers=headers).get_json()
    assert restored["parent_id"] == listing(client, headers)["folder"]["id"]


def test_a_trashed_folder_takes_its_contents_and_restores_with_them(client, headers):
    folder = make_folder(client, headers, "Docs").get_json()
    put_file(client, headers, "a.txt", folder=folder["id"])
    client.delete(f"{API}/folders/{folder['id']}", headers=headers)
    [item] = trashed(client, headers)
    assert item["type"] == "folder" and item["size"] == 5
    assert client.get(f"{API}/folders/{folder['id']}", headers=headers).status_code == 404
    client.post(f"{API}/trash/folder/{folder['id']}/restore", headers=headers)
    assert names_in(client, headers, folder["id"]) == ["a.txt"]


def test_emptying_the_trash_frees_bytes_and_is_audited(client, headers, settings):
    folder = make_folder(client, headers, "Docs").get_json()
    put_file(client, headers, "in.txt", b"inside", folder=folder["id"])
    entry = put_file(client, headers, "a.txt", b"alone").get_json()
    put_file(client, headers, "twin.txt", b"alone")  # the same bytes stay in use
    client.delete(f"{API}/files/{entry['id']}", headers=headers)
    client.delete(f"{API}/folders/{folder['id']}", headers=headers)
    response = client.delete(f"{API}/trash", headers=headers)
    assert response.get_json() == {"purged": 2}
    assert trashed(client, headers) == []
    assert blob_count(settings) == 1
    assert Blob.get().ref_count == 1
    event = AuditEvent.get(AuditEvent.action == "trash-purged")
    assert '"files": 2' in event.detail


def test_gc_purges_items_older_than_trash_days(runner, client, headers, settings):
    old = put_file(client, headers, "old.txt", b"old").get_json()
    young = put_file(client, headers, "young.txt", b"young").get_json()
    client.delete(f"{API}/files/{old['id']}", headers=headers)
    client.delete(f"{API}/files/{young['id']}", headers=headers)
    StoredFile.update(trashed_at=utc_now() - timedelta(days=31)).where(
        StoredFile.id == old["id"]
    ).execute()
    result = runner.invoke("files", "gc")
    assert "Purged 1 trash item(s) deleted over 30 day(s) ago" in result.output, result.output
    assert [item["name"] for item in trashed(client, headers)] == ["young.txt"]
    assert AuditEvent.get(AuditEvent.action == "trash-purged").actor == "system"


def test_trash_counts_toward_usage_until_purged(client, headers, pcloud):
    entry = put_file(client, headers, "a.txt", b"12345").get_json()
    client.delete(f"{API}/files/{entry['id']}", headers=headers)
    assert client.get("/me", headers=headers).get_json()["usage_bytes"] == 5
    client.delete(f"{API}/trash", headers=headers)
    assert client.get("/me", headers=headers).get_json()["usage_bytes"] == 0


def test_the_contract_delete_deletes_for_good(client, headers, settings):
    import io

    client.post("/upload", headers=headers, data={"file": (io.BytesIO(b"x"), "a.txt")})
    assert client.delete("/delete/a.txt", headers=headers).status_code == 200
    assert trashed(client, headers) == []
    assert blob_count(settings) == 0


def test_other_users_cannot_see_or_restore_my_trash(client, auth):
    ann, bob = auth.headers("ann"), auth.headers("bob")
    entry = put_file(client, ann, "a.txt").get_json()
    client.delete(f"{API}/files/{entry['id']}", headers=ann)
    assert trashed(client, bob) == []
    assert client.post(f"{API}/trash/file/{entry['id']}/restore", headers=bob).status_code == 404
    client.delete(f"{API}/trash", headers=bob)
    assert len(trashed(client, ann)) == 1


@pytest.mark.parametrize("path", ["/trash/file/abc/restore", "/trash/blob/1/restore"])
def test_malformed_restore_paths_are_404(client, headers, path):
    response = client.post(f"{API}{path}", headers=headers)
    assert response.status_code == 404 and "error" in response.get_json()


def test_restoring_something_not_in_the_trash_is_404(client, headers):
    entry = put_file(client, headers, "a.txt").get_json()
    response = client.post(f"{API}/trash/file/{entry['id']}/restore", headers=headers)
    assert response.status_code == 404


def test_purge_older_than_leaves_young_items(pcloud, client, headers):
    entry = put_file(client, headers, "a.txt").get_json()
    client.delete(f"{API}/files/{entry['id']}", headers=headers)
    assert trash.purge_older_than(pcloud.blobs, 30) == 0
    assert trash.purge_older_than(pcloud.blobs, 0, now=utc_now() + timedelta(seconds=1)) == 1
