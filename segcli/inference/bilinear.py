"""TF's bilinear resize arithmetic (half-pixel centres), in NumPy: which source lines and weights make each output line.

Every path that turns low-resolution logits into full-size masks outside a TensorFlow graph reads its coordinates
here, so their float32 numbers are the ones ``tf.image.resize(..., "bilinear")`` computes.

>>> lo, hi, lerp = bilinear_coords(4, 2, 0.5)
>>> lo.tolist(), hi.tolist(), lerp.tolist()
([0, 0, 0, 1], [0, 1, 1, 1], [0.75, 0.25, 0.75, 0.25])
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
