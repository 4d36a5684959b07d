"""A tiny SegFormer trained for a few steps on colour blocks, so its logits are decisive (not random init)."""

from __future__ import annotations

import numpy as np

PALETTE = np.array([[230, 40, 40], [40, 200, 60], [40, 60, 220]], dtype=np.float32)


def colour_blocks(count, size=64, block=8, seed=0):
    """Images of ``block``-pixel squares in one of three noisy colours, and the colour index as the mask."""
    rng = np.random.default_rng(seed)
    cells = size // block
    labels = rng.integers(0, len(PALETTE), (count, cells, cells))
    masks = labels.repeat(block, 1).repeat(block, 2)
    images = PALETTE[masks] + rng.normal(0, 20, (count, size, size, 3))
    return np.clip(images, 0, 255).astype(np.uint8), masks.astype(np.int32)


def train_tiny(path, steps=16, seed=0):
    """Train segformer_test (3 classes) on colour blocks and save it as a .keras file."""
    import keras

    from segcli.models import SegFormer

    keras.utils.set_random_seed(seed)
    model = SegFormer.from_preset("segformer_test", num_classes=3)
    images, masks = colour_blocks(32, seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(images.astype("float32"), masks, batch_size=8, epochs=max(1, steps // 8), verbose=0)
    model.save(str(path))
    return path
