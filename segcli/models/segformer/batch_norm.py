"""The decode head's BatchNorm, trained with TensorFlow's fused kernel.

Keras 3's ``BatchNormalization`` trains with ``moments`` and a chain of elementwise ops, and TensorFlow
differentiates each of them: on the head's ``(8, 64, 64, 256)`` map (B0, 256 px, batch 8) its forward and
backward took 93 ms against 40 ms for ``FusedBatchNormV3`` and its fused gradient (AMX Xeon, 2 cores;
benchmarks/TRAIN_RESULTS.md). :class:`FusedTrainingBatchNorm` is Keras's layer with the training step on the
fused kernel: the same output, the same gradients, the same moving averages (Keras's biased batch variance,
not the kernel's Bessel-corrected one). Inference, masks, frozen layers and inputs other than 4-D channels-last
float32 take Keras's own code.

>>> import numpy as np, keras
>>> x = np.random.default_rng(0).normal(2.0, 3.0, size=(2, 4, 4, 3)).astype("float32")
>>> ours, theirs = FusedTrainingBatchNorm(momentum=0.5), keras.layers.BatchNormalization(momentum=0.5)
>>> y_ours, y_theirs = ours(x, training=True), theirs(x, training=True)
>>> bool(np.allclose(y_ours, y_theirs, atol=1e-5)), bool(np.allclose(ours.moving_variance, theirs.moving_variance))
(True, True)
"""

from __future__ import annotations

import keras

from segcli.models.mit.layers import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
class FusedTrainingBatchNorm(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` whose training step runs ``FusedBatchNormV3`` (see the module docstring)."""

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        outputs, mean, corrected = tf.compat.v1.nn.fused_batch_norm(inputs, self.gamma, self.beta,
                                                                    epsilon=self.epsilon, is_training=True)
        count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), corrected.dtype)
        variance = corrected * (count - 1.0) / count  # the kernel returns the unbiased variance; Keras keeps the biased
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return outputs

    def _fusable(self, inputs, training, mask) -> bool:
        return bool(training and self.trainable and mask is None and not self.renorm and self.center and self.scale
                    and len(inputs.shape) == 4 and self.axis in (-1, 3) and keras.backend.standardize_dtype(inputs.dtype) == "float32")
