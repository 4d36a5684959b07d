"""``segcli eval``: run a model over a dataset folder (the layouts ``train`` reads) and score it.

Inference is :class:`segcli.inference.predictor.Predictor`, the same path as
predict (whole or slide mode, optionally with test-time augmentation,
:mod:`segcli.inference.tta`). Pixels labelled 255 are ignored; metrics come
from one accumulated confusion matrix (:mod:`segcli.inference.metrics`).

Split: ``"auto"`` (default) scores the dataset's own val folder when it has
one, and every pair otherwise (a folder with a single pair included);
``"val"``, ``"train"`` and ``"all"`` choose explicitly (a val split drawn by
``discover`` is seeded and reproducible). Images without a mask, masks
without an image and files sharing a name cannot be scored; the result's
``notes`` say how many were left out (``segcli data check`` lists them).

Each image also gets its own mIoU (the mean IoU of the classes present in its
labels or its prediction); with ``worst=k`` the k lowest are kept, with small
copies of the image, labels and prediction, for :mod:`segcli.inference.report`.
Only those k are held in memory.
"""

from __future__ import annotations

import heapq
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segcli.errors import DataError, UsageError
from segcli.inference.readahead import read_ahead

SPLIT_CHOICES = ("auto", "val", "train", "all")
#: Longest side of the copies kept for the report's worst images.
THUMB_SIDE = 384


@dataclass
class WorstImage:
    """One image of the report's worst list: RGB ``image``, ``label`` and ``pred`` (class indices, 255 ignore)."""

    name: str  # the image path relative to the dataset folder
    miou: float
    image: np.ndarray
    label: np.ndarray
    pred: np.ndarray

    def as_json(self) -> dict:
        return {"image": self.name, "miou": round(self.miou, 6)}


def image_miou(confusion: np.ndarray) -> float | None:
    """Mean IoU over the classes present in one image's labels or prediction; None without labelled pixels.

    A class predicted but not labelled counts with IoU 0, as in the dataset mIoU.

    >>> image_miou(np.array([[3, 1], [0, 0]])), image_miou(np.zeros((2, 2), int))
    (0.375, None)
    """
    cm = np.asarray(confusion, np.float64)
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    present = union > 0
    if not cm.sum() or not present.any():
        return None
    return float((tp[present] / union[present]).mean())


class WorstK:
    """The ``k`` lowest-mIoU images seen so far (ties: the earlier image is kept)."""

    def __init__(self, k: int):
        self.k = int(k)
        self._heap: list = []  # (-miou, -order, WorstImage): the root is the best of the kept ones
        self._seen = 0

    def wants(self, miou: float | None) -> bool:
        """Whether an image of this mIoU would be kept (so the caller makes its copies only then)."""
        if miou is None or self.k <= 0:
            return False
        return len(self._heap) < self.k or miou < -self._heap[0][0]

    def add(self, record: WorstImage) -> None:
        self._seen += 1
        entry = (-record.miou, -self._seen, record)
        if len(self._heap) < self.k:
            heapq.heappush(self._heap, entry)
        elif record.miou < -self._heap[0][0]:
            heapq.heapreplace(self._heap, entry)

    def records(self) -> list[WorstImage]:
        """Worst first."""
        return [entry[2] for entry in sorted(self._heap, key=lambda e: (-e[0], -e[1]))]


def thumbnail(image: np.ndarray, label: np.ndarray, pred: np.ndarray, side: int = THUMB_SIDE):
    """Copies with the longest side at most ``side`` (masks by nearest neighbour)."""
    import cv2

    h, w = label.shape
    scale = min(1.0, side / max(h, w))
    if scale >= 1.0:
        return image.copy(), label.copy(), pred.copy()
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return (cv2.resize(image, size, interpolation=cv2.INTER_AREA),
            cv2.resize(label, size, interpolation=cv2.INTER_NEAREST),
            cv2.resize(pred, size, interpolation=cv2.INTER_NEAREST))


def run_split(model) -> dict:
    """``val_fraction`` and ``seed`` of the segcli run directory ``model`` (its config.json), so that eval draws the
    val split that run validated on; {} for anything else.

    >>> run_split("no/such/run")
    {}
    """
    import json

    config = Path(str(model)) / "config.json" if model is not None else None
    try:
        settings = json.loads(config.read_text())["settings"] if config is not None and config.is_file() else {}
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    picked = {key: settings.get(key) for key in ("val_fraction", "seed")}
    return picked if isinstance(picked["val_fraction"], float) and isinstance(picked["seed"], int) else {}


def select_pairs(data, split: str = "auto", label_map=None, keep_classes=None, val_fraction: float = 0.1,
                 seed: int = 0) -> tuple:
    """``(dataset, pairs, split)``: the image/mask pairs of dataset folder ``data`` that eval scores for ``split``
    (``auto`` resolved to ``val`` or ``all``); ``label_map``, ``keep_classes``, ``val_fraction`` and ``seed`` go to
    :func:`segcli.data.folder_dataset.discover`."""
    from segcli.data.folder_dataset import discover

    if split not in SPLIT_CHOICES:
        raise UsageError(f"split {split}: use one of {', '.join(SPLIT_CHOICES)}.", value="split")
    ds = discover(data, val_fraction=val_fraction, seed=seed, label_map=label_map, keep_classes=keep_classes)
    if split == "auto":
        split = "val" if ds.val_source == "folder" else "all"
    pairs = ds.pairs() if split == "all" else list(ds.splits.get(split, []))
    if not pairs:
        raise DataError(f"{ds.root}: the {split} split has no image/mask pairs.")
    return ds, pairs, split


def _as_dicts(classes) -> list[dict]:
    return classes.as_dicts() if hasattr(classes, "as_dicts") else [dict(c) for c in classes]


def _classes(ds, source, num_classes: int) -> list[dict]:
    """Classes for the report: the dataset's class file when it matches the model, else the model's."""
    _check_kept(ds, source, num_classes)
    if ds.class_source in ("classes.json", "classes.txt"):
        if ds.num_classes != num_classes:
            model = source.classes
            fix = (f"; or score the model's classes with classes {','.join(model.names)}"
                   if model.source and set(model.names) <= set(ds.class_names) else "")
            raise DataError(f"{ds.root / ds.class_source}: lists {ds.num_classes} classes but the model predicts "
                            f"{num_classes}; evaluate with the model trained on this class list{fix}.")
        return _as_dicts(ds.classes)
    return _as_dicts(source.classes)


def _check_kept(ds, source, num_classes: int) -> None:
    """Kept classes (``keep_classes``) renumber the labels in the order given, and the model predicts in its own
    order: when the model names its classes, the kept ones must be those, in that order."""
    if getattr(ds, "kept", None) is None:
        return
    model = source.classes
    if model.source and tuple(ds.class_names) != tuple(model.names):  # a source: names the model came with
        raise UsageError(f"classes {','.join(ds.class_names)}: must name the model's classes in its order: "
                         f"{','.join(model.names)} ({source.name} predicts them in that order, and the labels are "
                         f"renumbered in the order given).", value="classes")
    if ds.num_classes != num_classes:
        raise DataError(f"{ds.root}: keeping {ds.num_classes} classes ({', '.join(ds.class_names)}) but the model "
                        f"predicts {num_classes}; keep the classes the model was trained on.")


def _open(source, backend="auto", precision="auto"):
    from segcli.inference.runners import OpenedModel, open_model

    return source if isinstance(source, OpenedModel) else open_model(source, backend, precision)


def evaluate(data, source=None, split: str = "auto", mode: str = "whole", batch_size: int | None = None,
             tile=None, stride=None, max_side: int | None = None, workers: int | None = None, tta=None, worst: int = 0,
             label_map=None, keep_classes=None, backend: str = "auto", precision: str = "auto", on_start=None,
             on_progress=None, val_fraction: float = 0.1, seed: int = 0) -> dict:
    """Metrics of ``source`` (a model spec, or an opened model) on dataset folder ``data``.

    ``tta`` is a :class:`segcli.inference.tta.TTASpec` (or None); ``label_map``
    and ``keep_classes`` go to :func:`segcli.data.folder_dataset.discover`, and so do ``val_fraction``
    and ``seed`` (a drawn val split is the one ``segcli train`` drew with the same values).
    Returns :func:`segcli.inference.metrics.summarize`'s dict plus ``model``,
    ``data``, ``split``, ``mode``, ``tta``, ``images``, ``seconds``,
    ``img_per_s``, ``classes`` (``[{"name", "color"}]``), ``worst`` (the
    ``worst`` lowest per-image mIoU, ``[{"image", "miou"}]``) and
    ``worst_images`` (the same as :class:`WorstImage` records, not JSON) and ``notes`` (what the dataset's
    classes were read as, e.g. 0/255 masks as two classes; the drawn val split only when it is scored; the
    images and masks of the scored split that were left out, see :func:`left_out_notes`).
    """
    from segcli.inference.predictor import Predictor, check_mode
    from segcli.inference.tta import with_tta

    check_mode(mode, tile, stride, max_side)
    ds, pairs, split = select_pairs(data, split, label_map, keep_classes, val_fraction, seed)
    source = _open(source, backend, precision)
    batch_size = source.default_batch_size() if batch_size is None else batch_size
    seg = Predictor(source.model, mode=mode, batch_size=batch_size, input_size=source.input_size, tile=tile,
                    stride=stride, max_side=max_side)
    engine = with_tta(seg, tta)
    classes = _classes(ds, source, seg.num_classes)
    if on_start:
        on_start(len(pairs))
    started = time.perf_counter()
    confusion, worst_k = _score(ds, pairs, engine, seg.num_classes, batch_size, workers, worst, on_progress)
    seconds = time.perf_counter() - started
    result = _result(confusion, classes, worst_k, source=source, ds=ds, split=split, mode=mode, tta=tta,
                     images=len(pairs), seconds=seconds)
    result["notes"] = [*source.warnings, *(n for n in ds.notes if split != "all" or n not in ds.split_notes),
                       *left_out_notes(ds, split, pairs)]
    return result


def _count(n: int, what: str, without: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'} without {without}"


def left_out_notes(ds, split: str, pairs) -> list:
    """Notes on the files of ``split``'s folders that eval could not score: images without a mask, masks without
    an image, and the other files of a name that several images (or masks) share."""
    images, masks = ds.unpaired_for(split)
    parts = ([_count(len(images), "image", "a mask")] if images else []) + \
            ([_count(len(masks), "mask", "an image")] if masks else [])
    notes = []
    if parts:
        verb = "was" if len(images) + len(masks) == 1 else "were"
        notes.append(f"{' and '.join(parts)} {verb} left out (segcli data check {ds.root} lists them).")
    scored = {path for pair in pairs for path in (pair.image, pair.mask)}
    shared = [files for _, files in ds.duplicates if files[0] in scored]
    if shared:
        used, other = (_rel(path, ds.root) for path in shared[0][:2])
        names = "1 name is" if len(shared) == 1 else f"{len(shared)} names are"
        which = f"{used}, not {other}" if len(shared) == 1 else f"one file of each, e.g. {used}, not {other}"
        notes.append(f"{names} used by several files in one folder: scored {which} (segcli data check {ds.root} "
                     f"lists them).")
    return notes


def _score(ds, pairs, engine, num_classes, batch_size, workers, worst, on_progress):
    """The accumulated confusion matrix and the worst-k images."""
    from segcli.data.image_io import ROTATION_FIX, read_image, rotation_note
    from segcli.inference.metrics import confusion_matrix

    def load(pair):
        image = read_image(pair.image)
        label = ds.read_label(pair)
        if label.shape != image.shape[:2]:
            rotated = rotation_note(pair.image, image.shape)
            raise DataError(f"{pair.mask}: mask is {label.shape[1]}x{label.shape[0]} but {pair.image} is "
                            f"{image.shape[1]}x{image.shape[0]}{rotated}; they must match"
                            f"{f' ({ROTATION_FIX})' if rotated else ''}.")
        return image, engine.prepare(image), label

    def score(batch):
        nonlocal confusion
        for (pair, image, _, label), prediction in zip(batch, engine.run([b[2] for b in batch])):
            try:
                cm = confusion_matrix(label, prediction.mask, num_classes)
            except DataError as exc:
                raise DataError(f"{pair.mask}: {exc}") from None
            confusion += cm
            miou = image_miou(cm)
            if worst_k.wants(miou):
                worst_k.add(WorstImage(_rel(pair.image, ds.root), miou, *thumbnail(image, label, prediction.mask)))
            if on_progress:
                on_progress(1)

    confusion = np.zeros((num_classes, num_classes), np.int64)
    worst_k = WorstK(worst)
    batch = []
    with closing(read_ahead(pairs, load, window=batch_size * 2 + 4, workers=workers, name="segcli-eval")) as loaded:
        for got in loaded:
            if got.error is not None:
                raise got.error
            batch.append((got.item, *got.value))
            if len(batch) == batch_size:
                score(batch)
                batch = []
    if batch:
        score(batch)
    return confusion, worst_k


def _rel(path, root) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _result(confusion, classes, worst_k, source, ds, split, mode, tta, images, seconds) -> dict:
    from segcli.inference.metrics import summarize

    result = summarize(confusion, [c["name"] for c in classes])
    records = worst_k.records()
    result.update(model=source.name, engine=source.engine, data=str(ds.root), split=split,
                  mode=mode, tta=str(tta) if tta else None, images=images, seconds=round(seconds, 3),
                  img_per_s=round(images / seconds, 3) if seconds > 0 else None, classes=classes,
                  worst=[r.as_json() for r in records], worst_images=records)
    return result
