"""TF's oneDNN bf16 graph rewrite as `segcli train --precision bf16` uses it on a CPU with oneDNN on.

The witnesses are TensorFlow's own numerics: 1 + 2**-10 is exact in float32 and rounds to 1 in bfloat16 (8
significant bits), so a matmul that the rewrite moved to bfloat16 shows it, and one left in float32 does not.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from segcli.train.precision import REWRITE_KEEPS_FLOAT32, REWRITE_OPTION, bf16_graph_rewrite

NOT_BF16 = 1.0 + 2.0 ** -10


@pytest.fixture(autouse=True)
def _onednn_on():
    from segcli.hardware import onednn_enabled

    if not onednn_enabled():
        pytest.skip("TensorFlow's oneDNN ops are off on this CPU, and segcli does not use the rewrite there")


def _matmul():
    import tensorflow as tf

    a = tf.constant([[NOT_BF16]])
    return tf.function(lambda: tf.matmul(a, tf.constant([[1.0]])))


def test_the_rewrite_runs_matmuls_in_bf16_inside_and_restores_everything_after():
    import tensorflow as tf

    assert float(_matmul()()[0, 0]) == NOT_BF16
    before = {key: os.environ.get(key) for key in REWRITE_KEEPS_FLOAT32}
    switch_before = tf.config.optimizer.get_experimental_options().get(REWRITE_OPTION)  # None: never set
    with bf16_graph_rewrite():
        assert float(_matmul()()[0, 0]) == 1.0
        assert all(os.environ[key] == value for key, value in REWRITE_KEEPS_FLOAT32.items())
    assert float(_matmul()()[0, 0]) == NOT_BF16
    assert tf.config.optimizer.get_experimental_options().get(REWRITE_OPTION) == switch_before  # not just "off"
    assert {key: os.environ.get(key) for key in REWRITE_KEEPS_FLOAT32} == before


def _ops_run(fn) -> dict:
    """{(op type, dtype): count} over the graphs TensorFlow ran for ``fn``, after its graph optimizers."""
    import collections

    import tensorflow as tf
    from tensorflow.python.eager import context

    context.enable_run_metadata()
    try:
        fn()
        metadata = context.export_run_metadata()
    finally:
        context.disable_run_metadata()
    census = collections.Counter()
    for graph in metadata.function_graphs:
        for node in graph.post_optimization_graph.node:
            if "T" in node.attr and node.attr["T"].type:
                census[node.op, tf.dtypes.as_dtype(node.attr["T"].type).name] += 1
    return census


def test_a_segformer_train_step_under_the_rewrite_keeps_its_float32_islands():
    """Matmuls and convs run in bf16; bias gradients, GELU's erf, LayerNorm statistics, the resize and the
    residual and gradient sums do not."""
    import tensorflow as tf

    from segcli.models import MiTBackbone, SegFormer
    from segcli.train.losses import segmentation_loss

    model = SegFormer(MiTBackbone.from_preset("mit_test"), num_classes=3, projection_filters=32, activation=None)
    images = tf.constant(np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32"))
    labels = tf.constant(np.random.default_rng(1).integers(0, 3, (2, 64, 64)).astype("uint8"))

    @tf.function
    def grads():
        with tf.GradientTape() as tape:
            loss = segmentation_loss(labels, model(images, training=True))
        return tape.gradient(loss, model.trainable_variables)

    with bf16_graph_rewrite():
        census = _ops_run(grads)
    bf16 = {op for op, dtype in census if dtype == "bfloat16"}
    assert {"MatMul", "BatchMatMulV2", "Conv2DBackpropFilter"} <= bf16
    kept = {"BiasAddGrad", "Erf", "Erfc", "Mean", "SquaredDifference", "Rsqrt", "ResizeBilinear", "AddV2", "AddN"}
    assert not kept & bf16
    assert {op for op, _ in census} >= {"BiasAddGrad", "Mean", "Rsqrt", "ResizeBilinear", "AddV2", "AddN"}
