"""GeoTIFF georeferences, read by segcli's own header reader, against GDAL's reading of the same files (rasterio).

The files are written by GDAL itself (rasterio), as GIS tools write them: north-up UTM tiles (tie point + pixel
scale), a rotated grid (a full transformation matrix), pixel-is-point rasters, BigTIFF, and a coordinate system
without an EPSG code.
"""

from __future__ import annotations

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")

from rasterio.transform import Affine, from_origin  # noqa: E402

from segcli.data.georef import GeoReference, read_georeference, sidecars  # noqa: E402


def _geotiff(path, transform, crs="EPSG:32633", point=False, **options):
    profile = dict(driver="GTiff", height=24, width=40, count=3, dtype="uint8", crs=crs, transform=transform)
    with rasterio.open(path, "w", **profile, **options) as dst:
        if point:
            dst.update_tags(AREA_OR_POINT="Point")
        dst.write(np.random.default_rng(0).integers(0, 256, (3, 24, 40), dtype=np.uint8))
    return path


def _gdal_reads(path) -> GeoReference:
    with rasterio.open(path) as src:
        return GeoReference(tuple(src.transform.to_gdal()), src.crs.to_epsg() if src.crs else None)


@pytest.mark.parametrize("name, transform, crs, options", [
    ("utm", from_origin(500000.0, 4200000.0, 0.5, 0.5), "EPSG:32633", {}),
    ("wgs84", from_origin(13.25, 52.75, 0.0001, 0.0001), "EPSG:4326", {}),
    ("rotated", Affine(0.4, 0.3, 500000.0, 0.3, -0.4, 4200000.0), "EPSG:32633", {}),
    ("bigtiff", from_origin(500000.0, 4200000.0, 0.5, 0.5), "EPSG:3857", {"BIGTIFF": "YES"}),
])
def test_the_georeference_is_what_gdal_reads(tmp_path, name, transform, crs, options):
    path = _geotiff(tmp_path / f"{name}.tif", transform, crs, **options)
    geo, gdal = read_georeference(path), _gdal_reads(path)
    assert geo.epsg == gdal.epsg
    assert geo.transform == pytest.approx(gdal.transform, rel=1e-12, abs=1e-9)


def test_a_pixel_is_point_raster_is_moved_to_the_pixel_corner_as_gdal_does(tmp_path):
    path = _geotiff(tmp_path / "point.tif", from_origin(500000.0, 4200000.0, 2.0, 2.0), point=True)
    with rasterio.open(path) as src:
        assert src.tags().get("AREA_OR_POINT") == "Point"
    assert read_georeference(path).transform == pytest.approx(_gdal_reads(path).transform)


def test_a_coordinate_system_without_an_epsg_code_keeps_the_transform_only(tmp_path):
    local = ('LOCAL_CS["site grid",UNIT["metre",1],AXIS["Easting",EAST],AXIS["Northing",NORTH]]')
    path = _geotiff(tmp_path / "site.tif", from_origin(100.0, 200.0, 0.1, 0.1), crs=local)
    geo = read_georeference(path)
    assert geo.epsg is None and geo.transform == pytest.approx(_gdal_reads(path).transform)


def test_files_without_a_georeference_have_none(tmp_path):
    import cv2

    assert cv2.imwrite(str(tmp_path / "plain.tif"), np.zeros((4, 4, 3), np.uint8))
    assert cv2.imwrite(str(tmp_path / "plain.png"), np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "cut.tif").write_bytes(b"II*\x00\x08\x00\x00\x00\x05")
    for name in ("plain.tif", "plain.png", "cut.tif", "missing.tif"):
        assert read_georeference(tmp_path / name) is None, name


def test_gdal_places_a_png_with_its_sidecars_where_the_geotiff_is(tmp_path):
    import cv2

    tile = _geotiff(tmp_path / "tile.tif", Affine(0.4, 0.3, 500000.0, 0.3, -0.4, 4200000.0))
    for name in ("mask.png", "overlay.jpg"):
        raster = tmp_path / name
        assert cv2.imwrite(str(raster), np.zeros((24, 40), np.uint8))
        for path, text in sidecars(raster, read_georeference(tile)).items():
            path.write_text(text)
        assert _gdal_reads(raster).epsg == 32633
        assert _gdal_reads(raster).transform == pytest.approx(_gdal_reads(tile).transform)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "mask.pgw", "mask.png", "mask.png.aux.xml", "overlay.jgw", "overlay.jpg", "overlay.jpg.aux.xml", "tile.tif"]
