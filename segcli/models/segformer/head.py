"""SegFormerHead: the paper's all-MLP decode head as one Keras layer (arXiv 2105.15203, section 3.2).

The head is the one owner of its maths. The model calls it, export graphs call
it, and the fast inference route asks it for :meth:`SegFormerHead.fold`: the
same head with its 1x1 convolutions and BatchNorm folded into one matmul per
pyramid level. Nothing outside this file knows its sublayers.

Why folding is exact: for level ``i`` the head computes ``resize(f_i @ W_i + b_i)``,
concatenates the four maps (stage 4 first), applies the bias-free 1x1 ``linear_fuse``
``F`` and the inference-mode BatchNorm ``x * s + t``. Bilinear resizing is a per-pixel
weighted average whose weights sum to one, so it commutes with per-pixel affine
maps, and ``BN(F(concat(...))) = sum_i resize(f_i @ (W_i F_i s)) + (sum_i b_i F_i s + t)``.

>>> import numpy as np
>>> head = SegFormerHead(num_classes=3, projection_filters=8)
>>> rng = np.random.default_rng(0)
>>> feats = [rng.normal(size=(1, 16 // 2**i, 24 // 2**i, c)).astype("float32") for i, c in enumerate((4, 6, 8, 10))]
>>> head(feats).shape
TensorShape([1, 16, 24, 3])
>>> folded = head.fold()
>>> [k.shape for k in folded.level_kernels], folded.bias.shape, folded.classifier_kernel.shape
([(4, 8), (6, 8), (8, 8), (10, 8)], (8,), (8, 3))
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from segcli.models.mit.layers import PACKAGE, conv_init, dense_init
from segcli.models.segformer.batch_norm import FusedTrainingBatchNorm

#: Pyramid levels the head reads, finest first (strides 4, 8, 16, 32).
LEVELS = 4


@dataclass(frozen=True)
class FoldedHead:
    """The head with ``linear_fuse`` and BatchNorm folded in (float32 NumPy arrays).

    ``logits = relu(sum_i resize(f_i @ level_kernels[i]) + bias) @ classifier_kernel + classifier_bias``,
    every level resized to the finest level's grid.
    """

    level_kernels: tuple
    bias: np.ndarray
    classifier_kernel: np.ndarray
    classifier_bias: np.ndarray


@keras.saving.register_keras_serializable(package=PACKAGE)
class SegFormerHead(keras.layers.Layer):
    """All-MLP decode head: four pyramid maps in, logits at the finest map's resolution (1/4 of the image) out.

    Args:
        num_classes: classes of the classifier.
        projection_filters: the head's width D (256 for B0/B1, 768 for B2-B5).
        dropout: dropout before the classifier (training only).

    Under a mixed policy (bf16 or fp16 compute, float32 variables) the head computes in float32: the logits and
    the sum of the four levels lose too much in bf16 (B0 from scratch, 128 px, 3 epochs: val mIoU 0.637 with a
    bf16 head, 0.674 with a float32 one, fp32 throughout 0.622-0.692 over three runs; TRAIN_RESULTS.md), and it costs
    little, as the folded order keeps the head small. The variables are float32 either way.
    """

    def __init__(self, num_classes, projection_filters=256, dropout=0.1, **kwargs):
        kwargs["dtype"] = keras.dtype_policies.get(kwargs.get("dtype") or keras.config.dtype_policy()).variable_dtype
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.projection_filters = int(projection_filters)
        self.dropout = float(dropout)
        width, dtype = self.projection_filters, self.dtype_policy
        self.linear_c = [keras.layers.Dense(width, kernel_initializer=dense_init(), dtype=dtype, name=f"linear_c{i}")
                         for i in range(LEVELS)]
        self.linear_fuse = keras.layers.Conv2D(width, 1, use_bias=False, kernel_initializer=conv_init(), dtype=dtype,
                                               name="linear_fuse")
        self.fuse_norm = FusedTrainingBatchNorm(epsilon=1e-5, momentum=0.9, dtype=dtype, name="fuse_norm")
        self.head_dropout = keras.layers.Dropout(self.dropout, dtype=dtype, name="head_dropout")
        self.classifier = keras.layers.Conv2D(self.num_classes, 1, dtype=dtype, name="classifier",
                                              kernel_initializer=keras.initializers.RandomNormal(stddev=0.01))

    def build(self, feature_shapes):
        for layer, shape in zip(self.linear_c, feature_shapes):
            layer.build(shape)
        fused = (*tuple(feature_shapes[0])[:3], LEVELS * self.projection_filters)
        self.linear_fuse.build(fused)
        width = (*fused[:3], self.projection_filters)
        self.fuse_norm.build(width)
        self.classifier.build(width)
        self.built = True

    def call(self, features, training=None):
        """``linear_fuse(concat(resize(linear_i(f_i))))`` computed as ``sum_i resize(f_i @ (W_i F_i) + b_i F_i)``.

        The same function of the same weights (see the module docstring), so training gets the folded head's
        saving too: the 4 x D-channel fuse at 1/4 resolution becomes one C_i x D matmul per level at the
        level's own resolution (B0 at 512x512: 17.0 -> about 8.4 GFLOP forward).
        """
        size = ops.shape(features[0])[1:3]
        width, dtype = self.projection_filters, self.compute_dtype
        fuse = ops.cast(ops.reshape(self.linear_fuse.kernel, (LEVELS * width, width)), dtype)
        x = None
        for i, (linear, f) in enumerate(zip(self.linear_c, features)):
            block = fuse[(LEVELS - 1 - i) * width:(LEVELS - i) * width]  # concatenated in reverse: level 3 first
            kernel = ops.matmul(ops.cast(linear.kernel, dtype), block)
            bias = ops.matmul(ops.cast(linear.bias, dtype)[None], block)[0]
            y = ops.matmul(f, kernel) + bias
            y = tf.image.resize(y, size, method="bilinear") if i else y  # keras' resize refuses a traced size
            x = y if x is None else x + y
        x = ops.relu(self.fuse_norm(x, training=training))
        return self.classifier(self.head_dropout(x, training=training))

    def compute_output_shape(self, feature_shapes):
        return (*tuple(feature_shapes[0])[:3], self.num_classes)

    def fold(self) -> FoldedHead:
        """The inference-mode head as per-level matmuls (see the module docstring), computed in float64."""
        width = self.projection_filters
        fuse = _f64(self.linear_fuse.kernel).reshape(LEVELS * width, width)
        norm = self.fuse_norm
        scale = _f64(norm.gamma) / np.sqrt(_f64(norm.moving_variance) + norm.epsilon)
        shift = _f64(norm.beta) - _f64(norm.moving_mean) * scale
        kernels, bias = [], shift
        for i, linear in enumerate(self.linear_c):
            block = LEVELS - 1 - i  # concatenated in reverse order: level 3 first
            f = fuse[block * width:(block + 1) * width] * scale[None, :]
            kernels.append((_f64(linear.kernel) @ f).astype(np.float32))
            bias = bias + _f64(linear.bias) @ f  # a bias survives the resize unchanged
        classifier = _f64(self.classifier.kernel)
        return FoldedHead(tuple(kernels), bias.astype(np.float32),
                          classifier.reshape(classifier.shape[-2], classifier.shape[-1]).astype(np.float32),
                          _f64(self.classifier.bias).astype(np.float32))

    def copy_weights_from(self, other: "SegFormerHead", include_classifier: bool = True) -> None:
        """Take ``other``'s weights (a new head for another class count keeps its fresh classifier)."""
        layers = [*zip(self.linear_c, other.linear_c), (self.linear_fuse, other.linear_fuse),
                  (self.fuse_norm, other.fuse_norm)]
        if include_classifier:
            layers.append((self.classifier, other.classifier))
        for mine, theirs in layers:
            mine.set_weights(theirs.get_weights())

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "projection_filters": self.projection_filters, "dropout": self.dropout}


def _f64(variable) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(variable), dtype=np.float64)
