"""Parameter count of a MiT encoder from its settings, without building it.

``segcli presets`` must answer without TensorFlow; ``tests/models/test_param_count.py``
checks this formula against ``count_params()`` of built models for every preset.

>>> from segcli.models.mit.presets import arch
>>> encoder_params(**arch("mit_b0"))
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
