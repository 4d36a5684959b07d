"""Metrics against a plain per-pixel NumPy reference (loops over classes, no confusion matrix)."""

from __future__ import annotations

import numpy as np
import pytest

from segcli.inference.metrics import confusion_matrix, summarize
from segcli.errors import DataError


def reference(gts, preds, num_classes, ignore=255):
    """mmsegmentation's definitions, written out class by class with boolean masks."""
    gt = np.concatenate([g.ravel() for g in gts])
    pred = np.concatenate([p.ravel() for p in preds])
    keep = gt != ignore
    gt, pred = gt[keep], pred[keep]
    ious, accs, dices, precs = [], [], [], []
    for c in range(num_classes):
        g, p = gt == c, pred == c
        inter, union = np.sum(g & p), np.sum(g | p)
        ious.append(inter / union if union else np.nan)
        accs.append(inter / g.sum() if g.sum() else np.nan)
        precs.append(inter / p.sum() if p.sum() else np.nan)
        dices.append(2 * inter / (g.sum() + p.sum()) if g.sum() + p.sum() else np.nan)
    return {
        "iou": np.array(ious), "acc": np.array(accs), "dice": np.array(dices), "prec": np.array(precs),
        "miou": np.nanmean(ious), "macc": np.nanmean(accs), "mdice": np.nanmean(dices),
        "aacc": np.mean(gt == pred),
    }


def as_array(values):
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


@pytest.mark.parametrize("seed", range(6))
def test_matches_numpy_reference_with_ignore_and_absent_classes(seed):
    rng = np.random.default_rng(seed)
    num_classes = 7
    gts, preds, cm = [], [], np.zeros((num_classes, num_classes), np.int64)
    for _ in range(3):
        h, w = rng.integers(5, 40, size=2)
        # classes 5 and 6 never appear in ground truth; 6 is never predicted either; 5 is (false positives)
        gt = rng.integers(0, 5, size=(h, w)).astype(np.uint8)
        gt[rng.random((h, w)) < 0.2] = 255
        pred = np.where(rng.random((h, w)) < 0.6, np.minimum(gt, 4), rng.integers(0, 6, size=(h, w))).astype(np.uint8)
        gts.append(gt)
        preds.append(pred)
        cm += confusion_matrix(gt, pred, num_classes)  # accumulate per image
    names = [f"c{i}" for i in range(num_classes)]
    got = summarize(cm, names)
    ref = reference(gts, preds, num_classes)

    assert got["miou"] == pytest.approx(ref["miou"], abs=1e-12)
    assert got["mean_accuracy"] == pytest.approx(ref["macc"], abs=1e-12)
    assert got["mean_dice"] == pytest.approx(ref["mdice"], abs=1e-12)
    assert got["pixel_accuracy"] == pytest.approx(ref["aacc"], abs=1e-12)
    per = got["per_class"]
    np.testing.assert_allclose(as_array([c["iou"] for c in per]), ref["iou"], atol=1e-12)
    np.testing.assert_allclose(as_array([c["accuracy"] for c in per]), ref["acc"], atol=1e-12)
    np.testing.assert_allclose(as_array([c["recall"] for c in per]), ref["acc"], atol=1e-12)
    np.testing.assert_allclose(as_array([c["precision"] for c in per]), ref["prec"], atol=1e-12)
    np.testing.assert_allclose(as_array([c["dice"] for c in per]), ref["dice"], atol=1e-12)
    # absent from both: left out entirely; predicted-only: IoU 0 and counted in mIoU, no recall
    assert per[6] == {"name": "c6", "iou": None, "dice": None, "precision": None, "recall": None, "accuracy": None}
    assert per[5]["iou"] == 0.0 and per[5]["recall"] is None
    assert got["pixels"] == sum(int((g != 255).sum()) for g in gts)
    assert np.array(got["confusion"]).sum() == got["pixels"]


def test_batch_equals_sum_of_images_and_rows_are_ground_truth():
    gt = np.array([[[0, 1], [1, 1]], [[2, 2], [0, 255]]])
    pred = np.array([[[0, 0], [1, 1]], [[2, 1], [0, 2]]])
    cm = confusion_matrix(gt, pred, 3)
    assert cm.dtype == np.int64
    assert cm.tolist() == [[2, 0, 0], [1, 2, 0], [0, 1, 1]]
    assert (cm == confusion_matrix(gt[0], pred[0], 3) + confusion_matrix(gt[1], pred[1], 3)).all()


def test_perfect_prediction_and_all_ignored():
    gt = np.array([[0, 1], [2, 255]])
    assert summarize(confusion_matrix(gt, np.where(gt == 255, 0, gt), 3), "abc")["miou"] == 1.0
    empty = summarize(confusion_matrix(np.full((2, 2), 255), np.zeros((2, 2)), 3), "abc")
    assert empty["miou"] is None and empty["pixel_accuracy"] is None and empty["pixels"] == 0


def test_label_outside_classes_is_a_clear_error():
    with pytest.raises(DataError) as exc:
        confusion_matrix(np.array([0, 1, 7, 255]), np.array([0, 1, 1, 0]), 3)
    assert str(exc.value) == ("ground-truth labels [7] are outside the 3 classes 0..2 (and not the ignore index "
                              "255); check the masks or the class count.")


def test_a_big_mask_is_counted_in_chunks_with_the_same_result(monkeypatch):
    """Chunked counting (forced to many small chunks) equals a pairwise count made with np.add.at."""
    from segcli.inference import metrics

    rng = np.random.default_rng(5)
    gt = rng.integers(0, 6, (97, 131)).astype(np.uint8)
    gt[rng.random(gt.shape) < 0.1] = 255
    pred = rng.integers(0, 6, gt.shape).astype(np.uint8)
    expected = np.zeros((6, 6), np.int64)
    keep = gt != 255
    np.add.at(expected, (gt[keep].astype(int), pred[keep].astype(int)), 1)
    monkeypatch.setattr(metrics, "CHUNK_PIXELS", 1000)
    assert confusion_matrix(gt, pred, 6).tolist() == expected.tolist()
    gt[96, 130] = 9  # in the last chunk
    with pytest.raises(DataError, match=r"^ground-truth labels \[9\] are outside the 6 classes"):
        confusion_matrix(gt, pred, 6)


def test_counting_a_big_mask_holds_no_int64_copy_of_it():
    import tracemalloc

    gt = np.zeros((4000, 4000), np.uint8)
    tracemalloc.start()
    confusion_matrix(gt, gt, 150)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2 * gt.size  # 2 bytes a pixel; counted at once, the int64 copies and sums took over 20
