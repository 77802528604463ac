"""Thumbnails and photo details: `GET /api/v1/files/<id>/thumbnail`, and `taken_at`,
`width`, `height`, `duration` in listings and the change feed."""

from __future__ import annotations

import io
import time
import zlib

import av
import pytest
from PIL import Image

from pcloud.media.pool import DecodeFailed, DecoderPool
from pcloud.models import MediaInfo, Thumbnail
from pcloud.services import thumbnails

WEBP = {"Accept": "image/avif,image/webp,image/apng,*/*;q=0.8"}


def picture(width=640, height=480, image_format="JPEG", exif=None, **options) -> bytes:
    image = Image.new("RGB", (width, height), (200, 40, 40))
    for x in range(0, width, 4):  # something to compress
        image.putpixel((x, x * height // width), (0, 0, 255))
    out = io.BytesIO()
    if exif is not None:
        options["exif"] = exif
    image.save(out, image_format, **options)
    return out.getvalue()


def exif_of(orientation=1, taken="2024:05:01 14:00:00", offset="+02:00") -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    details = exif.get_ifd(0x8769)
    details[0x9003] = taken
    if offset:
        details[0x9011] = offset
    return exif


def upload(client, headers, data: bytes, name: str) -> dict:
    response = client.post(
        "/api/v1/folders/root/files",
        headers=headers,
        data={"file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def thumb(client, headers, file_id, size=None, accept=None):
    query = "" if size is None else f"?size={size}"
    return client.get(
        f"/api/v1/files/{file_id}/thumbnail{query}", headers={**headers, **(accept or {})}
    )


def opened(response) -> Image.Image:
    return Image.open(io.BytesIO(response.data))


def test_a_jpeg_gets_a_webp_thumbnail_when_the_client_accepts_webp(client, auth):
    headers = auth.headers()
    entry = upload(client, headers, picture(4000, 3000), "big.jpg")
    response = thumb(client, headers, entry["id"], accept=WEBP)
    assert response.status_code == 200, response.get_json()
    assert response.mimetype == "image/webp"
    assert opened(response).size == (256, 192)
    # Kept a year without asking again (no no-cache), by this browser only.
    assert response.headers["Cache-Control"] == "private, max-age=31536000, immutable"
    assert response.headers["Vary"] == "Accept"
    assert "Content-Disposition" not in response.headers  # it would name the store's key
    assert response.headers["ETag"]


def test_without_webp_in_accept_the_thumbnail_is_jpeg_and_1024_is_a_size(client, auth):
    headers = auth.headers()
    entry = upload(client, headers, picture(3000, 4000), "tall.jpg")
    response = thumb(client, headers, entry["id"], size=1024)
    assert response.mimetype == "image/jpeg"
    assert opened(response).format == "JPEG"
    assert opened(response).size == (768, 1024)


def test_an_unknown_size_is_400(client, auth):
    headers = auth.headers()
    entry = upload(client, headers, picture(), "a.jpg")
    response = thumb(client, headers, entry["id"], size=300)
    assert response.status_code == 400
    assert "256" in response.get_json()["error"]


def test_the_etag_answers_304_and_the_thumbnail_is_made_once(client, auth):
    headers = auth.headers()
    entry = upload(client, headers, picture(), "a.jpg")
    first = thumb(client, headers, entry["id"])
    again = client.get(
        f"/api/v1/files/{entry['id']}/thumbnail",
        headers={**headers, "If-None-Match": first.headers["ETag"]},
    )
    assert again.status_code == 304
    assert Thumbnail.select().count() == 1


def test_exif_orientation_is_applied_and_capture_time_is_listed(client, auth):
    headers = auth.headers()
    data = picture(800, 600, exif=exif_of(orientation=6))  # stored sideways: shown 600x800
    entry = upload(client, headers, data, "phone.jpg")
    response = thumb(client, headers, entry["id"])
    assert opened(response).size == (192, 256)
    listed = client.get("/api/v1/folders/root", headers=headers).get_json()["entries"][0]
    assert listed["taken_at"] == "2024-05-01T14:00:00+02:00"
    assert (listed["width"], listed["height"], listed["duration"]) == (600, 800, None)
    one = client.get(f"/api/v1/files/{entry['id']}", headers=headers).get_json()
    assert one["taken_at"] == "2024-05-01T14:00:00+02:00"


def test_a_capture_time_without_offset_is_the_cameras_local_time(client, auth):
    headers = auth.headers()
    entry = upload(client, headers, picture(exif=exif_of(offset=None)), "old.jpg")
    thumb(client, headers, entry["id"])
    listed = client.get("/api/v1/folders/root", headers=headers).get_json()["entries"][0]
    assert listed["taken_at"] == "2024-05-01T14:00:00"


def test_the_change_feed_carries_the_photo_details(client, auth):
    headers = auth.headers()
    cursor = client.get("/api/v1/changes/cursor", headers=headers).get_json()["cursor"]
    entry = upload(client, headers, picture(exif=exif_of()), "a.jpg")
    thumb(client, headers, entry["id"])
    change = client.get(f"/api/v1/changes?cursor={cursor}", headers=headers).get_json()
    created = change["changes"][0]
    assert created["taken_at"] == "2024-05-01T14:00:00+02:00"
    assert (created["width"], created["height"]) == (640, 480)


def test_a_listing_sorts_by_capture_time_with_undated_files_last(client, auth):
    headers = auth.headers()
    for name, taken in (("b.jpg", "2024:05:03 10:00:00"), ("c.jpg", "2020:01:01 10:00:00")):
        entry = upload(client, headers, picture(exif=exif_of(taken=taken)), name)
        thumb(client, headers, entry["id"])
    upload(client, headers, b"not a picture", "a.txt")
    listing = client.get("/api/v1/folders/root?sort=taken_at", headers=headers).get_json()
    assert [e["name"] for e in listing["entries"]] == ["c.jpg", "b.jpg", "a.txt"]
    newest = client.get("/api/v1/folders/root?sort=taken_at&order=desc", headers=headers)
    assert [e["name"] for e in newest.get_json()["entries"]][:2] == ["b.jpg", "c.jpg"]


@pytest.mark.parametrize(
    ("image_format", "name", "options"),
    [
        ("PNG", "a.png", {}),
        ("GIF", "a.gif", {}),
        ("WEBP", "a.webp", {}),
        ("TIFF", "a.tiff", {}),
        ("HEIF", "a.heic", {}),
    ],
)
def test_every_picture_format_phones_and_cameras_write_gets_a_thumbnail(
    client, auth, image_format, name, options
):
    if image_format == "HEIF":
        import pillow_heif

        pillow_heif.register_heif_opener()
    headers = auth.headers()
    entry = upload(client, headers, picture(600, 300, image_format, **options), name)
    response = thumb(client, headers, entry["id"])
    assert response.status_code == 200, response.get_json()
    assert opened(response).size == (256, 128)


def test_a_colour_profile_is_converted_to_srgb(client, auth):
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    headers = auth.headers()
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    plain = upload(client, headers, picture(icc_profile=srgb), "srgb.jpg")
    assert thumb(client, headers, plain["id"]).status_code == 200
    odd = upload(client, headers, picture(icc_profile=profile), "odd.jpg")  # unusable: kept
    assert thumb(client, headers, odd["id"]).status_code == 200


def make_video(path, seconds=2) -> None:
    with av.open(str(path), "w", format="mp4") as container:
        container.metadata["creation_time"] = "2023-07-04T18:30:00.000000Z"
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for number in range(seconds * 10):
            frame = av.VideoFrame.from_image(Image.new("RGB", (320, 240), (number * 10, 0, 0)))
            frame.pts = number
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def test_a_video_gets_a_poster_frame_its_duration_and_creation_time(client, auth, tmp_path):
    path = tmp_path / "clip.mp4"
    make_video(path)
    headers = auth.headers()
    entry = upload(client, headers, path.read_bytes(), "clip.mp4")
    response = thumb(client, headers, entry["id"])
    assert response.status_code == 200, response.get_json()
    assert opened(response).size == (256, 192)
    listed = client.get("/api/v1/folders/root", headers=headers).get_json()["entries"][0]
    assert listed["taken_at"] == "2023-07-04T18:30:00+00:00"
    assert (listed["width"], listed["height"]) == (320, 240)
    assert listed["duration"] == pytest.approx(2.0, abs=0.2)


def test_content_that_is_no_picture_is_415(client, auth):
    headers = auth.headers()
    entry = upload(client, headers, b"plain words " * 100, "notes.txt")
    response = thumb(client, headers, entry["id"])
    assert response.status_code == 415
    assert "not a picture" in response.get_json()["error"]
    assert thumb(client, headers, entry["id"]).status_code == 415  # remembered


def test_a_truncated_jpeg_is_422(client, auth):
    headers = auth.headers()
    data = picture(2000, 1500)
    entry = upload(client, headers, data[: len(data) // 3], "cut.jpg")
    response = thumb(client, headers, entry["id"])
    assert response.status_code == 422
    assert response.get_json()["error"]


def png_bomb(width: int, height: int) -> bytes:
    """A PNG of a few hundred kilobytes that decodes to width x height pixels."""
    import struct

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    compressor = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    body = b"".join(compressor.compress(row) for _ in range(min(height, 2000)))
    body += compressor.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body)


def test_a_decompression_bomb_is_422_at_once(client, auth):
    headers = auth.headers()
    bomb = png_bomb(60_000, 60_000)  # 3.6 gigapixels
    assert len(bomb) < 1024 * 1024
    entry = upload(client, headers, bomb, "bomb.png")
    started = time.monotonic()
    response = thumb(client, headers, entry["id"])
    assert response.status_code == 422
    assert "too large" in response.get_json()["error"]
    assert time.monotonic() - started < 10


def test_a_video_that_never_yields_a_frame_is_422(client, auth):
    headers = auth.headers()
    data = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(range(256)) * 400
    entry = upload(client, headers, data, "broken.mp4")
    response = thumb(client, headers, entry["id"])
    assert response.status_code == 422
    assert "/" not in response.get_json()["error"]  # no server path leaks


def test_another_users_file_has_no_thumbnail(client, auth):
    entry = upload(client, auth.headers("ann"), picture(), "a.jpg")
    response = thumb(client, auth.headers("bob"), entry["id"])
    assert response.status_code == 404


def test_one_thumbnail_per_content_whoever_owns_it(client, auth):
    data = picture()
    for user in ("ann", "bob"):
        headers = auth.headers(user)
        entry = upload(client, headers, data, f"{user}.jpg")
        assert thumb(client, headers, entry["id"]).status_code == 200
    assert Thumbnail.select().count() == 1
    assert MediaInfo.select().count() == 1


def test_a_decoder_that_overruns_its_time_is_killed_and_replaced(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (6000, 6000)).save(path, compress_level=0)
    pool = DecoderPool(1, timeout=0.05)
    try:
        with pytest.raises(DecodeFailed, match="too long"):
            pool.decode(str(path), 256, "jpeg")
        pool.timeout = 30
        small = tmp_path / "small.png"
        Image.new("RGB", (100, 100)).save(small)
        assert pool.decode(str(small), 256, "jpeg").details["status"] == "image"
    finally:
        pool.close()


def test_a_decoder_that_runs_out_of_memory_costs_only_itself(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (8000, 8000)).save(path, compress_level=1)  # 192 MB decoded
    pool = DecoderPool(1, memory_limit=300 * 1024 * 1024)
    try:
        decoded = pool.decode(str(path), 256, "jpeg")
        assert decoded.details["status"] == "bad"
    except DecodeFailed:
        pass  # died outright: also only itself
    finally:
        pool.close()


def test_new_content_gets_details_and_a_thumbnail_in_the_background(client, auth, pcloud):
    headers = auth.headers()
    upload(client, headers, picture(exif=exif_of()), "a.jpg")
    upload(client, headers, b"words", "a.txt")
    upload(
        client, headers, b"", "empty.txt"
    )  # not even opened (on S3, a range of nothing is an error)
    pool = DecoderPool(1, niceness=19)
    try:
        decoded, after_id = thumbnails.scan_new_content(pcloud.blobs, pool)
        assert decoded == 1  # the picture; the text is no media by its first bytes
        assert thumbnails.scan_new_content(pcloud.blobs, pool)[0] == 0  # each content once
        upload(client, headers, picture(320, 240), "b.jpg")
        assert thumbnails.scan_new_content(pcloud.blobs, pool, after_id)[0] == 1
    finally:
        pool.close()
    # The text's first bytes name no picture or video: no decoder saw it.
    statuses = sorted(info.status for info in MediaInfo.select())
    assert statuses == ["image", "image", "skipped", "skipped"]
    assert Thumbnail.select().count() == 2
    listed = client.get("/api/v1/folders/root", headers=headers).get_json()["entries"]
    assert [e["taken_at"] for e in listed] == ["2024-05-01T14:00:00+02:00", None, None, None]
    text = next(entry for entry in listed if entry["name"] == "a.txt")
    assert thumb(client, headers, text["id"]).status_code == 415  # a request still decodes
    assert sorted(info.status for info in MediaInfo.select()) == [
        "image",
        "image",
        "none",
        "skipped",
    ]


def test_the_background_sends_every_phone_format_to_the_decoder(client, auth, pcloud, tmp_path):
    """The signature check before the background decoder passes what phones and cameras
    write: JPEG, PNG, GIF, WebP, TIFF, HEIC, MP4 and QuickTime."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    headers = auth.headers()
    for image_format, name in (
        ("JPEG", "a.jpg"),
        ("PNG", "a.png"),
        ("GIF", "a.gif"),
        ("WEBP", "a.webp"),
        ("TIFF", "a.tiff"),
        ("HEIF", "a.heic"),
    ):
        upload(client, headers, picture(60 + len(name), 40, image_format), name)
    make_video(tmp_path / "clip.mp4")
    upload(client, headers, (tmp_path / "clip.mp4").read_bytes(), "clip.mp4")
    with av.open(str(tmp_path / "clip.mov"), "w", format="mov") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        frame = av.VideoFrame.from_image(Image.new("RGB", (64, 48)))
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    upload(client, headers, (tmp_path / "clip.mov").read_bytes(), "clip.mov")
    pool = DecoderPool(1, niceness=19)
    try:
        while thumbnails.scan_new_content(pcloud.blobs, pool)[0]:
            pass
    finally:
        pool.close()
    assert sorted(info.status for info in MediaInfo.select()) == ["image"] * 6 + ["video"] * 2


def test_gc_keeps_thumbnails_and_reclaims_them_when_their_content_goes(client, auth, runner):
    headers = auth.headers()
    entry = upload(client, headers, picture(), "a.jpg")
    assert thumb(client, headers, entry["id"]).status_code == 200
    key = Thumbnail.get().store_key
    result = runner.invoke("files", "gc", "--grace", "0")
    assert result.exit_code == 0, result.output
    assert Thumbnail.select().count() == 1  # in use: not an orphan blob
    assert client.application.extensions["pcloud"].blobs.exists(key)
    assert client.delete(f"/delete/{entry['name']}", headers=headers).status_code == 200
    result = runner.invoke("files", "gc", "--grace", "0")
    assert result.exit_code == 0, result.output
    assert "1 thumbnail(s)" in result.output
    assert Thumbnail.select().count() == 0
    assert MediaInfo.select().count() == 0
    assert not client.application.extensions["pcloud"].blobs.exists(key)


def test_made_thumbnails_are_sent_from_the_event_loop_new_ones_made_in_a_thread(app, client, auth):
    from pcloud.api.bodies import RequestPreviews

    previews = RequestPreviews(app)
    headers = auth.headers()
    entry = upload(client, headers, picture(), "a.jpg")
    path = f"/api/v1/files/{entry['id']}/thumbnail"
    webp = {"ACCEPT": WEBP["Accept"]}
    assert not previews("GET", path, webp, 0).quick
    assert thumb(client, headers, entry["id"], 256, WEBP).status_code == 200
    assert previews("GET", path, webp, 0).quick
    assert previews("GET", path, webp, 0, "size=256").quick
    assert not previews("GET", path, webp, 0, "size=1024").quick
    assert not previews("GET", path, {"ACCEPT": "image/jpeg"}, 0).quick
    share = client.post("/api/v1/shares", headers=headers, json={"file_id": entry["id"]})
    link = share.get_json()["path"]
    assert previews("GET", f"{link}/thumbnail", webp, 0).quick
    assert not previews("GET", "/s/unknown/thumbnail", webp, 0).quick


def test_what_the_quick_test_found_serves_its_owner_only_and_only_for_what_it_looked_up(
    app, client, auth
):
    """The server runs the quick test when the headers arrive and hands what it found to
    the view (one lookup per warm thumbnail): the view still checks whose file it is, and
    looks again when the request asks for another size than the one found."""
    from pcloud.api.bodies import RequestPreviews
    from pcloud.api.context import QUICK_FOUND

    previews = RequestPreviews(app)
    ann, bob = auth.headers("ann"), auth.headers("bob")
    entry = upload(client, ann, picture(), "a.jpg")
    path = f"/api/v1/files/{entry['id']}/thumbnail"
    assert thumb(client, ann, entry["id"], 256, WEBP).status_code == 200
    found = previews("GET", path, {"ACCEPT": WEBP["Accept"]}, 0).environ[QUICK_FOUND]
    assert found.owner_id and found.live and found.made.size == 256

    def get(headers, query=""):
        return client.get(
            path + query, headers={**headers, **WEBP}, environ_overrides={QUICK_FOUND: found}
        )

    mine = get(ann)
    assert mine.status_code == 200 and mine.mimetype == "image/webp"
    assert get(bob).status_code == 404
    larger = get(ann, "?size=1024")  # not what was found: looked up (and made) afresh
    assert larger.status_code == 200 and max(opened(larger).size) == 640
    assert Thumbnail.select().count() == 2

    assert client.delete(f"/api/v1/files/{entry['id']}", headers=ann).status_code == 200
    trashed = previews("GET", path, {"ACCEPT": WEBP["Accept"]}, 0)
    assert trashed.quick and not trashed.environ[QUICK_FOUND].live  # a 404, at once
    assert client.get(path, headers={**ann, **WEBP}).status_code == 404


def test_a_served_warm_thumbnail_is_its_owners_and_gone_with_its_folder_to_the_trash(server):
    import requests

    ann, bob = server.new_user(), server.new_user()
    api = f"{server.url}/api/v1"
    folder = requests.post(f"{api}/folders", headers=ann, json={"name": "Photos"}, timeout=10)
    folder_id = folder.json()["id"]
    entry = requests.post(
        f"{api}/folders/{folder_id}/files",
        headers=ann,
        files={"file": ("a.jpg", picture())},
        timeout=10,
    ).json()
    path = f"{api}/files/{entry['id']}/thumbnail"
    first = requests.get(path, headers={**ann, **WEBP}, timeout=30)  # made now, in a thread
    assert first.status_code == 200
    again = requests.get(path, headers={**ann, **WEBP}, timeout=10)  # from the event loop
    assert again.status_code == 200 and again.content == first.content
    assert requests.get(path, headers={**bob, **WEBP}, timeout=10).status_code == 404
    gone = requests.delete(f"{api}/folders/{folder_id}", headers=ann, timeout=10)
    assert gone.status_code == 200
    assert requests.get(path, headers={**ann, **WEBP}, timeout=10).status_code == 404
