"""``segcli data check``: read every pair once and say whether the dataset can be trained on.

Problems (the dataset cannot be trained on; ``ok`` is False, and ``segcli
train`` refuses it): no val split (a single pair, which eval scores but
training cannot validate on), images without masks, masks without images,
images (or masks) of one folder sharing a name (``a.jpg`` and ``a.png``: which
one is paired is ambiguous), unreadable files, image/mask size mismatches
(after EXIF rotation, which the message says), mask values outside the
classes. Warnings (trainable, but look): masks with no labelled pixel, JPEG
masks (lossy compression changes class ids along edges), and classes with no
labelled pixel in the train split (a model cannot learn them).
Every finding names its file (or, for no val split, the dataset folder);
:func:`group_findings` folds identical findings (same kind and value) into
one row for display. The report also counts pixels per class (all splits,
and the train split alone for class weights). A dataset's label map and
class subset apply.

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

from segcli.data.folder_dataset import (IGNORE_INDEX, SPLITS, FolderDataset, color_keys, discover)  # noqa: F401
from segcli.data.image_io import (ROTATION_FIX, all_gray, dim_deep_fix, dim_deep_image, is_jpeg, page_count,
                                  read_image, rotation_note)
from segcli.data.label_map import REDUCE_ZERO_LABEL, reduce_zero_label_map
from segcli.errors import DataError


@dataclass
class Finding:
    kind: str  # no_val_split, missing_mask, missing_image, mask_name, image_format, duplicate_stem, unreadable,
    # size_mismatch, bad_values, empty_mask, lossy_mask, class_not_in_train
    file: str
    message: str
    value: str = ""  # what identical findings share (the bad values, the sizes, the reason); "" for none


@dataclass
class FindingGroup:
    """Findings of one kind and value: ``files`` in the order found, ``message`` the first one's."""

    kind: str
    value: str
    files: list
    message: str

    @property
    def count(self) -> int:
        return len(self.files)


def group_findings(findings) -> list[FindingGroup]:
    """One group per (kind, value), in the order each was first found.

    >>> groups = group_findings([Finding("bad_values", f"m{i}.png", f"m{i}.png: bad", "[7]") for i in range(4)])
    >>> [(g.kind, g.value, g.count, g.files[:2]) for g in groups]
    [('bad_values', '[7]', 4, ['m0.png', 'm1.png'])]
    """
    groups: dict = {}
    for f in findings:
        key = (f.kind, f.value)
        if key not in groups:
            groups[key] = FindingGroup(f.kind, f.value, [], f.message)
        groups[key].files.append(f.file)
    return list(groups.values())


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
    ignored_pixels: int = 0  # pixels that are 255 (ignore) once the label map and class subset apply

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        data = asdict(self)
        data["ok"] = self.ok
        return data

    def first_problem(self) -> str:
        return self.problems[0].message if self.problems else ""


def warning_lines(report: CheckReport) -> list:
    """One ``warning:`` line per group of the report's warnings (for commands that go on, such as train)."""
    lines = []
    for group in group_findings(report.warnings):
        more = f" ({group.count - 1} more like it: segcli data check lists them)" if group.count > 1 else ""
        lines.append(f"warning: {group.message}{more}")
    return lines


def _read_mask_label(ds: FolderDataset, pair, findings):
    """Indices into ``ds.full_classes`` (colours outside the palette reported), or None when unreadable."""
    try:
        raw = ds.read_mask_values(pair.mask)
        label = ds.full_label(raw, pair.mask)
    except DataError as exc:
        findings.append(("problem", Finding("unreadable", str(pair.mask), str(exc), _reason(exc, pair.mask))))
        return None
    if raw.ndim == 3:
        unknown = label == IGNORE_INDEX
        if unknown.any():
            keys = np.unique(color_keys(raw)[unknown])[:5]
            colors = [[int(k >> 16) & 255, int(k >> 8) & 255, int(k) & 255] for k in keys]
            gray = (f" (its colours are all gray, read as colours because {ds.class_source} gives class colours; if "
                    f"they are class indices, save it as a single-channel PNG)" if all_gray(raw) else "")
            findings.append(("problem", Finding(
                "bad_values", str(pair.mask),
                f"{pair.mask}: colours {colors} are not in the palette of {ds.class_source}; add them as classes "
                f"or recolour the mask{gray}.", f"colours {colors}")))
    return label


def _reason(exc: Exception, path) -> str:
    """The part of a file's error message after "PATH: ", shared by files that fail the same way."""
    text, prefix = str(exc), f"{path}: "
    return text[len(prefix):] if text.startswith(prefix) else text


def _bad_values_message(ds: FolderDataset, path, bad: list) -> str:
    c = len(ds.full_classes)
    source = ds.class_source
    more = f"list more classes in {source}" if source.startswith("classes") else "raise --num-classes"
    if ds.label_map == reduce_zero_label_map():
        return (f"{path}: mask values {[v + 1 for v in bad]} are class ids {bad} after {REDUCE_ZERO_LABEL}, outside "
                f"the {c} classes 0..{c - 1} (255 = ignore); fix the mask or {more}.")
    if ds.label_map is not None:
        return (f"{path}: the label map gives class ids {bad} outside the {c} classes 0..{c - 1} (255 = ignore); "
                f"fix the label map or {more}.")
    return (f"{path}: mask values {bad} are outside the {c} classes 0..{c - 1} (255 = ignore); "
            f"fix the mask or {more}.")


def _check_pair(ds: FolderDataset, pair, split: str):
    """(findings, per-class counts, labelled pixels, ignored pixels) for one pair."""
    findings = []
    counts = np.zeros(ds.num_classes, dtype=np.int64)
    try:
        image = read_image(pair.image)
    except DataError as exc:
        findings.append(("problem", Finding("unreadable", str(pair.image), str(exc), _reason(exc, pair.image))))
        image = None
    if image is not None and (pages := page_count(pair.image)) > 1:
        findings.append(("warning", _multi_page(pair.image, pages)))
    if image is not None and (top := dim_deep_image(pair.image, image)):
        findings.append(("warning", _dim_deep(pair.image, top)))
    full = _read_mask_label(ds, pair, findings)
    if full is None:
        return findings, counts, 0, 0
    if image is not None and image.shape[:2] != full.shape[:2]:
        findings.append(("problem", _size_mismatch(pair, full.shape, image.shape)))
    if is_jpeg(pair.mask):
        findings.append(("warning", _lossy_mask(pair.mask)))
    present = np.unique(full)
    bad = [int(v) for v in present if v >= len(ds.full_classes) and v != IGNORE_INDEX][:8]
    if bad:
        findings.append(("problem", Finding("bad_values", str(pair.mask), _bad_values_message(ds, pair.mask, bad),
                                            str(bad))))
    values, n = np.unique(ds.subset_label(full), return_counts=True)
    for v, k in zip(values, n):
        if v < ds.num_classes:
            counts[v] += k
    labelled = int(counts.sum())
    if labelled == 0 and not bad:
        findings.append(("warning", Finding("empty_mask", str(pair.mask),
                                            f"{pair.mask}: no labelled pixel (all 255 = ignore).")))
    return findings, counts, labelled, int(n[values == IGNORE_INDEX].sum())


def _dim_deep(image: Path, top: int) -> Finding:
    fix = dim_deep_fix(top)
    return Finding("dim_16bit", str(image), f"{image}: values up to {top}; {fix}.", fix)


def _multi_page(image: Path, pages: int) -> Finding:
    fix = "only its first page is read: save each page and its mask as their own pair to train on every page"
    return Finding("multi_page", str(image), f"{image}: a TIFF of {pages} pages; {fix}.", fix)


def _size_mismatch(pair, mask_shape, image_shape) -> Finding:
    mask, image = f"{mask_shape[1]}x{mask_shape[0]}", f"{image_shape[1]}x{image_shape[0]}"
    rotated = rotation_note(pair.image, image_shape)
    fix = f" as segcli reads it (turned upright): {ROTATION_FIX}" if rotated else ""
    return Finding("size_mismatch", str(pair.mask),
                   f"{pair.mask}: mask is {mask} but image {pair.image.name} is {image} (width x height){rotated}; "
                   f"masks must match their image size{fix}.", f"mask {mask}, image {image}{rotated}")


def _lossy_mask(path: Path) -> Finding:
    named = path.suffix.lower() in (".jpg", ".jpeg")
    what = "a JPEG mask" if named else f"a JPEG file under a {path.suffix} name"
    return Finding("lossy_mask", str(path),
                   f"{path}: {what}; JPEG compression changes class ids along object edges, so some pixels get "
                   f"the wrong class: save masks as PNG (lossless).", "jpeg")


#: The longest addition to an image's stem that is taken for an export's mask suffix ("_mask", ".jpg", "-label").
MAX_ADDED = 16


def _misnamed_masks(images: list, masks: list) -> dict:
    """{mask: (image, what its name adds)} for unpaired masks named after an unpaired image's stem plus a suffix.

    >>> from pathlib import Path
    >>> found = _misnamed_masks([Path("i/c.jpg"), Path("i/b.jpg")], [Path("m/c_mask.png"), Path("m/b.jpg.png")])
    >>> {m.name: (i.name, added) for m, (i, added) in found.items()}
    {'c_mask.png': ('c.jpg', '_mask'), 'b.jpg.png': ('b.jpg', '.jpg')}
    """
    by_stem = {image.stem: image for image in images}
    found = {}
    for mask in masks:
        stem = mask.stem
        cuts = [i for i in range(len(stem) - 1, 0, -1) if stem[i] in "._-" and len(stem) - i <= MAX_ADDED]
        image = next(((by_stem[stem[:i]], stem[i:]) for i in cuts if stem[:i] in by_stem), None)
        if image is not None:
            found[mask] = image
    return found


def _misnamed_mask(mask: Path, image: Path, added: str) -> Finding:
    return Finding("mask_name", str(mask),
                   f"{mask}: named like {image.name} with '{added}' added; a mask must be named <image stem>.png: "
                   f"rename it to {image.stem}.png.", added)  # a row per suffix


def _unread_images(ds: FolderDataset, masks: list) -> dict:
    """{mask: image} for masks whose image is there in a format segcli does not read (``IMG_1.HEIC`` for
    ``masks/IMG_1.png``)."""
    import glob

    from segcli.data.image_io import is_unread_image_name
    from segcli.data.layouts import LAYOUTS

    layout = next((entry for entry in LAYOUTS if entry.name == ds.layout), None)  # the one discover found
    dirs = list(layout.dirs(ds.root).values()) if layout is not None else []
    found = {}
    for mask, (images_dir, masks_dir) in ((m, d) for m in masks for d in dirs if d[1] in m.parents):
        rel = mask.relative_to(masks_dir).with_suffix("")
        folder = images_dir / rel.parent
        hits = sorted(p for p in folder.glob(glob.escape(rel.name) + ".*") if is_unread_image_name(p.name))
        if hits:
            found[mask] = hits[0]
    return found


def _unread_image(image: Path, mask: Path) -> Finding:
    kind = image.suffix.lower()
    return Finding("image_format", str(image), f"{image}: a {kind} image, a format segcli does not read, so its mask "
                   f"{mask.name} has no image; convert it to JPEG or PNG.", kind)  # a row per format


def _duplicate_stem(role: str, files: list) -> Finding:
    first, *others = sorted(files)
    names = ", ".join(f.name for f in others[:-1]) + (" and " if len(others) > 1 else "") + others[-1].name
    other = "image" if role == "mask" else "mask"
    return Finding("duplicate_stem", str(first),
                   f"{first}: same name as {names} in the same folder, so which {role} goes with the {other} of that "
                   f"name is ambiguous; keep one {role} under that name (rename or remove the "
                   f"other{'s' if len(others) > 1 else ''}).", str(first.with_suffix("")))  # a row per name


def _no_val_split(ds: FolderDataset):
    """A Finding when ``ds`` has no val split to validate on (``discover`` leaves it empty for a single pair)."""
    if ds.splits.get("val"):
        return None
    n = len(ds.pairs())
    return Finding("no_val_split", str(ds.root), f"{ds.root}: only {n} image/mask pair{'' if n == 1 else 's'} and "
                                                 f"no val split, so no validation is possible; add images or a val "
                                                 f"split.")


def check_dataset(ds: FolderDataset, workers: int | None = None, progress=None) -> CheckReport:
    """Read every pair of ``ds`` and report problems, warnings and the class histogram."""
    report = CheckReport(root=str(ds.root), layout=ds.layout, pairs={s: len(ds.splits.get(s, [])) for s in SPLITS},
                         classes=ds.classes.as_dicts(), class_source=ds.class_source, val_source=ds.val_source,
                         notes=list(ds.notes))
    no_val = _no_val_split(ds)
    if no_val is not None:
        report.problems.append(no_val)
    misnamed = _misnamed_masks(ds.images_without_masks, ds.masks_without_images)
    paired = {image for image, _ in misnamed.values()}
    for path in (p for p in ds.images_without_masks if p not in paired):
        report.problems.append(Finding("missing_mask", str(path), f"{path}: image has no mask "
                                       f"(expected a .png with the same name in the masks folder)."))
    unread = _unread_images(ds, [m for m in ds.masks_without_images if m not in misnamed])
    for path in ds.masks_without_images:
        if path in misnamed:
            report.problems.append(_misnamed_mask(path, *misnamed[path]))
        elif path in unread:
            report.problems.append(_unread_image(unread[path], path))
        else:
            report.problems.append(Finding("missing_image", str(path),
                                           f"{path}: mask has no image with the same name."))
    report.problems += [_duplicate_stem(role, files) for role, files in ds.duplicates]
    c = ds.num_classes
    totals = np.zeros(c, dtype=np.int64)
    train_pixels = np.zeros(c, dtype=np.int64)
    train_image_pixels = np.zeros(c, dtype=np.int64)
    jobs = [(pair, split) for split in SPLITS for pair in ds.splits.get(split, [])]
    workers = workers or min(8, (os.cpu_count() or 2) * 2)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for (pair, split), (findings, counts, labelled, ignored) in zip(
                jobs, pool.map(lambda job: _check_pair(ds, *job), jobs)):
            for level, finding in findings:
                (report.problems if level == "problem" else report.warnings).append(finding)
            totals += counts
            report.ignored_pixels += ignored
            if split == "train":
                train_pixels += counts
                train_image_pixels += np.where(counts > 0, labelled, 0)
            if progress is not None:
                progress()
    total = int(totals.sum())
    report.histogram = [
        {"name": name, "pixels": int(totals[i]), "fraction": float(totals[i] / total) if total else 0.0,
         "train_pixels": int(train_pixels[i]), "train_image_pixels": int(train_image_pixels[i])}
        for i, name in enumerate(ds.class_names)
    ]
    unseen = _classes_not_in_train(ds, train_pixels)
    if unseen is not None:
        report.warnings.append(unseen)
    return report


def _classes_not_in_train(ds: FolderDataset, train_pixels: np.ndarray):
    """One Finding naming the classes without a labelled train pixel, when the train split has labelled pixels."""
    unseen = [name for name, n in zip(ds.class_names, train_pixels) if n == 0]
    if not unseen or not train_pixels.any():
        return None
    shown = ", ".join(unseen[:12]) + (", ..." if len(unseen) > 12 else "")
    return Finding("class_not_in_train", str(ds.root),
                   f"{ds.root}: {len(unseen)} of {len(train_pixels)} classes {'has' if len(unseen) == 1 else 'have'} no "
                   f"labelled pixel in the train split "
                   f"({shown}); a model trained on it cannot learn them. Check the masks, --label-map or --classes.",
                   shown)


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
