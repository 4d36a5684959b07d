"""Tiny on-disk datasets for the dataset, check and train tests (real PNG files written with OpenCV).

The easy task: a dark noisy background (class 0), a red disc (class 1) and a
blue square (class 2); colour alone tells the classes apart, so a few epochs
of segformer_test at 64 px reach a val mIoU far above chance (1/3).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

RED, BLUE = (220, 50, 50), (50, 60, 220)


def scene(rng, size=64):
    """(RGB image, index mask) of the easy task."""
    image = np.full((size, size, 3), 40, np.int32)
    mask = np.zeros((size, size), np.uint8)
    r = int(rng.integers(size // 8, size // 4))
    cx, cy = (int(v) for v in rng.integers(r, size - r, 2))
    cv2.circle(image, (cx, cy), r, RED, -1)
    cv2.circle(mask, (cx, cy), r, 1, -1)
    side = int(rng.integers(size // 5, size // 3))
    x, y = (int(v) for v in rng.integers(0, size - side, 2))
    cv2.rectangle(image, (x, y), (x + side, y + side), BLUE, -1)
    cv2.rectangle(mask, (x, y), (x + side, y + side), 2, -1)
    image = np.clip(image + rng.integers(-20, 21, image.shape), 0, 255).astype(np.uint8)
    return image, mask


def write_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def write_mask(path: Path, mask: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), mask)


def make_easy(root: Path, n=16, size=64, seed=0, layout="flat", n_val=4, ext=".png") -> Path:
    """The easy 3-class task in ``layout`` ("flat", "split" or "mmseg")."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        image, mask = scene(rng, size)
        split = "val" if i >= n - n_val else "train"
        if layout == "flat":
            img_dir, mask_dir = root / "images", root / "masks"
        elif layout == "split":
            img_dir, mask_dir = root / split / "images", root / split / "masks"
        else:
            img_dir, mask_dir = root / "img_dir" / split, root / "ann_dir" / split
        write_rgb(img_dir / f"img_{i:03d}{ext}", image)
        write_mask(mask_dir / f"img_{i:03d}.png", mask)
    return root


def make_pairs(root: Path, masks, image_size=None) -> Path:
    """A flat dataset with one black image per mask: ``masks`` is a list of arrays, or ``{stem: array}``."""
    items = masks.items() if isinstance(masks, dict) else ((f"m{i:03d}", m) for i, m in enumerate(masks))
    for stem, mask in items:
        h, w = image_size or mask.shape[:2]
        write_rgb(root / "images" / f"{stem}.png", np.zeros((h, w, 3), np.uint8))
        (write_rgb if mask.ndim == 3 else write_mask)(root / "masks" / f"{stem}.png", mask)
    return root


def tree(root: Path) -> set:
    """Every file and folder under ``root`` (relative), to prove nothing else was written."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}
