"""The folded decode head's tail written directly in OpenVINO ops, for the IR that ``openvino_format`` converts.

``convert_model`` takes the pyramid and the per-level projections from TensorFlow
(:meth:`SegFormerGraph.level_projections`: NHWC, each at its level's resolution). This
module adds what :meth:`SegFormerGraph.quarter_logits` does next: upsample levels 1-3
bilinearly (half-pixel centres, as ``tf.image.resize``) to level 0's grid, sum, add the
folded bias, ReLU, classifier.

Why not convert that part from TensorFlow too: OpenVINO's CPU plugin runs an NHWC
Interpolate between reference Transposes of the full 1/4-resolution tensor, and
OpenVINO's conversion moves the Transposes of a channels-first formulation back to
where they were. Written here, the sum is channels-first, and on CPUs with AVX-512 the
plugin runs it in a channels-last memory layout with its jit Interpolate and no Transpose
at all (benchmarks/NOTES.md row 21). On CPUs with AVX2 only its Interpolate runs planar,
so the sum is planar there; the classifier is a 1x1 Convolution on the channels-first sum,
which the plugin feeds through a jit reorder, instead of a MatMul behind a Transpose of the
256-channel sum, which ran on a generic kernel (B0 at 512, AVX2: 1.08x the forward;
benchmarks/ov_head_tail.py, NOTES.md row 34).
"""

from __future__ import annotations

import numpy as np

#: Output names of the converted projections, finest level first.
LEVEL_NAMES = ("level0", "level1", "level2", "level3")
#: Output name of the finished IR.
LOGITS = "logits"

_TO_NCHW, _TO_NHWC = (0, 3, 1, 2), (0, 2, 3, 1)


def add_folded_tail(model, head):
    """Replace ``model``'s :data:`LEVEL_NAMES` outputs by the logits of the folded ``head`` (a ``FoldedHead``).

    ``model`` is changed in place and returned.
    """
    import openvino.opset13 as ops

    results = {result.output(0).get_any_name(): result for result in model.get_results()}
    levels = [results[name].input_value(0) for name in LEVEL_NAMES]
    size = ops.gather(ops.shape_of(levels[0], "i64"), _const([1, 2]), _const(0))  # level 0's (h, w)
    x = ops.transpose(levels[0], _const(_TO_NCHW))
    for level in levels[1:]:
        up = ops.interpolate(ops.transpose(level, _const(_TO_NCHW)), size, "linear_onnx", "sizes",
                             axes=_const([2, 3]), coordinate_transformation_mode="half_pixel")
        x = ops.add(x, up)
    logits = classifier(ops.relu(ops.add(x, _const(head.bias.reshape(1, -1, 1, 1), np.float32))), head)
    logits.output(0).get_tensor().set_names({LOGITS})
    for result in results.values():
        model.remove_result(result)
    model.add_results([ops.result(logits)])
    return model


def classifier(x, head):
    """The head's classifier on the channels-first sum ``x`` (N, C, H, W): channels-last logits (N, H, W, classes).

    A 1x1 Convolution, then a Transpose of the logits (see the module's docstring).
    """
    import openvino.opset13 as ops

    kernel = head.classifier_kernel.T[:, :, None, None]  # (classes, channels, 1, 1)
    x = ops.convolution(x, _const(kernel, np.float32), [1, 1], [0, 0], [0, 0], [1, 1])
    return ops.transpose(ops.add(x, _const(head.classifier_bias.reshape(1, -1, 1, 1), np.float32)), _const(_TO_NHWC))


def _const(value, dtype=np.int64):
    import openvino.opset13 as ops

    return ops.constant(np.asarray(value, dtype))
