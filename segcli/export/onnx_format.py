"""ONNX export through tf2onnx, with dynamic batch, height and width.

The graph takes uint8 RGB ``images [batch, height, width, 3]`` and returns
float32 ``logits`` at 1/4 of the input size. Two tf2onnx 1.17 issues are worked
around here, and the parity check guards both:

- TensorFlow's exact GELU uses ``Erfc``, which tf2onnx cannot convert; it is
  written as ``1 - Erf(x)`` (ONNX has ``Erf``).
- tf2onnx's ``reshape_optimizer`` merges the head-split reshapes of
  single-head attention (MiT stage 1) into one reshape of the wrong shape, which
  ONNX Runtime rejects for inputs larger than 32x32; that optimizer is skipped.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np

from segcli.errors import MissingDependencyError

OPSET = 17
METADATA_KEY = "segcli"
INSTALL = "pip install 'segcli[export]'"


def require():
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import tf2onnx  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(f"ONNX export needs onnx, onnxruntime and tf2onnx ({exc.name} is missing): "
                                     f"{INSTALL}.") from None


def _erfc(ctx, node, name, args):
    from tf2onnx import utils

    one = ctx.make_const(utils.make_name(f"{node.name}_one"), np.array(1.0, dtype=np.float32))
    node.type = "Erf"
    ctx.insert_new_node_on_output("Sub", node.output[0], inputs=[one.output[0], node.output[0]],
                                  name=utils.make_name(f"{node.name}_erfc"))


@contextlib.contextmanager
def _without(optimizer_name: str):
    from tf2onnx import optimizer

    table = optimizer._optimizers
    saved = table.pop(optimizer_name, None)
    try:
        yield
    finally:
        if saved is not None:
            table[optimizer_name] = saved


def write(graph, path: Path, metadata: dict | None = None, opset: int = OPSET) -> None:
    require()
    import onnx
    import tensorflow as tf
    import tf2onnx

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    def logits_fn(images):
        return {"logits": graph.quarter_logits(images)}

    with _without("reshape_optimizer"):
        proto, _ = tf2onnx.convert.from_function(logits_fn, input_signature=logits_fn.input_signature, opset=opset,
                                                 custom_op_handlers={"Erfc": (_erfc, [])})
    for dim, label in zip(proto.graph.input[0].type.tensor_type.shape.dim, ("batch", "height", "width")):
        dim.dim_param = label
    out_dims = proto.graph.output[0].type.tensor_type.shape.dim
    for dim, label in zip(out_dims, ("batch", "height_div4", "width_div4")):
        dim.dim_param = label
    if metadata:
        entry = proto.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps(metadata)
    onnx.save(proto, str(path))


def read_metadata(proto) -> dict:
    for entry in proto.metadata_props:
        if entry.key == METADATA_KEY:
            return json.loads(entry.value)
    return {}
