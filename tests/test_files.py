"""The contract's file routes: list, upload, download, delete, rename — and their names."""

from __future__ import annotations

import hashlib
import io
import re
import unicodedata

import pytest

from pcloud.models import StoredFile


def upload(client, headers, name, content=b"hello"):
    return client.post("/upload", headers=headers, data={"file": (io.BytesIO(content), name)})


def listed(client, headers):
    return [entry["filename"] for entry in client.get("/files", headers=headers).get_json()]


def rename(client, headers, old_name, new_name):
    return client.put(
        "/rename", headers=headers, json={"old_filename": old_name, "new_filename": new_name}
    )


def blob_files(settings):
    return sorted(path for path in (settings.upload_folder / "blobs").rglob("*") if path.is_file())


def test_upload_answers_201_with_the_stored_name(client, headers):
    response = upload(client, headers, "photo.jpg")
    assert response.status_code == 201
    assert response.get_json() == {"message": "File uploaded successfully", "file": "photo.jpg"}


def test_upload_records_size_and_sha256_of_the_bytes(client, headers):
    content = b"some bytes " * 1000
    upload(client, headers, "a.bin", content)
    stored = StoredFile.get(StoredFile.name == "a.bin")
    assert stored.size == len(content)
    assert stored.sha256 == hashlib.sha256(content).hexdigest()


def test_files_are_stored_under_generated_names_never_the_clients(client, headers, settings):
    upload(client, headers, "secret-plan.txt")
    [blob] = blob_files(settings)
    assert "secret" not in str(blob)
    assert re.fullmatch(r"[0-9a-f]{32}", blob.name)


def test_listing_has_the_contract_fields_sorted_case_insensitively(client, headers):
    for name in ("b.txt", "A.jpg", "c.pdf", "a.mp4"):
        upload(client, headers, name, b"12345")
    entries = client.get("/files", headers=headers).get_json()
    assert [e["filename"] for e in entries] == ["A.jpg", "a.mp4", "b.txt", "c.pdf"]
    for entry in entries:
        assert set(entry) == {"filename", "file_type", "size", "modified_at"}
        assert entry["size"] == 5
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", entry["modified_at"])


@pytest.mark.parametrize(
    ("name", "file_type"),
    [
        ("a.jpg", "image"),
        ("a.PNG", "image"),
        ("a.heic", "image"),
        ("a.mp4", "video"),
        ("a.mov", "video"),
        ("a.pdf", "pdf"),
        ("a.txt", "text"),
        ("a.csv", "text"),
        ("a.mp3", "audio"),
        ("a.m4a", "audio"),
        ("a.zip", "archive"),
        ("a.rar", "archive"),
        ("a.7z", "archive"),
        ("a.bin", "generic"),
        ("noextension", "generic"),
        ("a.tar.gz", "generic"),
    ],
)
def test_file_type_comes_from_the_names_mime_type(client, headers, name, file_type):
    upload(client, headers, name)
    [entry] = client.get("/files", headers=headers).get_json()
    assert entry["file_type"] == file_type


def test_a_taken_name_gets_a_number_before_the_extension(client, headers):
    stored = [upload(client, headers, "photo.jpg").get_json()["file"] for _ in range(3)]
    assert stored == ["photo.jpg", "photo_1.jpg", "photo_2.jpg"]
    assert [upload(client, headers, "README").get_json()["file"] for _ in range(2)] == [
        "README",
        "README_1",
    ]


def test_numbering_skips_names_that_are_already_numbered(client, headers):
    upload(client, headers, "photo.jpg")
    upload(client, headers, "photo_1.jpg")
    assert upload(client, headers, "photo.jpg").get_json()["file"] == "photo_2.jpg"


@pytest.mark.parametrize("name", ["résumé été.txt", "日本語.txt", "emoji 🎉.png", "a  b.txt"])
def test_unicode_names_are_kept_as_written(client, headers, name):
    assert upload(client, headers, name).get_json()["file"] == name
    assert listed(client, headers) == [name]
    assert client.get(f"/download/{name}", headers=headers).status_code == 200


def test_names_are_normalised_to_nfc(client, headers):
    decomposed = unicodedata.normalize("NFD", "résumé.txt")
    assert upload(client, headers, decomposed).get_json()["file"] == "résumé.txt"
    # Either form finds the file.
    assert client.get(f"/download/{decomposed}", headers=headers).status_code == 200


def raw_upload(client, headers, quoted_filename: bytes, content=b"hello"):
    """POST a multipart body written by hand, filename header exactly as given."""
    body = (
        b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="'
        + quoted_filename
        + b'"\r\n\r\n'
        + content
        + b"\r\n--b0undary--\r\n"
    )
    return client.post(
        "/upload", headers=headers, data=body, content_type="multipart/form-data; boundary=b0undary"
    )


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        (b"../../etc/passwd", "passwd"),
        (b"/absolute/path/photo.jpg", "photo.jpg"),
        # Backslashes arrive escaped inside the quoted filename (RFC 7230 quoted-pair).
        (b"..\\\\..\\\\windows\\\\win.ini", "win.ini"),
        (b"C:\\\\Users\\\\ann\\\\photo.jpg", "photo.jpg"),
    ],
)
def test_the_directory_part_of_an_uploaded_name_is_dropped(client, headers, settings, sent, stored):
    assert raw_upload(client, headers, sent).get_json()["file"] == stored
    assert all(path.is_relative_to(settings.upload_folder) for path in blob_files(settings))


@pytest.mark.parametrize(
    "name",
    [
        "..",
        ".",
        "...",
        "dir/..",
        "a\x00b.txt",
        "tab\there.txt",
        "bell\x07.txt",
        "x" * 252 + ".txt",
        "é" * 128 + ".txt",
    ],
)
def test_unsafe_upload_names_are_refused_with_400_and_nothing_stored(
    client, headers, settings, name
):
    response = upload(client, headers, name)
    assert response.status_code == 400
    assert "error" in response.get_json()
    assert listed(client, headers) == []
    assert blob_files(settings) == []
    assert list((settings.upload_folder / "partial").iterdir()) == []


def test_a_name_of_exactly_255_bytes_is_accepted(client, headers):
    name = "x" * 251 + ".txt"
    assert upload(client, headers, name).status_code == 201


def test_upload_without_a_file_part_is_400(client, headers):
    response = client.post("/upload", headers=headers, data={"other": "value"})
    assert response.status_code == 400


def test_upload_with_an_empty_filename_is_400(client, headers):
    response = upload(client, headers, "")
    assert response.status_code == 400


def test_upload_that_is_not_multipart_is_400(client, headers):
    response = client.post("/upload", headers=headers, data=b"raw", content_type="text/plain")
    assert response.status_code == 400
    response = client.post(
        "/upload", headers=headers, data=b"--x\r\n", content_type="multipart/form-data"
    )  # no boundary
    assert response.status_code == 400


def test_upload_needs_a_token(client):
    assert upload(client, {}, "a.txt").status_code == 401


def test_download_returns_the_bytes_as_an_attachment(client, headers):
    upload(client, headers, "notes.txt", b"my notes")
    response = client.get("/download/notes.txt", headers=headers)
    assert response.status_code == 200
    assert response.data == b"my notes"
    assert response.headers["Content-Disposition"].startswith("attachment")
    assert re.search(r'filename="?notes\.txt"?', response.headers["Content-Disposition"])
    assert response.mimetype == "text/plain"
    # A shared cache keeps none of it; a browser asks again (the ETag answers 304).
    assert response.headers["Cache-Control"] == "no-cache, private"


def test_download_of_a_unicode_name_sets_an_rfc5987_filename(client, headers):
    upload(client, headers, "日本語.txt")
    disposition = client.get("/download/日本語.txt", headers=headers).headers["Content-Disposition"]
    assert "filename*=UTF-8''%E6%97%A5%E6%9C%AC%E8%AA%9E.txt" in disposition


@pytest.mark.parametrize(
    "name", ["missing.txt", "../pcloud.db", "..%2Fpcloud.db", "a/b.txt", "%00", "secret_key"]
)
def test_download_of_an_unknown_or_hostile_name_is_404_file_not_found(client, headers, name):
    upload(client, headers, "a.txt")
    response = client.get(f"/download/{name}", headers=headers)
    assert response.status_code == 404
    assert response.get_json() == {"error": "File not found"}


def test_download_supports_range_requests(client, headers):
    upload(client, headers, "digits.txt", b"0123456789")
    response = client.get("/download/digits.txt", headers={**headers, "Range": "bytes=2-5"})
    assert response.status_code == 206
    assert response.data == b"2345"
    assert response.headers["Content-Range"] == "bytes 2-5/10"
    suffix = client.get("/download/digits.txt", headers={**headers, "Range": "bytes=-3"})
    assert suffix.data == b"789"


def test_unsatisfiable_range_is_416(client, headers):
    upload(client, headers, "digits.txt", b"0123456789")
    response = client.get("/download/digits.txt", headers={**headers, "Range": "bytes=50-60"})
    assert response.status_code == 416
    assert response.headers["Content-Range"] == "bytes */10"  # so a player can ask again
    assert response.get_json() == {"error": "Requested range not satisfiable"}


def test_download_etag_is_the_sha256_and_if_none_match_gives_304(client, headers):
    content = b"cache me"
    upload(client, headers, "c.txt", content)
    response = client.get("/download/c.txt", headers=headers)
    assert response.headers["ETag"] == f'"{hashlib.sha256(content).hexdigest()}"'
    again = client.get(
        "/download/c.txt", headers={**headers, "If-None-Match": response.headers["ETag"]}
    )
    assert again.status_code == 304
    assert again.data == b""


def test_if_range_with_a_stale_etag_sends_the_whole_file(client, headers):
    upload(client, headers, "digits.txt", b"0123456789")
    response = client.get(
        "/download/digits.txt", headers={**headers, "Range": "bytes=2-5", "If-Range": '"stale"'}
    )
    assert response.status_code == 200
    assert response.data == b"0123456789"


def test_download_of_a_row_whose_blob_vanished_is_404_not_500(client, headers, settings):
    upload(client, headers, "a.txt")
    for blob in blob_files(settings):
        blob.unlink()
    response = client.get("/download/a.txt", headers=headers)
    assert response.status_code == 404
    assert response.get_json() == {"error": "File not found"}


def test_delete_removes_the_row_and_the_bytes(client, headers, settings):
    upload(client, headers, "a.txt")
    response = client.delete("/delete/a.txt", headers=headers)
    assert response.status_code == 200
    assert response.get_json() == {"message": "File 'a.txt' deleted successfully"}
    assert listed(client, headers) == []
    assert blob_files(settings) == []


@pytest.mark.parametrize("name", ["missing.txt", "../a.txt", "a.txt/..", "%2e%2e"])
def test_delete_of_an_unknown_or_hostile_name_is_404(client, headers, settings, name):
    upload(client, headers, "a.txt")
    response = client.delete(f"/delete/{name}", headers=headers)
    assert response.status_code == 404
    assert response.get_json() == {"error": "File not found"}
    assert listed(client, headers) == ["a.txt"]
    assert len(blob_files(settings)) == 1


def test_rename_answers_with_both_names(client, headers):
    upload(client, headers, "old.txt", b"content")
    response = rename(client, headers, "old.txt", "new name.txt")
    assert response.status_code == 200
    body = response.get_json()
    assert body["old_filename"] == "old.txt" and body["new_filename"] == "new name.txt"
    assert "message" in body
    assert listed(client, headers) == ["new name.txt"]
    assert client.get("/download/new name.txt", headers=headers).data == b"content"


def test_rename_to_a_taken_name_is_409_and_changes_nothing(client, headers):
    upload(client, headers, "a.txt", b"A")
    upload(client, headers, "b.txt", b"B")
    response = rename(client, headers, "a.txt", "b.txt")
    assert response.status_code == 409
    assert client.get("/download/a.txt", headers=headers).data == b"A"
    assert client.get("/download/b.txt", headers=headers).data == b"B"


def test_rename_of_an_unknown_file_is_404(client, headers):
    response = rename(client, headers, "nope.txt", "b.txt")
    assert response.status_code == 404


@pytest.mark.parametrize("missing", ["old_filename", "new_filename"])
def test_rename_without_a_field_is_400(client, headers, missing):
    body = {"old_filename": "a.txt", "new_filename": "b.txt"}
    del body[missing]
    assert client.put("/rename", headers=headers, json=body).status_code == 400


@pytest.mark.parametrize(
    "new_name",
    ["../escape.txt", "a/b.txt", "a\\b.txt", "..", ".", "x\x00.txt", "x" * 256, 42, ["a"]],
)
def test_rename_to_an_unsafe_name_is_400(client, headers, new_name):
    upload(client, headers, "a.txt")
    response = rename(client, headers, "a.txt", new_name)
    assert response.status_code == 400
    assert listed(client, headers) == ["a.txt"]


def test_rename_to_the_same_name_is_harmless(client, headers):
    upload(client, headers, "a.txt")
    response = rename(client, headers, "a.txt", "a.txt")
    assert response.status_code == 200
    assert listed(client, headers) == ["a.txt"]


def test_rename_only_changes_case(client, headers):
    upload(client, headers, "photo.jpg")
    response = rename(client, headers, "photo.jpg", "Photo.JPG")
    assert response.status_code == 200
    assert listed(client, headers) == ["Photo.JPG"]


def test_a_numbered_name_still_fits_in_255_bytes(client, headers):
    name = "é" * 125 + ".jpg"  # 254 bytes
    assert upload(client, headers, name).get_json()["file"] == name
    second = upload(client, headers, name).get_json()["file"]
    assert second.endswith("_1.jpg")
    assert len(second.encode()) <= 255
    assert listed(client, headers) == sorted([name, second], key=str.casefold)


def test_numbering_goes_past_many_taken_names(client, headers, pcloud):
    from pcloud.models import StoredFile, User, database_proxy
    from pcloud.services import tree

    owner = User.get(User.username == "ann").id
    taken = ["x.txt", *(f"x_{number}.txt" for number in range(1, 40))]
    with database_proxy.atomic():
        root_id = tree.lock(owner)
        StoredFile.insert_many(
            [
                {
                    "owner": owner,
                    "folder": root_id,
                    "name": name,
                    "blob_key": f"{number:032x}",
                    "size": 0,
                    "sha256": "0" * 64,
                }
                for number, name in enumerate(taken)
            ]
        ).execute()
    assert upload(client, headers, "x.txt").get_json()["file"] == "x_40.txt"
