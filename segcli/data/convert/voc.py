"""Pascal VOC ``SegmentationClass`` palette PNGs -> index masks.

SRC is the VOC folder (``VOC2012``): masks ``SegmentationClass/<id>.png`` (palette PNGs whose indices are the
class ids, read with Pillow), images ``JPEGImages/<id>.jpg`` (or another image folder), splits from
``ImageSets/Segmentation/{train,val}.txt`` (without them every mask is train). Classes are VOC's 21 with the
VOC palette; the 255 object border stays 255 (ignore). Colour (RGB) masks in the VOC palette are mapped
back to ids; values or colours outside the palette become 255 and are reported.

>>> voc_palette()[:3], voc_palette()[255]
([[0, 0, 0], [128, 0, 0], [0, 128, 0]], [224, 224, 192])
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from segcli.data.convert.common import IGNORE, Issue, Plan, Sample, image_with_stem
from segcli.errors import DataError, UsageError

CLASS_NAMES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")


def voc_palette(n: int = 256) -> list:
    """VOC's colour map: the bits of the index, 3 at a time, spread over r, g and b from the top bit down."""
    palette = []
    for index in range(n):
        r = g = b = 0
        c = index
        for bit in range(7, -1, -1):
            r |= (c & 1) << bit
            g |= ((c >> 1) & 1) << bit
            b |= ((c >> 2) & 1) << bit
            c >>= 3
        palette.append([r, g, b])
    return palette


def classes() -> list:
    palette = voc_palette(len(CLASS_NAMES))
    return [{"name": n, "color": c} for n, c in zip(CLASS_NAMES, palette)]


def _key(color) -> int:
    r, g, b = color
    return (r << 16) | (g << 8) | b


def _from_colors(rgb: np.ndarray):
    """(class ids, unknown) of an RGB mask in the VOC palette; the border colour and unknown colours give 255."""
    keys = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    label = np.full(keys.shape, IGNORE, np.uint8)
    known = keys == _key(voc_palette()[IGNORE])
    for i, color in enumerate(voc_palette(len(CLASS_NAMES))):
        hit = keys == _key(color)
        label[hit] = i
        known |= hit
    return label, ~known


def _render(mask_path: Path, height: int, width: int, issues: list):
    from segcli.data.image_io import read_mask

    mask = read_mask(mask_path)
    if mask.ndim == 3:
        label, unknown = _from_colors(mask)
        what = f"{int(unknown.sum())} pixels have colours outside the VOC palette"
    else:
        unknown = (mask >= len(CLASS_NAMES)) & (mask != IGNORE)
        label = np.where(unknown, IGNORE, mask).astype(np.uint8)
        values = sorted(int(v) for v in np.unique(mask[unknown]))
        what = f"values {', '.join(map(str, values[:8]))}{', ...' if len(values) > 8 else ''} are not VOC classes"
    if unknown.any():
        issues.append(Issue(str(mask_path), "mask", "ignored", f"{what}; set to 255 (ignore)"))
    return label, Counter(int(v) for v in np.unique(label) if v != IGNORE)


def _splits(src: Path, masks: dict, issues: list, notes: list) -> dict:
    """split -> [stem] from ImageSets/Segmentation, reporting listed ids without masks and unlisted masks."""
    sets = src / "ImageSets" / "Segmentation"
    if not (sets / "train.txt").is_file():
        notes.append(f"no {sets / 'train.txt'}: all {len(masks)} masks go to train.")
        return {"train": sorted(masks)}
    splits, listed = {}, set()
    for split in ("train", "val"):
        path = sets / f"{split}.txt"
        if not path.is_file():
            continue
        stems = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
        splits[split] = [s for s in stems if s in masks]
        listed.update(stems)
        for stem in (s for s in stems if s not in masks):
            issues.append(Issue(str(path), f"image {stem}", "dropped",
                                f"missing mask: {src / 'SegmentationClass' / stem}.png does not exist"))
    for stem in sorted(set(masks) - listed):
        issues.append(Issue(str(masks[stem]), f"image {stem}", "dropped", "not listed in train.txt or val.txt"))
    return splits


def plan(src: Path, images, class_names) -> Plan:
    if class_names is not None:
        raise UsageError("voc has a fixed class list (its 21 classes); convert without a class list.")
    if not (src / "SegmentationClass").is_dir():
        raise DataError(f"{src}: no SegmentationClass folder; give the VOC folder (it holds SegmentationClass/, "
                        f"JPEGImages/ and ImageSets/).")
    masks = {p.stem: p for p in sorted((src / "SegmentationClass").glob("*.png"))}
    if not masks:
        raise DataError(f"{src / 'SegmentationClass'}: no .png masks.")
    image_dir = images if images is not None else src / "JPEGImages"
    issues, notes, samples = [], [], []
    for split, stems in _splits(src, masks, issues, notes).items():
        for stem in stems:
            image = image_with_stem(image_dir, stem)

            def render(height, width, found, mask=masks[stem]):
                return _render(mask, height, width, found)

            samples.append(Sample(split=split, name=image.name, source=str(masks[stem]), image=image, render=render))
    return Plan(classes=classes(), samples=samples, image_dirs=[image_dir], issues=issues, notes=notes)
