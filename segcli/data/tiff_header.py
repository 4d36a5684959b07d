"""What a TIFF's header says that OpenCV cannot be asked: how many bands (samples per pixel) its first page has.

OpenCV reads TIFFs of 1 to 4 bands. A multispectral one (Sentinel-2's 13 bands, a drone's 5) makes it print
its own ``[ERROR] ... Unsupported number of channels`` lines and return nothing, so segcli reads the count
from the header first and says what to do in one line. Classic TIFF and BigTIFF, either byte order.

>>> import io, struct
>>> entry = struct.pack("<HHIHH", 277, 3, 1, 13, 0)  # SamplesPerPixel, SHORT, 1 value: 13
>>> samples_per_pixel(io.BytesIO(b"II" + struct.pack("<HI", 42, 8) + struct.pack("<H", 1) + entry))
13
>>> samples_per_pixel(io.BytesIO(b"GIF89a" + bytes(10)))
0
"""

from __future__ import annotations

import struct

SAMPLES_PER_PIXEL = 277  # the TIFF tag; 1 when a page does not give it
_MAX_ENTRIES = 4096  # more tags than any real TIFF has: a damaged count is not read on and on


def tiff_bands(path) -> int:
    """Samples per pixel of the TIFF ``path``'s first page; 0 for a file that is not a TIFF or cannot be read."""
    try:
        with open(path, "rb") as f:
            return samples_per_pixel(f)
    except (OSError, struct.error):
        return 0


def samples_per_pixel(f) -> int:
    """Samples per pixel of the first page of the TIFF open as ``f`` (binary); 0 when ``f`` is not a TIFF."""
    head = f.read(16)
    order = {b"II": "<", b"MM": ">"}.get(head[:2])
    version = struct.unpack(order + "H", head[2:4])[0] if order else 0
    if version not in (42, 43):
        return 0
    big = version == 43
    # classic: a 4-byte offset, a 2-byte entry count, 12-byte entries with the value at byte 8;
    # BigTIFF: an 8-byte offset and count, 20-byte entries with the value at byte 12
    f.seek(struct.unpack(order + "Q", head[8:16])[0] if big else struct.unpack(order + "I", head[4:8])[0])
    count_format, entry_size, value_at = ("Q", 20, 12) if big else ("H", 12, 8)
    (count,) = struct.unpack(order + count_format, f.read(struct.calcsize(count_format)))
    for _ in range(min(count, _MAX_ENTRIES)):
        entry = f.read(entry_size)
        if struct.unpack(order + "H", entry[:2])[0] == SAMPLES_PER_PIXEL:
            return struct.unpack(order + "H", entry[value_at:value_at + 2])[0]
    return 1
