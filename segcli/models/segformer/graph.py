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

    def __init__(self, model, folded: bool = True):
        self.model = model
        self.num_classes = int(model.num_classes)
        self.folded = folded
        #: The head as :meth:`SegFormerHead.fold` gives it (NumPy), when ``folded``; exporters may build its
        #: tail in their own ops from this (OpenVINO does).
        self.folded_head = model.head.fold() if folded else None
        self._weights = None
        if folded:
            import tensorflow as tf

            head = self.folded_head
            self._weights = ([tf.constant(k) for k in head.level_kernels], tf.constant(head.bias),
                             tf.constant(head.classifier_kernel), tf.constant(head.classifier_bias))

    def level_projections(self, images):
        """The folded head's first step: ``f_i @ level_kernels[i]`` for each pyramid level, NHWC at the level's
        own resolution (1/4, 1/8, 1/16, 1/32 of the input), in the features' dtype. Needs ``folded``.
        """
        import tensorflow as tf

        features = self.model.pyramid(tf.cast(images, tf.float32), training=False)
        dtype = features[0].dtype  # bfloat16 under mixed precision: the folded weights follow the features
        return [tf.matmul(f, tf.cast(k, dtype)) for f, k in zip(features, self._weights[0])]

    def quarter_logits(self, images):
        """(B, H, W, 3) RGB -> (B, ceil(H/4), ceil(W/4), C) float32 logits, as TF ops."""
        import tensorflow as tf

        if not self.folded:
            features = self.model.pyramid(tf.cast(images, tf.float32), training=False)
            return tf.cast(self.model.head(features, training=False), tf.float32)
        _, bias, cls_kernel, cls_bias = self._weights
        levels = self.level_projections(images)
        dtype, size = levels[0].dtype, tf.shape(levels[0])[1:3]
        x = levels[0]
        for y in levels[1:]:
            x += tf.cast(tf.image.resize(y, size, method="bilinear"), dtype)
        x = tf.nn.relu(x + tf.cast(bias, dtype))
        return tf.cast(tf.matmul(x, tf.cast(cls_kernel, dtype)) + tf.cast(cls_bias, dtype), tf.float32)

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
