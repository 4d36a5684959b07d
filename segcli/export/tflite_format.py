"""TFLite export: float32, or float16 / dynamic-range int8 weights.

The graph takes uint8 RGB ``[N, H, W, 3]`` with dynamic N, H and W
(``Interpreter.resize_tensor_input`` before ``allocate_tensors``) and returns
float32 logits at 1/4 of the input size.
"""

from __future__ import annotations

from pathlib import Path

QUANTIZE = ("float16", "int8")


def convert(graph, quantize: str | None = None) -> bytes:
    import tensorflow as tf

    module = tf.Module()
    module.model = graph.model

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    def logits_fn(images):
        return {"logits": graph.quarter_logits(images)}

    module.logits_fn = logits_fn
    converter = tf.lite.TFLiteConverter.from_concrete_functions([logits_fn.get_concrete_function()], module)
    if quantize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # alone: dynamic-range int8 weights
        if quantize == "float16":
            converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


def write(graph, path: Path, quantize: str | None = None) -> None:
    Path(path).write_bytes(convert(graph, quantize))


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
