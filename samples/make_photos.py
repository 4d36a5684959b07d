"""Write samples/photos/ from scikit-image's bundled CC0 / public-domain photographs.

Run from the repository root: ``.venv/bin/python samples/make_photos.py``. Each file tests one
input path of ``segcli predict``: a JPEG whose pixels are stored sideways with an EXIF
orientation tag, a plain JPEG, an RGB PNG and a grayscale PNG. Sources and licences are
listed in samples/README.md.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

PHOTOS = Path(__file__).resolve().parent / "photos"
EXIF_ORIENTATION = 0x0112
ROTATE_90_CW_TO_DISPLAY = 6  # EXIF value: a viewer turns the stored pixels 90 degrees clockwise


def _half(array: np.ndarray) -> Image.Image:
    image = Image.fromarray(array)
    return image.resize((image.width // 2, image.height // 2), Image.LANCZOS)


def _save(image: Image.Image, name: str, **options) -> None:
    buf = io.BytesIO()
    image.save(buf, **options)
    (PHOTOS / name).write_bytes(buf.getvalue())
    print(f"{PHOTOS / name}: {image.mode} {image.width}x{image.height} (stored), {len(buf.getvalue()):,} bytes")


def main() -> None:
    PHOTOS.mkdir(exist_ok=True)
    # Upright 256 x 192 (H x W) crop of the astronaut, stored turned 90 degrees counter-clockwise
    # (192 x 256) with Orientation = 6, as a phone held sideways writes it.
    upright = np.asarray(_half(data.astronaut()))[:, 24:216]
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = ROTATE_90_CW_TO_DISPLAY
    _save(Image.fromarray(np.rot90(upright)), "astronaut_exif_rotated.jpg", format="JPEG", quality=85,
          exif=exif.tobytes())
    _save(_half(data.coffee()), "coffee.jpg", format="JPEG", quality=85)
    _save(_half(data.chelsea()), "chelsea.png", format="PNG", optimize=True)
    _save(_half(data.camera()), "camera_gray.png", format="PNG", optimize=True)


if __name__ == "__main__":
    main()
