"""Segmentation metrics from a confusion matrix, computed the way mmsegmentation does.

Build one confusion matrix per image (or batch) with :func:`confusion_matrix`,
add them up, then call :func:`summarize` once. Rows are ground truth, columns
are predictions. Pixels whose ground truth is ``ignore_index`` (255) are left
out.

Every per-class ratio whose denominator is zero is ``None`` and left out of its
mean. In particular a class absent from both ground truth and prediction
(union 0) has no IoU, Dice, precision, recall or accuracy and does not count in
mIoU, mean Dice or mean accuracy, as in mmsegmentation. A class that is
predicted but absent from the ground truth has IoU 0 (it counts against mIoU)
and no recall/accuracy.

>>> import numpy as np
>>> gt = np.array([[0, 0, 1], [1, 255, 2]])
>>> pred = np.array([[0, 1, 1], [1, 0, 0]])
>>> cm = confusion_matrix(gt, pred, num_classes=4)
>>> cm.tolist()
[[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
>>> m = summarize(cm, ["a", "b", "c", "d"])
>>> round(m["miou"], 4), round(m["pixel_accuracy"], 2), m["per_class"][3]["iou"]
(0.3333, 0.6, None)
"""

from __future__ import annotations

import numpy as np

from segcli.errors import DataError

#: Pixels counted at a time. Counted at once, the int64 temporaries took 25 bytes a pixel (measured at 4000x4000).
CHUNK_PIXELS = 1 << 20


def confusion_matrix(gt, pred, num_classes: int, ignore_index: int | None = 255) -> np.ndarray:
    """(C, C) int64 counts: ``cm[g, p]`` = pixels with ground truth ``g`` predicted as ``p``.

    ``gt`` and ``pred`` are integer arrays of the same shape (any number of
    dimensions, so a batch works too). Ground-truth values other than
    ``0..C-1`` and ``ignore_index`` raise :class:`DataError`. Sum the results
    of many calls to accumulate over a dataset.
    """
    gt = np.asarray(gt)
    pred = np.asarray(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth shape {gt.shape} differs from prediction shape {pred.shape}")
    c = int(num_classes)
    gt, pred = gt.reshape(-1), pred.reshape(-1)
    counts = np.zeros(c * c, np.int64)
    for start in range(0, gt.size, CHUNK_PIXELS):  # in chunks: the int64 arrays below take 8 bytes a pixel each
        end = start + CHUNK_PIXELS
        counts += _pixel_pairs(gt[start:end], pred[start:end], c, ignore_index)
    return counts.reshape(c, c)


def _pixel_pairs(gt: np.ndarray, pred: np.ndarray, c: int, ignore_index) -> np.ndarray:
    """The flat (C * C) confusion counts of one chunk of pixels, after checking its labels."""
    gt = gt.astype(np.int64, copy=False)
    pred = pred.astype(np.int64, copy=False)
    if ignore_index is not None:
        keep = gt != ignore_index
        if not keep.all():
            gt, pred = gt[keep], pred[keep]
    if gt.size and (gt.min() < 0 or gt.max() >= c):
        bad = np.unique(gt[(gt < 0) | (gt >= c)])[:5].tolist()
        raise DataError(f"ground-truth labels {bad} are outside the {c} classes 0..{c - 1} "
                        f"(and not the ignore index {ignore_index}); check the masks or the class count.")
    if pred.size and (pred.min() < 0 or pred.max() >= c):
        raise ValueError(f"predictions hold values outside 0..{c - 1}")
    return np.bincount(gt * c + pred, minlength=c * c)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with NaN where den == 0."""
    out = np.full(num.shape, np.nan, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _mean(values: np.ndarray) -> float | None:
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else None


def _opt(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


#: Which per-class values are undefined (None), and so left out of the means; eval's table and report say it.
UNDEFINED = ("IoU and Dice of a class absent from both labels and predictions, precision of a class never predicted, "
             "recall of a class never labelled")


def summarize(confusion, class_names) -> dict:
    """Metrics from an accumulated confusion matrix.

    Returns ``miou``, ``pixel_accuracy`` (aAcc), ``mean_accuracy`` (mAcc),
    ``mean_dice``, ``mean_precision``, ``mean_recall``, ``pixels`` (counted,
    ignore excluded), ``per_class`` (one ``{name, iou, dice, precision, recall,
    accuracy}`` per class; ``None`` where undefined) and ``confusion`` (list of
    lists). Means are ``None`` when no class qualifies.
    """
    cm = np.asarray(confusion, dtype=np.int64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion matrix must be square, got shape {cm.shape}")
    names = list(class_names)
    if len(names) != cm.shape[0]:
        raise ValueError(f"{len(names)} class names for a {cm.shape[0]}-class confusion matrix")
    tp = np.diag(cm).astype(np.float64)
    gt_area = cm.sum(axis=1).astype(np.float64)
    pred_area = cm.sum(axis=0).astype(np.float64)
    union = gt_area + pred_area - tp
    iou = _ratio(tp, union)
    dice = _ratio(2 * tp, gt_area + pred_area)
    precision = _ratio(tp, pred_area)
    recall = _ratio(tp, gt_area)  # per-class accuracy in mmsegmentation's terms
    total = float(cm.sum())
    per_class = [
        {"name": str(name), "iou": _opt(iou[i]), "dice": _opt(dice[i]), "precision": _opt(precision[i]),
         "recall": _opt(recall[i]), "accuracy": _opt(recall[i])}
        for i, name in enumerate(names)
    ]
    return {
        "miou": _mean(iou),
        "pixel_accuracy": float(tp.sum() / total) if total else None,
        "mean_accuracy": _mean(recall),
        "mean_dice": _mean(dice),
        "mean_precision": _mean(precision),
        "mean_recall": _mean(recall),
        "pixels": int(total),
        "per_class": per_class,
        "confusion": cm.tolist(),
    }
