"""Parameter counts computed from architecture settings, without building a model.

``segcli presets`` must answer without TensorFlow, so it counts parameters
with these formulas. ``tests/models/test_param_count.py`` checks them against
``model.count_params()`` of built Keras models for every preset, so they
cannot drift from the code.

>>> from segcli.models.registry import PRESETS
>>> encoder_params(**PRESETS["mit_b0"]["arch"])
3319392
"""

from __future__ import annotations


def encoder_params(hidden_sizes, depths, sr_ratios, patch_sizes, mlp_ratios, num_channels=3, **_unused) -> int:
    """Trainable and non-trainable weights of a MiT encoder."""
    total = 0
    in_ch = num_channels
    for c, depth, sr, k, mlp in zip(hidden_sizes, depths, sr_ratios, patch_sizes, mlp_ratios):
        total += k * k * in_ch * c + c + 2 * c  # patch conv + its LayerNorm
        hidden = int(c * mlp)
        block = 2 * c  # norm before attention
        block += 4 * (c * c + c)  # query, key, value, output projection
        if sr > 1:
            block += sr * sr * c * c + c + 2 * c  # reduction conv + LayerNorm
        block += 2 * c  # norm before Mix-FFN
        block += c * hidden + hidden + 9 * hidden + hidden + hidden * c + c  # fc1, 3x3 depthwise, fc2
        total += depth * block + 2 * c  # blocks + stage LayerNorm
        in_ch = c
    return total


def head_params(hidden_sizes, num_classes: int, projection_filters: int) -> int:
    """The all-MLP decode head, counting BatchNorm's moving statistics as Keras does."""
    d = projection_filters
    total = sum(c * d + d for c in hidden_sizes)  # per-level linear projections
    total += len(hidden_sizes) * d * d  # 1x1 fuse conv, no bias
    total += 4 * d  # BatchNorm gamma, beta, moving mean, moving variance
    total += d * num_classes + num_classes  # 1x1 classifier
    return total


def segmenter_params(arch: dict, num_classes: int, projection_filters: int) -> int:
    return encoder_params(**arch) + head_params(arch["hidden_sizes"], num_classes, projection_filters)


def preset_params(preset: dict, num_classes: int | None = None) -> int:
    """Parameters of the model a preset builds (segmenters at their class count)."""
    if preset["model"] == "backbone":
        return encoder_params(**preset["arch"])
    from segcli.models.registry import SEGMENTER_ROW_CLASSES

    classes = num_classes or preset.get("num_classes") or SEGMENTER_ROW_CLASSES
    return segmenter_params(preset["arch"], classes, preset.get("projection_filters", 256))


def millions(n: int) -> str:
    return f"{n / 1e6:.2f}M"
