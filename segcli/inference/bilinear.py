"""TF's bilinear resize arithmetic (half-pixel centres), in NumPy: which source lines and weights make each output line.

Every path that turns low-resolution logits into full-size masks outside a TensorFlow graph reads its coordinates
here, so their float32 numbers are the ones ``tf.image.resize(..., "bilinear")`` computes.

>>> lo, hi, lerp = bilinear_coords(4, 2, 0.5)
>>> lo.tolist(), hi.tolist(), lerp.tolist()
([0, 0, 0, 1], [0, 1, 1, 1], [0.75, 0.25, 0.75, 0.25])
>>> import tensorflow as tf
>>> values = np.random.default_rng(0).normal(size=(5, 7, 3)).astype(np.float32)
>>> bool((resize_bilinear(values, (9, 4)) == tf.image.resize(values[None], (9, 4))[0].numpy()).all())
True
"""

from __future__ import annotations

import numpy as np


def bilinear_coords(n_out: int, in_size: int, scale) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source rows/cols and weights of TF's bilinear resize (half-pixel centres), same float32 arithmetic."""
    scale = np.float32(scale)
    pos = (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    floor = np.floor(pos)
    lo = np.maximum(floor, 0).astype(np.int64)
    hi = np.minimum(np.ceil(pos), in_size - 1).astype(np.int64)
    return lo, hi, (pos - floor).astype(np.float32)


def resize_bilinear(values: np.ndarray, size) -> np.ndarray:
    """(h, w, C) float32 resized to ``size`` (H, W) as ``tf.image.resize(..., "bilinear")`` does (half-pixel
    centres, no antialias): along x, then y, in float32.
    """
    values = np.asarray(values, np.float32)
    (h, w), (out_h, out_w) = values.shape[:2], (int(size[0]), int(size[1]))
    y_lo, y_hi, y_lerp = bilinear_coords(out_h, h, np.float32(h) / np.float32(out_h))
    x_lo, x_hi, x_lerp = bilinear_coords(out_w, w, np.float32(w) / np.float32(out_w))
    left, right = values[:, x_lo], values[:, x_hi]
    rows = left + (right - left) * x_lerp[None, :, None]
    top, bottom = rows[y_lo], rows[y_hi]
    return top + (bottom - top) * y_lerp[:, None, None]
