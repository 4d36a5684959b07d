"""SegFormer's fast inference route: the head folded, the upsampling fused with the argmax.

Same weights, same maths, less work. :class:`FusedSegFormer` runs
:class:`~segcli.models.segformer.graph.SegFormerGraph` with the folded head
(``SegFormerHead.fold``) and turns its quarter-resolution logits into masks:

- **Mask without full-resolution logits.** When the output is exactly 4x the
  logits grid (any input size divisible by 4), :func:`x4_bilinear_argmax`
  blends only the few classes that can still win in each 2x2 window of
  logits (a bound check proves it, and windows that fail it are blended over
  every class), so the 150-channel full-resolution logits are never made.
  The arithmetic is TF's own (``lo + (hi - lo) * lerp``, x then y), so masks
  match ``argmax(resize(logits))`` except where two classes tie within
  rounding. Other sizes fall back to ``tf.image.resize`` then argmax.

>>> import numpy as np
>>> from segcli.models.load import create_segmenter
>>> model = create_segmenter("segformer_test", num_classes=3)
>>> fused = FusedSegFormer(model)
>>> images = np.random.default_rng(0).uniform(0, 255, (2, 64, 96, 3)).astype("float32")
>>> masks = fused.masks(images)
>>> masks.shape, masks.dtype.name
((2, 64, 96), 'uint8')
>>> reference = np.argmax(model.predict(images, verbose=0), axis=-1)
>>> float((masks == reference).mean()) > 0.99
True
"""

from __future__ import annotations

import numpy as np


#: Weights toward the second row/column of a 2x2 window for the 4 output pixels it covers (TF's bilinear x4
#: resize with half-pixel centres).
WINDOW_LERPS = (0.125, 0.375, 0.625, 0.875)
#: Classes kept per window before the exactness check.
CANDIDATES = 4


class FusedSegFormer:
    """Inference-only runner of a Keras :class:`~segcli.models.segformer.model.SegFormer` with the head folded.

    Also a runner for :class:`segcli.inference.predictor.Predictor` (``predict_logits``,
    ``input_size``, ``num_classes``).
    """

    def __init__(self, model, input_size=None):
        from segcli.models.segformer.graph import SegFormerGraph

        self.model = model
        self.num_classes = int(model.num_classes)
        self.input_size = tuple(input_size) if input_size else None
        self.graph = SegFormerGraph(model, folded=True)
        self._fns = {}

    def logits_graph(self, images):
        """Quarter-resolution logits of RGB images in [0, 255], as TF ops (call inside a tf.function)."""
        return self.graph.quarter_logits(images)

    def _mask_graph(self, logits, height, width):
        import tensorflow as tf

        h, w = logits.shape[1], logits.shape[2]
        if height != 4 * h or width != 4 * w or self.num_classes <= CANDIDATES:
            up = tf.image.resize(logits, (height, width), method="bilinear")
            if self.num_classes == 1:
                return tf.cast(up[..., 0] > 0, tf.uint8)
            return tf.cast(tf.argmax(up, axis=-1, output_type=tf.int32), self._mask_dtype())
        return tf.cast(x4_bilinear_argmax(logits), self._mask_dtype())

    def _mask_dtype(self):
        import tensorflow as tf

        return tf.uint8 if self.num_classes <= 256 else tf.uint16

    def _fn(self, kind, shape):
        import tensorflow as tf

        key = (kind, tuple(shape[1:]))
        fn = self._fns.get(key)
        if fn is None:
            h, w = shape[1], shape[2]
            spec = [tf.TensorSpec((None, h, w, 3), tf.uint8 if kind == "logits_u8" else tf.float32)]
            if kind == "masks":
                fn = tf.function(lambda im: self._mask_graph(self.logits_graph(im), h, w), input_signature=spec)
            else:
                fn = tf.function(lambda im: self.logits_graph(tf.cast(im, tf.float32)), input_signature=spec)
            self._fns[key] = fn
        return fn

    # --- public API ----------------------------------------------------------------------------------------------
    def masks_tensor(self, images):
        """Class-index masks at the input size, as a TF tensor (for timing without a host copy)."""
        import tensorflow as tf

        images = tf.convert_to_tensor(images, tf.float32)
        return self._fn("masks", images.shape)(images)

    def masks(self, images) -> np.ndarray:
        """(B, H, W) uint8 class-index masks for RGB images in [0, 255], shape (B, H, W, 3)."""
        return self.masks_tensor(images).numpy()

    def predict_logits(self, batch) -> np.ndarray:
        """(B, H/4, W/4, C) float32 logits for a uint8 batch (the Predictor runner protocol)."""
        batch = np.asarray(batch)
        kind = "logits_u8" if batch.dtype == np.uint8 else "logits"
        return self._fn(kind, batch.shape)(batch).numpy()


def x4_bilinear_argmax(logits, candidates=CANDIDATES):
    """``argmax(tf.image.resize(logits, 4x, "bilinear"), -1)`` without the full-resolution logits.

    With half-pixel centres, every output pixel of a x4 bilinear resize blends one 2x2 window of the
    edge-padded logits, and each window covers a 4x4 block of output pixels (offset by 2) with fixed weights
    :data:`WINDOW_LERPS`. A blend lies between the window's per-class minimum and maximum, so a class whose
    window maximum is below the best per-class window minimum can never win. Per window only the classes with
    the highest maxima are blended (``candidates`` of them, then more for the windows where the bound did
    not rule out the rest); windows still unsure are blended over every class. The blend is TF's own
    arithmetic (``lo + (hi - lo) * lerp``, along x then y).
    """
    import tensorflow as tf

    batch = tf.shape(logits)[0]
    h, w, c = logits.shape[1], logits.shape[2], logits.shape[3]
    padded = tf.pad(logits, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")  # edge rows/columns repeated
    flat = tf.reshape(padded, (-1,))
    # Window (b, i, j) has its top-left corner at padded pixel (b, i, j); the others are +1 column / +1 row.
    rows = tf.reshape(tf.range(batch * (h + 2) * (w + 2)), (batch, h + 2, w + 2))[:, :-1, :-1]
    rows = tf.reshape(rows, (-1,))
    offsets = (0, 1, w + 2, w + 3)
    upper = tf.reshape(tf.nn.max_pool2d(padded, 2, 1, "VALID"), (-1, c))
    lower = -tf.reshape(tf.nn.max_pool2d(-padded, 2, 1, "VALID"), (-1, c))
    lerp = tf.constant(WINDOW_LERPS, logits.dtype)
    wx, wy = tf.reshape(lerp, (1, 1, 4, 1)), tf.reshape(lerp, (1, 4, 1, 1))

    def blend_argmax(tl, tr, bl, br):
        # (n, k) corner values -> (n, 16) positions of the winners along k; 4 output rows of 4 columns.
        top = tl[:, None, None] + (tr - tl)[:, None, None] * wx
        bottom = bl[:, None, None] + (br - bl)[:, None, None] * wx
        return tf.reshape(tf.argmax(top + (bottom - top) * wy, axis=-1, output_type=tf.int32), (-1, 16))

    def corner_values(windows, classes):
        # (n,) window rows, (n, k) class ids -> four (n, k) corner values.
        base = tf.gather(rows, windows)[:, None] * c + classes
        return [tf.gather(flat, base + o * c) for o in offsets]

    def candidates_argmax(windows, k):
        up = tf.gather(upper, windows) if windows is not None else upper
        low = tf.gather(lower, windows) if windows is not None else lower
        values, classes = tf.math.top_k(up, k=k + 1, sorted=True)
        exact = values[:, k] < tf.reduce_max(low, axis=-1)
        classes = classes[:, :k]
        ids = windows if windows is not None else tf.range(tf.shape(up)[0])
        return tf.gather(classes, blend_argmax(*corner_values(ids, classes)), batch_dims=1), exact

    result, exact = candidates_argmax(None, min(candidates, c - 1))
    unsure = tf.cast(tf.where(~exact)[:, 0], tf.int32)
    if 4 * candidates < c - 1:  # a second, wider look at the windows the first one could not settle
        second, exact2 = candidates_argmax(unsure, 4 * candidates)
        result = tf.tensor_scatter_nd_update(result, unsure[:, None], second)
        unsure = tf.boolean_mask(unsure, ~exact2)
    every = tf.broadcast_to(tf.range(c)[None], (tf.shape(unsure)[0], c))
    full = blend_argmax(*corner_values(unsure, every))
    result = tf.tensor_scatter_nd_update(result, unsure[:, None], full)
    blocks = tf.transpose(tf.reshape(result, (batch, h + 1, w + 1, 4, 4)), (0, 1, 3, 2, 4))
    return tf.reshape(blocks, (batch, 4 * h + 4, 4 * w + 4))[:, 2:2 + 4 * h, 2:2 + 4 * w]
