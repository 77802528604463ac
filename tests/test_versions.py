"""File versions: replacing a file's content keeps the old content as a version, which can
be listed, downloaded (Range, ETag), restored and deleted; retention thins them by a
clock the test controls; they count in the quota exactly and give way to new uploads."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

from pcloud.models import Blob, FileVersion, StoredFile
from pcloud.services import gc, versions
from tests.sync_helpers import API, put_file


def replace(client, headers, name, content, **fields):
    response = put_file(client, headers, name, content, on_conflict="replace", **fields)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def versions_of(client, headers, file_id):
    response = client.get(f"{API}/files/{file_id}/versions", headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["versions"]


def ref_counts() -> dict[str, int]:
    return {row.sha256: row.ref_count for row in Blob.select()}


def expected_ref_counts() -> dict[str, int]:
    """What every Blob's count must be: one per file and one per version of its content."""
    counts: dict[str, int] = {}
    for (sha256,) in StoredFile.select(StoredFile.sha256).tuples():
        counts[sha256] = counts.get(sha256, 0) + 1
    for (sha256,) in FileVersion.select(FileVersion.sha256).tuples():
        counts[sha256] = counts.get(sha256, 0) + 1
    return counts


def blob_files(settings) -> int:
    return len([p for p in (settings.upload_folder / "blobs").rglob("*") if p.is_file()])


def test_replacing_a_file_three_times_keeps_three_versions_newest_first(client, headers):
    file_id = put_file(client, headers, "notes.txt", b"first").get_json()["id"]
    for content in (b"second!", b"third!!!", b"fourth!!!!"):
        assert replace(client, headers, "notes.txt", content)["id"] == file_id
    listed = versions_of(client, headers, file_id)
    assert [v["size"] for v in listed] == [8, 7, 5]
    assert [v["sha256"] for v in listed] == [
        hashlib.sha256(c).hexdigest() for c in (b"third!!!", b"second!", b"first")
    ]
    me = client.get("/me", headers=headers).get_json()
    assert me["session_id"] == listed[0]["replaced_by_session_id"]
    assert listed[0]["replaced_by_user_id"] == me["id"]
    assert ref_counts() == expected_ref_counts()


def test_uploading_the_same_content_again_keeps_no_version(client, headers):
    file_id = put_file(client, headers, "same.txt", b"unchanged").get_json()["id"]
    replace(client, headers, "same.txt", b"unchanged")
    assert versions_of(client, headers, file_id) == []
    assert ref_counts() == expected_ref_counts()


def test_each_version_downloads_by_range_with_its_etag(client, headers):
    contents = [b"first version", b"second version!", b"third version!!!"]
    file_id = put_file(client, headers, "doc.txt", contents[0]).get_json()["id"]
    for content in contents[1:]:
        replace(client, headers, "doc.txt", content)
    listed = versions_of(client, headers, file_id)
    for version, content in zip(listed, contents[1::-1], strict=True):
        url = f"{API}/files/{file_id}/versions/{version['id']}/content"
        whole = client.get(url, headers=headers)
        assert whole.status_code == 200 and whole.data == content
        assert whole.headers["ETag"] == f'"{hashlib.sha256(content).hexdigest()}"'
        part = client.get(url, headers={**headers, "Range": "bytes=2-5"})
        assert part.status_code == 206 and part.data == content[2:6]
        unchanged = client.get(url, headers={**headers, "If-None-Match": whole.headers["ETag"]})
        assert unchanged.status_code == 304


def test_restoring_the_first_version_makes_the_current_content_a_version(client, headers):
    file_id = put_file(client, headers, "a.txt", b"one").get_json()["id"]
    replace(client, headers, "a.txt", b"two!")
    replace(client, headers, "a.txt", b"three")
    first = versions_of(client, headers, file_id)[-1]
    response = client.post(f"{API}/files/{file_id}/versions/{first['id']}/restore", headers=headers)
    assert response.status_code == 200
    assert response.get_json()["sha256"] == hashlib.sha256(b"one").hexdigest()
    assert client.get(f"{API}/files/{file_id}/content", headers=headers).data == b"one"
    assert [v["size"] for v in versions_of(client, headers, file_id)] == [5, 4]
    assert ref_counts() == expected_ref_counts()


def test_deleting_a_version_frees_its_bytes_and_refuses_it_twice(client, headers, settings):
    file_id = put_file(client, headers, "a.txt", b"old bytes").get_json()["id"]
    replace(client, headers, "a.txt", b"new bytes!")
    assert blob_files(settings) == 2
    (version,) = versions_of(client, headers, file_id)
    url = f"{API}/files/{file_id}/versions/{version['id']}"
    assert client.delete(url, headers=headers).status_code == 200
    assert versions_of(client, headers, file_id) == []
    assert blob_files(settings) == 1
    again = client.delete(url, headers=headers)
    assert again.status_code == 404 and again.get_json() == {"error": "Version not found"}


def test_deduplicated_content_keeps_its_bytes_while_a_version_uses_them(client, headers, settings):
    put_file(client, headers, "copy.txt", b"shared")
    file_id = put_file(client, headers, "a.txt", b"shared").get_json()["id"]
    replace(client, headers, "a.txt", b"other")
    client.delete("/delete/copy.txt", headers=headers)
    (version,) = versions_of(client, headers, file_id)
    url = f"{API}/files/{file_id}/versions/{version['id']}/content"
    assert client.get(url, headers=headers).data == b"shared"
    assert ref_counts() == expected_ref_counts()


def test_another_users_versions_are_not_found(client, auth, headers):
    file_id = put_file(client, headers, "a.txt", b"mine").get_json()["id"]
    replace(client, headers, "a.txt", b"mine too")
    (version,) = versions_of(client, headers, file_id)
    bob = auth.headers("bob")
    base = f"{API}/files/{file_id}/versions"
    assert client.get(base, headers=bob).status_code == 404
    assert client.get(f"{base}/{version['id']}/content", headers=bob).status_code == 404
    assert client.post(f"{base}/{version['id']}/restore", headers=bob).status_code == 404
    assert client.delete(f"{base}/{version['id']}", headers=bob).status_code == 404
    assert client.get(f"{base}/99999999999999999999/content", headers=headers).status_code == 404


def test_versions_appear_in_the_change_feed_of_a_client_that_asks(client, headers):
    cursor = client.get(f"{API}/changes/cursor", headers=headers).get_json()["cursor"]
    file_id = put_file(client, headers, "a.txt", b"v1").get_json()["id"]
    replace(client, headers, "a.txt", b"v2")
    (version,) = versions_of(client, headers, file_id)
    client.delete(f"{API}/files/{file_id}/versions/{version['id']}", headers=headers)
    plain = client.get(f"{API}/changes", headers=headers, query_string={"cursor": cursor})
    assert {c["type"] for c in plain.get_json()["changes"]} == {"file"}  # unless asked
    query = {"cursor": cursor, "versions": "true"}
    feed = client.get(f"{API}/changes", headers=headers, query_string=query)
    seen = [(c["kind"], c["type"]) for c in feed.get_json()["changes"]]
    assert seen == [
        ("created", "file"),
        ("created", "version"),
        ("modified", "file"),
        ("deleted", "version"),
    ]
    version_changes = [c for c in feed.get_json()["changes"] if c["type"] == "version"]
    assert {c["parent_id"] for c in version_changes} == {file_id}


def test_a_trashed_files_versions_go_to_the_trash_and_come_back(client, headers, pcloud):
    file_id = put_file(client, headers, "a.txt", b"v1").get_json()["id"]
    replace(client, headers, "a.txt", b"v2")
    assert client.delete(f"{API}/files/{file_id}", headers=headers).status_code == 200
    assert client.get(f"{API}/files/{file_id}/versions", headers=headers).status_code == 404
    assert client.get("/me", headers=headers).get_json()["versions_bytes"] == 2
    restored = client.post(f"{API}/trash/file/{file_id}/restore", headers=headers)
    assert restored.status_code == 200, restored.get_json()
    assert [v["size"] for v in versions_of(client, headers, file_id)] == [2]


def test_purging_a_file_purges_its_versions_and_their_bytes(client, headers, settings):
    file_id = put_file(client, headers, "a.txt", b"v1").get_json()["id"]
    replace(client, headers, "a.txt", b"v2!")
    client.delete(f"{API}/files/{file_id}", headers=headers)
    assert client.delete(f"{API}/trash", headers=headers).status_code == 200
    assert FileVersion.select().count() == 0
    assert Blob.select().count() == 0 and blob_files(settings) == 0


def test_versions_count_in_the_quota_exactly(runner, client, headers):
    runner.invoke("users", "set-quota", "ann", "100")
    file_id = put_file(client, headers, "a.bin", b"a" * 30).get_json()["id"]
    replace(client, headers, "a.bin", b"b" * 20)
    replace(client, headers, "a.bin", b"c" * 10)
    me = client.get("/me", headers=headers).get_json()
    assert (me["usage_bytes"], me["versions_bytes"]) == (60, 50)
    first = versions_of(client, headers, file_id)[-1]
    client.post(f"{API}/files/{file_id}/versions/{first['id']}/restore", headers=headers)
    me = client.get("/me", headers=headers).get_json()
    assert (me["usage_bytes"], me["versions_bytes"]) == (60, 30)


def test_the_oldest_versions_go_first_when_an_upload_needs_the_room(runner, client, headers):
    runner.invoke("users", "set-quota", "ann", "100")
    file_id = put_file(client, headers, "a.bin", b"a" * 30).get_json()["id"]
    replace(client, headers, "a.bin", b"b" * 25)  # version of 30
    replace(client, headers, "a.bin", b"c" * 20)  # version of 25; usage 75
    assert put_file(client, headers, "new.bin", b"n" * 40).status_code == 201  # needs 15
    assert [v["size"] for v in versions_of(client, headers, file_id)] == [25]
    me = client.get("/me", headers=headers).get_json()
    assert me["usage_bytes"] == 85 <= me["quota_bytes"]
    assert ref_counts() == expected_ref_counts()


def test_an_upload_versions_cannot_make_room_for_is_still_507(runner, client, headers):
    runner.invoke("users", "set-quota", "ann", "100")
    file_id = put_file(client, headers, "a.bin", b"a" * 60).get_json()["id"]
    replace(client, headers, "a.bin", b"b" * 30)
    response = put_file(client, headers, "big.bin", b"x" * 80)
    assert response.status_code == 507
    assert [v["size"] for v in versions_of(client, headers, file_id)] == [60]  # untouched


def test_a_replace_with_no_room_for_the_old_content_keeps_no_version(runner, client, headers):
    runner.invoke("users", "set-quota", "ann", "100")
    file_id = put_file(client, headers, "a.bin", b"a" * 60).get_json()["id"]
    replace(client, headers, "a.bin", b"b" * 70)
    assert versions_of(client, headers, file_id) == []
    assert client.get("/me", headers=headers).get_json()["usage_bytes"] == 70
    assert ref_counts() == expected_ref_counts()


NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def test_retention_keeps_every_version_of_a_day_then_one_a_day_then_one_a_week():
    hours = [1, 5, 23]  # all kept
    days = [30 + 24, 40 + 24, 24 * 3]  # day 2 twice: the newer stays
    weeks = [24 * 40, 24 * 41, 24 * 60]  # week 5 twice (days 40 and 41): the newer stays
    rows = [(i, NOW - timedelta(hours=h)) for i, h in enumerate(hours + days + weeks)]
    doomed = versions.retention_doomed(rows, NOW, timedelta(days=50))
    assert sorted(doomed) == [4, 7, 8]  # 40h (day 1 has 30h), 41 days, and 60 days (too old)


def test_gc_prunes_versions_by_a_controlled_clock(client, headers, pcloud, settings):
    file_id = put_file(client, headers, "a.txt", b"v0").get_json()["id"]
    for content in (b"v1", b"v2", b"v3"):
        replace(client, headers, "a.txt", content)
    ages = [timedelta(hours=2), timedelta(days=3, hours=1), timedelta(days=3, hours=5)]
    for version, age in zip(versions_of(client, headers, file_id), ages, strict=True):
        FileVersion.update(replaced_at=NOW - age).where(FileVersion.id == version["id"]).execute()
    assert versions.prune_by_settings(pcloud.blobs, settings, now=NOW) == 1
    assert [v["sha256"] for v in versions_of(client, headers, file_id)] == [
        hashlib.sha256(c).hexdigest() for c in (b"v2", b"v1")
    ]
    later = NOW + timedelta(days=400)  # past VERSIONS_MAX_AGE
    assert versions.prune_by_settings(pcloud.blobs, settings, now=later) == 2
    assert versions_of(client, headers, file_id) == []
    assert ref_counts() == expected_ref_counts()
    assert gc.find_garbage(pcloud.blobs, timedelta(0)).empty  # bytes went too


def test_gc_keeps_versions_within_their_share_of_the_quota(
    runner, client, headers, pcloud, settings
):
    runner.invoke("users", "set-quota", "ann", "100")
    file_id = put_file(client, headers, "a.bin", b"a" * 10).get_json()["id"]
    for fill in (b"b", b"c", b"d", b"e", b"f", b"g"):
        replace(client, headers, "a.bin", fill * 10)  # 60 bytes of versions
    assert versions.prune_by_settings(pcloud.blobs, settings) == 1  # 50% of 100
    assert client.get("/me", headers=headers).get_json()["versions_bytes"] == 50
    assert [v["size"] for v in versions_of(client, headers, file_id)] == [10] * 5


def test_files_gc_prunes_versions(runner, client, headers):
    file_id = put_file(client, headers, "a.txt", b"v0").get_json()["id"]
    replace(client, headers, "a.txt", b"v1")
    FileVersion.update(replaced_at=NOW - timedelta(days=800)).execute()
    result = runner.invoke("files", "gc")
    assert result.exit_code == 0, result.output
    assert "1 file version" in result.output
    assert versions_of(client, headers, file_id) == []


def test_deleting_a_user_releases_their_versions_content(runner, client, headers, auth):
    bob = auth.headers("bob")
    put_file(client, bob, "same.txt", b"shared content")
    put_file(client, headers, "a.txt", b"shared content")
    replace(client, headers, "a.txt", b"ann's new content")
    result = runner.invoke("users", "delete", "ann", "--yes")
    assert result.exit_code == 0, result.output
    assert ref_counts() == expected_ref_counts()
