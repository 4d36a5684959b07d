"""Logits to masks: the compiled upsample + argmax steps the Predictor runs after the network.

- :func:`fused_argmax`: masks straight from low-resolution logits in bands of rows, never the full-resolution
  logits: the compiled loop of :mod:`segcli.inference.mask_kernel`, or
  :func:`segcli.inference.upsample.bilinear_argmax` in TensorFlow (:func:`mask_step_engine` chooses);
- :func:`stripe_finisher`: the mask, and with it the float16 probabilities, at given output rows and columns:
  for slide mode, ``--save-probs`` and models whose output is not logits; the compiled loops of
  :mod:`~segcli.inference.mask_kernel` and :mod:`~segcli.inference.probs_kernel`, or TF ops.
"""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache

import numpy as np


@lru_cache(maxsize=None)
def stripe_finisher(binary: bool, is_logits: bool, wide: bool, engine: str = "numba"):
    """``finish(src, y, x, mask, probs=None)``: upsample ``src`` (h, w, C) to output rows ``y`` and columns ``x``
    (:func:`~segcli.inference.bilinear.bilinear_coords` triplets indexing it), then fill ``mask`` (n, W) (uint8,
    uint16 when ``wide``) and, if given, ``probs`` (n, W, C) float16 with the probabilities.

    On the ``numba`` engine, masks of logits come from the rival loop of :mod:`~segcli.inference.mask_kernel` and
    everything else from :mod:`~segcli.inference.probs_kernel`; on ``tensorflow``, from TF ops.
    """
    dtype = np.uint16 if wide else np.uint8
    if engine == "numba":
        try:
            from segcli.inference.mask_kernel import argmax_at
            from segcli.inference.probs_kernel import upsample_finish
        except ImportError:  # as in fused_argmax
            return _tensorflow_stripe_finisher(binary, is_logits, dtype)

        def finish(src, y, x, mask, probs=None):
            if is_logits and probs is None:
                mask[:] = argmax_at(src[None], y, x, dtype)[0]
            else:
                upsample_finish(src, y, x, binary, is_logits, dtype, probs is not None, out=(mask, probs))

        return finish
    return _tensorflow_stripe_finisher(binary, is_logits, dtype)


def _tensorflow_stripe_finisher(binary: bool, is_logits: bool, dtype):
    import tensorflow as tf

    from segcli.graph_function import graph_function

    threshold = 0.0 if is_logits else 0.5

    @graph_function(reduce_retracing=True)
    def traced(src, y_lo, y_hi, y_lerp, x_lo, x_hi, x_lerp, want_probs):
        # TF's bilinear kernel, written out: lerp along x on the needed source rows, then along y.
        left, right = tf.gather(src, x_lo, axis=1), tf.gather(src, x_hi, axis=1)
        rows = left + (right - left) * x_lerp[None, :, None]
        top, bottom = tf.gather(rows, y_lo), tf.gather(rows, y_hi)
        values = top + (bottom - top) * y_lerp[:, None, None]
        if binary:
            mask, probs = values[..., 0] > threshold, tf.sigmoid(values) if is_logits else values
        else:
            mask, probs = tf.argmax(values, axis=-1), tf.nn.softmax(values, axis=-1) if is_logits else values
        return tf.cast(mask, dtype), (tf.cast(probs, tf.float16) if want_probs else tf.zeros((0,), tf.float16))

    def finish(src, y, x, mask, probs=None):
        (y_lo, y_hi, y_lerp), (x_lo, x_hi, x_lerp) = y, x
        m, p = traced(src, y_lo.astype(np.int32), y_hi.astype(np.int32), y_lerp, x_lo.astype(np.int32),
                      x_hi.astype(np.int32), x_lerp, probs is not None)
        mask[:] = m.numpy()
        if probs is not None:
            probs[:] = p.numpy()

    return finish


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
