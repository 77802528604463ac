"""Content-addressed blobs: identical bytes are stored once, whoever uploads them and under
however many names, and go only when the last file using them goes."""

from __future__ import annotations

import io

from pcloud.models import Blob


def upload(client, headers, name, content):
    data = {"file": (io.BytesIO(content), name)}
    return client.post("/upload", headers=headers, data=data, content_type="multipart/form-data")


def blob_files(settings):
    return sorted(p for p in (settings.upload_folder / "blobs").rglob("*") if p.is_file())


def test_the_same_content_twice_is_stored_once(client, auth, settings):
    headers = auth.headers()
    assert upload(client, headers, "a.jpg", b"same bytes").status_code == 201
    assert upload(client, headers, "b.jpg", b"same bytes").status_code == 201
    assert len(blob_files(settings)) == 1
    assert Blob.get().ref_count == 2
    assert client.get("/download/b.jpg", headers=headers).data == b"same bytes"


def test_two_users_share_the_bytes_of_identical_content(client, auth, settings):
    upload(client, auth.headers("ann"), "a.jpg", b"shared")
    upload(client, auth.headers("bob"), "mine.jpg", b"shared")
    assert len(blob_files(settings)) == 1


def test_deleting_one_name_keeps_the_bytes_another_uses(client, auth, settings):
    ann, bob = auth.headers("ann"), auth.headers("bob")
    upload(client, ann, "a.jpg", b"shared")
    upload(client, bob, "b.jpg", b"shared")
    assert client.delete("/delete/a.jpg", headers=ann).status_code == 200
    assert client.get("/download/b.jpg", headers=bob).data == b"shared"
    assert len(blob_files(settings)) == 1
    assert client.delete("/delete/b.jpg", headers=bob).status_code == 200
    assert blob_files(settings) == []
    assert Blob.select().count() == 0


def test_a_failed_upload_of_known_content_leaves_the_count_alone(client, auth, settings):
    headers = auth.headers()
    upload(client, headers, "a.jpg", b"bytes")
    bad = upload(client, headers, "../..", b"bytes")
    assert bad.status_code == 400
    assert Blob.get().ref_count == 1
    assert len(blob_files(settings)) == 1


def test_an_upload_of_content_whose_bytes_were_lost_heals_every_file(client, auth, settings):
    headers = auth.headers()
    upload(client, headers, "a.jpg", b"irreplaceable")
    upload(client, headers, "b.jpg", b"irreplaceable")
    [lost] = blob_files(settings)
    lost.unlink()  # a disk fault, a careless admin
    assert upload(client, headers, "c.jpg", b"irreplaceable").status_code == 201
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        assert client.get(f"/download/{name}", headers=headers).data == b"irreplaceable"
    assert Blob.get().ref_count == 3
    assert len(blob_files(settings)) == 1


def test_sqlite_without_returning_counts_and_adds_blobs_the_old_way(
    client, auth, settings, monkeypatch
):
    """SQLite before 3.35 has no INSERT ... RETURNING: new and known content both still
    land in one Blob row with the right count."""
    monkeypatch.setattr("pcloud.services.content._UPSERT_RETURNS", False)
    headers = auth.headers()
    assert upload(client, headers, "a.jpg", b"old sqlite").status_code == 201
    assert upload(client, headers, "b.jpg", b"old sqlite").status_code == 201
    assert upload(client, headers, "c.jpg", b"other").status_code == 201
    assert sorted(blob.ref_count for blob in Blob.select()) == [1, 2]
    assert len(blob_files(settings)) == 2
