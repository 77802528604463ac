"""`pcloud files gc` and pcloud.services.gc: orphan blobs, rows without blobs, dead partials."""

from __future__ import annotations

import io
import os
import time
import uuid
from datetime import timedelta
from pathlib import Path

from pcloud.models import StoredFile
from pcloud.services import gc
from tests.tus_helpers import unfinished_upload

TWO_HOURS_AGO = 2 * 3600


def age(path: Path, seconds: float) -> Path:
    """Set path's modification time `seconds` into the past."""
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def orphan_blob(settings, content: bytes = b"nobody's bytes", seconds_old: float = TWO_HOURS_AGO):
    """A blob no file row points to, written straight into the store's folder."""
    key = "ab" + uuid.uuid4().hex[2:]
    path = settings.upload_folder / "blobs" / "ab" / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return age(path, seconds_old)


def partial_upload(settings, name: str = "xyz.part", seconds_old: float = TWO_HOURS_AGO) -> Path:
    path = settings.upload_folder / "partial" / name
    path.write_bytes(b"half an upl")
    return age(path, seconds_old)


def upload(client, headers, name: str, content: bytes) -> None:
    response = client.post("/upload", headers=headers, data={"file": (io.BytesIO(content), name)})
    assert response.status_code == 201, response.get_json()


def listed(client, headers) -> list[str]:
    return [entry["filename"] for entry in client.get("/files", headers=headers).get_json()]


def gc_command(runner, *options: str):
    result = runner.invoke("files", "gc", *options, env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    return result


def test_a_clean_store_has_nothing_to_collect(runner, client, auth):
    upload(client, auth.headers(), "a.txt", b"kept")
    result = gc_command(runner)
    assert "Nothing to collect" in result.output
    assert "1 blob(s) checked" in result.output


def test_an_empty_store_has_nothing_to_collect(runner):
    assert "Nothing to collect" in gc_command(runner).output


def test_an_old_orphan_blob_is_reported_and_removed(runner, settings):
    orphan = orphan_blob(settings)
    result = gc_command(runner)
    assert "orphan blob" in result.output
    assert orphan.name in result.output
    assert "Removed 1 orphan blob(s)" in result.output
    assert not orphan.exists()
    assert "Nothing to collect" in gc_command(runner).output


def test_dry_run_reports_the_orphan_and_keeps_it(runner, settings):
    orphan = orphan_blob(settings)
    result = gc_command(runner, "--dry-run")
    assert orphan.name in result.output
    assert "Dry run" in result.output
    assert orphan.exists()


def test_an_orphan_younger_than_the_grace_period_is_left_alone(runner, settings):
    young = orphan_blob(settings, seconds_old=30 * 60)  # maybe an upload about to commit
    result = gc_command(runner)
    assert "Nothing to collect" in result.output
    assert young.exists()


def test_grace_zero_collects_young_orphans(runner, settings):
    young = orphan_blob(settings, seconds_old=0)
    result = gc_command(runner, "--grace", "0")
    assert "Removed 1 orphan blob(s)" in result.output
    assert not young.exists()


def test_the_grace_period_can_be_given_with_a_unit(runner, settings):
    orphan = orphan_blob(settings, seconds_old=10 * 60)
    assert "Nothing to collect" in gc_command(runner, "--grace", "1h").output
    assert "Removed 1 orphan blob(s)" in gc_command(runner, "--grace", "5m").output
    assert not orphan.exists()


def test_a_bad_grace_period_is_a_usage_error(runner):
    result = runner.invoke("files", "gc", "--grace", "soon")
    assert result.exit_code == 2
    assert "--grace" in result.output
    assert "Unexpected error" not in result.output


def test_a_file_whose_blob_is_gone_is_reported_and_its_row_removed(runner, client, auth, settings):
    headers = auth.headers()
    upload(client, headers, "lost.txt", b"gone")
    upload(client, headers, "kept.txt", b"still here")
    lost = StoredFile.get(StoredFile.name == "lost.txt")
    (settings.upload_folder / "blobs" / lost.blob_key[:2] / lost.blob_key).unlink()
    result = gc_command(runner)
    assert "file without content" in result.output
    assert "ann: lost.txt" in result.output
    assert "1 file record(s) without content" in result.output
    assert listed(client, headers) == ["kept.txt"]


def test_dry_run_keeps_a_file_whose_blob_is_gone(runner, client, auth, settings):
    headers = auth.headers()
    upload(client, headers, "lost.txt", b"gone")
    lost = StoredFile.get(StoredFile.name == "lost.txt")
    (settings.upload_folder / "blobs" / lost.blob_key[:2] / lost.blob_key).unlink()
    assert "ann: lost.txt" in gc_command(runner, "--dry-run").output
    assert listed(client, headers) == ["lost.txt"]


def test_a_stale_partial_upload_is_removed(runner, settings):
    stale = partial_upload(settings)
    result = gc_command(runner)
    assert "partial upload" in result.output
    assert "1 partial upload(s)" in result.output
    assert not stale.exists()


def test_a_partial_upload_in_progress_is_left_alone(runner, settings):
    running = partial_upload(settings, "tmpinflight.part", seconds_old=5)
    assert "Nothing to collect" in gc_command(runner).output
    assert running.exists()


def test_files_with_intact_blobs_are_untouched_and_still_download(runner, client, auth, settings):
    headers = auth.headers()
    upload(client, headers, "a.txt", b"first")
    upload(client, headers, "b.txt", b"second")
    orphan = orphan_blob(settings)
    partial_upload(settings)
    result = gc_command(runner, "--grace", "0")
    assert (
        "Removed 1 orphan blob(s), 1 partial upload(s), 0 resumable upload(s) and 0 file record(s)"
        in result.output
    )
    assert not orphan.exists()
    assert listed(client, headers) == ["a.txt", "b.txt"]
    assert client.get("/download/a.txt", headers=headers).data == b"first"
    assert client.get("/download/b.txt", headers=headers).data == b"second"


def test_gc_reports_the_bytes_it_reclaims(runner, settings):
    orphan_blob(settings, content=b"x" * 2048)
    assert "2 KiB reclaimed" in gc_command(runner).output


# --- The service ------------------------------------------------------------------------


def test_find_garbage_changes_nothing(pcloud, client, auth, settings):
    upload(client, auth.headers(), "a.txt", b"kept")
    orphan = orphan_blob(settings)
    stale = partial_upload(settings)
    report = gc.find_garbage(pcloud.blobs)
    assert [entry.key for entry in report.orphan_blobs] == [orphan.name]
    assert [entry.key for entry in report.stale_partials] == [stale.name]
    assert report.broken_files == []
    assert report.blobs_scanned == 2
    assert orphan.exists() and stale.exists()


def test_find_garbage_measures_the_grace_period_from_now(pcloud, settings):
    orphan = orphan_blob(settings, seconds_old=30 * 60)
    assert gc.find_garbage(pcloud.blobs).empty
    assert not gc.find_garbage(pcloud.blobs, grace=timedelta(minutes=20)).empty
    later = gc.utc_now() + timedelta(hours=1)
    assert [entry.key for entry in gc.find_garbage(pcloud.blobs, now=later).orphan_blobs] == [
        orphan.name
    ]


def test_find_garbage_reports_progress_over_every_blob(pcloud, client, auth, settings):
    upload(client, auth.headers(), "a.txt", b"one")
    orphan_blob(settings)
    calls = []
    gc.find_garbage(pcloud.blobs, progress=lambda done, total: calls.append((done, total)))
    # The total is known only once the listing ends (on S3 it comes a page at a time):
    # until then it is the number of blobs the database expects, or more.
    assert [done for done, _total in calls] == [1, 2]
    assert all(total >= done for done, total in calls) and calls[-1] == (2, 2)


def test_a_file_outside_its_shard_folder_is_not_claimed_as_a_blob(runner, settings):
    misplaced = orphan_blob(settings)
    moved = settings.upload_folder / "blobs" / "cd" / misplaced.name
    moved.parent.mkdir()
    misplaced.rename(moved)
    assert "Nothing to collect" in gc_command(runner).output
    assert moved.exists()


def test_gc_forgets_long_ended_sessions_and_stale_failure_counts(runner, client, auth):
    from datetime import timedelta

    from pcloud.models import DeviceSession, RefreshToken, SignInThrottle, utc_now

    tokens = auth.tokens()
    live = auth.tokens()
    client.post("/logout", json={"refresh_token": tokens["refresh_token"]})
    client.post("/login", json={"login_identifier": "ann", "password": "wrong"})
    long_ago = utc_now() - timedelta(days=40)
    DeviceSession.update(revoked_at=long_ago).where(
        DeviceSession.revoked_at.is_null(False)
    ).execute()
    SignInThrottle.update(last_failure_at=long_ago).execute()

    result = runner.invoke("files", "gc")

    assert result.exit_code == 0, result.output
    assert "Forgot 1 session(s)" in result.output
    assert DeviceSession.select().count() == 1
    assert RefreshToken.select().count() == 1
    assert SignInThrottle.select().count() == 0
    headers = {"Authorization": f"Bearer {live['access_token']}"}
    assert client.get("/files", headers=headers).status_code == 200


# --- Resumable (tus) uploads --------------------------------------------------------------


def expire(upload_id: str) -> None:
    from pcloud.models import TusUpload

    past = gc.utc_now() - timedelta(minutes=1)
    TusUpload.update(expires_at=past).where(TusUpload.id == upload_id).execute()


def test_an_expired_tus_upload_loses_its_row_and_its_bytes(runner, client, auth, settings):
    from pcloud.models import TusUpload

    headers = auth.headers()
    upload_id = unfinished_upload(client, headers, b"x" * 4000, length=8000)
    kept = unfinished_upload(client, headers)
    expire(upload_id)
    result = gc_command(runner, "--dry-run")
    assert "expired upload" in result.output and "v.mp4" in result.output
    assert (settings.upload_folder / "resumable" / upload_id).exists()
    result = gc_command(runner)
    assert "1 resumable upload(s)" in result.output
    assert "3.9 KiB reclaimed" in result.output
    assert not (settings.upload_folder / "resumable" / upload_id).exists()
    assert [row.id for row in TusUpload.select()] == [kept]
    assert (settings.upload_folder / "resumable" / kept).exists()
    tus = {**headers, "Tus-Resumable": "1.0.0"}
    assert client.head(f"/tus/{upload_id}", headers=tus).status_code == 404


def test_an_unfinished_tus_upload_in_time_is_left_alone(runner, client, auth, settings):
    upload_id = unfinished_upload(client, auth.headers())
    age(settings.upload_folder / "resumable" / upload_id, TWO_HOURS_AGO)
    assert "Nothing to collect" in gc_command(runner).output


def test_resumable_bytes_with_no_upload_are_removed_after_the_grace_period(runner, settings):
    orphan = settings.upload_folder / "resumable" / "no_such_upload_0123456789"
    orphan.write_bytes(b"abandoned")
    assert "Nothing to collect" in gc_command(runner).output  # young: maybe being created
    age(orphan, TWO_HOURS_AGO)
    result = gc_command(runner)
    assert "abandoned upload" in result.output
    assert not orphan.exists()


def test_a_complete_tus_upload_that_expired_loses_its_row_but_keeps_its_file(runner, client, auth):
    headers = auth.headers()
    upload_id = unfinished_upload(client, headers, b"12345678", length=8)
    expire(upload_id)
    gc_command(runner)
    assert listed(client, headers) == ["v.mp4"]
    assert client.get("/download/v.mp4", headers=headers).data == b"12345678"
