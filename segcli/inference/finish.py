"""Logits to masks: the compiled upsample + argmax steps the Predictor runs after the network.

- :func:`fused_argmax`: masks straight from low-resolution logits in bands of rows, never the full-resolution
  logits: the compiled loop of :mod:`segcli.inference.mask_kernel`, or
  :func:`segcli.inference.upsample.bilinear_argmax` in TensorFlow (:func:`mask_step_engine` chooses);
- :func:`finishers`: resize then argmax (and softmax probabilities), whole or one stripe of rows, for
  ``--save-probs`` and models whose output is not logits;
"""

from __future__ import annotations

import importlib.util
import os
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


def mask_step_engine() -> str:
    """Which engine turns logits into masks: ``numba`` (the compiled loop), or ``tensorflow`` where Numba is
    missing or ``SEGCLI_MASK_STEP=tensorflow`` asks for it (benchmarks compare the two).
    """
    if os.environ.get("SEGCLI_MASK_STEP", "").lower() in ("tensorflow", "tf"):
        return "tensorflow"
    return "numba" if importlib.util.find_spec("numba") is not None else "tensorflow"


@lru_cache(maxsize=None)
def fused_argmax(wide: bool, num_classes: int, engine: str = "numba"):
    """Masks straight from low-resolution logits, a band of rows at a time (no full-resolution logits):
    ``argmax_rows(values, (H, W), start, stop)`` -> (B, stop - start, W) uint8 (uint16 when ``wide``) array.
    """
    dtype = np.uint16 if wide else np.uint8
    if engine == "numba":
        try:
            from segcli.inference.mask_kernel import bilinear_argmax as kernel
        except ImportError:  # Numba is there but does not import (e.g. a NumPy it does not support yet)
            return _tensorflow_argmax_rows(dtype, num_classes)

        def argmax_rows(values, size, start, stop):
            return kernel(values, size, rows=(start, stop), dtype=dtype)

        return argmax_rows
    return _tensorflow_argmax_rows(dtype, num_classes)


def _tensorflow_argmax_rows(dtype, num_classes: int):
    import tensorflow as tf

    from segcli.graph_function import graph_function
    from segcli.inference.upsample import bilinear_argmax

    scalar = tf.TensorSpec((), tf.int32)

    @graph_function(input_signature=[tf.TensorSpec((None, None, None, num_classes), tf.float32),
                                     tf.TensorSpec((2,), tf.int32), scalar, scalar])
    def traced(values, size, start, stop):
        return tf.cast(bilinear_argmax(values, (size[0], size[1]), rows=(start, stop)), dtype)

    def argmax_rows(values, size, start, stop):
        return traced(values, np.asarray(size, np.int32), np.int32(start), np.int32(stop)).numpy()

    return argmax_rows
