"""LabelMe JSON (one file per image) -> index masks.

SRC is a folder of LabelMe ``.json`` files, searched recursively, or one file. Files under a top-level
folder named val (valid, validation) form the val split; files under test are reported and not converted;
all others are train. A file's image is its ``imagePath`` relative to the file's folder; with an image
folder given, it is ``<image folder>/<the file's folder under SRC>/<imagePath's file name>``. When the
image file is missing but the JSON embeds it (``imageData``), the embedded image is written instead.

Shapes are drawn as LabelMe's own export draws them (Pillow, outline included; points are pixel centres):
``polygon``; ``rectangle`` (two corners); ``circle`` (the centre and a point on the rim); ``mask`` (a
base64 PNG over the box its two points give). ``line``, ``linestrip`` and ``point`` shapes have no area
and are reported. The labels ``background`` and ``_background_`` draw 0, ``__ignore__`` draws 255.

Classes: background 0, then the given class list (other labels are reported and dropped), else the sorted
label names of all area shapes. Overlaps: shapes are drawn in file order, later ones over earlier ones.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Optional

import numpy as np

from segcli.data.convert.common import (BACKGROUND_NAMES, IGNORE_NAMES, Canvas, Issue, Plan, Sample, class_table,
                                        json_or_reason, label_ids, outside, place, polygon_problem, read_json,
                                        split_of, unknown_label)
from segcli.errors import DataError

AREA_SHAPES = ("polygon", "rectangle", "circle", "mask")


@dataclass
class _File:
    path: Path
    split: Optional[str]
    folder: PurePosixPath  # the file's folder under SRC, split folder included
    name: str  # the image's path under DATA/<split>/images
    image: Path
    size: Optional[tuple]
    shapes: list
    embedded: bool


def _json_files(src: Path) -> list:
    if src.is_file():
        return [src]
    return sorted(p for p in src.rglob("*.json") if not any(s.startswith(".") for s in p.relative_to(src).parts))


def _load(path: Path):
    return read_json(path, "fix it or remove it")


def _embedded_suffix(data: str) -> str:
    try:
        head = base64.b64decode(data[:16], validate=False)
    except (binascii.Error, ValueError):
        return ".png"
    return ".jpg" if head.startswith(b"\xff\xd8") else ".png"


def _read(path: Path, src: Path, images: Optional[Path], issues: list) -> Optional[_File]:
    if src.is_file():
        data = _load(path)  # the one file given: nothing else to convert, so stop
    else:  # one broken file of a folder is dropped and reported, as a broken shape is
        data, why = json_or_reason(path)
        if why is not None:
            issues.append(Issue(str(path), f"file {path.name}", "dropped", why))
            return None
    if not isinstance(data, dict) or not isinstance(data.get("shapes"), list):
        issues.append(Issue(str(path), f"file {path.name}", "dropped", "not a LabelMe file (no \"shapes\" list)"))
        return None
    folder = PurePosixPath(path.parent.relative_to(src if src.is_dir() else path.parent).as_posix())
    split = split_of(folder.parts[0]) if folder.parts else None
    inner = PurePosixPath(*folder.parts[1:]) if split else folder
    image_path = str(data.get("imagePath") or "").replace("\\", "/")
    embedded = isinstance(data.get("imageData"), str) and bool(data["imageData"])
    file_name = PurePosixPath(image_path).name
    if not file_name:
        file_name = path.stem + (_embedded_suffix(data["imageData"]) if embedded else ".png")
    image = (images / folder / file_name) if images is not None else path.parent / image_path
    height, width = data.get("imageHeight"), data.get("imageWidth")
    size = (height, width) if isinstance(height, int) and isinstance(width, int) else None
    return _File(path, split, folder, (inner / file_name).as_posix(), image, size, data["shapes"], embedded)


def _points(shape) -> Optional[np.ndarray]:
    points = shape.get("points")
    if not isinstance(points, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(v, (int, float)) and math.isfinite(v) for v in p)
            for p in points):
        return None
    return np.asarray(points, np.float64).reshape(-1, 2)


def _mask_region(shape, xy: np.ndarray, height: int, width: int):
    """(region, some part outside, why not)."""
    if len(xy) != 2:
        return None, False, f"a mask needs 2 points (its box), got {len(xy)}"
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(base64.b64decode(shape.get("mask") or "", validate=True))) as im:
            bits = np.asarray(im)
    except (binascii.Error, UnidentifiedImageError, OSError, ValueError, TypeError):
        return None, False, "unreadable mask image (\"mask\" must be a base64 PNG)"
    bits = (bits.any(axis=2) if bits.ndim == 3 else bits > 0)
    (x1, y1), (x2, y2) = xy.astype(int)  # as LabelMe does
    if bits.shape != (y2 - y1 + 1, x2 - x1 + 1):
        return None, False, (f"the mask image is {bits.shape[1]}x{bits.shape[0]} but its box is "
                             f"{x2 - x1 + 1}x{y2 - y1 + 1}")
    region = np.zeros((height, width), bool)
    top, left, bottom, right = max(y1, 0), max(x1, 0), min(y2 + 1, height), min(x2 + 1, width)
    if top < bottom and left < right:
        region[top:bottom, left:right] = bits[top - y1:bottom - y1, left - x1:right - x1]
    return region, bool(x1 < 0 or y1 < 0 or x2 >= width or y2 >= height), None


def _drawn_region(kind: str, xy: np.ndarray, height: int, width: int):
    """(region, some part outside, why not) for polygons, rectangles and circles, drawn with Pillow."""
    from PIL import Image, ImageDraw

    if kind == "polygon":
        why, corners = polygon_problem(xy), xy
    elif len(xy) != 2:
        return None, False, f"a {kind} needs 2 points, got {len(xy)}"
    elif kind == "rectangle":
        (x0, x1), (y0, y1) = sorted(xy[:, 0]), sorted(xy[:, 1])
        why, corners = ("degenerate rectangle: zero area" if x0 == x1 or y0 == y1 else None), xy
    else:
        (cx, cy), (px, py) = xy
        radius = math.hypot(cx - px, cy - py)
        corners = np.array([[cx - radius, cy - radius], [cx + radius, cy + radius]])
        why = "degenerate circle: zero radius" if radius == 0 else None
    if why:
        return None, False, why
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    if kind == "polygon":
        draw.polygon([tuple(p) for p in xy.tolist()], outline=1, fill=1)
    elif kind == "rectangle":
        draw.rectangle([x0, y0, x1, y1], outline=1, fill=1)
    else:
        draw.ellipse(corners.ravel().tolist(), outline=1, fill=1)
    return np.asarray(canvas) > 0, outside(corners, 0.0, width - 1, height - 1), None


def _render(file: _File, ids: dict, height: int, width: int, issues: list):
    canvas = Canvas(height, width)
    for k, shape in enumerate(file.shapes, 1):
        shape = shape if isinstance(shape, dict) else {}
        label, kind = shape.get("label"), shape.get("shape_type") or "polygon"
        item = f"shape {k} ({kind} '{label}')"
        xy = _points(shape)
        if kind not in AREA_SHAPES:
            issues.append(Issue(str(file.path), item, "dropped", f"not an area shape ({kind})"))
        elif not isinstance(label, str) or ids.get(label) is None:
            issues.append(unknown_label(file.path, item, label))
        elif xy is None:
            issues.append(Issue(str(file.path), item, "dropped", "malformed points: expected [[x, y], ...]"))
        else:
            region, out, why = (_mask_region(shape, xy, height, width) if kind == "mask"
                                else _drawn_region(kind, xy, height, width))
            if why:
                issues.append(Issue(str(file.path), item, "dropped", why))
            else:
                place(canvas, issues, region, ids[label], file.path, item, out)
    return canvas.finish(issues)


def _embedded_bytes(path: Path):
    def read() -> bytes:
        try:
            return base64.b64decode(_load(path)["imageData"], validate=True)
        except (binascii.Error, ValueError):
            raise DataError(f"{path}: imageData is not valid base64") from None

    return read


def plan(src: Path, images, class_names) -> Plan:
    paths = _json_files(src)
    if not paths:
        raise DataError(f"{src}: no LabelMe .json files found (searched the folder and its subfolders).")
    issues, files = [], []
    for path in paths:
        file = _read(path, src, images, issues)
        if file is not None and file.split == "test":
            issues.append(Issue(str(path), f"image {file.name}", "dropped", "in a test folder (only train and val "
                                                                             "are converted)"))
        elif file is not None:
            files.append(file)
    if class_names is None:
        class_names = sorted({s["label"] for f in files for s in f.shapes if isinstance(s, dict)
                              and isinstance(s.get("label"), str) and (s.get("shape_type") or "polygon") in AREA_SHAPES
                              and s["label"] not in BACKGROUND_NAMES + IGNORE_NAMES})
    classes = class_table(class_names)
    ids = label_ids(classes)
    samples = []
    for file in files:
        def render(height, width, found, file=file):
            return _render(file, ids, height, width, found)

        samples.append(Sample(split="val" if file.split == "val" else "train", name=file.name, source=str(file.path),
                              image=file.image, render=render, size=file.size, annotations=len(file.shapes),
                              image_bytes=_embedded_bytes(file.path) if file.embedded else None))
    image_dirs = [images] if images is not None else sorted({f.image.parent for f in files})
    return Plan(classes=classes, samples=samples, image_dirs=image_dirs, issues=issues)
