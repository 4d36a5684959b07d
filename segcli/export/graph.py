"""The SegFormer forward pass as plain TensorFlow functions, for exporting.

The Keras model resizes with a layer that needs static spatial sizes when
traced, so traced graphs would be fixed to one image size. These functions
call the model's own layers (same weights, same order) but resize with
``tf.image.resize`` on dynamic shapes, so exported graphs accept any batch
size, height and width. The export parity check compares them with the Keras
model itself.

Input is always RGB ``uint8`` NHWC (the model normalises inside).

>>> import numpy as np
>>> from segcli.models.load import create_segmenter
>>> graph = SegFormerGraph(create_segmenter("segformer_test", num_classes=3))
>>> graph.quarter_logits(np.zeros((1, 64, 96, 3), np.uint8)).shape
TensorShape([1, 16, 24, 3])
"""

from __future__ import annotations

from segcli.errors import ModelError

#: Exported ONNX and TFLite graphs return logits at this fraction of the input size (the P2 grid).
LOGITS_STRIDE = 4
HEAD = ("pyramid_features", "linear_c0", "linear_c1", "linear_c2", "linear_c3", "linear_fuse", "fuse_norm",
        "classifier")


class SegFormerGraph:
    """Quarter- and full-resolution logits and masks of a SegFormer, for any input size."""

    def __init__(self, model):
        names = {layer.name for layer in model.layers}
        missing = [n for n in HEAD if n not in names]
        if missing:
            raise ModelError(f"export needs a SegFormer model (layers {', '.join(HEAD)}); "
                             f"this {type(model).__name__} has no {', '.join(missing)}.")
        self.model = model
        self.num_classes = int(model.get_layer("classifier").filters)

    def quarter_logits(self, images):
        """(B, H, W, 3) uint8 -> (B, ceil(H/4), ceil(W/4), C) float32 logits."""
        import tensorflow as tf

        m = self.model
        x = tf.cast(images, tf.float32)
        features = m.get_layer("pyramid_features")(x, training=False)
        size = tf.shape(features[0])[1:3]
        projected = [tf.image.resize(m.get_layer(f"linear_c{i}")(f), size, method="bilinear")
                     for i, f in enumerate(features)]
        y = tf.concat(projected[::-1], axis=-1)
        y = tf.nn.relu(m.get_layer("fuse_norm")(m.get_layer("linear_fuse")(y), training=False))
        return tf.cast(m.get_layer("classifier")(y), tf.float32)

    def full_logits(self, images):
        """Logits resized bilinearly (half-pixel centres) to the input's height and width."""
        import tensorflow as tf

        return tf.image.resize(self.quarter_logits(images), tf.shape(images)[1:3], method="bilinear")

    def masks(self, logits):
        """Class indices (int32) from logits; one-class models threshold the logit at 0."""
        import tensorflow as tf

        if self.num_classes == 1:
            return tf.cast(logits[..., 0] > 0, tf.int32)
        return tf.argmax(logits, axis=-1, output_type=tf.int32)
