"""Logits to masks: the compiled upsample + argmax steps the Predictor runs after the network.

- :func:`fused_argmax`: masks straight from low-resolution logits in bands of rows
  (:func:`segcli.inference.upsample.bilinear_argmax`), never the full-resolution logits;
- :func:`finishers`: resize then argmax (and softmax probabilities), whole or one stripe of rows, for
  ``--save-probs`` and models whose output is not logits;
- :func:`bilinear_coords`: TF's bilinear source rows and weights, for the stripes.

>>> lo, hi, lerp = bilinear_coords(4, 2, 0.5)
>>> lo.tolist(), hi.tolist(), lerp.tolist()
([0, 0, 0, 1], [0, 1, 1, 1], [0.75, 0.25, 0.75, 0.25])
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=None)
def finishers(binary: bool, is_logits: bool, wide: bool):
    """Compiled resize-then-argmax functions (whole image, and one stripe of rows)."""
    import tensorflow as tf

    from segcli.graph_function import graph_function

    threshold = 0.0 if is_logits else 0.5
    mask_dtype = tf.uint16 if wide else tf.uint8

    def finish(values, want_probs):
        if binary:
            mask = tf.cast(values[..., 0] > threshold, mask_dtype)
            probs = tf.sigmoid(values) if is_logits else values
        else:
            mask = tf.cast(tf.argmax(values, axis=-1, output_type=tf.int32), mask_dtype)
            probs = tf.nn.softmax(values, axis=-1) if is_logits else values
        return mask, (tf.cast(probs, tf.float16) if want_probs else tf.zeros((0,), tf.float16))

    @graph_function(reduce_retracing=True)
    def resize_finish(values, size, want_probs):
        up = tf.image.resize(values[None], size, method="bilinear")[0]
        return finish(up, want_probs)

    @graph_function(reduce_retracing=True)
    def stripe_finish(src, y_lo, y_hi, y_lerp, x_lo, x_hi, x_lerp, want_probs):
        # TF's bilinear kernel, written out: lerp along x on the needed source rows, then along y.
        left, right = tf.gather(src, x_lo, axis=1), tf.gather(src, x_hi, axis=1)
        rows = left + (right - left) * x_lerp[None, :, None]
        top, bottom = tf.gather(rows, y_lo), tf.gather(rows, y_hi)
        return finish(top + (bottom - top) * y_lerp[:, None, None], want_probs)

    return resize_finish, stripe_finish


@lru_cache(maxsize=None)
def fused_argmax(wide: bool, num_classes: int):
    """Masks straight from low-resolution logits, a band of rows at a time (no full-resolution logits)."""
    import tensorflow as tf

    from segcli.graph_function import graph_function
    from segcli.inference.upsample import bilinear_argmax

    scalar = tf.TensorSpec((), tf.int32)

    @graph_function(input_signature=[tf.TensorSpec((None, None, None, num_classes), tf.float32),
                                     tf.TensorSpec((2,), tf.int32), scalar, scalar])
    def argmax_rows(values, size, start, stop):
        """(B, h, w, C) logits -> (B, stop - start, W) masks: rows start:stop of the (H, W) = ``size`` output."""
        mask = bilinear_argmax(values, (size[0], size[1]), rows=(start, stop))
        return tf.cast(mask, tf.uint16 if wide else tf.uint8)

    return argmax_rows


def bilinear_coords(n_out: int, in_size: int, scale) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source rows/cols and weights of TF's bilinear resize (half-pixel centres), same float32 arithmetic."""
    scale = np.float32(scale)
    pos = (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    floor = np.floor(pos)
    lo = np.maximum(floor, 0).astype(np.int64)
    hi = np.minimum(np.ceil(pos), in_size - 1).astype(np.int64)
    return lo, hi, (pos - floor).astype(np.float32)
