"""Parameter count of the SegFormer decode head and of a whole segmenter, without building them.

>>> from segcli.models.mit.presets import arch
>>> segmenter_params(arch("mit_b0"), 150, 256)
3753206
"""

from __future__ import annotations

from segcli.models.mit.params import encoder_params


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
