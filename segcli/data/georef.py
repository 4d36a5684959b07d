"""Where a GeoTIFF lies on the Earth, carried over to the masks predict writes for it.

A GeoTIFF (an aerial or satellite tile) says in its tags which map coordinates its pixels cover: a pixel size and
a tie point, or a full affine transform, and a coordinate system, usually an EPSG code. A PNG mask cannot hold
those tags, so each raster predict writes for such an input gets the two files GIS tools read beside it:

- a world file (``mask.pgw``, ``overlay.jgw``): the affine transform, at the centre of the top-left pixel;
- a GDAL ``.aux.xml`` (``mask.png.aux.xml``): the same transform and the EPSG code, so GDAL, rasterio and QGIS
  place the mask exactly on the tile, in its coordinate system.

Masks have the input's own size, so the input's transform is theirs. Only the GeoTIFF keys that say where the
pixels are and which EPSG code they use are read; a user-defined coordinate system (no EPSG code) keeps the
transform and no CRS.

>>> geo = GeoReference((500000.0, 0.5, 0.0, 4200000.0, 0.0, -0.5), 32633)
>>> print(world_file(geo), end="")
0.5
0.0
0.0
-0.5
500000.25
4199999.75
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from segcli.data.tiff_header import TIFF_EXTENSIONS, first_page_tags

PIXEL_SCALE, TIE_POINT, TRANSFORMATION, GEO_KEYS = 33550, 33922, 34264, 34735  # the GeoTIFF tags
RASTER_TYPE, GEOGRAPHIC_CRS, PROJECTED_CRS = 1025, 2048, 3072  # the GeoTIFF keys read
PIXEL_IS_POINT, USER_DEFINED = 2, 32767


@dataclass(frozen=True)
class GeoReference:
    """GDAL's geotransform (x0, pixel width, row rotation, y0, column rotation, pixel height) and the EPSG code."""

    transform: tuple
    epsg: int | None


def read_georeference(path) -> GeoReference | None:
    """The georeference of the TIFF ``path``; None for any other file, or a TIFF that has none."""
    if Path(path).suffix.lower() not in TIFF_EXTENSIONS:
        return None
    try:
        with open(path, "rb") as f:
            tags = first_page_tags(f, {PIXEL_SCALE, TIE_POINT, TRANSFORMATION, GEO_KEYS})
    except (OSError, struct.error):  # unreadable or cut off: reading the image says what is wrong
        return None
    transform = _transform(tags or {})
    if transform is None:
        return None
    keys = _geo_keys(tags.get(GEO_KEYS, ()))
    if keys.get(RASTER_TYPE) == PIXEL_IS_POINT:  # the tie point is a pixel's centre: move to its corner, as GDAL
        x0, a, b, y0, d, e = transform
        transform = (x0 - (a + b) / 2, a, b, y0 - (d + e) / 2, d, e)
    epsg = keys.get(PROJECTED_CRS) or keys.get(GEOGRAPHIC_CRS)
    return GeoReference(transform, epsg if epsg and epsg != USER_DEFINED else None)


def _transform(tags: dict) -> tuple | None:
    if TRANSFORMATION in tags and len(tags[TRANSFORMATION]) >= 8:
        m = tags[TRANSFORMATION]  # a 4x4 matrix, row by row
        return (m[3], m[0], m[1], m[7], m[4], m[5])
    if PIXEL_SCALE in tags and TIE_POINT in tags and len(tags[TIE_POINT]) >= 6:
        (sx, sy, *_), (i, j, _, x, y, _) = tags[PIXEL_SCALE], tags[TIE_POINT][:6]
        return (x - i * sx, sx, 0.0, y + j * sy, 0.0, -sy)
    return None


def _geo_keys(directory: tuple) -> dict:
    """{key id: value} of the GeoTIFF keys whose value sits in the directory itself (location 0)."""
    keys = {}
    for k in range(4, len(directory) - 3, 4):
        key, location, _, value = directory[k:k + 4]
        if location == 0:
            keys[key] = value
    return keys


def world_file(geo: GeoReference) -> str:
    """The world file: the transform's six numbers, origin at the centre of the top-left pixel."""
    x0, a, b, y0, d, e = geo.transform
    return "".join(f"{v!r}\n" for v in (a, d, b, e, x0 + (a + b) / 2, y0 + (d + e) / 2))


def aux_xml(geo: GeoReference) -> str:
    """GDAL's ``.aux.xml`` for a raster: its geotransform and, when known, its EPSG code."""
    srs = f"  <SRS>EPSG:{geo.epsg}</SRS>\n" if geo.epsg else ""
    return f"<PAMDataset>\n{srs}  <GeoTransform>{', '.join(repr(v) for v in geo.transform)}</GeoTransform>\n" \
           f"</PAMDataset>\n"


def sidecars(raster: Path, geo: GeoReference) -> dict:
    """{path: text} of the files that georeference ``raster`` (a mask PNG, an overlay JPEG) beside it."""
    suffix = raster.suffix.lower()
    world = raster.with_suffix(f"{suffix[:2]}{suffix[-1]}w")  # .png -> .pgw, .jpg -> .jgw
    return {world: world_file(geo), raster.with_name(raster.name + ".aux.xml"): aux_xml(geo)}
