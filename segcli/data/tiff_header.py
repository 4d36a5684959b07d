"""What a TIFF's header says, read without decoding: how many bands (samples per pixel) its first page has, and
how many pages it has.

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

TIFF_EXTENSIONS = (".tif", ".tiff")
IMAGE_WIDTH, IMAGE_LENGTH, SAMPLES_PER_PIXEL = 256, 257, 277  # the TIFF tags (samples per pixel: 1 when not given)
_MAX_ENTRIES = 4096  # more tags than any real TIFF has: a damaged count is not read on and on


_MAX_PAGES = 1_000_000  # a chain of directories longer than any stack: a damaged file is not walked forever


def tiff_bands(path) -> int:
    """Samples per pixel of the TIFF ``path``'s first page; 0 for a file that is not a TIFF or cannot be read."""
    try:
        with open(path, "rb") as f:
            return samples_per_pixel(f)
    except (OSError, struct.error):
        return 0


def tiff_size(path) -> tuple[int, int] | None:
    """(width, height) of the TIFF ``path``'s first page, from its header; None for a file that is not a TIFF, or
    cannot be read (Pillow reads no float or multispectral TIFF, so it cannot be asked)."""
    try:
        with open(path, "rb") as f:
            tags = first_page_tags(f, {IMAGE_WIDTH, IMAGE_LENGTH})
    except (OSError, struct.error):
        return None
    if not tags or IMAGE_WIDTH not in tags or IMAGE_LENGTH not in tags:
        return None
    return tags[IMAGE_WIDTH][0], tags[IMAGE_LENGTH][0]


def tiff_pages(path) -> int:
    """Pages (top-level image file directories) of the TIFF ``path``; 0 for a file that is not a TIFF or cannot be
    read, and the pages counted so far when its chain of directories breaks off."""
    try:
        with open(path, "rb") as f:
            return count_pages(f)
    except OSError:
        return 0


class _Layout:
    """Where a TIFF keeps things: byte order and the sizes classic TIFF and BigTIFF give offsets and entries."""

    def __init__(self, head: bytes):
        self.order = {b"II": "<", b"MM": ">"}.get(head[:2])
        version = struct.unpack(self.order + "H", head[2:4])[0] if self.order and len(head) >= 4 else 0
        self.ok, big = version in (42, 43), version == 43
        # classic: 4-byte offsets, a 2-byte entry count, 12-byte entries with the value at byte 8;
        # BigTIFF: 8-byte offsets and count, 20-byte entries with the value at byte 12
        self.offset, self.count, self.entry, self.value_at = ("Q", "Q", 20, 12) if big else ("I", "H", 12, 8)
        self.first = self.unpack(self.offset, head[8:16] if big else head[4:8]) if self.ok else 0

    def unpack(self, fmt: str, data: bytes) -> int:
        return struct.unpack(self.order + fmt, data[:struct.calcsize(fmt)])[0]

    def entries(self, f, offset: int) -> tuple[int, bytes]:
        """(entry count, the entries) of the directory at ``offset``."""
        f.seek(offset)
        count = self.unpack(self.count, f.read(struct.calcsize(self.count)))
        return count, f.read(self.entry * min(count, _MAX_ENTRIES))


_TYPES = {1: "B", 3: "H", 4: "I", 12: "d", 16: "Q"}  # BYTE, SHORT, LONG, DOUBLE, LONG8: the ones segcli reads
_MAX_VALUES = 4096  # of one tag: GeoTIFF's tie points can be many, and segcli needs the first six


def first_page_tags(f, wanted) -> dict | None:
    """{tag: tuple of values} of the ``wanted`` tags the first page of the TIFF open as ``f`` (binary) has, for
    numeric tags of the types in ``_TYPES``; None when ``f`` is not a TIFF."""
    tiff = _Layout(f.read(16))
    if not tiff.ok:
        return None
    _, entries = tiff.entries(f, tiff.first)
    found = {}
    for k in range(0, len(entries) - tiff.entry + 1, tiff.entry):
        entry = entries[k:k + tiff.entry]
        tag, kind = tiff.unpack("H", entry), tiff.unpack("H", entry[2:])
        if tag not in wanted or kind not in _TYPES:
            continue
        count = min(tiff.unpack(tiff.offset, entry[4:]), _MAX_VALUES)
        fmt = f"{tiff.order}{count}{_TYPES[kind]}"
        inline = entry[tiff.value_at:]
        if struct.calcsize(fmt) > len(inline):  # stored elsewhere: the field holds its offset
            f.seek(tiff.unpack(tiff.offset, inline))
            inline = f.read(struct.calcsize(fmt))
        found[tag] = struct.unpack(fmt, inline[:struct.calcsize(fmt)])
    return found


def samples_per_pixel(f) -> int:
    """Samples per pixel of the first page of the TIFF open as ``f`` (binary); 0 when ``f`` is not a TIFF."""
    tags = first_page_tags(f, {SAMPLES_PER_PIXEL})
    return 0 if tags is None else tags.get(SAMPLES_PER_PIXEL, (1,))[0]


def count_pages(f) -> int:
    """Pages of the TIFF open as ``f`` (binary): its directories, each naming the next (0 ends the chain)."""
    tiff = _Layout(f.read(16))
    pages, offset, seen = 0, tiff.first if tiff.ok else 0, set()
    while offset and offset not in seen and pages < _MAX_PAGES:
        seen.add(offset)
        try:
            count, _ = tiff.entries(f, offset)
            f.seek(offset + struct.calcsize(tiff.count) + tiff.entry * count)
            offset = tiff.unpack(tiff.offset, f.read(struct.calcsize(tiff.offset)))
        except struct.error:  # cut off: the pages found so far
            break
        pages += 1
    return pages
