"""ADE20K's scene-parsing release (``ADEChallengeData2016``) -> segcli's 150 classes.

SRC is ``ADEChallengeData2016`` (or the folder holding it): masks ``annotations/{training,validation}/<name>.png``,
images ``images/{training,validation}/<name>.jpg`` (or another image folder holding ``training/`` and
``validation/``). Mask value 0 is ADE20K's "other objects", which the benchmark does not score, and values
1..150 are the classes, so 0 becomes 255 (ignore) and k becomes k - 1: mmsegmentation's ``reduce_zero_label``,
the class ids of the ADE20K-finetuned SegFormer checkpoints. Classes are segcli's ADE20K table (wall first).

>>> label_table()[[0, 1, 150, 151]].tolist()
[255, 0, 149, 255]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segcli.classes import dataset_classes
from segcli.data.convert.common import IGNORE, Plan, Sample, image_with_stem, relabel
from segcli.errors import DataError, UsageError

FOLDER = "ADEChallengeData2016"
NUM_CLASSES = 150
SPLITS = {"training": "train", "validation": "val"}


def label_table() -> np.ndarray:
    """A 256-entry lookup table: ADE20K mask value -> class id (0 and values above 150 -> 255)."""
    table = np.full(256, IGNORE, np.uint8)
    table[1:NUM_CLASSES + 1] = np.arange(NUM_CLASSES, dtype=np.uint8)
    return table


def _render(mask_path: Path, issues: list):
    return relabel(mask_path, label_table(), NUM_CLASSES, f"a colour image, not an ADE20K annotation (one class "
                   f"value per pixel); convert the annotations/ folder of {FOLDER}.",
                   f"values {{}} are above ADE20K's {NUM_CLASSES} classes", issues)


def plan(src: Path, images, class_names) -> Plan:
    if class_names is not None:
        raise UsageError(f"ade20k has a fixed class list (its {NUM_CLASSES} classes); convert without a class list.")
    root = src / FOLDER if (src / FOLDER).is_dir() else src
    if not (root / "annotations").is_dir():
        raise DataError(f"{src}: no annotations folder; give {FOLDER} (it holds annotations/ and images/).")
    image_root = images if images is not None else root / "images"
    samples = []
    for folder, split in SPLITS.items():
        for mask in sorted((root / "annotations" / folder).glob("*.png")):
            image = image_with_stem(image_root / folder, mask.stem)

            def render(height, width, found, mask=mask):
                return _render(mask, found)

            samples.append(Sample(split=split, name=image.name, source=str(mask), image=image, render=render))
    if not samples:
        raise DataError(f"{root / 'annotations'}: no .png masks in training/ or validation/.")
    return Plan(classes=dataset_classes("ade20k").as_dicts(), samples=samples, image_dirs=[image_root])
