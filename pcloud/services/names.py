"""File names: what a person may call a file, and what kind of file a name denotes."""

from __future__ import annotations

import mimetypes
import re
import unicodedata
from functools import lru_cache

from pcloud.errors import BadRequest

MAX_NAME_BYTES = 255
# C0 and C1 control characters (NUL included) and DEL.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")

# Our own table, not the machine's /etc/mime.types, so a name means the same type on
# every server. Python's built-in table, plus what phones commonly produce.
_MIME_TYPES = mimetypes.MimeTypes(filenames=())
for _type, _extension in (
    ("application/vnd.rar", ".rar"),
    ("application/x-7z-compressed", ".7z"),
    ("image/heic", ".heic"),
    ("image/heif", ".heif"),
    ("image/avif", ".avif"),
    ("image/webp", ".webp"),
    ("image/x-adobe-dng", ".dng"),
    ("video/x-matroska", ".mkv"),
    ("video/webm", ".webm"),
    ("video/3gpp", ".3gp"),
    ("audio/mp4", ".m4a"),
    ("audio/flac", ".flac"),
    ("audio/ogg", ".ogg"),
    ("audio/opus", ".opus"),
    ("audio/aac", ".aac"),
    ("audio/amr", ".amr"),
    ("text/markdown", ".md"),
):
    _MIME_TYPES.add_type(_type, _extension)

ARCHIVE_TYPES = frozenset(
    {
        "application/zip",
        "application/x-zip-compressed",
        "application/vnd.rar",
        "application/x-rar-compressed",
        "application/x-7z-compressed",
    }
)


def normalize(name: str) -> str:
    """The NFC form under which a name is stored and looked up."""
    return unicodedata.normalize("NFC", name)


def validate(name: object, field: str = "filename") -> str:
    """Return the name in NFC, or raise BadRequest saying why it cannot be a file name."""
    if not isinstance(name, str):
        raise BadRequest(f"'{field}' must be a string")
    name = normalize(name)
    if not name:
        raise BadRequest(f"'{field}' is empty")
    if "/" in name or "\\" in name:
        raise BadRequest(f"'{field}' may not contain '/' or '\\'")
    if CONTROL_CHARACTERS.search(name):
        raise BadRequest(f"'{field}' may not contain NUL or control characters")
    if name.strip(".") == "":
        raise BadRequest(f"'{field}' may not consist only of dots")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise BadRequest(f"'{field}' is longer than {MAX_NAME_BYTES} bytes in UTF-8")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"'{field}' is not valid Unicode text") from None
    return name


def from_upload(filename: str | None) -> str:
    """The name to store for an uploaded file: its directory part dropped, then validated."""
    if not filename:
        raise BadRequest("No file selected (the file part has an empty filename)")
    base = re.split(r"[/\\]", filename)[-1]
    return validate(base)


def numbered(name: str, number: int) -> str:
    """'photo.jpg', 2 -> 'photo_2.jpg'; the number goes before the last extension.

    The stem is shortened if need be, so the result stays within MAX_NAME_BYTES.
    """
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem:  # no extension, or a dotfile such as '.bashrc'
        stem, extension = name, ""
    suffix = f"_{number}" + (f".{extension}" if extension else "")
    room = MAX_NAME_BYTES - len(suffix.encode("utf-8"))
    while len(stem.encode("utf-8")) > room:
        stem = stem[:-1]
    return stem + suffix


def extension(name: str) -> str:
    """'Photo.JPG' -> '.jpg'; '' when the name has none."""
    stem, dot, suffix = name.rpartition(".")
    return f".{suffix.lower()}" if dot and stem else ""


def mime_type(name: str) -> str:
    return _mime_type_of_extension(extension(name))


def file_type(name: str) -> str:
    """The contract's coarse kind: image, video, pdf, text, audio, archive or generic."""
    return _file_type_of_extension(extension(name))


@lru_cache(maxsize=1024)
def _mime_type_of_extension(suffix: str) -> str:
    guessed, _encoding = _MIME_TYPES.guess_type(f"file{suffix}", strict=False)
    return guessed or "application/octet-stream"


@lru_cache(maxsize=1024)
def _file_type_of_extension(suffix: str) -> str:
    mime = _mime_type_of_extension(suffix)
    major = mime.split("/", 1)[0]
    if major in ("image", "video", "text", "audio"):
        return major
    if mime == "application/pdf":
        return "pdf"
    if mime in ARCHIVE_TYPES:
        return "archive"
    return "generic"
