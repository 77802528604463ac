"""The decoder process: reads one picture or video at a time and answers what it is and a
thumbnail of it. Runs apart from the server (`python -m pcloud.media.decode`, started by
pcloud.media.pool), under a memory limit, so that a hostile file (a decompression bomb,
a video that never yields a frame, a crash in a codec) costs this process, never a server
worker.

Protocol on stdin/stdout, one job at a time: each message is a 4-byte big-endian length
and that many bytes of JSON; an answer carrying a thumbnail is followed by one more
length-prefixed message of its raw bytes. JSON, not pickle: the parent must not trust
what a process that decoded hostile bytes sends back.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
import sys
import warnings
from datetime import datetime, timedelta, timezone
from typing import Any, BinaryIO

# Pictures larger than this are refused before their pixels are decoded (Pillow checks
# the size in the header). 120 megapixels covers the largest phone cameras' JPEGs and
# HEICs; a PNG claiming gigapixels is a bomb.
MAX_PIXELS = 120_000_000
# Packets read from a video while looking for its first frame: a video that never yields
# one is given up on after this, not read to its end.
MAX_VIDEO_PACKETS = 600
JPEG_QUALITY = 82
WEBP_QUALITY = 80

EXIF_IFD = 0x8769
ORIENTATION = 0x0112
DATE_TIME = 0x0132
DATE_TIME_ORIGINAL = 0x9003
OFFSET_TIME_ORIGINAL = 0x9011

VIDEO_SIGNATURES = (
    (4, b"ftyp"),  # MP4, MOV, 3GP
    (0, b"\x1a\x45\xdf\xa3"),  # Matroska, WebM
    (0, b"RIFF"),  # AVI
    (0, b"\x00\x00\x01\xba"),  # MPEG program stream
    (0, b"G"),  # MPEG transport stream (0x47 sync byte)
    (0, b"OggS"),
    (0, b"FLV"),
)


def describe(path: str, size: int | None, image_format: str) -> tuple[dict[str, Any], bytes]:
    """What the file at `path` is, and (if `size`) a thumbnail of at most size x size
    pixels in `image_format` ("webp" or "jpeg"). The answer's "status" is "image",
    "video", "none" (neither, as far as pcloud can tell) or "bad" (with an "error")."""
    with open(path, "rb") as file:
        head = file.read(16)
    try:
        answer, thumbnail = _describe_image(path, size, image_format)
    except _NotAnImage:
        if not _looks_like_video(head):
            return {"status": "none"}, b""
        answer, thumbnail = _describe_video(path, size, image_format)
    if "error" in answer:  # libraries name the file: the client must not learn our paths
        answer["error"] = answer["error"].replace(f": '{path}'", "").replace(path, "the file")
    return answer, thumbnail


class _NotAnImage(Exception):
    pass


def _describe_image(path: str, size: int | None, image_format: str) -> tuple[dict, bytes]:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        image = Image.open(path)
    except UnidentifiedImageError:
        raise _NotAnImage from None
    except Image.DecompressionBombError:
        return _bad("The picture is too large to show (over 120 megapixels)")
    except (OSError, ValueError, SyntaxError, struct.error) as error:
        return _bad(f"The picture cannot be read: {error}")
    with image:
        width, height = image.size
        exif = image.getexif()
        orientation = exif.get(ORIENTATION, 1)
        if orientation in (5, 6, 7, 8):
            width, height = height, width
        answer: dict[str, Any] = {"status": "image", "width": width, "height": height}
        answer.update(_capture_time(exif))
        if not size:
            return answer, b""
        try:
            if image.format == "JPEG":
                image.draft("RGB", (size, size))  # decode at 1/2, 1/4 or 1/8 scale
            image.load()
            picture = _to_srgb(image)
            picture = ImageOps.exif_transpose(picture)
            picture.thumbnail((size, size), Image.Resampling.BICUBIC, reducing_gap=2.0)
            return answer, _encode(picture, image_format)
        except Image.DecompressionBombError:
            return _bad("The picture is too large to show (over 120 megapixels)")
        except MemoryError:
            return _bad("The picture is too large to decode")
        except (OSError, ValueError, SyntaxError, struct.error, EOFError) as error:
            return _bad(f"The picture cannot be read: {error}")


def _to_srgb(image):
    """The picture in RGB (or RGBA), its colour profile converted to sRGB."""
    from PIL import ImageCms

    profile = image.info.get("icc_profile")
    mode = "RGBA" if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info else "RGB"
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert(mode)
    if profile:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
            image = ImageCms.profileToProfile(
                image, source, ImageCms.createProfile("sRGB"), outputMode=image.mode
            )
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken profile: show the pixels as they are
    return image


def _encode(picture, image_format: str) -> bytes:
    out = io.BytesIO()
    if image_format == "webp":
        picture.save(out, "WEBP", quality=WEBP_QUALITY, method=2)
    else:
        if picture.mode != "RGB":
            picture = picture.convert("RGB")
        picture.save(out, "JPEG", quality=JPEG_QUALITY, optimize=False)
    return out.getvalue()


_EXIF_MOMENT = re.compile(r"(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_OFFSET = re.compile(r"([+-])(\d{2}):?(\d{2})")


def _capture_time(exif) -> dict[str, Any]:
    """EXIF DateTimeOriginal (or DateTime) with OffsetTimeOriginal, as UTC microseconds
    and the offset in minutes (None when the camera wrote none: then the local time is
    taken as if it were UTC)."""
    try:
        details = exif.get_ifd(EXIF_IFD)
    except Exception:  # a broken EXIF block: no capture time, the picture still shows
        details = {}
    text = details.get(DATE_TIME_ORIGINAL) or exif.get(DATE_TIME)
    if not isinstance(text, str):
        return {}
    match = _EXIF_MOMENT.match(text.strip())
    if not match:
        return {}
    try:
        local = datetime(*(int(part) for part in match.groups()), tzinfo=timezone.utc)
    except ValueError:
        return {}
    offset_minutes = None
    offset_text = details.get(OFFSET_TIME_ORIGINAL)
    if isinstance(offset_text, str):
        offset = _OFFSET.fullmatch(offset_text.strip())
        if offset:
            sign = -1 if offset.group(1) == "-" else 1
            offset_minutes = sign * (int(offset.group(2)) * 60 + int(offset.group(3)))
    moment = local - timedelta(minutes=offset_minutes or 0)
    return {"taken_at": _micros(moment), "taken_offset": offset_minutes}


def _micros(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def _looks_like_video(head: bytes) -> bool:
    return any(head[start : start + len(magic)] == magic for start, magic in VIDEO_SIGNATURES)


def _describe_video(path: str, size: int | None, image_format: str) -> tuple[dict, bytes]:
    import av

    try:
        container = av.open(path, metadata_errors="ignore")
    except (av.FFmpegError, OSError, ValueError) as error:
        return _bad(f"The video cannot be read: {error}")
    with container:
        if not container.streams.video:
            return {"status": "none"}, b""
        stream = container.streams.video[0]
        answer: dict[str, Any] = {
            "status": "video",
            "width": stream.codec_context.width or None,
            "height": stream.codec_context.height or None,
        }
        if stream.duration is not None and stream.time_base is not None:
            answer["duration"] = round(float(stream.duration * stream.time_base), 3)
        elif container.duration is not None:
            answer["duration"] = round(container.duration / 1_000_000, 3)
        created = container.metadata.get("creation_time") or stream.metadata.get("creation_time")
        if created:
            try:
                moment = datetime.fromisoformat(created.replace("Z", "+00:00"))
                if moment.tzinfo is None:
                    moment = moment.replace(tzinfo=timezone.utc)
                if moment.year > 1970:  # cameras without a clock write 1904 or 1970
                    answer["taken_at"] = _micros(moment.astimezone(timezone.utc))
                    answer["taken_offset"] = 0
            except ValueError:
                pass
        if not size:
            return answer, b""
        frame = None
        try:
            for packets, packet in enumerate(container.demux(stream)):
                if packets >= MAX_VIDEO_PACKETS:
                    break
                frames = packet.decode()
                if frames:
                    frame = frames[0]
                    break
        except (av.FFmpegError, OSError, ValueError, MemoryError) as error:
            return _bad(f"The video cannot be decoded: {error}")
        if frame is None:
            return _bad("The video has no frame that can be decoded")
        from PIL import Image

        picture = frame.to_image()
        picture.thumbnail((size, size), Image.Resampling.BICUBIC, reducing_gap=2.0)
        return answer, _encode(picture, image_format)


def _bad(error: str) -> tuple[dict[str, Any], bytes]:
    return {"status": "bad", "error": error[:250]}, b""


def _setup(memory_limit: int) -> None:
    """Limits and codecs, once per process."""
    import resource

    if memory_limit:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    # Pillow warns between MAX_IMAGE_PIXELS and twice that, and refuses only beyond it.
    warnings.simplefilter("error", Image.DecompressionBombWarning)
    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
    except ImportError:  # HEIC/HEIF then reads as "not a picture"
        pass


def read_message(stream: BinaryIO) -> bytes | None:
    header = stream.read(4)
    if len(header) < 4:
        return None
    (length,) = struct.unpack(">I", header)
    return stream.read(length)


def write_message(stream: BinaryIO, data: bytes) -> None:
    stream.write(struct.pack(">I", len(data)) + data)


def main() -> None:
    """Serve jobs from stdin until it closes: {"path", "size", "format"} -> answer."""
    memory_limit = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    niceness = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    if niceness:
        os.nice(niceness)
    _setup(memory_limit)
    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a library that prints must not break the protocol
    while True:
        message = read_message(requests)
        if message is None:
            return
        job = json.loads(message)
        try:
            answer, thumbnail = describe(job["path"], job.get("size"), job.get("format", "jpeg"))
        except MemoryError:
            answer, thumbnail = _bad("The file is too large to decode")
        except Exception as error:  # whatever a codec raises is that file's problem
            answer, thumbnail = _bad(f"The file cannot be read: {type(error).__name__}")
        answer["thumbnail_bytes"] = len(thumbnail)
        write_message(answers, json.dumps(answer).encode())
        if thumbnail:
            write_message(answers, thumbnail)
        answers.flush()


if __name__ == "__main__":
    main()
