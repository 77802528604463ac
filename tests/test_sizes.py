"""Sizes are written for people, the same way everywhere."""

from __future__ import annotations

import pytest

from pcloud.sizes import format_size


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 bytes"),
        (1, "1 byte"),
        (512, "512 bytes"),
        (1023, "1023 bytes"),
        (1024, "1 KiB"),
        (1536, "1.5 KiB"),
        (1048576, "1 MiB"),
        (1114112, "1.0 MiB"),
        (13581864, "12.9 MiB"),
        (16 * 1024**3, "16 GiB"),
        (3 * 1024**4, "3 TiB"),
        (-2048, "-2 KiB"),
    ],
)
def test_a_size_reads_as_a_person_writes_it(size, text):
    assert format_size(size) == text


def test_a_limit_is_never_shown_larger_than_it_is():
    just_under_two_mib = 2 * 1024 * 1024 - 1
    assert format_size(just_under_two_mib) == "1.9 MiB"
