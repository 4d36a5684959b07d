"""SavedModel export with serving signatures TF Serving can load.

Signatures (input ``images``: uint8 RGB ``[N, H, W, 3]``, any N, H, W):

- ``masks``: ``{"masks": int32 [N, H, W]}`` class indices at the input size;
- ``logits``: ``{"logits": float32 [N, H, W, C]}`` logits resized to the input size;
- ``serving_default``: ``masks``, or ``logits`` when exported with ``logits=True``.
"""

from __future__ import annotations

from pathlib import Path

SIGNATURES = ("masks", "logits")


def write(graph, path: Path, logits: bool = False) -> None:
    """Write ``graph`` (a :class:`~segcli.export.graph.SegFormerGraph`) as a SavedModel folder."""
    import keras
    import tensorflow as tf

    spec = tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")

    def masks_fn(images):
        return {"masks": graph.masks(graph.full_logits(images))}

    def logits_fn(images):
        return {"logits": graph.full_logits(images)}

    archive = keras.export.ExportArchive()  # tracks the model's variables, not its Keras call
    archive.track(graph.model)
    archive.add_endpoint("masks", masks_fn, input_signature=[spec])
    archive.add_endpoint("logits", logits_fn, input_signature=[spec])
    archive.add_endpoint("serving_default", logits_fn if logits else masks_fn, input_signature=[spec])
    archive.write_out(str(path), verbose=False)


class SavedModelRunner:
    """Runs an exported SavedModel's signatures (TensorFlow runtime)."""

    def __init__(self, path: Path):
        import tensorflow as tf

        self.loaded = tf.saved_model.load(str(path))
        self.signatures = self.loaded.signatures

    def full_logits(self, images):
        return self.signatures["logits"](images=images)["logits"].numpy()

    def masks(self, images):
        return self.signatures["masks"](images=images)["masks"].numpy()

    def serving_default(self, images):
        return {k: v.numpy() for k, v in self.signatures["serving_default"](images=images).items()}
