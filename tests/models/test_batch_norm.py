"""The head's BatchNorm trains on TensorFlow's fused kernel and matches Keras's own layer in everything it computes."""

from __future__ import annotations

import numpy as np
import pytest


def _pair(momentum=0.9, dtype=None, rank=4):
    import keras

    from segcli.models.segformer.batch_norm import FusedTrainingBatchNorm

    rng = np.random.default_rng(0)
    ours = FusedTrainingBatchNorm(epsilon=1e-5, momentum=momentum, dtype=dtype)
    theirs = keras.layers.BatchNormalization(epsilon=1e-5, momentum=momentum, dtype=dtype)
    for layer in (ours, theirs):
        layer.build((None,) * (rank - 1) + (6,))
    weights = [rng.normal(1, 0.3, 6), rng.normal(0, 0.3, 6), rng.normal(0, 1, 6), rng.uniform(0.5, 2, 6)]
    ours.set_weights([w.astype("float32") for w in weights])
    theirs.set_weights([w.astype("float32") for w in weights])
    return ours, theirs


def _train_step(layer, x, upstream):
    import tensorflow as tf

    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = tf.reduce_sum(y * upstream)
    grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
    return [y.numpy()] + [g.numpy() for g in grads]


def test_training_matches_keras_batchnorm_in_output_gradients_and_moving_statistics():
    rng = np.random.default_rng(1)
    ours, theirs = _pair(momentum=0.5)
    for step in range(2):
        x = rng.normal(3.0, 2.0, (2, 5, 7, 6)).astype("float32")  # 70 values per channel: Bessel's factor is 1.4 %
        upstream = rng.normal(size=x.shape).astype("float32")
        for got, want in zip(_train_step(ours, x, upstream), _train_step(theirs, x, upstream)):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(ours.moving_mean.numpy(), theirs.moving_mean.numpy(), rtol=1e-5)
        np.testing.assert_allclose(ours.moving_variance.numpy(), theirs.moving_variance.numpy(), rtol=1e-5)
    x = rng.normal(size=(1, 3, 3, 6)).astype("float32")
    np.testing.assert_allclose(ours(x, training=False), theirs(x, training=False), rtol=1e-5, atol=1e-6)


def test_the_training_step_runs_the_fused_kernel_and_inference_does_not():
    import tensorflow as tf

    ours, _ = _pair()
    spec = tf.TensorSpec((2, 4, 4, 6), tf.float32)
    ops_of = {mode: {op.type for op in tf.function(lambda x, m=mode: ours(x, training=m))
                     .get_concrete_function(spec).graph.get_operations()} for mode in (True, False)}
    assert "FusedBatchNormV3" in ops_of[True]
    assert "FusedBatchNormV3" not in ops_of[False]  # exports and the folded head see Keras's plain ops


@pytest.mark.parametrize("case", ["frozen", "mixed_bfloat16", "rank 2"])
def test_what_the_kernel_cannot_take_falls_back_to_keras(case):
    ours, theirs = _pair(dtype="mixed_bfloat16" if case == "mixed_bfloat16" else None, rank=2 if case == "rank 2" else 4)
    shape = (8, 6) if case == "rank 2" else (2, 3, 3, 6)
    x = np.random.default_rng(2).normal(1.0, 2.0, shape).astype("float32")
    if case == "frozen":
        ours.trainable = theirs.trainable = False
    got, want = (np.asarray(layer(x, training=True), "float32") for layer in (ours, theirs))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours.moving_variance.numpy(), theirs.moving_variance.numpy(), rtol=1e-6)
