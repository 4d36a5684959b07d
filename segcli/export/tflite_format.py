"""TFLite export: float32, or float16 / dynamic-range int8 weights.

The graph takes uint8 RGB ``[N, H, W, 3]`` with dynamic N, H and W
(``Interpreter.resize_tensor_input`` before ``allocate_tensors``) and returns
float32 logits at 1/4 of the input size. segcli's metadata (classes, input
size, parity) is written beside the file as ``<file>.json``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from segcli.errors import CheckpointError, UsageError
from segcli.hardware import usable_cores
from segcli.export.formats import ExportError, ExportFormat, Runner, read_json, sidecar_path

QUANTIZE = ("float16", "int8")


def convert(graph, quantize: str | None = None) -> bytes:
    import tensorflow as tf

    from segcli.graph_function import graph_function

    module = tf.Module()
    module.weights = [w.value for w in graph.model.weights]  # the variables only, not the Keras model

    @graph_function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    def logits_fn(images):
        return {"logits": graph.quarter_logits(images)}

    module.logits_fn = logits_fn
    converter = tf.lite.TFLiteConverter.from_concrete_functions([logits_fn.get_concrete_function()], module)
    if quantize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # alone: dynamic-range int8 weights
        if quantize == "float16":
            converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


def interpreter_class():
    """(Interpreter class, its name): ai_edge_litert's when installed, else TensorFlow's tf.lite."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai_edge_litert"
    except ImportError:
        pass
    import warnings

    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tf.lite.Interpreter, f"tf.lite.Interpreter (TensorFlow {tf.__version__})"


#: The interpreter's one line on fd 2 when it applies its default CPU delegate: noise for a segcli user.
XNNPACK_NOTICE = re.compile(r"^INFO: Created TensorFlow Lite XNNPACK delegate")


class TFLiteRunner(Runner):
    """An exported ``.tflite`` file in the TFLite interpreter (ai_edge_litert if installed, else tf.lite)."""

    def __init__(self, path: Path, threads: int | None = None):
        import warnings

        cls, self.runtime = interpreter_class()
        try:
            with warnings.catch_warnings():  # tf.lite.Interpreter warns that it moved to ai_edge_litert
                warnings.simplefilter("ignore")
                # the interpreter's own default is one thread: use every core this process may run on
                self.interpreter = cls(model_path=str(path), num_threads=threads or usable_cores())
        except (ValueError, RuntimeError) as exc:
            raise CheckpointError(f"{path}: the TFLite interpreter cannot load it ({str(exc).strip().splitlines()[0]}).") from None
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self._shape = None
        last = int(self.output["shape_signature"][-1]) if len(self.output["shape_signature"]) else -1
        self._init_meta(read_json(sidecar_path(path)), last if last > 0 else None)

    def predict_logits(self, images) -> np.ndarray:
        if self._shape is not None:
            return self._run(images)
        from segcli.native_stderr import filtered

        with filtered(XNNPACK_NOTICE):  # the first run applies XNNPACK, which says so on fd 2
            return self._run(images)

    def _run(self, images) -> np.ndarray:
        images = self._check(images)
        if self._shape != images.shape:
            self.interpreter.resize_tensor_input(self.input["index"], list(images.shape), strict=False)
            self.interpreter.allocate_tensors()
            self._shape = images.shape
        self.interpreter.set_tensor(self.input["index"], images)
        self.interpreter.invoke()
        return np.array(self.interpreter.get_tensor(self.output["index"]), dtype=np.float32)


class TFLiteFormat(ExportFormat):
    name, title, suffix, order = "tflite", "TFLite", ".tflite", 30

    def check(self, options) -> None:
        if options.quantize is not None and options.quantize not in QUANTIZE:
            raise UsageError(f"quantize {options.quantize}: use float16 or int8 (dynamic range).")
        super().check(type(options)(logits=options.logits, precision=options.precision))

    def write(self, graph, path, options, metadata) -> None:
        try:
            data = convert(graph, options.quantize)
        except Exception as exc:  # the converter raises ConverterError and others
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ExportError(f"TFLite conversion failed ({first}).") from None
        Path(path).write_bytes(data)
        sidecar_path(path).write_text(json.dumps(metadata, indent=2) + "\n")

    def open_runner(self, path, threads=None, **kwargs):
        return TFLiteRunner(Path(path), threads)

    def finish(self, tmp, out, metadata) -> None:
        sidecar_path(tmp).write_text(json.dumps(metadata, indent=2) + "\n")
        os.replace(sidecar_path(tmp), sidecar_path(out))
        super().finish(tmp, out, metadata)

    def leftovers(self, tmp):
        return [sidecar_path(tmp)]


FORMAT = TFLiteFormat()
