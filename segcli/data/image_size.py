"""The one parser of image sizes written "N" or "HxW" (height x width), shared by train and bench.

Errors name the value by ``name``: the library's word by default, the flag when the CLI passes it.

>>> parse_image_size("64"), parse_image_size("32x48"), parse_image_size((40, 64))
((64, 64), (32, 48), (40, 64))
>>> parse_image_size("16", name="--image-size")
Traceback (most recent call last):
...
segcli.errors.UsageError: --image-size 16: smaller than 32 pixels; SegFormer downsamples by 32, use at least 32.
"""

from __future__ import annotations

from segcli.errors import UsageError

#: SegFormer downsamples by 32: a side below this has no last-stage feature map.
MIN_IMAGE_SIDE = 32


def parse_image_size(value, name: str = "image_size", minimum: int = MIN_IMAGE_SIDE) -> tuple:
    """(height, width) from ``"N"``, ``"HxW"``, an int or a (height, width) pair; UsageError naming ``name``."""
    if isinstance(value, (tuple, list)):
        value = "x".join(str(v) for v in value)
    text = str(value).lower().strip()
    try:
        sizes = [int(p) for p in text.split("x")]
    except ValueError:
        sizes = []
    if len(sizes) == 1:
        sizes = sizes * 2
    if len(sizes) != 2:
        raise UsageError(f"{name} {value!r}: give N or HxW in pixels, e.g. 512 or 512x1024.")
    if min(sizes) < minimum:
        raise UsageError(f"{name} {value}: smaller than {minimum} pixels; SegFormer downsamples by 32, "
                         f"use at least {minimum}.")
    return tuple(sizes)


def parse_image_sizes(values, name: str = "image_size", minimum: int = MIN_IMAGE_SIDE) -> list:
    """Several sizes: each item of ``values`` may hold a comma-separated list.

    >>> parse_image_sizes(["64", "32x96,128"])
    [(64, 64), (32, 96), (128, 128)]
    """
    if isinstance(values, str):
        values = [values]
    parts = [p.strip() for v in values for p in str(v).split(",") if p.strip()]
    if not parts:
        raise UsageError(f"{name}: give at least one size, e.g. 512 or 512x1024.")
    return [parse_image_size(p, name, minimum) for p in parts]
