"""CVAT for images 1.1 XML -> index masks.

SRC is ``annotations.xml`` or the folder holding it. Images are ``<image folder>/<name>``, or
``<image folder>/<subset>/<name>`` as CVAT's project exports store them; the image folder defaults to
``images/`` beside the XML (else the XML's own folder). An image's ``subset`` gives its split: a val word
(``Validation``) is val, a test word is reported and not converted, anything else (``default``,
``Train``) is train.

Classes: background 0, then the labels of ``<meta><task|project|job><labels>`` in their order, with their
colours (a label named background takes id 0); with a class list, its order, and other labels are dropped.

Shapes: ``polygon``; ``box`` (with its ``rotation``); ``ellipse``; ``mask`` (CVAT's RLE: runs that alternate
0s and 1s, starting with 0s, row by row over the box ``left, top, width, height``). Polygons, boxes and
ellipses are rasterised with pycocotools like CVAT's own mask export (continuous coordinates). ``polyline``,
``points``, ``skeleton`` and ``tag`` have no area and are reported. Overlaps: shapes are drawn by
``z_order``, then in document order; later ones lie over earlier ones.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path, PurePosixPath

import numpy as np

from segcli.data.convert.common import (Canvas, Issue, Plan, Sample, class_table, label_ids, outside, place,
                                        polygon_problem, polygon_region, rle_decode, split_of, unknown_label)
from segcli.errors import DataError

AREA_SHAPES = ("polygon", "box", "ellipse", "mask")
OTHER_SHAPES = ("polyline", "points", "skeleton", "tag", "cuboid")
ELLIPSE_VERTICES = 72


def _xml_path(src: Path) -> Path:
    if src.is_file():
        return src
    if (src / "annotations.xml").is_file():
        return src / "annotations.xml"
    raise DataError(f"{src}: no annotations.xml in this folder; give the CVAT for images 1.1 XML file.")


def _parse(path: Path) -> ET.Element:
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        line, column = exc.position
        raise DataError(f"{path}: not valid XML (line {line}, column {column + 1}: "
                        f"{str(exc).split(':')[0]}); fix or re-export it.") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc}).") from None
    if root.tag != "annotations":
        raise DataError(f"{path}: not a CVAT for images 1.1 file (the root element is <{root.tag}>, "
                        f"not <annotations>).")
    if root.find("track") is not None:
        raise DataError(f"{path}: holds <track> elements (CVAT for video); export the task as "
                        f"'CVAT for images 1.1'.")
    return root


def _color(text) -> list | None:
    if text and re.fullmatch(r"#[0-9a-fA-F]{6}", text.strip()):
        value = int(text.strip()[1:], 16)
        return [(value >> 16) & 255, (value >> 8) & 255, value & 255]
    return None


def _classes(root: ET.Element, class_names, notes: list) -> list:
    labels = []
    for where in ("meta/task/labels", "meta/project/labels", "meta/job/labels"):
        labels = root.findall(f"{where}/label")
        if labels:
            break
    if class_names is not None:
        return class_table(class_names)
    if not labels:
        names = sorted({e.get("label") for e in root.iter() if e.tag in AREA_SHAPES and e.get("label")})
        notes.append("no label list in <meta>: classes are the sorted label names of the shapes.")
        return class_table(names)
    names = [(e.findtext("name") or "").strip() for e in labels]
    return class_table([n for n in names if n], {n: _color(e.findtext("color")) for n, e in zip(names, labels)})


def _floats(element: ET.Element, *names: str):
    return [float(element.get(n)) for n in names]


def _shape_polygon(element: ET.Element) -> np.ndarray:
    """(N, 2) vertices of a polygon, box or ellipse; ValueError/TypeError when its attributes are malformed."""
    if element.tag == "polygon":
        return np.array([[float(v) for v in p.split(",")] for p in element.get("points").split(";")], np.float64)
    if element.tag == "box":
        x0, y0, x1, y1 = _floats(element, "xtl", "ytl", "xbr", "ybr")
        corners, centre = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]), np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    else:
        cx, cy, rx, ry = _floats(element, "cx", "cy", "rx", "ry")
        t = np.linspace(0, 2 * np.pi, ELLIPSE_VERTICES, endpoint=False)
        corners, centre = np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1), np.array([cx, cy])
    angle = math.radians(float(element.get("rotation", 0)))  # clockwise on screen, about the centre
    turn = np.array([[math.cos(angle), math.sin(angle)], [-math.sin(angle), math.cos(angle)]])
    return (corners - centre) @ turn + centre


def _mask_region(element: ET.Element, height: int, width: int):
    """(region, some part outside, why not) of a CVAT RLE mask."""
    try:
        counts = [int(v) for v in element.get("rle").split(",")]
        left, top, box_w, box_h = (int(float(element.get(n))) for n in ("left", "top", "width", "height"))
        bits = rle_decode(counts, box_h, box_w, order="C").astype(bool)
    except (AttributeError, TypeError, ValueError):
        return None, False, "malformed mask: needs rle, left, top, width and height"
    except DataError as exc:
        return None, False, f"unreadable RLE: {exc}"
    region = np.zeros((height, width), bool)
    y0, x0, y1, x1 = max(top, 0), max(left, 0), min(top + box_h, height), min(left + box_w, width)
    if y0 < y1 and x0 < x1:
        region[y0:y1, x0:x1] = bits[y0 - top:y1 - top, x0 - left:x1 - left]
    return region, bool(left < 0 or top < 0 or left + box_w > width or top + box_h > height), None


def _region(element: ET.Element, height: int, width: int):
    if element.tag == "mask":
        return _mask_region(element, height, width)
    try:
        xy = _shape_polygon(element)
    except (AttributeError, TypeError, ValueError):
        return None, False, f"malformed {element.tag}: unreadable coordinates"
    why = polygon_problem(xy)
    if why:
        return None, False, why if element.tag == "polygon" else f"degenerate {element.tag}: zero area"
    return polygon_region([xy], height, width), outside(xy, 0.0, width, height), None


def _render(shapes: list, ids: dict, file: str, height: int, width: int, issues: list):
    canvas = Canvas(height, width)
    order = sorted(range(len(shapes)), key=lambda k: (int(float(shapes[k].get("z_order", 0) or 0)), k))
    for k in order:
        element = shapes[k]
        label = element.get("label")
        item = f"{element.tag} {k + 1} ('{label}')"
        if element.tag not in AREA_SHAPES:
            issues.append(Issue(file, item, "dropped", f"not an area shape ({element.tag})"))
            continue
        if ids.get(label) is None:
            issues.append(unknown_label(file, item, label))
            continue
        region, out, why = _region(element, height, width)
        if why:
            issues.append(Issue(file, item, "dropped", why))
        else:
            place(canvas, issues, region, ids[label], file, item, out)
    return canvas.finish(issues)


def _size(element: ET.Element):
    try:
        return int(element.get("height")), int(element.get("width"))
    except (TypeError, ValueError):
        return None


def plan(src: Path, images, class_names) -> Plan:
    path = _xml_path(src)
    root = _parse(path)
    notes: list = []
    classes = _classes(root, class_names, notes)
    ids = label_ids(classes)
    image_dir = images if images is not None else (path.parent / "images" if (path.parent / "images").is_dir()
                                                   else path.parent)
    samples, issues = [], []
    for element in root.findall("image"):
        name = (element.get("name") or "").replace("\\", "/")
        subset = element.get("subset") or ""
        split = split_of(subset) or "train"
        if split == "test":
            issues.append(Issue(str(path), f"image {name}", "dropped",
                                f"subset '{subset}' (only train and val are converted)"))
            continue
        image = image_dir / name
        if not image.is_file() and subset and (image_dir / subset / name).is_file():
            image = image_dir / subset / name
        shapes = [e for e in element if e.tag in AREA_SHAPES + OTHER_SHAPES]

        def render(height, width, found, shapes=shapes):
            return _render(shapes, ids, str(path), height, width, found)

        safe = PurePosixPath(name)
        samples.append(Sample(split=split, name=safe.name if safe.is_absolute() or ".." in safe.parts else name,
                              source=str(path), image=image, render=render, size=_size(element),
                              annotations=len(shapes)))
    if not samples and not issues:
        raise DataError(f"{path}: no <image> elements; export the task as 'CVAT for images 1.1'.")
    image_dirs = sorted({image_dir} | {s.image.parent for s in samples})
    return Plan(classes=classes, samples=samples, image_dirs=image_dirs, issues=issues, notes=notes)
