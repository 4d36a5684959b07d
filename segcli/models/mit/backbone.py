"""MiTBackbone: the Mix Transformer encoder of SegFormer (arXiv 2105.15203)."""

from __future__ import annotations

import keras

from segcli.errors import ModelError
from segcli.models import factory_hook
from segcli.models.arguments import image_shape
from segcli.models.registry import PresetListing
from segcli.models.mit.layers import PACKAGE, ImageNormalization, MiTBlock, OverlapPatchEmbedding

PYRAMID_LEVELS = ("P2", "P3", "P4", "P5")


def smallest_side(strides, sr_ratios) -> int:
    """The smallest image side a MiT encoder takes: stage ``i``'s map, ``ceil(side / (strides[0] * ... *
    strides[i]))`` across, must hold one whole key/value reduction patch (``sr_ratios[i]``).

    >>> smallest_side((4, 2, 2, 2), (8, 4, 2, 1))
    29
    """
    side, total = 1, 1
    for stride, ratio in zip(strides, sr_ratios):
        total *= stride
        side = max(side, (ratio - 1) * total + 1)
    return side


def check_image_size(shape, strides, sr_ratios, channels=None) -> None:
    """:class:`ModelError` when an image's known height or width in ``shape`` (..., H, W, C) is too small, or its
    channels are not the model's ``channels``.

    Below the smallest side, a stage's reduction would see no key/value token and its attention would give
    its bias alone, with no error; Conv2D refuses the same input with a shape error.
    """
    smallest = smallest_side(strides, sr_ratios)
    if len(shape) < 3:
        return
    height, width, given = tuple(shape)[-3:]
    if channels is not None and isinstance(given, int) and given != channels:
        raise ModelError(f"images have {given} channel(s) but this model takes {channels}; give RGB images (repeat "
                         f"a grayscale channel 3 times).")
    if any(isinstance(n, int) and n < smallest for n in (height, width)):
        raise ModelError(f"image {height}x{width} (height x width) is below this MiT encoder's smallest side, "
                         f"{smallest} pixels; resize or pad it to at least {smallest}x{smallest}.")


@keras.saving.register_keras_serializable(package=PACKAGE)
class MiTBackbone(keras.Model, PresetListing):
    """Mix Transformer encoder with four stages at strides 4, 8, 16 and 32.

    Args:
        depths: transformer blocks per stage.
        hidden_sizes: channels per stage.
        num_attention_heads: heads per stage.
        sr_ratios: key/value spatial-reduction ratio per stage.
        patch_sizes, strides: the overlapping patch embedding per stage.
        mlp_ratios: Mix-FFN expansion per stage.
        drop_path_rate: stochastic depth, rising linearly to this over all blocks.
        layer_norm_epsilon: epsilon of the block and stage LayerNorms (1e-6 in
            the original code; Hugging Face's port uses 1e-5).
        reduction_epsilon: epsilon of the patch-embedding and key/value
            reduction LayerNorms (1e-5 in the original code).
        input_shape: ``(height, width, 3)``; ``None`` sizes give one model for
            every image size.
        include_normalization: if True the model takes RGB in [0, 255] and
            applies ImageNet mean/std itself; if False it takes normalised input.

    The model outputs the stride-32 map. ``pyramid_level_inputs`` names the
    layers whose outputs are the P2..P5 feature maps.

    Example:

    >>> import numpy as np
    >>> from segcli.models import MiTBackbone
    >>> backbone = MiTBackbone.from_preset("mit_test")
    >>> backbone(np.ones((1, 64, 96, 3))).shape
    TensorShape([1, 2, 3, 64])
    >>> backbone.pyramid_level_inputs["P2"]
    'stage_0_norm'
    """

    preset_model = "backbone"  # what its presets build (``MiTBackbone.presets``)

    def __init__(self, depths, hidden_sizes, num_attention_heads=(1, 2, 5, 8), sr_ratios=(8, 4, 2, 1),
                 patch_sizes=(7, 3, 3, 3), strides=(4, 2, 2, 2), mlp_ratios=(4, 4, 4, 4), drop_path_rate=0.1,
                 layer_norm_epsilon=1e-6, reduction_epsilon=1e-5, input_shape=(None, None, 3),
                 include_normalization=True, dtype=None, **kwargs):
        stages = [depths, hidden_sizes, num_attention_heads, sr_ratios, patch_sizes, strides, mlp_ratios]
        if len({len(s) for s in stages}) != 1:
            raise ValueError(f"Per-stage settings must have one value per stage; got lengths {[len(s) for s in stages]}")
        input_shape = image_shape(input_shape)
        if include_normalization and input_shape[2] != 3:
            raise ModelError(f"input_shape {input_shape}: include_normalization applies ImageNet's RGB mean and std, "
                             f"so it needs 3 channels.")
        check_image_size(input_shape, strides, sr_ratios)
        total = sum(depths)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]

        # === Layers ===
        norm_layer = ImageNormalization(dtype=dtype, name="normalization") if include_normalization else None
        embeddings, blocks, stage_norms = [], [], []
        index = 0
        for i, (depth, size) in enumerate(zip(depths, hidden_sizes)):
            embeddings.append(OverlapPatchEmbedding(size, patch_sizes[i], strides[i], reduction_epsilon,
                                                    dtype=dtype, name=f"patch_embedding_{i}"))
            stage_blocks = []
            for j in range(depth):
                stage_blocks.append(MiTBlock(size, num_attention_heads[i], sr_ratios[i], mlp_ratios[i],
                                             rates[index], layer_norm_epsilon, reduction_epsilon,
                                             dtype=dtype, name=f"block_{i}_{j}"))
                index += 1
            blocks.append(stage_blocks)
            stage_norms.append(keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, dtype=dtype,
                                                               name=f"stage_{i}_norm"))

        # === Functional Model ===
        inputs = keras.Input(shape=tuple(input_shape), name="images")
        x = norm_layer(inputs) if norm_layer is not None else inputs
        for embedding, stage_blocks, norm in zip(embeddings, blocks, stage_norms):
            x = embedding(x)
            for block in stage_blocks:
                x = block(x)
            x = norm(x)
        super().__init__(inputs=inputs, outputs=x, dtype=dtype, **kwargs)

        # === Config ===
        self.depths = tuple(depths)
        self.hidden_sizes = tuple(hidden_sizes)
        self.num_attention_heads = tuple(num_attention_heads)
        self.sr_ratios = tuple(sr_ratios)
        self.patch_sizes = tuple(patch_sizes)
        self.strides = tuple(strides)
        self.mlp_ratios = tuple(mlp_ratios)
        self.drop_path_rate = drop_path_rate
        self.layer_norm_epsilon = layer_norm_epsilon
        self.reduction_epsilon = reduction_epsilon
        self.image_shape = tuple(input_shape)
        self.include_normalization = include_normalization
        self.pyramid_level_inputs = {level: f"stage_{i}_norm" for i, level in enumerate(PYRAMID_LEVELS)}

    def __call__(self, inputs, *args, **kwargs):  # not in call(), where Keras would wrap the line in a dump
        check_image_size(getattr(inputs, "shape", ()), self.strides, self.sr_ratios, self.image_shape[-1])
        return super().__call__(inputs, *args, **kwargs)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "depths": self.depths,
            "hidden_sizes": self.hidden_sizes,
            "num_attention_heads": self.num_attention_heads,
            "sr_ratios": self.sr_ratios,
            "patch_sizes": self.patch_sizes,
            "strides": self.strides,
            "mlp_ratios": self.mlp_ratios,
            "drop_path_rate": self.drop_path_rate,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "reduction_epsilon": self.reduction_epsilon,
            "input_shape": self.image_shape,
            "include_normalization": self.include_normalization,
            # the layers' policy: Keras keeps the functional model's own at the global default
            "dtype": keras.dtype_policies.serialize(self.get_layer(self.pyramid_level_inputs["P5"]).dtype_policy),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)

    @classmethod
    def from_preset(cls, preset, load_weights=None, input_shape=None, **kwargs):
        """Build a MiT encoder from a preset name or a checkpoint folder.

        ``load_weights=None`` loads weights when the preset has them; ``input_shape``
        overrides the preset's ``(None, None, 3)``; other keyword arguments change
        constructor arguments (``include_normalization=False``), weights kept.
        """
        return factory_hook.build("backbone", preset, load_weights=load_weights, input_shape=input_shape, **kwargs)
