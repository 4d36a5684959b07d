"""The SegFormer forward pass as TensorFlow ops on any image size, for inference and export.

The Keras model resizes with a layer that wants static sizes once traced, so a
traced model would be fixed to one image size. :class:`SegFormerGraph` runs the
same weights through ``model.pyramid`` and ``model.head`` with dynamic shapes,
so exported graphs and predict's traced functions accept any batch, height and
width. With ``folded=True`` (the default) the decode head runs as
:meth:`SegFormerHead.fold` gives it: one matmul per pyramid level instead of the
1024-channel ``linear_fuse`` at 1/4 resolution (B0 at 512x512: about 8 of 17
GFLOP), same logits up to float32 rounding.

Input is RGB ``uint8`` or float in [0, 255], NHWC (the model normalises inside).

>>> import numpy as np
>>> from segcli.models.load import create_segmenter
>>> model = create_segmenter("segformer_test", num_classes=3)
>>> images = np.random.default_rng(0).integers(0, 256, (2, 64, 96, 3)).astype("uint8")
>>> folded, plain = SegFormerGraph(model), SegFormerGraph(model, folded=False)
>>> folded.quarter_logits(images).shape
TensorShape([2, 16, 24, 3])
>>> float(np.abs(folded.quarter_logits(images) - plain.quarter_logits(images)).max()) < 1e-4
True
"""

from __future__ import annotations

#: Exported ONNX, TFLite and OpenVINO graphs return logits at this fraction of the input size (the head's grid).
LOGITS_STRIDE = 4


class SegFormerGraph:
    """Quarter- and full-resolution logits and masks of a :class:`SegFormer`, for any input size."""

    def __init__(self, model, folded: bool = True, resize: str = "tf"):
        """``resize``: how the folded head upsamples its levels: ``"tf"`` (``tf.image.resize``) or
        ``"gather"`` (:func:`phase_resize`: the same arithmetic as slices and lerps for the exact x2/x4/x8
        of inputs divisible by 32, as gathers and lerps otherwise; OpenVINO runs both in NHWC, while its CPU
        plugin turns a ResizeBilinear into NCHW between slow transposes).
        """
        self.model = model
        self.num_classes = int(model.num_classes)
        self.folded = folded
        self._resize = {"tf": _tf_resize, "gather": phase_resize}[resize]
        self._weights = None
        if folded:
            import tensorflow as tf

            head = model.head.fold()
            self._weights = ([tf.constant(k) for k in head.level_kernels], tf.constant(head.bias),
                             tf.constant(head.classifier_kernel), tf.constant(head.classifier_bias))

    def quarter_logits(self, images):
        """(B, H, W, 3) RGB -> (B, ceil(H/4), ceil(W/4), C) float32 logits, as TF ops."""
        import tensorflow as tf

        features = self.model.pyramid(tf.cast(images, tf.float32), training=False)
        if not self.folded:
            return tf.cast(self.model.head(features, training=False), tf.float32)
        kernels, bias, cls_kernel, cls_bias = self._weights
        dtype = features[0].dtype  # bfloat16 under mixed precision: the folded weights follow the features

        def matmul(x, w):
            return tf.matmul(x, tf.cast(w, dtype))

        size = tf.shape(features[0])[1:3]
        x = matmul(features[0], kernels[0])
        for level, (f, k) in enumerate(zip(features[1:], kernels[1:]), start=1):
            x += tf.cast(self._resize(matmul(f, k), size, 2 ** level), dtype)  # level i is 2^i times coarser
        x = tf.nn.relu(x + tf.cast(bias, dtype))
        return tf.cast(matmul(x, cls_kernel) + tf.cast(cls_bias, dtype), tf.float32)

    def full_logits(self, images):
        """Logits resized bilinearly (half-pixel centres, as the model's own output layer) to the input size."""
        import tensorflow as tf

        return tf.image.resize(self.quarter_logits(images), tf.shape(images)[1:3], method="bilinear")

    def masks(self, logits):
        """Class indices (int32) from logits; a one-class model thresholds its logit at 0."""
        import tensorflow as tf

        if self.num_classes == 1:
            return tf.cast(logits[..., 0] > 0, tf.int32)
        return tf.argmax(logits, axis=-1, output_type=tf.int32)


def _tf_resize(x, size, factor=None):
    import tensorflow as tf

    return tf.image.resize(x, size, method="bilinear")


def _axis_lerp(x, axis: int, out_size):
    """Bilinear resize of NHWC ``x`` along ``axis`` (1 or 2) to ``out_size``: TF's half-pixel arithmetic."""
    import tensorflow as tf

    in_size = tf.shape(x)[axis]
    scale = tf.cast(in_size, tf.float32) / tf.cast(out_size, tf.float32)
    position = (tf.cast(tf.range(out_size), tf.float32) + 0.5) * scale - 0.5
    floor = tf.floor(position)
    low = tf.maximum(tf.cast(floor, tf.int32), 0)
    high = tf.minimum(tf.cast(tf.math.ceil(position), tf.int32), in_size - 1)
    lerp = tf.cast(position - floor, x.dtype)
    lerp = tf.reshape(lerp, (1, -1, 1, 1) if axis == 1 else (1, 1, -1, 1))
    first = tf.gather(x, low, axis=axis)
    return first + (tf.gather(x, high, axis=axis) - first) * lerp


def _phase_upsample(x, axis: int, factor: int):
    """Bilinear x``factor`` upsampling of NHWC ``x`` along ``axis`` (1 or 2) with slices and lerps: output
    position ``factor * i + r`` blends the same two input rows with the same weight TF's resize uses.
    """
    import tensorflow as tf

    n = tf.shape(x)[axis]
    first = tf.gather(x, [0], axis=axis)
    last = tf.gather(x, tf.reshape(n - 1, [1]), axis=axis)
    padded = tf.concat([first, x, last], axis=axis)  # edges repeated: TF clamps its source rows

    def rows(start):
        return padded[:, start:start + n] if axis == 1 else padded[:, :, start:start + n]

    phases = []
    for r in range(factor):
        delta = (2 * r + 1 - factor) / (2 * factor)  # position - i
        low, lerp = (rows(0), 1.0 + delta) if delta < 0 else (rows(1), delta)
        high = rows(1) if delta < 0 else rows(2)
        phases.append(low + (high - low) * tf.constant(lerp, x.dtype))
    stacked = tf.stack(phases, axis=axis + 1)
    shape = tf.shape(x)
    new = [shape[0], shape[1] * factor, shape[2], shape[3]] if axis == 1 else \
        [shape[0], shape[1], shape[2] * factor, shape[3]]
    return tf.reshape(stacked, tf.stack(new))


def _upsample_axis(x, axis: int, out_size, factor: int):
    """x``factor`` by slices when ``out_size`` is exactly that multiple of the input, else :func:`_axis_lerp`."""
    import tensorflow as tf

    exact = tf.equal(tf.shape(x)[axis] * factor, out_size)
    return tf.cond(exact, lambda: _phase_upsample(x, axis, factor), lambda: _axis_lerp(x, axis, out_size))


def phase_resize(x, size, factor: int):
    """``tf.image.resize(x, size, "bilinear")`` as slices and lerps, fastest for an exact integer ``factor``
    (SegFormer's levels: 2, 4, 8); other sizes take gathers and lerps.

    >>> import numpy as np, tensorflow as tf
    >>> x = np.random.default_rng(0).normal(size=(2, 5, 7, 3)).astype("float32")
    >>> float(np.abs(phase_resize(x, (20, 28), 4) - tf.image.resize(x, (20, 28))).max()) < 1e-5
    True
    >>> float(np.abs(phase_resize(x, (19, 28), 4) - tf.image.resize(x, (19, 28))).max()) < 1e-5
    True
    """
    import tensorflow as tf

    x = tf.convert_to_tensor(x)
    return _upsample_axis(_upsample_axis(x, 2, size[1], factor), 1, size[0], factor)
