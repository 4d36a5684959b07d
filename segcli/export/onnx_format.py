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

from segcli.errors import CheckpointError, MissingDependencyError
from segcli.export.formats import ExportFormat, Runner, read_json, sidecar_path

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


def convert(graph, path: Path, metadata: dict | None = None, opset: int = OPSET) -> None:
    require()
    import onnx
    import tensorflow as tf

    from segcli.graph_function import graph_function
    import tf2onnx

    @graph_function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    def logits_fn(images):
        return {"logits": graph.quarter_logits(images)}

    proto = _convert_function(logits_fn, opset)
    for dim, label in zip(proto.graph.input[0].type.tensor_type.shape.dim, ("batch", "height", "width")):
        dim.dim_param = label
    out_dims = proto.graph.output[0].type.tensor_type.shape.dim
    for dim, label in zip(out_dims, ("batch", "height_div4", "width_div4")):
        dim.dim_param = label
    if metadata:
        entry = proto.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps(metadata)
    onnx.save(proto, str(path))


def _convert_function(fn, opset: int):
    """tf2onnx on ``fn``'s frozen graph with only ``images`` as input.

    ``tf2onnx.convert.from_function`` would also make every tensor the function captures (the folded
    head's constants) a graph input; freezing first turns them into initializers.
    """
    import tf2onnx
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    concrete = fn.get_concrete_function()
    frozen = convert_variables_to_constants_v2(concrete).graph.as_graph_def()
    inputs, outputs = [concrete.inputs[0].name], [concrete.outputs[0].name]
    with _without("reshape_optimizer"):
        proto, _ = tf2onnx.convert.from_graph_def(frozen, input_names=inputs, output_names=outputs, opset=opset,
                                                  custom_op_handlers={"Erfc": (_erfc, [])})
    renames = {inputs[0]: "images", outputs[0]: "logits"}
    for node in proto.graph.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
    for value in (*proto.graph.input, *proto.graph.output):
        value.name = renames.get(value.name, value.name)
    return proto


def read_metadata(proto) -> dict:
    for entry in proto.metadata_props:
        if entry.key == METADATA_KEY:
            return json.loads(entry.value)
    return {}


class OnnxRunner(Runner):
    """An exported ``.onnx`` file in ONNX Runtime (CPU)."""

    runtime = "onnxruntime"

    def __init__(self, path: Path, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise MissingDependencyError(f"{path}: running .onnx models needs onnxruntime: {INSTALL}.") from None
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise CheckpointError(f"{path}: ONNX Runtime cannot load it ({str(exc).splitlines()[0]}).") from None
        self.input_name = self.session.get_inputs()[0].name
        meta_text = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        meta = json.loads(meta_text) if meta_text else read_json(sidecar_path(path))
        last = self.session.get_outputs()[0].shape[-1]
        self._init_meta(meta, last if isinstance(last, int) else None)
        self.runtime = f"onnxruntime {ort.__version__}"

    def predict_logits(self, images) -> np.ndarray:
        out = self.session.run(None, {self.input_name: self._check(images)})[0]
        return np.asarray(out, dtype=np.float32)


class OnnxFormat(ExportFormat):
    name, title, suffix, order = "onnx", "ONNX", ".onnx", 20

    def require(self) -> None:
        require()

    def write(self, graph, path, options, metadata) -> None:
        convert(graph, path, metadata)

    def open_runner(self, path, threads=None, **kwargs):
        return OnnxRunner(Path(path), threads)


FORMAT = OnnxFormat()
