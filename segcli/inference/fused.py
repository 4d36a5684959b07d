"""SegFormer's fast inference route: the head folded, the upsampling fused with the argmax.

Same weights, same maths, less work. :class:`FusedSegFormer` runs
:class:`~segcli.models.segformer.graph.SegFormerGraph` with the folded head
(``SegFormerHead.fold``) and turns its quarter-resolution logits into masks:

- **Mask without full-resolution logits.** The upsampling and argmax are one
  step, :func:`segcli.inference.upsample.bilinear_argmax` (the same one
  predict uses), so the 150-channel full-resolution logits are never made.

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

        from segcli.inference.upsample import bilinear_argmax

        return tf.cast(bilinear_argmax(logits, (height, width)), self._mask_dtype())

    def _mask_dtype(self):
        import tensorflow as tf

        return tf.uint8 if self.num_classes <= 256 else tf.uint16

    def _fn(self, kind, shape):
        import tensorflow as tf

        from segcli.graph_function import graph_function

        key = (kind, tuple(shape[1:]))
        fn = self._fns.get(key)
        if fn is None:
            h, w = shape[1], shape[2]
            spec = [tf.TensorSpec((None, h, w, 3), tf.uint8 if kind == "logits_u8" else tf.float32)]
            if kind == "masks":
                fn = graph_function(lambda im: self._mask_graph(self.logits_graph(im), h, w), input_signature=spec)
            else:
                fn = graph_function(lambda im: self.logits_graph(tf.cast(im, tf.float32)), input_signature=spec)
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
