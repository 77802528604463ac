"""Sizes written as people read them: `16 GiB`, `1.5 MiB`, `512 bytes`.

Every size a person sees (an error, the banner, a table) goes through `format_size`, so
that the same number always reads the same way. Units are binary (KiB = 1024 bytes), as
in the settings (`MAX_UPLOAD_SIZE=16GiB`).
"""

from __future__ import annotations

UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def format_size(size: int) -> str:
    """A byte count as a person reads it: whole units when exact (`16 GiB`), else one
    decimal (`12.9 MiB`, rounded down so a limit is never shown larger than it is);
    below 1 KiB the bytes themselves (`1 byte`, `512 bytes`). Negative sizes keep their
    sign."""
    if size < 0:
        return "-" + format_size(-size)
    if size < 1024:
        return "1 byte" if size == 1 else f"{size} bytes"
    value, unit_index = size / 1024, 0
    while value >= 1024 and unit_index < len(UNITS) - 1:
        value /= 1024
        unit_index += 1
    unit = UNITS[unit_index]
    if value == int(value):
        return f"{int(value)} {unit}"
    tenths = int(value * 10) / 10
    return f"{tenths:.1f} {unit}"
