"""What predict writes for one input image, and reads back from an earlier run: the output paths, the files
(mask last; for a GeoTIFF, the files that georeference them), the image's record in ``summary.json``, and the
summary itself.

>>> from segcli.inference.inputs import InputItem
>>> sorted(outputs_of(InputItem(Path("in/a.jpg"), "a.jpg", "sub/a"), Path("masks"), overlay=True, color=True).items())
[('color', PosixPath('masks/sub/a_color.png')), ('mask', PosixPath('masks/sub/a.png')), ('overlay', PosixPath('masks/sub/a_overlay.jpg'))]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

MASK_SUFFIX = ".png"
OVERLAY_SUFFIX = "_overlay.jpg"
COLOR_SUFFIX = "_color.png"
PROBS_SUFFIX = "_probs.npy"


def outputs_of(item, out: Path, overlay=True, color=False, probs=False) -> dict[str, Path]:
    """The files predict writes for ``item`` (an :class:`~segcli.inference.inputs.InputItem`) under ``out``."""
    base = Path(out) / item.stem
    paths = {"mask": base.with_name(base.name + MASK_SUFFIX)}
    if overlay:
        paths["overlay"] = base.with_name(base.name + OVERLAY_SUFFIX)
    if color:
        paths["color"] = base.with_name(base.name + COLOR_SUFFIX)
    if probs:
        paths["probs"] = base.with_name(base.name + PROBS_SUFFIX)
    return paths


def class_fractions(counts: np.ndarray, names: list[str]) -> list[dict]:
    """Each class present in ``counts`` (pixels per class index) with its name and share, for summary.json.

    >>> class_fractions(np.array([3, 0, 1]), ["sky", "road", "tree"])
    [{'index': 0, 'name': 'sky', 'fraction': 0.75}, {'index': 2, 'name': 'tree', 'fraction': 0.25}]
    """
    total = max(1, int(counts.sum()))
    return [{"index": int(i), "name": names[i] if i < len(names) else f"class_{i}",
             "fraction": round(float(counts[i]) / total, 6)} for i in np.flatnonzero(counts)]


def pixel_counts(mask: np.ndarray, minlength: int) -> np.ndarray:
    """Pixels per class index of an integer (H, W) mask, as ``np.bincount`` gives them, but a block of rows at a time:
    bincount first copies its input to int64, 8 bytes a pixel (512 MB for an 8000x8000 mask).

    >>> pixel_counts(np.array([[0, 2], [2, 2]], np.uint8), minlength=4).tolist()
    [1, 0, 3, 0]
    """
    rows = max(1, (1 << 20) // max(1, mask.shape[1]))  # about a million pixels, 8 MB of int64, at a time
    counts = np.zeros(minlength, np.int64)
    for start in range(0, len(mask), rows):
        part = np.bincount(mask[start:start + rows].ravel(), minlength=minlength)
        if part.size > counts.size:
            counts = np.pad(counts, (0, part.size - counts.size))
        counts[:part.size] += part
    return counts


def _record(item, paths, out, status, mask, names):
    return {"input": item.rel, "status": status,
            "outputs": {k: p.relative_to(out).as_posix() for k, p in paths.items()},
            "height": int(mask.shape[0]), "width": int(mask.shape[1]),
            "classes": class_fractions(pixel_counts(mask, len(names)), names)}


def write_outputs(item, image, prediction, paths, options, lut, names):
    from segcli.data.image_io import encode_jpeg, encode_png, write_atomic
    from segcli.inference.overlay import blend, colorize
    from segcli.inference.probs_file import save_probs

    mask = prediction.mask
    _georeference(item.path, paths)
    if "probs" in paths:
        save_probs(paths["probs"], prediction.probs)
    if "color" in paths:
        write_atomic(paths["color"], encode_png(colorize(mask, lut)))
    if "overlay" in paths:
        write_atomic(paths["overlay"], encode_jpeg(blend(image, mask, lut, options.alpha), options.jpeg_quality))
    write_atomic(paths["mask"], encode_png(mask))  # last: a mask on disk means the others are there too
    return _record(item, paths, options.out, "written", mask, names)


def _georeference(image: Path, paths: dict) -> None:
    """For a GeoTIFF input: a world file and GDAL .aux.xml beside each raster output (:mod:`segcli.data.georef`)."""
    from segcli.data.georef import read_georeference, sidecars
    from segcli.files import write_atomic

    geo = read_georeference(image)
    for key in ("mask", "overlay", "color") if geo is not None else ():
        if key in paths:
            for path, text in sidecars(paths[key], geo).items():
                write_atomic(path, text.encode())


def read_back(item, paths, options, names):
    from segcli.data.image_io import read_mask

    return _record(item, paths, options.out, "skipped", read_mask(paths["mask"]), names)


def write_summary(summary: dict, options) -> Path:
    from segcli.files import json_bytes, write_atomic

    name = f"summary.shard-{options.shard[0]}-of-{options.shard[1]}.json" if options.shard else "summary.json"
    path = options.out / name
    summary["summary_file"] = str(path)
    write_atomic(path, json_bytes(summary))
    return path
