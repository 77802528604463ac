"""Upload-check: present (and where), trashed, deleted earlier, or absent, for a batch of
SHA-256 values; never a word about other users' files. And files made from content."""

from __future__ import annotations

import hashlib
import io

import pytest

from tests.sync_helpers import API, make_folder, names_in, put_file


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def check(client, headers, hashes):
    response = client.post(f"{API}/upload-check", headers=headers, json={"sha256": hashes})
    assert response.status_code == 200, response.get_json()
    return {r["sha256"]: r for r in response.get_json()["results"]}


def test_each_status_is_told_with_paths(client, headers):
    folder = make_folder(client, headers, "Camera").get_json()
    put_file(client, headers, "a.jpg", b"present", folder=folder["id"])
    gone = put_file(client, headers, "b.jpg", b"trashed").get_json()
    client.delete(f"{API}/files/{gone['id']}", headers=headers)
    client.post("/upload", headers=headers, data={"file": (io.BytesIO(b"deleted"), "c.jpg")})
    client.delete("/delete/c.jpg", headers=headers)
    results = check(
        client, headers, [sha(b"present"), sha(b"trashed"), sha(b"deleted"), sha(b"no")]
    )
    assert results[sha(b"present")] == {
        "sha256": sha(b"present"),
        "status": "present",
        "paths": ["/Camera/a.jpg"],
    }
    assert results[sha(b"trashed")]["status"] == "trashed"
    assert results[sha(b"deleted")]["status"] == "deleted"
    assert "deleted_at" in results[sha(b"deleted")]
    assert results[sha(b"no")] == {"sha256": sha(b"no"), "status": "absent"}


def test_a_content_with_many_copies_is_answered_with_ten_of_their_paths(client, headers):
    """However many copies a library holds, the answer (and the rows read for it) stays
    as large: ten paths, and `more_paths`."""
    for number in range(14):
        put_file(client, headers, f"copy {number:02d}.jpg", b"one photo")
    put_file(client, headers, "single.jpg", b"another")
    results = check(client, headers, [sha(b"one photo"), sha(b"another")])
    assert results[sha(b"one photo")] == {
        "sha256": sha(b"one photo"),
        "status": "present",
        "paths": [f"/copy {number:02d}.jpg" for number in range(10)],
        "more_paths": True,
    }
    assert "more_paths" not in results[sha(b"another")]


def test_a_live_copy_behind_many_in_a_trashed_folder_still_counts_as_present(client, headers):
    """Files keep their folder when the folder goes to the trash: the first copies read
    may all be trashed so, and the live one beyond them must still be found."""
    old = make_folder(client, headers, "Old").get_json()
    for number in range(12):
        put_file(client, headers, f"{number}.jpg", b"kept twice", folder=old["id"])
    assert client.delete(f"{API}/folders/{old['id']}", headers=headers).status_code == 200
    results = check(client, headers, [sha(b"kept twice")])
    assert results[sha(b"kept twice")]["status"] == "trashed"
    put_file(client, headers, "live.jpg", b"kept twice")
    results = check(client, headers, [sha(b"kept twice")])
    assert results[sha(b"kept twice")]["status"] == "present"
    assert results[sha(b"kept twice")]["paths"] == ["/live.jpg"]


def test_content_purged_from_the_trash_is_remembered_as_deleted(client, headers):
    entry = put_file(client, headers, "a.jpg", b"photo").get_json()
    client.delete(f"{API}/files/{entry['id']}", headers=headers)
    client.delete(f"{API}/trash", headers=headers)
    assert check(client, headers, [sha(b"photo")])[sha(b"photo")]["status"] == "deleted"


def test_the_memory_of_deleted_content_can_be_cleared(client, headers):
    client.post("/upload", headers=headers, data={"file": (io.BytesIO(b"x"), "c.jpg")})
    client.delete("/delete/c.jpg", headers=headers)
    assert client.delete(f"{API}/deleted-content", headers=headers).get_json() == {"forgotten": 1}
    assert check(client, headers, [sha(b"x")])[sha(b"x")]["status"] == "absent"


def test_other_users_content_is_absent_for_me(client, auth):
    ann, bob = auth.headers("ann"), auth.headers("bob")
    put_file(client, ann, "a.jpg", b"anns")
    client.post("/upload", headers=ann, data={"file": (io.BytesIO(b"gone"), "g.jpg")})
    client.delete("/delete/g.jpg", headers=ann)
    results = check(client, bob, [sha(b"anns"), sha(b"gone")])
    assert {r["status"] for r in results.values()} == {"absent"}


def test_ten_thousand_hashes_in_one_request(client, headers):
    put_file(client, headers, "a.jpg", b"one")
    hashes = [f"{n:064x}" for n in range(9_999)] + [sha(b"one").upper()]
    response = client.post(f"{API}/upload-check", headers=headers, json={"sha256": hashes})
    results = response.get_json()["results"]
    assert len(results) == 10_000
    assert results[-1]["status"] == "present"


@pytest.mark.parametrize(
    "body",
    [
        {"sha256": "abc"},
        {"sha256": ["nothex"]},
        {"sha256": [1]},
        {"sha256": ["a" * 63]},
        {},
        {"sha256": ["0" * 64] * 10_001},
    ],
)
def test_malformed_batches_are_400(client, headers, body):
    response = client.post(f"{API}/upload-check", headers=headers, json=body)
    assert response.status_code == 400
    assert "error" in response.get_json()


def test_a_file_from_content_i_have_costs_no_upload(client, headers, settings):
    put_file(client, headers, "a.jpg", b"pixels")
    folder = make_folder(client, headers, "Album").get_json()
    response = client.post(
        f"{API}/files/from-content",
        headers=headers,
        json={
            "sha256": sha(b"pixels"),
            "name": "same.jpg",
            "folder_id": folder["id"],
            "modified_at": "2021-06-01T10:00:00Z",
        },
    )
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["modified_at"] == "2021-06-01T10:00:00.000Z"
    assert names_in(client, headers, folder["id"]) == ["same.jpg"]
    assert len([p for p in (settings.upload_folder / "blobs").rglob("*") if p.is_file()]) == 1


@pytest.mark.parametrize("moment", [1622541600000, 1622541600000.0])
def test_from_content_takes_epoch_milliseconds_as_json_numbers(client, headers, moment):
    # JSON's 1622541600000.0 is the same number (found by schemathesis: it was a 400)
    put_file(client, headers, "a.jpg", b"pixels")
    body = {"sha256": sha(b"pixels"), "name": "same.jpg", "modified_at": moment}
    response = client.post(f"{API}/files/from-content", headers=headers, json=body)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["modified_at"] == "2021-06-01T10:00:00.000Z"


def test_a_file_from_content_someone_else_has_is_404(client, auth):
    put_file(client, auth.headers("ann"), "a.jpg", b"anns")
    response = client.post(
        f"{API}/files/from-content",
        headers=auth.headers("bob"),
        json={"sha256": sha(b"anns"), "name": "stolen.jpg"},
    )
    assert response.status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"sha256": "x", "name": "a.jpg"},
        {"sha256": "0" * 64, "name": "../a"},
        {"sha256": "0" * 64, "name": "a.jpg", "modified_at": [1]},
        {"sha256": "0" * 64, "name": "a.jpg", "modified_at": "soon"},
        {"sha256": "0" * 64, "name": "a.jpg", "modified_at": 1.5},
    ],
)
def test_malformed_from_content_requests_are_400(client, headers, body):
    put_file(client, headers, "a.jpg", b"x")
    response = client.post(f"{API}/files/from-content", headers=headers, json=body)
    assert response.status_code == 400


def test_a_batch_from_content_makes_each_file_and_reports_each_refusal(client, headers):
    put_file(client, headers, "a.jpg", b"one")
    put_file(client, headers, "b.jpg", b"two")
    folder = make_folder(client, headers, "Album").get_json()
    response = client.post(
        f"{API}/files/from-content/batch",
        headers=headers,
        json={
            "files": [
                {"sha256": sha(b"one"), "name": "1.jpg", "folder_id": folder["id"]},
                {"sha256": sha(b"two"), "name": "2.jpg", "folder_id": folder["id"]},
                {"sha256": sha(b"never"), "name": "3.jpg"},
                {"sha256": sha(b"one"), "name": "a.jpg"},  # taken in the root
            ]
        },
    )
    assert response.status_code == 200
    results = response.get_json()["results"]
    assert [r["status"] for r in results] == [201, 201, 404, 409]
    assert results[0]["file"]["name"] == "1.jpg"
    assert "error" in results[2] and "error" in results[3]
    assert names_in(client, headers, folder["id"]) == ["1.jpg", "2.jpg"]


@pytest.mark.parametrize(
    "body",
    [{}, {"files": []}, {"files": "x"}, {"files": [{"sha256": "0" * 64}]}, {"files": [7]}],
)
def test_malformed_batches_from_content_are_400(client, headers, body):
    response = client.post(f"{API}/files/from-content/batch", headers=headers, json=body)
    assert response.status_code == 400


def test_a_batch_of_more_than_a_thousand_is_400(client, headers):
    item = {"sha256": "0" * 64, "name": "a.jpg"}
    response = client.post(
        f"{API}/files/from-content/batch", headers=headers, json={"files": [item] * 1001}
    )
    assert response.status_code == 400


def test_a_contents_oldest_copies_are_read_from_the_index_without_a_sort(
    client, headers, pcloud, caplog
):
    """PostgreSQL's plan for a content's first copies walks (owner, sha256, id) in order
    and stops: no Sort of every copy (a library of 100 copies per content read them all,
    three times the time at a million files)."""
    import logging

    import peewee

    if not isinstance(pcloud.database, peewee.PostgresqlDatabase):
        pytest.skip("SQLite's indexes end in the rowid: the id order is there anyway")
    for number in range(3):
        put_file(client, headers, f"copy{number}", b"the same bytes")
    with caplog.at_level(logging.DEBUG, logger="peewee"):
        check(client, headers, [sha(b"the same bytes")])
    [(sql, params)] = [
        record.msg
        for record in caplog.records
        if record.name == "peewee" and "LATERAL" in str(record.msg[0])
    ]
    with pcloud.database.connection_context(), pcloud.database.atomic():
        pcloud.database.execute_sql("SET LOCAL enable_seqscan = off")  # a tiny table
        plan = " | ".join(row[0] for row in pcloud.database.execute_sql(f"EXPLAIN {sql}", params))
    assert "stored_file_owner_id_sha256_id" in plan, plan
    assert "Sort" not in plan, plan
