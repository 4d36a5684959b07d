"""SegFormer: a MiT (or any pyramid) backbone with the paper's all-MLP decode head."""

from __future__ import annotations

import keras
from keras import ops

from segcli.errors import ModelError
from segcli.models import factory_hook
from segcli.models.arguments import whole_number
from segcli.models.mit.backbone import PYRAMID_LEVELS, check_image_size
from segcli.models.mit.layers import PACKAGE
from segcli.models.registry import PresetListing
from segcli.models.segformer.head import SegFormerHead


@keras.saving.register_keras_serializable(package=PACKAGE)
class ResizeLike(keras.layers.Layer):
    """Bilinear resize of ``x`` to the height and width of ``reference`` (align_corners=False)."""

    def call(self, x, reference):
        import tensorflow as tf

        # TF's resize, which Keras' calls: Keras' own checks `size > 0` in Python, which fails once Keras
        # retraces with a traced (None) height or width, at the second input size predict or fit sees.
        return tf.image.resize(x, ops.shape(reference)[1:3], method="bilinear")

    def compute_output_shape(self, x_shape, reference_shape):
        return (x_shape[0], reference_shape[1], reference_shape[2], x_shape[-1])


@keras.saving.register_keras_serializable(package=PACKAGE)
class SegFormer(keras.Model, PresetListing):
    """SegFormer semantic segmentation model (arXiv 2105.15203).

    Args:
        backbone: a ``keras.Model`` with ``pyramid_level_inputs`` mapping "P2",
            "P3", "P4" and "P5" to layer names, such as :class:`MiTBackbone`.
        num_classes: number of classes, including background.
        projection_filters: width of the decode head (256 for B0/B1, 768 for B2-B5).
        activation: "auto" (softmax, or sigmoid when ``num_classes == 1``),
            None for logits, or any Keras activation name.
        dropout: dropout before the classifier.

    The output has the input's height and width and is float32 even under
    mixed precision. ``model.head`` is the :class:`SegFormerHead`;
    :meth:`quarter_logits` gives the logits at 1/4 resolution for any input size.

    Example:

    >>> import numpy as np
    >>> from segcli.models import MiTBackbone
    >>> backbone = MiTBackbone.from_preset("mit_test")
    >>> model = SegFormer(backbone=backbone, num_classes=3, projection_filters=32)
    >>> model(np.ones((2, 96, 160, 3))).shape
    TensorShape([2, 96, 160, 3])
    """

    preset_model = "segmenter"  # what its presets build (``SegFormer.presets``)

    def __init__(self, backbone, num_classes, projection_filters=256, activation="auto", dropout=0.1, **kwargs):
        levels = getattr(backbone, "pyramid_level_inputs", None)
        if not isinstance(backbone, keras.Model) or not isinstance(levels, dict) or \
                not set(PYRAMID_LEVELS) <= set(levels):
            raise ModelError(
                f"SegFormer needs a keras.Model backbone with `pyramid_level_inputs` naming layers for "
                f"{', '.join(PYRAMID_LEVELS)}; got {type(backbone).__name__}"
                f"{' with pyramid_level_inputs=' + repr(levels) if levels is not None else ' without it'}."
            )
        num_classes = whole_number("num_classes", num_classes)
        projection_filters = whole_number("projection_filters", projection_filters)
        dtype = kwargs.pop("dtype", None) or backbone.dtype_policy
        output_activation = ("sigmoid" if num_classes == 1 else "softmax") if activation == "auto" else activation

        # === Layers ===
        pyramid = keras.Model(backbone.input, [backbone.get_layer(levels[level]).output for level in PYRAMID_LEVELS],
                              name="pyramid_features")
        head = SegFormerHead(num_classes, projection_filters, dropout=dropout, dtype=dtype, name="decode_head")

        # === Functional Model ===
        inputs = keras.Input(shape=backbone.input_shape[1:], name="images")
        quarter_logits = head(pyramid(inputs))
        # Like the head, the logits' resize stays float32 under a mixed policy: in bf16 it rounded the logits to 8
        # bits of mantissa and ran slower than float32 (TensorFlow's emulated bf16 resize and its gradient).
        wide = keras.dtype_policies.get(dtype).variable_dtype
        x = ResizeLike(dtype=wide, name="resize_logits")(quarter_logits, inputs)
        outputs = keras.layers.Activation(output_activation or "linear", dtype="float32", name="output")(x)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        # === Config ===
        self.backbone = backbone
        self.pyramid = pyramid
        self.head = head
        self.num_classes = int(num_classes)
        self.projection_filters = projection_filters
        self.activation = activation
        self.dropout = dropout

    def __call__(self, inputs, *args, **kwargs):  # not in call(), where Keras would wrap the line in a dump
        self._check_size(inputs)
        return super().__call__(inputs, *args, **kwargs)

    def _check_size(self, images):
        if hasattr(self.backbone, "sr_ratios"):  # a MiT encoder; another pyramid backbone checks its own input
            check_image_size(getattr(images, "shape", ()), self.backbone.strides, self.backbone.sr_ratios,
                             self.backbone.image_shape[-1])

    def quarter_logits(self, images, training=False):
        """Logits at 1/4 of the input size (the head's own resolution), as ops on any H and W."""
        self._check_size(images)
        return self.head(self.pyramid(images, training=training), training=training)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "num_classes": self.num_classes,
            "projection_filters": self.projection_filters,
            "activation": self.activation,
            "dropout": self.dropout,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)

    @classmethod
    def from_preset(cls, preset, num_classes=None, load_weights=None, input_shape=None, **kwargs):
        """Build a SegFormer from a preset name, a checkpoint folder or a ``.keras`` file.

        ``num_classes`` defaults to the checkpoint's classes. ``load_weights=None``
        loads the preset's weights when it has them; ``input_shape`` is honoured. Other
        keyword arguments change the model's or its backbone's constructor arguments
        (``dropout=0.0``, ``name="seg"``, ``include_normalization=False``), weights kept.
        """
        return factory_hook.build("segmenter", preset, num_classes=num_classes, load_weights=load_weights,
                                  input_shape=input_shape, **kwargs)
