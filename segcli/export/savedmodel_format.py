"""SavedModel export with serving signatures TF Serving can load.

Signatures (input ``images``: uint8 RGB ``[N, H, W, 3]``, any N, H, W):

- ``masks``: ``{"masks": int32 [N, H, W]}`` class indices at the input size;
- ``logits``: ``{"logits": float32 [N, H, W, C]}`` logits resized to the input size;
- ``serving_default``: ``masks``, or ``logits`` when exported with ``logits=True``.

segcli's metadata is in the folder's ``segcli.json``.
"""

from __future__ import annotations

from pathlib import Path

from segcli.export.formats import ExportError, ExportFormat, ExportOptions, Runner, read_json, METADATA_FILE

SIGNATURES = ("masks", "logits")


def write(graph, path: Path, logits: bool = False) -> None:
    """Write ``graph`` (a :class:`~segcli.models.segformer.graph.SegFormerGraph`) as a SavedModel folder."""
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


class SavedModelRunner(Runner):
    """Runs an exported SavedModel's signatures (TensorFlow runtime); logits come at the input size."""

    logits_stride = 1

    def __init__(self, path: Path):
        import tensorflow as tf

        self.loaded = tf.saved_model.load(str(path))
        self.signatures = self.loaded.signatures
        self.runtime = f"tensorflow {tf.__version__} (tf.saved_model.load)"
        self._init_meta(read_json(Path(path) / METADATA_FILE), None)

    def predict_logits(self, images):
        return self.signatures["logits"](images=self._check(images))["logits"].numpy()

    def masks(self, images):
        return self.signatures["masks"](images=self._check(images))["masks"].numpy()

    def serving_default(self, images):
        return {k: v.numpy() for k, v in self.signatures["serving_default"](images=self._check(images)).items()}


class SavedModelFormat(ExportFormat):
    name, title, folder_file, order, logits_stride = "savedmodel", "SavedModel", "saved_model.pb", 10, 1
    writes = ("saved_model.pb", "fingerprint.pb", "variables/", "variables/variables.index",
              "variables/variables.data-*-of-*", "assets/")

    def check(self, options) -> None:
        super().check(ExportOptions(quantize=options.quantize, precision=options.precision))

    def write(self, graph, path, options, metadata) -> None:
        write(graph, path, logits=options.logits)

    def open_runner(self, path, threads=None, **kwargs):
        return SavedModelRunner(Path(path))

    def measure(self, path, images, options):
        runner = self.open_runner(path)
        default = runner.serving_default(images)
        if ("logits" if options.logits else "masks") not in default:
            raise ExportError(f"{path}: serving_default returns {sorted(default)}, not the expected output.")
        return runner.predict_logits(images), runner.masks(images), runner.runtime


FORMAT = SavedModelFormat()
