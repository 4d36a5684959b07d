"""keras-hub SegFormer preset folders made on the spot with random weights (no download)."""

from __future__ import annotations

import numpy as np

TINY = dict(layerwise_depths=[1, 2, 1, 1], num_layers=4, layerwise_num_heads=[1, 2, 5, 8],
            layerwise_sr_ratios=[8, 4, 2, 1], max_drop_path_rate=0.1, layerwise_patch_sizes=[7, 3, 3, 3],
            layerwise_strides=[4, 2, 2, 2], hidden_dims=[8, 16, 40, 64])
MEAN = np.array([0.485, 0.456, 0.406]) * 255
STD = np.array([0.229, 0.224, 0.225]) * 255


def make(folder, size=64, num_classes=5, projection_filters=32, segmenter=True, seed=0, arch=TINY):
    """Save a random keras-hub SegFormerImageSegmenter (or bare MiTBackbone) with ``save_to_preset``."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(seed)
    encoder = keras_hub.models.MiTBackbone(image_shape=(size, size, 3), **arch)
    if not segmenter:
        encoder.save_to_preset(str(folder))
        return encoder
    backbone = keras_hub.models.SegFormerBackbone(image_encoder=encoder, projection_filters=projection_filters)
    model = keras_hub.models.SegFormerImageSegmenter(backbone=backbone, num_classes=num_classes)
    bn = backbone.linear_fuse.layers[1]  # non-trivial BatchNorm statistics, so they are really checked
    rng = np.random.default_rng(seed)
    bn.moving_mean.assign(rng.normal(0, 0.5, projection_filters).astype("float32"))
    bn.moving_variance.assign(rng.uniform(0.5, 2.0, projection_filters).astype("float32"))
    model.save_to_preset(str(folder))
    return model


def logits(model, images):
    """keras-hub's output for RGB [0, 255] images (it expects ImageNet-normalised input)."""
    return np.asarray(model(((images - MEAN) / STD).astype("float32"), training=False))
