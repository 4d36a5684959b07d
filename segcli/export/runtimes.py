"""Run exported models: ``.onnx`` with ONNX Runtime, ``.tflite`` with the TFLite interpreter.

:func:`open_runtime` (alias :func:`load_runner`) picks the runtime from the file
suffix and returns a runner with

- ``predict_logits(images)``: RGB ``uint8`` ``(B, H, W, 3)`` -> float32 logits
  ``(B, ceil(H/4), ceil(W/4), C)``, i.e. at **1/4 of the input size** (the
  SegFormer head's own resolution; ``logits_stride`` is 4). Callers resize
  them to the size they want (``segcli predict`` does, before the argmax).
- ``input_size``: ``(H, W)`` the model was trained at when the export recorded
  it, else ``None`` (the exported graphs themselves accept any size);
- ``num_classes`` and ``classes`` (``[{"name", "color"}]``, empty if unknown).

segcli's exporter stores the metadata in the ONNX file (``metadata_props``,
key ``segcli``) and next to a TFLite file as ``<file>.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from segcli.errors import CheckpointError, MissingDependencyError, UsageError

SUFFIXES = (".onnx", ".tflite")


def sidecar_path(path: Path) -> Path:
    """Where the metadata of an exported file lives: ``model.tflite`` -> ``model.tflite.json``."""
    return Path(f"{path}.json")


def _read_sidecar(path: Path) -> dict:
    side = sidecar_path(path)
    if not side.is_file():
        return {}
    try:
        return json.loads(side.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{side}: unreadable export metadata ({exc}); delete it or export again.") from None


class _Runner:
    logits_stride = 4

    def _init_meta(self, meta: dict, num_classes: int | None):
        self.metadata = meta
        size = meta.get("input_size")
        self.input_size = tuple(int(s) for s in size) if size else None
        self.classes = list(meta.get("classes") or [])
        self.num_classes = int(meta.get("num_classes") or num_classes or len(self.classes) or 0)
        self.logits_stride = int(meta.get("logits_stride", 4))

    @staticmethod
    def _check(images) -> np.ndarray:
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise UsageError(f"expected a (B, H, W, 3) image batch, got shape {images.shape}")
        return np.ascontiguousarray(images, dtype=np.uint8)


class OnnxRunner(_Runner):
    """An exported ``.onnx`` file in ONNX Runtime (CPU)."""

    runtime = "onnxruntime"

    def __init__(self, path: Path, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise MissingDependencyError(f"{path}: running .onnx models needs onnxruntime: "
                                         f"pip install 'segcli[export]'.") from None
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise CheckpointError(f"{path}: ONNX Runtime cannot load it ({str(exc).splitlines()[0]}).") from None
        self.input_name = self.session.get_inputs()[0].name
        meta_text = self.session.get_modelmeta().custom_metadata_map.get("segcli")
        meta = json.loads(meta_text) if meta_text else _read_sidecar(path)
        last = self.session.get_outputs()[0].shape[-1]
        self._init_meta(meta, last if isinstance(last, int) else None)
        self.runtime_version = ort.__version__

    def predict_logits(self, images) -> np.ndarray:
        out = self.session.run(None, {self.input_name: self._check(images)})[0]
        return np.asarray(out, dtype=np.float32)


class TFLiteRunner(_Runner):
    """An exported ``.tflite`` file in the TFLite interpreter (ai_edge_litert if installed, else tf.lite)."""

    def __init__(self, path: Path, threads: int | None = None):
        from segcli.export.tflite_format import interpreter_class

        cls, self.runtime = interpreter_class()
        import warnings

        try:
            with warnings.catch_warnings():  # tf.lite.Interpreter warns that it moved to ai_edge_litert
                warnings.simplefilter("ignore")
                self.interpreter = cls(model_path=str(path), num_threads=threads)
        except (ValueError, RuntimeError) as exc:
            raise CheckpointError(f"{path}: the TFLite interpreter cannot load it ({exc}).") from None
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self._shape = None
        last = int(self.output["shape_signature"][-1]) if len(self.output["shape_signature"]) else -1
        self._init_meta(_read_sidecar(path), last if last > 0 else None)

    def predict_logits(self, images) -> np.ndarray:
        images = self._check(images)
        if self._shape != images.shape:
            self.interpreter.resize_tensor_input(self.input["index"], list(images.shape), strict=False)
            self.interpreter.allocate_tensors()
            self._shape = images.shape
        self.interpreter.set_tensor(self.input["index"], images)
        self.interpreter.invoke()
        return np.array(self.interpreter.get_tensor(self.output["index"]), dtype=np.float32)


def open_runtime(path, threads: int | None = None):
    """A runner for an exported ``.onnx`` or ``.tflite`` file (chosen by suffix)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file.")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return OnnxRunner(path, threads)
    if suffix == ".tflite":
        return TFLiteRunner(path, threads)
    raise UsageError(f"{path}: exported models end with {' or '.join(SUFFIXES)}.")


#: The name :mod:`segcli.checkpoints.resolve` calls.
load_runner = open_runtime
