"""Cityscapes ``gtFine`` label ids -> the 19 train ids.

SRC is the dataset root: masks are ``gtFine/{train,val}/<city>/<name>_gtFine_labelIds.png``, images
``leftImg8bit/{train,val}/<city>/<name>_leftImg8bit.png`` (the image root can be given instead of
``SRC/leftImg8bit``). The test split is not converted: its public masks hold no labels. Classes are segcli's
Cityscapes table; label ids outside the 19 train classes (void, and the classes Cityscapes leaves out of
training) become 255, as Cityscapes' own ``createTrainIdLabelImgs`` does.

>>> train_id_table()[[7, 26, 0, 33, 34]].tolist()
[0, 13, 255, 18, 255]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segcli.classes import dataset_classes
from segcli.data.convert.common import IGNORE, Plan, Sample, relabel
from segcli.errors import DataError, UsageError

#: The Cityscapes label id of each train id 0..18 (cityscapesScripts' labels.py), in segcli's table order.
LABEL_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)
MAX_LABEL_ID = 33  # ids 0..33 are Cityscapes labels (-1, license plate, is not stored in labelIds files)
MASK_SUFFIX, IMAGE_SUFFIX = "_gtFine_labelIds.png", "_leftImg8bit.png"


def train_id_table() -> np.ndarray:
    """A 256-entry lookup table: label id -> train id, 255 for everything else."""
    table = np.full(256, IGNORE, np.uint8)
    table[list(LABEL_IDS)] = np.arange(len(LABEL_IDS), dtype=np.uint8)
    return table


def _render(mask_path: Path, height: int, width: int, issues: list):
    return relabel(mask_path, train_id_table(), MAX_LABEL_ID, "a colour image, not a labelIds mask; convert the "
                   "*_gtFine_labelIds.png files, not *_gtFine_color.png.", "values {} are not Cityscapes label ids",
                   issues)


def plan(src: Path, images, class_names) -> Plan:
    if class_names is not None:
        raise UsageError("cityscapes has a fixed class list (the 19 train classes); convert without a class list.")
    table = dataset_classes("cityscapes")  # a ClassTable (redesign) or, before it, a list of dicts
    classes = table.as_dicts() if hasattr(table, "as_dicts") else [dict(c) for c in table]
    if len(classes) != len(LABEL_IDS):
        raise DataError(f"segcli's cityscapes table has {len(classes)} classes, not {len(LABEL_IDS)}.")
    if not (src / "gtFine").is_dir():
        raise DataError(f"{src}: no gtFine folder; give the Cityscapes root (it holds gtFine/ and leftImg8bit/).")
    image_root = images if images is not None else src / "leftImg8bit"
    samples, notes = [], []
    for split in ("train", "val"):
        for mask in sorted((src / "gtFine" / split).glob(f"*/*{MASK_SUFFIX}")):
            base = mask.name[:-len(MASK_SUFFIX)]

            def render(height, width, found, mask=mask):
                return _render(mask, height, width, found)

            samples.append(Sample(split=split, name=f"{base}{IMAGE_SUFFIX}", source=str(mask),
                                  image=image_root / split / mask.parent.name / f"{base}{IMAGE_SUFFIX}",
                                  render=render))
    if not samples:
        raise DataError(f"{src / 'gtFine'}: no <city>/*{MASK_SUFFIX} files in train/ or val/.")
    if (src / "gtFine" / "test").is_dir():
        notes.append("gtFine/test is not converted: its public masks hold no labels.")
    return Plan(classes=classes, samples=samples, image_dirs=[image_root], notes=notes)
