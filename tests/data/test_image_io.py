"""read_image on the files scientific and GIS software write: float TIFFs, against the 8-bit pixels they hold."""

from __future__ import annotations

import numpy as np
import pytest

from segcli.data.image_io import read_image
from segcli.errors import DataError


def _pixels(h=24, w=40, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _write_tiff(path, array):
    import cv2

    assert cv2.imwrite(str(path), array)
    return path


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_float_tiff_scaled_0_1_reads_as_its_8_bit_pixels(tmp_path, dtype):
    rgb = _pixels()
    path = _write_tiff(tmp_path / "a.tif", (rgb[:, :, ::-1] / 255.0).astype(dtype))  # OpenCV writes BGR
    assert np.array_equal(read_image(path), rgb)


def test_a_float_tiff_scaled_0_255_and_a_gray_one_read_as_their_pixels(tmp_path):
    rgb = _pixels(seed=1)
    assert np.array_equal(read_image(_write_tiff(tmp_path / "rgb.tiff", rgb[:, :, ::-1].astype(np.float32))), rgb)
    gray = rgb[:, :, 0]
    assert np.array_equal(read_image(_write_tiff(tmp_path / "gray.tif", gray.astype(np.float32) / 255)),
                          np.dstack([gray] * 3))


def test_float_pixels_between_levels_round_to_the_nearest(tmp_path):
    values = np.array([[0.0, 0.499 / 255, 0.501 / 255, 1.0]], np.float32)
    image = read_image(_write_tiff(tmp_path / "f.tif", values))
    assert image[0, :, 0].tolist() == [0, 0, 1, 255]


def test_a_float_tiff_whose_scale_cannot_be_known_is_one_line_with_its_range(tmp_path):
    path = _write_tiff(tmp_path / "dem.tif", np.linspace(-12.5, 3000, 24 * 40, dtype=np.float32).reshape(24, 40))
    with pytest.raises(DataError) as exc:
        read_image(path)
    assert str(exc.value) == (f"{path}: a float image with values from -12.5 to 3000; segcli reads float images "
                              f"scaled 0-1 or 0-255: rescale it to one of those, or save it as an 8-bit image.")


def test_a_float_tiff_with_nan_pixels_says_so(tmp_path):
    values = np.full((8, 8), 0.5, np.float32)
    values[3, 4] = np.nan
    path = _write_tiff(tmp_path / "holes.tif", values)
    with pytest.raises(DataError) as exc:
        read_image(path)
    assert str(exc.value) == (f"{path}: a float image with NaN or infinite pixels; fill them in, or save it as an "
                              f"8-bit image.")


def test_a_multi_page_tiff_reads_as_its_first_page(tmp_path):
    import cv2

    pages = [_pixels(seed=seed) for seed in range(3)]
    path = tmp_path / "stack.tif"
    assert cv2.imwritemulti(str(path), [page[:, :, ::-1] for page in pages])
    assert np.array_equal(read_image(path), pages[0])


def test_each_page_of_a_stack_reads_alone_float_pages_too(tmp_path):
    import cv2

    pages = [_pixels(seed=seed) for seed in range(3)]
    stack, floats = tmp_path / "stack.tif", tmp_path / "floats.tiff"
    assert cv2.imwritemulti(str(stack), [page[:, :, ::-1] for page in pages])
    assert cv2.imwritemulti(str(floats), [page[:, :, ::-1] / np.float32(255) for page in pages])
    for k, page in enumerate(pages):
        assert np.array_equal(read_image(stack, page=k), page), k
        assert np.array_equal(read_image(floats, page=k), page), k
    with pytest.raises(DataError) as exc:
        read_image(stack, page=3)
    assert str(exc.value) == (f"{stack}: page 4 is not a readable image (corrupt or unsupported format); remove or "
                              f"replace the file.")


@pytest.mark.parametrize("bigtiff", [False, True])
@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_a_multispectral_tiff_is_one_line_naming_its_bands(tmp_path, bigtiff, byteorder):
    """Written by tifffile (an independent writer), in both byte orders, classic and BigTIFF, as GIS tools do."""
    import tifffile

    path = tmp_path / "sentinel2.tif"
    bands = np.random.default_rng(0).integers(0, 4000, (16, 20, 13)).astype(np.uint16)
    tifffile.imwrite(path, bands, photometric="minisblack", planarconfig="contig", bigtiff=bigtiff,
                     byteorder=byteorder)
    with pytest.raises(DataError) as exc:
        read_image(path)
    assert str(exc.value) == (f"{path}: a TIFF with 13 bands (a multispectral image?); segcli reads gray, RGB and "
                              f"RGBA images: save three of its bands as an RGB image (GDAL: gdal_translate -b 1 -b 2 "
                              f"-b 3 IN OUT).")


def test_tiffs_of_up_to_four_bands_read_as_their_first_three(tmp_path):
    """RGB plus a near-infrared band (a drone's RGBN), and band-by-band (planar) RGB, from tifffile."""
    import tifffile

    rgb = _pixels(seed=4)
    nir = np.dstack([rgb, rgb[:, :, :1]])
    tifffile.imwrite(tmp_path / "rgbn.tif", nir, photometric="rgb", extrasamples=["unspecified"])
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(rgb, 2, 0), photometric="rgb", planarconfig="separate")
    tifffile.imwrite(tmp_path / "big.tif", rgb, photometric="rgb", bigtiff=True)
    for name in ("rgbn.tif", "planar.tif", "big.tif"):
        assert np.array_equal(read_image(tmp_path / name), rgb), name


@pytest.mark.parametrize("bigtiff", [False, True])
@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_pages_are_counted_from_the_header_as_tifffile_wrote_them(tmp_path, bigtiff, byteorder):
    import tifffile

    from segcli.data.image_io import page_count

    stack = tmp_path / "stack.tif"
    with tifffile.TiffWriter(stack, bigtiff=bigtiff, byteorder=byteorder) as tif:
        for seed in range(7):
            tif.write(_pixels(8, 8, seed), photometric="rgb")
    assert page_count(stack) == 7
    with tifffile.TiffFile(stack) as tif:
        last = tif.pages[6].offset  # where the last page's directory starts
    cut = tmp_path / "cut.tif"  # the file ends inside that directory: the six pages before it still count
    cut.write_bytes(stack.read_bytes()[:last + 10])
    assert page_count(cut) == 6
    assert page_count(tmp_path / "missing.tif") == 1 and page_count(_write_tiff(tmp_path / "one.tif", _pixels())) == 1
