"""Segmentation losses on full-resolution logits, with 255 = ignore.

>>> import numpy as np
>>> labels = np.array([[[0, 1], [255, 1]]], np.uint8)
>>> logits = np.zeros((1, 2, 2, 2), np.float32)
>>> round(float(segmentation_loss(labels, logits)), 4)  # log(2): uniform prediction
0.6931
"""

from __future__ import annotations

import tensorflow as tf

from segcli.train.settings import SettingError

IGNORE_INDEX = 255


def cross_entropy(labels, logits, class_weights=None):
    """Mean softmax cross-entropy over labelled pixels; weighted mean when ``class_weights`` is given."""
    labels = tf.cast(labels, tf.int32)
    logits = tf.cast(logits, tf.float32)
    valid = tf.not_equal(labels, IGNORE_INDEX)
    safe = tf.where(valid, labels, tf.zeros_like(labels))
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe, logits=logits)
    weight = tf.cast(valid, tf.float32)
    if class_weights is not None:
        weight = weight * tf.gather(tf.constant(class_weights, tf.float32), safe)
    return tf.math.divide_no_nan(tf.reduce_sum(ce * weight), tf.reduce_sum(weight))


def dice_loss(labels, logits, smooth=1.0):
    """1 - soft Dice, averaged over classes, on labelled pixels only."""
    labels = tf.cast(labels, tf.int32)
    logits = tf.cast(logits, tf.float32)
    num_classes = tf.shape(logits)[-1]
    valid = tf.cast(tf.not_equal(labels, IGNORE_INDEX), tf.float32)[..., None]
    probs = tf.nn.softmax(logits) * valid
    onehot = tf.one_hot(tf.where(labels == IGNORE_INDEX, 0, labels), num_classes) * valid
    inter = tf.reduce_sum(probs * onehot, axis=[0, 1, 2])
    total = tf.reduce_sum(probs, axis=[0, 1, 2]) + tf.reduce_sum(onehot, axis=[0, 1, 2])
    return 1.0 - tf.reduce_mean((2.0 * inter + smooth) / (total + smooth))


def segmentation_loss(labels, logits, class_weights=None, dice_weight=0.0):
    """Cross-entropy (255 ignored, optional class weights) plus ``dice_weight`` times the Dice loss."""
    loss = cross_entropy(labels, logits, class_weights)
    if dice_weight:
        loss = loss + dice_weight * dice_loss(labels, logits)
    return loss


def class_weights(spec: str, report, num_classes: int):
    from segcli.data.check import median_frequency_weights

    spec = (spec or "none").strip().lower()
    if spec == "none":
        return None
    if spec == "auto":
        return [round(w, 6) for w in median_frequency_weights(report)]
    try:
        weights = [float(v) for v in spec.split(",")]
    except ValueError:
        raise SettingError(f"`class_weights` {spec!r}: use none, auto, or {num_classes} comma-separated "
                           f"numbers.") from None
    if len(weights) != num_classes or min(weights) < 0:
        raise SettingError(f"`class_weights`: {len(weights)} values for {num_classes} classes; give one "
                           f"non-negative number per class.")
    return weights
