"""Reading images and masks the same way everywhere (train, predict, eval).

Images come back as RGB ``uint8`` arrays of shape (H, W, 3) with EXIF
orientation applied; grayscale, RGBA, 16-bit, palette and float (TIFF, scaled
0-1 or 0-255) files are all converted, and a multi-page TIFF gives one page at
a time. Masks come back as their stored values: palette PNGs give their
indices (OpenCV would expand them to colours), other files their single
channel, or (H, W, 3) RGB when the mask is a colour image. A 3-channel mask
whose colours are all gray is ambiguous (index values saved as RGB, or colour
classes such as ADE20K's wall (120, 120, 120)): ``read_mask`` gives its one
channel unless asked to keep the three, and a dataset decides by its class
table (:meth:`segcli.data.folder_dataset.FolderDataset.read_mask_values`).

>>> import tempfile
>>> path = Path(tempfile.mkdtemp()) / "gray.png"
>>> write_atomic(path, encode_png(np.full((2, 2, 3), 120, np.uint8)))
>>> read_mask(path).shape, read_mask(path, keep_gray_rgb=True).shape, is_jpeg(path)
((2, 2), (2, 2, 3), False)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segcli.data.png_chunks import check_png
from segcli.data.tiff_header import TIFF_EXTENSIONS, tiff_bands, tiff_pages
from segcli.errors import DataError, UsageError
from segcli.files import umask, write_atomic  # noqa: F401  (re-exported: the data layer's writers use them)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
#: Image formats people have that segcli does not read (phone photos, camera raw, animations): named when left out.
UNREAD_IMAGE_EXTENSIONS = (".heic", ".heif", ".avif", ".jxl", ".gif", ".svg", ".psd", ".dng", ".cr2", ".cr3", ".nef",
                           ".arw", ".raw")
EXIF_ORIENTATION = 0x0112  # the EXIF tag read_image turns images upright by
#: What to do when a mask matches an image's stored pixels but not the image turned upright (see rotation_note).
ROTATION_FIX = "rotate the mask the same way, or remove the image's EXIF orientation tag"
_JPEG_MAGIC = b"\xff\xd8\xff"


def is_image_name(path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def is_unread_image_name(path) -> bool:
    """True for an image in a format segcli does not read, such as an iPhone's ``IMG_0001.HEIC``."""
    return Path(path).suffix.lower() in UNREAD_IMAGE_EXTENSIONS


def image_folder(folder, what: str) -> Path:
    """``folder`` as a Path, or UsageError naming option ``what`` (an ``exc.value``) when it is not a folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"{what} {folder}: no such folder; give a folder of images.", value=what)
    return folder


def _bytes(path: Path) -> np.ndarray:
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc}); fix it or remove it.") from None
    if data.size == 0:
        raise DataError(f"{path}: empty file (0 bytes); remove it or replace it with a valid image.")
    check_png(data, path)  # before libpng prints its own error line for it
    return data


def read_image(path, page: int = 0) -> np.ndarray:
    """RGB uint8 (H, W, 3), EXIF orientation applied; DataError naming the file otherwise.

    ``page`` picks a page of a multi-page TIFF (0-based; see :func:`page_count`).
    """
    import cv2

    path = Path(path)
    bands = tiff_bands(path) if path.suffix.lower() in TIFF_EXTENSIONS else 0
    if bands > 4:  # before OpenCV, which prints its own error lines about it
        raise DataError(f"{path}: a TIFF with {bands} bands (a multispectral image?); segcli reads gray, RGB and RGBA "
                        f"images: save three of its bands as an RGB image (GDAL: gdal_translate -b 1 -b 2 -b 3 IN OUT).")
    image = _decode(path, cv2.IMREAD_COLOR, page)  # applies EXIF, drops alpha, 16 -> 8 bit
    if image is None:  # OpenCV's colour reader refuses float samples: a float TIFF from scientific software
        image = _float_image(_decode(path, cv2.IMREAD_UNCHANGED, page), path)
    if image is None and is_unread_image_name(path):  # named as an input: a phone's .HEIC, say
        raise DataError(f"{path}: a {path.suffix.lower()} image, a format segcli does not read; convert it to JPEG "
                        f"or PNG.")
    if image is None and page:
        raise DataError(f"{path}: page {page + 1} is not a readable image (corrupt or unsupported format); remove or "
                        f"replace the file.")
    if image is None:
        raise DataError(f"{path}: not a readable image (corrupt or unsupported format); remove or replace it.")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _decode(path: Path, flags: int, page: int = 0):
    """The file (or page ``page`` of a multi-page TIFF, read alone: a stack can be gigabytes) decoded by OpenCV
    with ``flags``; None when OpenCV cannot."""
    import cv2

    if not page:
        return cv2.imdecode(_bytes(path), flags)
    try:
        ok, pages = cv2.imreadmulti(str(path), page, 1, flags=flags)
    except (cv2.error, UnicodeEncodeError):  # a name whose bytes are not UTF-8: decode from the bytes
        ok, pages = cv2.imdecodemulti(_bytes(path), flags, range=(page, page + 1))
    return pages[0] if ok and pages else None


def _float_image(raw, path: Path):
    """A decoded float image (a TIFF scaled 0-1 or 0-255) as BGR uint8, or None when ``raw`` is not one.

    Values up to 1 are taken as 0-1 (scikit-image's convention for float images) and scaled by 255; values up to
    255 as 0-255. Anything else has no scale segcli could know, so it is refused with the range it found.
    """
    import cv2

    if raw is None or raw.dtype.kind != "f":
        return None
    if not np.isfinite(raw).all():
        raise DataError(f"{path}: a float image with NaN or infinite pixels; fill them in, or save it as an 8-bit "
                        f"image.")
    low, high = float(raw.min()), float(raw.max())
    if low < 0 or high > 255:
        raise DataError(f"{path}: a float image with values from {low:g} to {high:g}; segcli reads float images "
                        f"scaled 0-1 or 0-255: rescale it to one of those, or save it as an 8-bit image.")
    scaled = np.rint(raw * (255.0 if high <= 1.0 else 1.0)).astype(np.uint8)
    if scaled.ndim == 3 and scaled.shape[2] == 2:  # gray and alpha
        scaled = scaled[:, :, 0]
    return cv2.cvtColor(scaled, cv2.COLOR_GRAY2BGR) if scaled.ndim == 2 else np.ascontiguousarray(scaled[:, :, :3])


def page_count(path) -> int:
    """Pages in a TIFF (a microscope's stack, say; :func:`read_image` reads one page at a time); 1 for other files
    and for files that cannot be read (reading them says what is wrong)."""
    return max(1, tiff_pages(path)) if Path(path).suffix.lower() in TIFF_EXTENSIONS else 1


def dim_deep_image(path, image: np.ndarray, page: int = 0) -> int:
    """The largest stored value of a 16-bit image that :func:`read_image` gave as ``image`` and that uses only its
    low bits (a 12-bit camera's data, say), so it reads nearly black (values up to 15 of 255); else 0."""
    if image.max(initial=0) > 15:
        return 0
    import cv2

    raw = _decode(Path(path), cv2.IMREAD_UNCHANGED, page)
    return int(raw.max()) if raw is not None and raw.dtype == np.uint16 else 0  # 0 as well for an all-black one


def dim_deep_fix(top: int) -> str:
    """What is wrong with a 16-bit image whose values stop at ``top``, and what to do.

    >>> dim_deep_fix(4095)
    'a 16-bit image holding 12-bit data, so it reads nearly black: multiply it by 16 to fill the 16 bits, or save it as an 8-bit image'
    """
    bits = top.bit_length()
    return (f"a 16-bit image holding {bits}-bit data, so it reads nearly black: multiply it by {2 ** (16 - bits)} to "
            f"fill the 16 bits, or save it as an 8-bit image")


def dim_deep_line(found: list) -> str:
    """One warning line for the (path, top) pairs :func:`dim_deep_image` found: the first, and the others' names.

    >>> dim_deep_line([(Path("a.png"), 1023), (Path("b.png"), 4000)])
    'a.png: values up to 1023; a 16-bit image holding 10-bit data, so it reads nearly black: multiply it by 64 to fill the 16 bits, or save it as an 8-bit image (also b.png)'
    """
    (path, top), others = found[0], [str(p) for p, _ in found[1:]]
    shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
    return f"{path}: values up to {top}; {dim_deep_fix(top)}" + (f" (also {shown})" if others else "")


def read_mask(path, keep_gray_rgb: bool = False) -> np.ndarray:
    """Mask values as stored: (H, W) for index/palette/gray masks, (H, W, 3) RGB for colour masks.

    A 3-channel file whose colours are all gray comes back as its one channel, or as (H, W, 3) with
    ``keep_gray_rgb`` (for a caller that knows whether its colours are classes).
    """
    path = Path(path)
    data = _bytes(path)
    if path.suffix.lower() == ".png":
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as im:
                if im.mode == "P":
                    return np.asarray(im, dtype=np.uint8)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            raise DataError(f"{path}: not a readable mask image (corrupt?); remove or replace it.") from None
    import cv2

    mask = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise DataError(f"{path}: not a readable mask image (corrupt?); remove or replace it.")
    if mask.ndim == 3:
        if mask.shape[2] == 4:
            mask = mask[:, :, :3]
        mask = mask[:, :, 0] if not keep_gray_rgb and all_gray(mask) else cv2.cvtColor(mask, cv2.COLOR_BGR2RGB)
    if mask.dtype != np.uint8:
        if mask.max(initial=0) > 255:
            raise DataError(f"{path}: mask values go up to {int(mask.max())}; segcli masks hold class indices 0-254 "
                            f"and 255 for ignore: save it as an 8-bit PNG of class indices.")
        mask = mask.astype(np.uint8)
    return mask


def all_gray(rgb: np.ndarray) -> bool:
    """Whether every pixel of an (H, W, 3) image has R == G == B."""
    return bool(np.array_equal(rgb[:, :, 0], rgb[:, :, 1]) and np.array_equal(rgb[:, :, 1], rgb[:, :, 2]))


def is_jpeg(path) -> bool:
    """Whether the file holds JPEG data, whatever its name says (False when it cannot be read)."""
    try:
        with open(path, "rb") as f:
            return f.read(len(_JPEG_MAGIC)) == _JPEG_MAGIC
    except OSError:
        return False


def _header(path):
    """((width, height) as stored, EXIF orientation 1-8), or None when PIL cannot read the header."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            value = im.getexif().get(EXIF_ORIENTATION, 1)
            return im.size, value if isinstance(value, int) and 1 <= value <= 8 else 1
    except Exception:  # noqa: BLE001  (any unreadable header: the caller reports the file its own way)
        return None


def exif_orientation(path) -> int:
    """The EXIF orientation (1-8) that :func:`read_image` applies; 1 (as stored) when there is none."""
    header = _header(path)
    return header[1] if header else 1


def rotation_note(path, shape) -> str:
    """" after its EXIF rotation (stored as WxH)" when :func:`read_image` gave ``shape`` (H, W, ...) because
    the file's EXIF orientation turns it a quarter turn, else "": for size messages that would otherwise
    contradict what a viewer that ignores EXIF shows.
    """
    header = _header(path)
    if header is None:
        return ""
    (width, height), orientation = header
    if orientation >= 5 and width != height and tuple(shape[:2]) == (width, height):
        return f" after its EXIF rotation (stored as {width}x{height})"
    return ""


def encode_png(array: np.ndarray) -> bytes:
    """Lossless PNG bytes of a (H, W) index mask or an (H, W, 3) RGB image."""
    import cv2

    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", array)
    if not ok:
        raise DataError("PNG encoding failed.")
    return buf.tobytes()


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise DataError("JPEG encoding failed.")
    return buf.tobytes()
