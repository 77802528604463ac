"""The multipart boundary finder matches exactly what werkzeug's own patterns match."""

from __future__ import annotations

import random

import pytest
from werkzeug.sansio.multipart import Data, Epilogue, MultipartDecoder, NeedData

from pcloud.services.uploads.multipart import BoundaryFinder, FastBoundaryDecoder

# Characters RFC 2046 allows in a boundary, regex metacharacters among them.
BOUNDARY_CHARS = "abcXYZ019'()+_,-./:=? "
PIECES = [b"\r", b"\n", b"\r\n", b"--", b"-", b" ", b"\t", b"x", b"\x0b"]


def _random_boundary(rng: random.Random) -> bytes:
    length = rng.randint(1, 12)
    boundary = "".join(rng.choice(BOUNDARY_CHARS) for _ in range(length)).rstrip(" ") or "b"
    return boundary.encode()


def _random_data(rng: random.Random, boundary: bytes) -> bytes:
    pieces = [*PIECES, boundary, boundary[: max(1, len(boundary) // 2)], b"--" + boundary]
    return b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 14)))


def _as_tuple(match):
    return None if match is None else (match.start(), match.end(), match.group(1))


@pytest.mark.parametrize("seed", range(8))
def test_the_finder_finds_what_werkzeugs_patterns_find(seed):
    rng = random.Random(seed)
    for _ in range(1500):
        boundary = _random_boundary(rng)
        reference = MultipartDecoder(boundary)
        data = _random_data(rng, boundary)
        pos = rng.randint(0, len(data))
        preamble = BoundaryFinder(boundary, line_break_required=False)
        between = BoundaryFinder(boundary, line_break_required=True)

        assert _as_tuple(preamble.search(data, pos)) == _as_tuple(
            reference.preamble_re.search(data, pos)
        ), (boundary, data, pos)
        assert _as_tuple(between.search(data)) == _as_tuple(reference.boundary_re.search(data)), (
            boundary,
            data,
        )


def _events(decoder: MultipartDecoder, body: bytes, chunk_sizes: list[int]) -> list:
    events = []
    position = 0
    for size in [*chunk_sizes, None]:
        if size is None:
            decoder.receive_data(body[position:] or None)
            if position < len(body):
                decoder.receive_data(None)
        else:
            decoder.receive_data(body[position : position + size])
            position += size
        try:
            event = decoder.next_event()
            while not isinstance(event, (Epilogue, NeedData)):
                events.append(event)
                event = decoder.next_event()
            events.append(type(event).__name__)
        except ValueError as error:
            events.append(f"ValueError: {error}")
            break
    return events


@pytest.mark.parametrize("seed", range(4))
def test_whole_bodies_decode_to_the_same_events_in_any_chunking(seed):
    rng = random.Random(1000 + seed)
    with_data = 0
    for _ in range(300):
        boundary = _random_boundary(rng)
        body = b"preamble\r\n" if rng.random() < 0.3 else b""
        for number in range(rng.randint(0, 3)):
            content = _random_data(rng, boundary)
            filename = f'; filename="f{number}.bin"' if rng.random() < 0.5 else ""
            body += b"--" + boundary + b"\r\n"
            body += f'Content-Disposition: form-data; name="p{number}"{filename}\r\n\r\n'.encode()
            body += content + b"\r\n"
        body += b"--" + boundary + (b"--\r\n" if rng.random() < 0.9 else b"\r\n")
        if rng.random() < 0.2:
            body = body[: rng.randint(0, len(body))]  # cut off
        chunks = [rng.randint(1, 24) for _ in range(rng.randint(0, 8))]

        expected = _events(MultipartDecoder(boundary), body, chunks)
        actual = _events(FastBoundaryDecoder(boundary), body, chunks)

        assert actual == expected, (boundary, body, chunks)
        with_data += any(isinstance(event, Data) and event.data for event in expected)
    assert with_data > 100  # most bodies really carried parts through the decoder
