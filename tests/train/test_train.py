"""Training parts on their own: the loss ignores 255, the schedule, the optimizer groups, class weights."""

from __future__ import annotations

import numpy as np
import pytest

from segcli.train.losses import cross_entropy, dice_loss, segmentation_loss
from segcli.train.schedule import WarmupPoly
from segcli.train.loop import TrainSettings, _class_weights, _make_optimizer, parse_image_size
from segcli.errors import UsageError


def _logits(labels, num_classes, confidence=8.0):
    return (np.eye(num_classes)[np.where(labels == 255, 0, labels)] * confidence).astype("float32")


def test_cross_entropy_leaves_ignored_pixels_out():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, (2, 8, 8)).astype("uint8")
    logits = rng.normal(size=(2, 8, 8, 3)).astype("float32")
    ignored = labels.copy()
    ignored[:, :4] = 255
    scrambled = logits.copy()
    scrambled[:, :4] = 100.0 * rng.normal(size=scrambled[:, :4].shape)  # whatever is predicted there
    kept = float(cross_entropy(ignored, logits))
    assert float(cross_entropy(ignored, scrambled)) == pytest.approx(kept, rel=1e-6)
    manual = -np.log(np.take_along_axis(np.exp(logits) / np.exp(logits).sum(-1, keepdims=True),
                                        labels[..., None].astype(int), -1))[:, 4:].mean()
    assert kept == pytest.approx(manual, rel=1e-5)


def test_class_weights_and_dice():
    labels = np.array([[[0, 0, 0, 1]]], "uint8")
    logits = np.zeros((1, 1, 4, 2), "float32")
    assert float(cross_entropy(labels, logits, [1.0, 3.0])) == pytest.approx(np.log(2), rel=1e-6)
    assert float(dice_loss(labels, _logits(labels, 2))) < 0.01
    assert float(segmentation_loss(labels, logits, dice_weight=1.0)) > float(segmentation_loss(labels, logits))


def test_warmup_then_poly_matches_the_formula():
    s = WarmupPoly(6e-5, total_steps=1000, warmup_steps=100, power=1.0, warmup_ratio=1e-6)
    for t in (0, 50, 100, 500, 999):
        poly = 6e-5 * (1 - t / 1000)
        warm = 1e-6 + (1 - 1e-6) * min(t / 100, 1.0)
        assert float(s(t)) == pytest.approx(poly * warm, rel=1e-5, abs=1e-12)


def test_adamw_groups_skip_decay_on_norms_and_biases():
    from segcli.models.load import create_segmenter

    model = create_segmenter("segformer_test", num_classes=2, activation=None)
    variables = model.trainable_variables
    settings = TrainSettings(data="", preset="", out="", lr=0.1, weight_decay=0.5, resolved={"warmup_steps": 0})
    opt = _make_optimizer(0.1, variables, settings, total_steps=10)
    before = [np.array(v) for v in variables]
    opt.apply_gradients([(np.zeros(v.shape, "float32"), v) for v in variables])  # only decay can move weights
    for v, old in zip(variables, before):
        factor = 1.0 if old.ndim <= 1 else 1 - 0.1 * 0.5
        np.testing.assert_allclose(np.array(v), old * factor, rtol=1e-5, atol=1e-7, err_msg=v.path)


def test_class_weight_spellings():
    class R:
        histogram = [{"train_pixels": 30, "train_image_pixels": 40}, {"train_pixels": 10, "train_image_pixels": 40}]
    assert _class_weights("none", R, 2) is None
    assert _class_weights("auto", R, 2) == pytest.approx([2 / 3, 2.0])
    assert _class_weights("1,4", R, 2) == [1.0, 4.0]
    with pytest.raises(UsageError, match="--class-weights: 3 values for 2 classes"):
        _class_weights("1,2,3", R, 2)


def test_image_size_forms():
    assert parse_image_size("512") == (512, 512) and parse_image_size("256x512") == (256, 512)
    with pytest.raises(UsageError, match="smaller than 32"):
        parse_image_size("31")
