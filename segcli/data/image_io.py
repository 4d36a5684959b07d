"""Reading images and masks the same way everywhere (train, predict, eval).

Images come back as RGB ``uint8`` arrays of shape (H, W, 3) with EXIF
orientation applied; grayscale, RGBA, 16-bit and palette files are all
converted. Masks come back as their stored values: palette PNGs give their
indices (OpenCV would expand them to colours), other files their single
channel, or (H, W, 3) RGB when the mask is a colour image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segcli.errors import DataError
from segcli.files import umask, write_atomic  # noqa: F401  (re-exported: the data layer's writers use them)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def is_image_name(path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def _bytes(path: Path) -> np.ndarray:
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc}); fix it or remove it.") from None
    if data.size == 0:
        raise DataError(f"{path}: empty file (0 bytes); remove it or replace it with a valid image.")
    return data


def read_image(path) -> np.ndarray:
    """RGB uint8 (H, W, 3), EXIF orientation applied; DataError naming the file otherwise."""
    import cv2

    path = Path(path)
    image = cv2.imdecode(_bytes(path), cv2.IMREAD_COLOR)  # applies EXIF, drops alpha, 16 -> 8 bit
    if image is None:
        raise DataError(f"{path}: not a readable image (corrupt or unsupported format); remove or replace it.")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_mask(path) -> np.ndarray:
    """Mask values as stored: (H, W) for index/palette/gray masks, (H, W, 3) RGB for colour masks."""
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
        if np.array_equal(mask[:, :, 0], mask[:, :, 1]) and np.array_equal(mask[:, :, 1], mask[:, :, 2]):
            mask = mask[:, :, 0]
        else:
            mask = cv2.cvtColor(mask, cv2.COLOR_BGR2RGB)
    if mask.dtype != np.uint8:
        if mask.max(initial=0) > 255:
            raise DataError(f"{path}: mask values go up to {int(mask.max())}; segcli masks hold class indices 0-254 "
                            f"and 255 for ignore: save it as an 8-bit PNG of class indices.")
        mask = mask.astype(np.uint8)
    return mask


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
