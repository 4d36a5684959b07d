"""Small sources in each format ``segcli data convert`` reads, written as the tools write them, with the masks
they should give (drawn here with numpy slices: an independent reference).

Every image is 64x64. Coordinates below are chosen so the expected pixels are unambiguous: COCO and CVAT
polygons use continuous coordinates (a square from 10 to 30 covers pixels 10..29), LabelMe shapes use pixel
centres and include their outline (a rectangle from 0 to 63 covers pixels 0..63).
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

SIZE = 64


def write_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)
    return path


def image(seed: int, size: int = SIZE) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def rect(x0, y0, x1, y1) -> list:
    """A COCO polygon: the corners of [x0, x1] x [y0, y1]."""
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def coco_rle(mask: np.ndarray) -> dict:
    """Compressed COCO RLE, as pycocotools writes it."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": rle["size"], "counts": rle["counts"].decode()}


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE (column-major runs, starting with 0s), as crowd annotations are stored."""
    flat = mask.T.ravel()
    edges = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    return {"size": list(mask.shape), "counts": ([0] if flat[0] else []) + runs}


def write_coco(root: Path):
    """``root/instances_train.json`` + ``root/instances_val.json`` with images beside them.

    Returns {image file name: expected mask}. Classes: background, car (id 2), road (id 5), person (id 7).
    """
    for name, seed in (("a.png", 0), ("b.png", 1)):
        write_png(root / name, image(seed))
    crowd = np.zeros((SIZE, SIZE), bool)
    crowd[45:55, 40:60] = True
    blob = np.zeros((SIZE, SIZE), bool)
    blob[50:60, 0:10] = True

    def ann(i, cat, segmentation, image_id=1, crowd=0):
        return {"id": i, "image_id": image_id, "category_id": cat, "segmentation": segmentation, "iscrowd": crowd}

    train = {
        "images": [{"id": 1, "file_name": "a.png", "width": SIZE, "height": SIZE},
                   {"id": 2, "file_name": "missing.png", "width": SIZE, "height": SIZE}],
        "categories": [{"id": 5, "name": "road"}, {"id": 2, "name": "car"}, {"id": 7, "name": "person"}],
        "annotations": [
            ann(1, 2, [rect(10, 10, 30, 30)]),  # small car, listed before the road it lies on
            ann(2, 5, [rect(0, 0, 64, 40)]),
            ann(3, 2, uncompressed_rle(crowd), crowd=1),
            ann(4, 2, coco_rle(blob)),
            ann(5, 2, [[1, 1, 5, 5]]),  # two points
            ann(6, 2, [[1, 1, 5, 5, 9, 9]]),  # three points on a line
            ann(7, 2, [[70, 70, 80, 70, 80, 80]]),  # beyond the right and bottom edges
            ann(8, 2, [rect(50, -10, 70, 5)]),  # crosses the top and right edges
            ann(9, 99, [rect(0, 0, 5, 5)]),
            ann(10, 7, [rect(32, 10, 52, 30)]),  # a person hidden under the two cars below
            ann(11, 2, [rect(32, 10, 52, 20)]),
            ann(12, 2, [rect(32, 20, 52, 30)]),
            ann(13, 7, [rect(0, 0, 8, 8)], image_id=2),
        ],
    }
    val = {"images": [{"id": 1, "file_name": "b.png", "width": SIZE, "height": SIZE}],
           "categories": train["categories"],
           "annotations": [ann(1, 7, [[20, 20, 40, 20, 40, 40, 20, 40]])]}
    (root / "instances_train.json").write_text(json.dumps(train))
    (root / "instances_val.json").write_text(json.dumps(val))
    a = np.zeros((SIZE, SIZE), np.uint8)
    a[0:40, :] = 2
    a[10:30, 10:30] = 1
    a[0:5, 50:64] = 1
    a[10:30, 32:52] = 1
    a[45:55, 40:60] = 255
    a[50:60, 0:10] = 1
    b = np.zeros((SIZE, SIZE), np.uint8)
    b[20:40, 20:40] = 3
    return {"a.png": a, "b.png": b}


def png_b64(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def labelme_doc(image_path, shapes, image_data=None) -> dict:
    return {"version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": image_path, "imageData": image_data,
            "imageHeight": SIZE, "imageWidth": SIZE}


def shape(label, kind, points, **extra) -> dict:
    return {"label": label, "points": points, "group_id": None, "description": "", "shape_type": kind,
            "flags": {}, "mask": None, **extra}


def write_labelme(root: Path):
    """``root/a.json`` (+ a.png), ``root/val/b.json`` (image embedded only), ``root/test/c.json``.

    Returns {image name: expected mask} for the class order road, cat, dog (as ``--classes road,cat,dog``).
    """
    write_png(root / "a.png", image(2))
    bits = np.zeros((10, 10), np.uint8)
    bits[2:8, 2:8] = 1
    shapes = [
        shape("road", "rectangle", [[63, 39], [0, 0]]),  # corners in either order
        shape("cat", "polygon", [[10, 10], [29, 10], [29, 29], [10, 29]]),
        shape("dog", "circle", [[45, 20], [45, 28]]),
        shape("cat", "mask", [[5, 45], [14, 54]], mask=png_b64(bits.astype(bool))),
        shape("dog", "line", [[0, 60], [60, 60]]),
        shape("bird", "polygon", [[40, 45], [60, 45], [60, 60]]),
        shape("cat", "polygon", [[1, 1], [5, 5]]),
        shape("dog", "rectangle", [[58, 58], [70, 70]]),  # crosses the bottom-right corner
        shape("__ignore__", "rectangle", [[0, 44], [3, 47]]),
    ]
    (root / "a.json").write_text(json.dumps(labelme_doc("a.png", shapes)))
    ok, png = cv2.imencode(".png", image(3))
    embedded = base64.b64encode(png.tobytes()).decode()
    (root / "val").mkdir()
    (root / "val" / "b.json").write_text(json.dumps(labelme_doc(
        "b.png", [shape("dog", "rectangle", [[20, 20], [39, 39]])], image_data=embedded)))
    (root / "test").mkdir()
    (root / "test" / "c.json").write_text(json.dumps(labelme_doc("c.png", [])))
    a = np.zeros((SIZE, SIZE), np.uint8)
    a[0:40, 0:64] = 1
    a[10:30, 10:30] = 2
    yy, xx = np.mgrid[:SIZE, :SIZE]
    a[(xx - 45) ** 2 + (yy - 20) ** 2 <= 8 ** 2] = 3  # the circle, up to Pillow's rim pixels
    a[47:53, 7:13] = 2
    a[58:64, 58:64] = 3
    a[44:48, 0:4] = 255
    b = np.zeros((SIZE, SIZE), np.uint8)
    b[20:40, 20:40] = 3
    return {"a.png": a, "b.png": b}


CVAT_XML = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta>
    <task>
      <id>1</id><name>demo</name><size>3</size><mode>annotation</mode>
      <labels>
        <label><name>road</name><color>#804080</color><type>any</type><attributes></attributes></label>
        <label><name>car</name><color>#00008e</color><type>any</type><attributes></attributes></label>
      </labels>
    </task>
    <dumped>2024-05-01 10:00:00.000000+00:00</dumped>
  </meta>
  <image id="0" name="x.png" subset="Train" width="64" height="64">
    <polygon label="car" source="manual" occluded="0" points="10.00,10.00;30.00,10.00;30.00,30.00;10.00,30.00"
             z_order="1"></polygon>
    <box label="road" source="manual" occluded="0" xtl="0.00" ytl="0.00" xbr="64.00" ybr="40.00" z_order="0"></box>
    <mask label="car" source="manual" occluded="0" rle="{rle}" left="40" top="45" width="10" height="5"
          z_order="0"></mask>
    <polyline label="car" source="manual" occluded="0" points="0.00,60.00;60.00,60.00" z_order="0"></polyline>
    <box label="tree" source="manual" occluded="0" xtl="0.00" ytl="50.00" xbr="10.00" ybr="60.00" z_order="0"></box>
    <polygon label="car" source="manual" occluded="0" points="1.00,1.00;5.00,5.00" z_order="0"></polygon>
  </image>
  <image id="1" name="y.png" subset="Validation" width="64" height="64">
    <box label="road" source="manual" occluded="0" xtl="0.00" ytl="32.00" xbr="64.00" ybr="64.00" z_order="0"></box>
  </image>
  <image id="2" name="z.png" subset="Test" width="64" height="64">
  </image>
</annotations>
"""


def cvat_rle(bits: np.ndarray) -> str:
    """CVAT's mask RLE: row-major runs alternating 0s and 1s, starting with 0s."""
    flat = bits.ravel()
    edges = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    return ", ".join(map(str, ([0] if flat[0] else []) + runs))


def write_cvat(root: Path):
    """``root/annotations.xml`` + ``root/images/{x,y,z}.png``; returns {image name: expected mask}."""
    for name, seed in (("x.png", 4), ("y.png", 5), ("z.png", 6)):
        write_png(root / "images" / name, image(seed))
    bits = np.zeros((5, 10), np.uint8)
    bits[1:4, 2:9] = 1
    bits[0, 0] = 1
    (root / "annotations.xml").write_text(CVAT_XML.replace("{rle}", cvat_rle(bits)))
    x = np.zeros((SIZE, SIZE), np.uint8)
    x[0:40, :] = 1
    x[10:30, 10:30] = 2
    x[45:50, 40:50][bits.astype(bool)] = 2
    y = np.zeros((SIZE, SIZE), np.uint8)
    y[32:64, :] = 1
    return {"x.png": x, "y.png": y}


def write_cityscapes(root: Path):
    """A two-image Cityscapes tree; returns {image name: expected train-id mask}."""
    expected = {}
    for split, city, seed in (("train", "aachen", 7), ("val", "frankfurt", 8)):
        base = f"{city}_000000_000019"
        ids = np.zeros((SIZE, SIZE), np.uint8)  # 0: unlabeled
        ids[0:32] = 7  # road
        ids[10:20, 10:20] = 26  # car
        ids[40:50, 40:50] = 4  # static: not a train class
        ids[60:64, 0:4] = 50  # not a Cityscapes label id at all
        write_png(root / "gtFine" / split / city / f"{base}_gtFine_labelIds.png", ids)
        write_png(root / "leftImg8bit" / split / city / f"{base}_leftImg8bit.png", image(seed))
        train_ids = np.full((SIZE, SIZE), 255, np.uint8)
        train_ids[0:32] = 0
        train_ids[10:20, 10:20] = 13
        expected[f"{base}_leftImg8bit.png"] = train_ids
    return expected


def write_palette_png(path: Path, indices: np.ndarray, palette: list) -> None:
    im = Image.fromarray(indices, mode="P")
    im.putpalette([v for color in palette for v in color])
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)


def write_voc(root: Path, palette: list):
    """A VOC2012-like folder (palette PNGs in ``palette``); returns {image name: expected mask}."""
    expected = {}
    for stem, seed, person in (("2007_000032", 9, 15), ("2007_000039", 10, 15), ("2007_000063", 11, 8)):
        indices = np.zeros((SIZE, SIZE), np.uint8)
        indices[10:40, 10:40] = 255  # VOC's object border
        indices[12:38, 12:38] = person
        indices[60:64, 60:64] = 30  # not a VOC class
        write_palette_png(root / "SegmentationClass" / f"{stem}.png", indices, palette)
        ok, jpeg = cv2.imencode(".jpg", image(seed))
        (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
        (root / "JPEGImages" / f"{stem}.jpg").write_bytes(jpeg.tobytes())
        expected[f"{stem}.jpg"] = np.where(indices == 30, 255, indices).astype(np.uint8)
    sets = root / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("2007_000032\n2007_000099\n")
    (sets / "val.txt").write_text("2007_000039\n")
    return expected


def write_round_trip(root: Path, size: int) -> np.ndarray:
    """A mask of three separate shapes, and its COCO JSON made the usual way (cv2.findContours)."""
    mask = np.zeros((size, size), np.uint8)
    k = size / 64
    cv2.circle(mask, (int(20 * k), int(20 * k)), int(12 * k), 1, -1)
    cv2.rectangle(mask, (int(38 * k), int(8 * k)), (int(56 * k), int(30 * k)), 2, -1)
    cv2.fillPoly(mask, [(np.array([[10, 56], [30, 38], [50, 56]]) * k).astype(np.int32)], 3)
    write_png(root / "scene.png", np.full((size, size, 3), 90, np.uint8))
    annotations = []
    for value in (1, 2, 3):
        contours, _ = cv2.findContours((mask == value).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        # contour points are pixel indices; COCO coordinates put pixel i's centre at i + 0.5
        polygons = [(c.reshape(-1, 2) + 0.5).ravel().tolist() for c in contours]
        annotations.append({"id": value, "image_id": 1, "category_id": value, "segmentation": polygons, "iscrowd": 0})
    coco = {"images": [{"id": 1, "file_name": "scene.png", "width": size, "height": size}],
            "categories": [{"id": v, "name": n} for v, n in ((1, "disc"), (2, "box"), (3, "triangle"))],
            "annotations": annotations}
    (root / "scene.json").write_text(json.dumps(coco))
    return mask
