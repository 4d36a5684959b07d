"""A damaged PNG, found before it is decoded: libpng prints its own ``libpng error: ...`` line to stderr
(past Python, and past OpenCV's log level) when a file ends early or a chunk fails its CRC, and OpenCV then
returns nothing. Walking the chunks first turns both into one :class:`DataError` that names the file.

Only what libpng refuses is checked: the chunks up to IEND must all be there, and the critical chunks
(IHDR, PLTE, IDAT, IEND: an upper-case first letter) must match their CRC. An ancillary chunk with a bad
CRC (a text or time chunk) is skipped by libpng, so it is left alone here too.

>>> import zlib
>>> def chunk(kind, body=b""):
...     return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")
>>> png = SIGNATURE + chunk(b"IHDR", bytes(13)) + chunk(b"IDAT", b"pixels") + chunk(b"IEND")
>>> check_png(png, "a.png")
>>> check_png(png[:45], "a.png")
Traceback (most recent call last):
...
segcli.errors.DataError: a.png: truncated PNG (it ends at byte 45, inside its IDAT chunk); replace it with a complete copy.
>>> check_png(png[:-12], "a.png")
Traceback (most recent call last):
...
segcli.errors.DataError: a.png: truncated PNG (it ends at byte 51, after its IDAT chunk, before IEND); replace it with a complete copy.
>>> check_png(png.replace(b"pixels", b"pixelz"), "a.png")
Traceback (most recent call last):
...
segcli.errors.DataError: a.png: damaged PNG (its IDAT chunk at byte 33 fails its CRC check); replace it with a good copy.
"""

from __future__ import annotations

import zlib

from segcli.errors import DataError

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_HEADER = 8  # a chunk's length (4 bytes) and type (4 bytes); its CRC (4 bytes) follows the data


def check_png(data, path) -> None:
    """DataError when PNG bytes ``data`` end before IEND or a critical chunk fails its CRC; nothing for other
    data (not a PNG, or a PNG libpng reads)."""
    view = memoryview(data).cast("B")
    size = len(view)
    if bytes(view[:len(SIGNATURE)]) != SIGNATURE:
        return
    pos, kind = len(SIGNATURE), None
    while True:
        if pos + _HEADER > size:
            where = f"after its {kind.decode()} chunk, before IEND" if kind else "before its first chunk"
            raise DataError(f"{path}: truncated PNG (it ends at byte {size}, {where}); replace it with a complete "
                            f"copy.")
        length, kind = int.from_bytes(view[pos:pos + 4], "big"), bytes(view[pos + 4:pos + _HEADER])
        if not kind.isalpha():
            raise DataError(f"{path}: damaged PNG (the chunk at byte {pos} has no valid type); replace it with a "
                            f"good copy.")
        end = pos + _HEADER + length + 4
        if end > size:
            raise DataError(f"{path}: truncated PNG (it ends at byte {size}, inside its {kind.decode()} chunk); "
                            f"replace it with a complete copy.")
        critical = kind[:1].isupper()
        if critical and zlib.crc32(view[pos + 4:end - 4]) != int.from_bytes(view[end - 4:end], "big"):
            raise DataError(f"{path}: damaged PNG (its {kind.decode()} chunk at byte {pos} fails its CRC check); "
                            f"replace it with a good copy.")
        if kind == b"IEND":
            return
        pos = end
