"""``segcli data check``: read every pair once and say whether the dataset can be trained on.

Problems (the dataset cannot be trained on; ``ok`` is False): images without
masks, masks without images, unreadable files, image/mask size mismatches,
mask values outside the classes. Warnings (trainable, but look): masks with
no labelled pixel. Every finding names its file. The report also counts
pixels per class (all splits, and the train split alone for class weights).

>>> import tempfile, numpy as np
>>> from segcli.data.image_io import encode_png, write_atomic
>>> root = Path(tempfile.mkdtemp())
>>> for i in range(3):
...     write_atomic(root / "images" / f"{i}.png", encode_png(np.zeros((4, 4, 3), np.uint8)))
...     write_atomic(root / "masks" / f"{i}.png", encode_png(np.eye(4, dtype=np.uint8) * (1 + i)))
>>> report = check_dataset(discover(root, val_fraction=0.3, seed=0))
>>> report.ok, report.pairs, [c["pixels"] for c in report.histogram]
(True, {'train': 2, 'val': 1}, [36, 4, 4, 4])
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from segcli.data.folder_dataset import (IGNORE_INDEX, SPLITS, FolderDataset, _color_keys, discover,  # noqa: F401
                                        to_label)
from segcli.data.image_io import read_image, read_mask
from segcli.errors import DataError


@dataclass
class Finding:
    kind: str  # missing_mask, missing_image, unreadable, size_mismatch, bad_values, empty_mask
    file: str
    message: str


@dataclass
class CheckReport:
    root: str
    layout: str
    pairs: dict  # split -> count
    classes: list  # [{"name", "color"}]
    class_source: str
    val_source: str
    notes: list
    problems: list = field(default_factory=list)  # [Finding]
    warnings: list = field(default_factory=list)  # [Finding]
    histogram: list = field(default_factory=list)  # [{"name", "pixels", "fraction", "train_pixels", "train_image_pixels"}]
    ignored_pixels: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        data = asdict(self)
        data["ok"] = self.ok
        return data

    def first_problem(self) -> str:
        return self.problems[0].message if self.problems else ""


def _check_pair(ds: FolderDataset, pair, split: str):
    """(findings, per-class counts, image pixels) for one pair."""
    findings = []
    c = ds.num_classes
    counts = np.zeros(c, dtype=np.int64)
    try:
        image = read_image(pair.image)
    except DataError as exc:
        findings.append(("problem", Finding("unreadable", str(pair.image), str(exc))))
        image = None
    try:
        raw = read_mask(pair.mask)
        if raw.ndim == 3:
            if not ds.has_colors:
                ds.read_label(pair.mask)  # raises the "no class colours" message
            label = _rgb_label(ds, raw, pair.mask, findings)
        else:
            label = to_label(raw, ds.classes, ds.binary_255, pair.mask)
    except DataError as exc:
        findings.append(("problem", Finding("unreadable", str(pair.mask), str(exc))))
        return findings, counts, 0
    if image is not None and image.shape[:2] != label.shape[:2]:
        findings.append(("problem", Finding(
            "size_mismatch", str(pair.mask),
            f"{pair.mask}: mask is {label.shape[1]}x{label.shape[0]} but image {pair.image.name} is "
            f"{image.shape[1]}x{image.shape[0]} (width x height); masks must match their image size.")))
    values, n = np.unique(label, return_counts=True)
    bad = [int(v) for v in values if v >= c and v != IGNORE_INDEX]
    if bad:
        findings.append(("problem", Finding(
            "bad_values", str(pair.mask),
            f"{pair.mask}: mask values {bad[:8]} are outside the {c} classes 0..{c - 1} (255 = ignore); "
            f"fix the mask or {'list more classes in ' + ds.class_source if ds.class_source.startswith('classes') else 'raise --num-classes'}.")))
    for v, k in zip(values, n):
        if v < c:
            counts[v] += k
    labelled = int(counts.sum())
    if labelled == 0 and not bad:
        findings.append(("warning", Finding("empty_mask", str(pair.mask),
                                            f"{pair.mask}: no labelled pixel (all 255 = ignore).")))
    return findings, counts, labelled


def _rgb_label(ds, raw, path, findings):
    label = to_label(raw, ds.classes, False, path)
    unknown = label == IGNORE_INDEX
    if unknown.any():
        keys = np.unique(_color_keys(raw)[unknown])[:5]
        colors = [[int(k >> 16) & 255, int(k >> 8) & 255, int(k) & 255] for k in keys]
        findings.append(("problem", Finding(
            "bad_values", str(path),
            f"{path}: colours {colors} are not in the palette of {ds.class_source}; add them as classes or "
            f"recolour the mask.")))
    return label


def check_dataset(ds: FolderDataset, workers: int | None = None, progress=None) -> CheckReport:
    """Read every pair of ``ds`` and report problems, warnings and the class histogram."""
    report = CheckReport(root=str(ds.root), layout=ds.layout, pairs={s: len(ds.splits.get(s, [])) for s in SPLITS},
                         classes=ds.classes, class_source=ds.class_source, val_source=ds.val_source,
                         notes=list(ds.notes))
    for path in ds.images_without_masks:
        report.problems.append(Finding("missing_mask", str(path), f"{path}: image has no mask "
                                       f"(expected a .png with the same name in the masks folder)."))
    for path in ds.masks_without_images:
        report.problems.append(Finding("missing_image", str(path), f"{path}: mask has no image with the same name."))
    c = ds.num_classes
    totals = np.zeros(c, dtype=np.int64)
    train_pixels = np.zeros(c, dtype=np.int64)
    train_image_pixels = np.zeros(c, dtype=np.int64)
    jobs = [(pair, split) for split in SPLITS for pair in ds.splits.get(split, [])]
    workers = workers or min(8, (os.cpu_count() or 2) * 2)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for (pair, split), (findings, counts, labelled) in zip(
                jobs, pool.map(lambda job: _check_pair(ds, *job), jobs)):
            for level, finding in findings:
                (report.problems if level == "problem" else report.warnings).append(finding)
            totals += counts
            if split == "train":
                train_pixels += counts
                train_image_pixels += np.where(counts > 0, labelled, 0)
            if progress is not None:
                progress()
    total = int(totals.sum())
    report.histogram = [
        {"name": cls["name"], "pixels": int(totals[i]), "fraction": float(totals[i] / total) if total else 0.0,
         "train_pixels": int(train_pixels[i]), "train_image_pixels": int(train_image_pixels[i])}
        for i, cls in enumerate(ds.classes)
    ]
    return report


def median_frequency_weights(report: CheckReport) -> list:
    """Eigen & Fergus median-frequency class weights from the train split.

    freq(c) = pixels of c / pixels of the train images where c appears;
    weight(c) = median(freq) / freq(c). Classes absent from train get 0.

    >>> r = CheckReport("", "", {}, [], "", "", [])
    >>> r.histogram = [{"train_pixels": 30, "train_image_pixels": 40}, {"train_pixels": 10, "train_image_pixels": 40},
    ...                {"train_pixels": 0, "train_image_pixels": 0}]
    >>> [round(w, 3) for w in median_frequency_weights(r)]
    [0.667, 2.0, 0.0]
    """
    freq = np.array([h["train_pixels"] / h["train_image_pixels"] if h["train_image_pixels"] else 0.0
                     for h in report.histogram])
    present = freq > 0
    if not present.any():
        return [1.0] * len(freq)
    median = float(np.median(freq[present]))
    return [float(median / f) if f > 0 else 0.0 for f in freq]
