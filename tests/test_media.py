"""A real video player seeking in a real video that `pcloud serve` streams.

The player is FFmpeg's libavformat and libavcodec (through PyAV), reading an HTTP URL
with a Bearer token, as a phone's or a TV's player would. The video is a real MP4 whose
index (the moov box) comes after the frames, as most cameras and encoders write it: a
player must jump to the end to read the index, then back to the frame it wants.
"""

from __future__ import annotations

import random
import re

import pytest
import requests

from tests.served import Server

av = pytest.importorskip("av")  # in the test extras: `pip install -e '.[test]'`

pytestmark = pytest.mark.e2e

METRICS_TOKEN = "metrics-token-for-media-tests"
SERVER_SETTINGS = {"max_upload_size": 64 * 1024 * 1024}  # for conftest's `server`
SERVER_ENV = {"METRICS_TOKEN": METRICS_TOKEN}
SECONDS, FRAMES_PER_SECOND = 6, 10
WIDTH, HEIGHT = 320, 240
MARK = 16  # the frame's number is painted into its top left MARK × MARK pixels


def frame_level(number: int) -> int:
    """The brightness painted into frame `number`'s mark, readable after compression."""
    return 20 + number * 3


def make_video(path, noise: bytes) -> None:
    """An MPEG-4 video, a keyframe every second, each frame marked with its number.

    Around the mark the picture is noise, so that the frames are large (a few MB in
    all): too large for a player to read at one go, which would spare it any seeking.
    """
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=FRAMES_PER_SECOND)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.bit_rate = 8_000_000
        stream.codec_context.gop_size = FRAMES_PER_SECOND
        for number in range(SECONDS * FRAMES_PER_SECOND):
            frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
            luma = bytearray(noise[number * 97 :][: WIDTH * HEIGHT])
            for row in range(MARK):
                luma[row * WIDTH : row * WIDTH + MARK] = bytes([frame_level(number)]) * MARK
            _fill(frame.planes[0], bytes(luma), WIDTH)
            for chroma in frame.planes[1:]:
                _fill(chroma, bytes([128]) * (WIDTH // 2 * HEIGHT // 2), WIDTH // 2)
            frame.pts = number
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def _fill(plane, pixels: bytes, width: int) -> None:
    """Copy rows of `width` pixels into a plane whose rows may be padded wider."""
    if plane.line_size == width:
        plane.update(pixels)
        return
    padded = bytearray(plane.line_size * (len(pixels) // width))
    for row in range(len(pixels) // width):
        padded[row * plane.line_size : row * plane.line_size + width] = pixels[
            row * width : (row + 1) * width
        ]
    plane.update(bytes(padded))


def mark_of(frame) -> int:
    """The brightness of a decoded frame's mark (its centre, away from block edges)."""
    plane = frame.planes[0]
    row = MARK // 2
    return bytes(plane)[row * plane.line_size + MARK // 2]


def frame_number_of(level: int) -> int:
    return round((level - 20) / 3)


@pytest.fixture(scope="module")
def video(server, tmp_path_factory) -> tuple[str, dict, bytes]:
    """clip.mp4, made here and uploaded: its download URL, the owner's headers, its bytes."""
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    make_video(path, noise=random.Random(1).randbytes(WIDTH * HEIGHT * 2))
    content = path.read_bytes()
    assert content.find(b"moov") > content.find(b"mdat") > 0  # the index comes last
    headers = server.new_user()
    upload = requests.post(
        f"{server.url}/upload", headers=headers, timeout=30, files={"file": ("clip.mp4", content)}
    )
    assert upload.status_code == 201, upload.text
    return f"{server.url}/download/clip.mp4", headers, content


def open_over_http(url: str, headers: dict):
    return av.open(
        url,
        options={"headers": f"Authorization: {headers['Authorization']}\r\n"},
        timeout=10,
    )


def partial_downloads(server: Server) -> float:
    """How many downloads pcloud has answered with 206 Partial Content, in all."""
    metrics = requests.get(
        f"{server.url}/metrics",
        headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
        timeout=10,
    ).text
    counts = re.findall(
        r'^pcloud_http_requests_total\{(?=[^}]*route="[^"]*download[^"]*")'
        r'(?=[^}]*status="206")[^}]*\} ([\d.e+]+)$',
        metrics,
        re.MULTILINE,
    )
    return sum(float(count) for count in counts)


def test_a_player_reads_the_video_over_http(server, video):
    url, headers, content = video
    assert len(content) > 2 * 1024 * 1024  # larger than a player reads in one go
    with open_over_http(url, headers) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "mpeg4"
        assert (stream.width, stream.height) == (WIDTH, HEIGHT)
        assert container.duration == pytest.approx(SECONDS * 1_000_000, rel=0.05)
        first = next(container.decode(stream))
        assert frame_number_of(mark_of(first)) == 0


def test_a_player_seeks_into_the_middle_through_range_requests(server, video):
    url, headers, _content = video
    ranges_before = partial_downloads(server)
    with open_over_http(url, headers) as container:
        stream = container.streams.video[0]
        target = 4  # seconds in: a keyframe
        container.seek(int(target / stream.time_base), stream=stream)
        frame = next(container.decode(stream))
        time_base = stream.time_base  # PyAV 18 refuses a closed container's streams
    assert float(frame.pts * time_base) == pytest.approx(target, abs=0.05)
    assert frame_number_of(mark_of(frame)) == target * FRAMES_PER_SECOND
    # The player fetched the index at the end and then the frames at 4 s, each with a
    # Range request that pcloud answered 206.
    assert partial_downloads(server) - ranges_before >= 2


def test_a_player_without_the_token_is_refused(server, video):
    url, _headers, _content = video
    with pytest.raises(av.error.HTTPUnauthorizedError):
        av.open(url, timeout=10)
