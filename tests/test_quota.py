"""Quotas: set by the admin, reported by GET /me, enforced with 507 before bytes are
stored (POST /upload, uploads into folders, tus, copies), trash included."""

from __future__ import annotations

import io

from tests.sync_helpers import API, put_file


def blob_count(settings):
    return len([p for p in (settings.upload_folder / "blobs").rglob("*") if p.is_file()])


def test_set_quota_and_me_reports_usage_and_quota(runner, client, headers):
    put_file(client, headers, "a.txt", b"12345")
    me = client.get("/me", headers=headers).get_json()
    assert (me["usage_bytes"], me["quota_bytes"]) == (5, None)
    result = runner.invoke("users", "set-quota", "ann", "1MiB")
    assert result.exit_code == 0, result.output
    assert client.get("/me", headers=headers).get_json()["quota_bytes"] == 1024 * 1024
    assert runner.invoke("users", "set-quota", "ann", "none").exit_code == 0
    assert client.get("/me", headers=headers).get_json()["quota_bytes"] is None


def test_a_bad_quota_is_one_line_exit_1(runner, auth):
    auth.register()
    result = runner.invoke("users", "set-quota", "ann", "lots")
    assert result.exit_code == 1 and "Error" in result.output


def test_an_upload_past_the_quota_is_507_and_stores_nothing(runner, client, headers, settings):
    runner.invoke("users", "set-quota", "ann", "10000")
    big = b"x" * 20_000
    response = client.post("/upload", headers=headers, data={"file": (io.BytesIO(big), "big.bin")})
    assert response.status_code == 507
    assert "quota" in response.get_json()["error"]
    assert put_file(client, headers, "big.bin", big).status_code == 507
    assert blob_count(settings) == 0


def test_the_commit_check_catches_what_content_length_missed(runner, client, headers, settings):
    runner.invoke("users", "set-quota", "ann", "4000")  # within the framing allowance
    response = put_file(client, headers, "a.bin", b"y" * 5000)
    assert response.status_code == 507
    assert blob_count(settings) == 0


def test_a_tus_upload_past_the_quota_is_507_at_creation(runner, client, headers):
    runner.invoke("users", "set-quota", "ann", "100")
    response = client.post(
        "/tus/",
        headers={
            **headers,
            "Tus-Resumable": "1.0.0",
            "Upload-Length": "1000",
            "Upload-Metadata": "filename YS50eHQ=",
        },
    )
    assert response.status_code == 507


def test_copies_and_trash_count_toward_the_quota(runner, client, headers):
    entry = put_file(client, headers, "a.bin", b"z" * 600).get_json()
    runner.invoke("users", "set-quota", "ann", "1000")
    copy = client.post(f"{API}/files/{entry['id']}/copy", headers=headers, json={"name": "b"})
    assert copy.status_code == 507
    client.delete(f"{API}/files/{entry['id']}", headers=headers)
    assert put_file(client, headers, "c.bin", b"w" * 600).status_code == 507
    client.delete(f"{API}/trash", headers=headers)
    assert put_file(client, headers, "c.bin", b"w" * 600).status_code == 201


def test_a_batch_from_content_stops_at_the_quota(runner, client, headers):
    import hashlib

    put_file(client, headers, "a.bin", b"q" * 400)
    runner.invoke("users", "set-quota", "ann", "1000")
    item = {"sha256": hashlib.sha256(b"q" * 400).hexdigest()}
    response = client.post(
        f"{API}/files/from-content/batch",
        headers=headers,
        json={"files": [{**item, "name": "b.bin"}, {**item, "name": "c.bin"}]},
    )
    assert [r["status"] for r in response.get_json()["results"]] == [201, 507]


def test_the_quota_error_says_sizes_as_people_do_with_figures_that_add_up(runner, client, headers):
    put_file(client, headers, "half.bin", b"h" * (512 * 1024))
    runner.invoke("users", "set-quota", "ann", "1MiB")
    response = client.post(
        "/tus/",
        headers={
            **headers,
            "Tus-Resumable": "1.0.0",
            "Upload-Length": str(2 * 1024 * 1024),
            "Upload-Metadata": "filename YS50eHQ=",
        },
    )
    assert response.status_code == 507
    body = response.get_json()
    assert body["error"] == (
        "This upload would add 2 MiB, bringing your usage to 2.5 MiB, over your quota of "
        "1 MiB: delete files and empty the trash, or ask the admin for more room"
    )
    assert (body["usage_bytes"], body["quota_bytes"]) == (512 * 1024, 1024 * 1024)


def test_a_copy_past_the_quota_is_called_a_copy(runner, client, headers):
    entry = put_file(client, headers, "a.bin", b"z" * 600).get_json()
    runner.invoke("users", "set-quota", "ann", "1000")
    copy = client.post(f"{API}/files/{entry['id']}/copy", headers=headers, json={"name": "b"})
    assert copy.get_json()["error"].startswith(
        "This copy would add 600 bytes, bringing your usage to 1.1 KiB, over your quota of "
        "1000 bytes"
    )
