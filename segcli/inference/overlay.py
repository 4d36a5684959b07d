"""Colour masks and image overlays from class-index masks.

>>> import numpy as np
>>> lut = palette_lut([[0, 0, 0], [255, 0, 0]])
>>> colorize(np.array([[0, 1], [255, 1]], np.uint8), lut)[:, :, 0].tolist()
[[0, 255], [0, 255]]
>>> blend(np.full((1, 2, 3), 100, np.uint8), np.array([[0, 1]], np.uint8), lut, alpha=0.5)[0, :, 0].tolist()
[50, 178]
"""

from __future__ import annotations

import numpy as np


def palette_lut(colors) -> np.ndarray:
    """A (max(256, C), 3) uint8 lookup table; indices without a class (such as 255, ignore) are black."""
    colors = np.asarray(colors, dtype=np.int64).reshape(-1, 3)
    lut = np.zeros((max(256, len(colors)), 3), np.uint8)
    lut[:len(colors)] = np.clip(colors, 0, 255)
    return lut


def colorize(mask: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB colour mask of an (H, W) index mask."""
    return lut[mask]


def blend(image: np.ndarray, mask: np.ndarray, lut: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """``image * (1 - alpha) + colours * alpha``, rounded, as uint8 RGB."""
    import cv2

    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be within 0..1, got {alpha}")
    return cv2.addWeighted(image, 1.0 - alpha, colorize(mask, lut), alpha, 0.0)
