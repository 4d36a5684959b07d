"""MiTBackbone: the Mix Transformer encoder of SegFormer (arXiv 2105.15203)."""

from __future__ import annotations

import keras

from segcli.models import factory_hook
from segcli.models.mit.layers import PACKAGE, ImageNormalization, MiTBlock, OverlapPatchEmbedding

PYRAMID_LEVELS = ("P2", "P3", "P4", "P5")


@keras.saving.register_keras_serializable(package=PACKAGE)
class MiTBackbone(keras.Model):
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

    def __init__(self, depths, hidden_sizes, num_attention_heads=(1, 2, 5, 8), sr_ratios=(8, 4, 2, 1),
                 patch_sizes=(7, 3, 3, 3), strides=(4, 2, 2, 2), mlp_ratios=(4, 4, 4, 4), drop_path_rate=0.1,
                 layer_norm_epsilon=1e-6, reduction_epsilon=1e-5, input_shape=(None, None, 3),
                 include_normalization=True, dtype=None, **kwargs):
        stages = [depths, hidden_sizes, num_attention_heads, sr_ratios, patch_sizes, strides, mlp_ratios]
        if len({len(s) for s in stages}) != 1:
            raise ValueError(f"Per-stage settings must have one value per stage; got lengths {[len(s) for s in stages]}")
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
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
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
        overrides the preset's ``(None, None, 3)``.
        """
        return factory_hook.build("backbone", preset, load_weights=load_weights, input_shape=input_shape, **kwargs)
