"""A deterministic synthetic segmentation dataset: textured shapes on a textured background.

Each image holds 3-7 objects of four classes that differ in SHAPE and
TEXTURE, never in colour: every object and the background get random
colours, so a model has to learn shape and texture. Later objects occlude
earlier ones, and every image carries a little blur and Gaussian noise.

======  ==========  ============================================
index   class       what it looks like
======  ==========  ============================================
0       background  smooth blotches of two random colours
1       disc        ellipse (axis ratio 0.7-1) with stripes
2       square      rotated square with a checkerboard
3       triangle    rotated equilateral triangle with dots
4       ring        annulus filled with coarse speckle noise
======  ==========  ============================================

Image ``i`` depends only on ``(seed, i, size)``: the same seed gives
byte-identical files, and a larger ``n`` starts with the same images
(the last ``val_fraction`` of them form the val split).

>>> image, mask = render(64, seed=0, index=3)
>>> image.shape, image.dtype.name, mask.shape, mask.dtype.name
((64, 64, 3), 'uint8', (64, 64), 'uint8')
>>> bool(set(np.unique(mask).tolist()) <= {0, 1, 2, 3, 4})
True
>>> np.array_equal(render(64, seed=0, index=3)[0], image)
True
"""

from __future__ import annotations

import colorsys
import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segcli.errors import UsageError
from segcli.files import file_in_the_way

CLASS_NAMES = ("background", "disc", "square", "triangle", "ring")
#: Sizes in pixels below are for 128-pixel images and scale with the image.
REFERENCE_SIZE = 128
MIN_SIZE, MAX_SIZE = 32, 4096
MAX_IMAGES = 1_000_000
RECORD_FILE = "synth.json"
#: What ``generate`` writes into OUT.
OUTPUTS = ("train", "val", "classes.json", RECORD_FILE)
TMP_PREFIX = ".synth-"
GENERATOR_VERSION = 1
#: Standard deviation range of the Gaussian pixel noise (per image, in 0-255 units).
NOISE_SIGMA = (1.5, 4.0)


def class_table() -> list[dict]:
    """The classes in ``classes.json`` form, with segcli's distinct palette.

    >>> [c["name"] for c in class_table()]
    ['background', 'disc', 'square', 'triangle', 'ring']
    """
    from segcli.classes import ClassTable

    return ClassTable.from_names(CLASS_NAMES).as_dicts()


# === Drawing ===

def _two_colours(rng: np.random.Generator, contrast: bool) -> np.ndarray:
    """Two random RGB colours (2, 3) float32; with ``contrast`` one is dark and one is bright."""
    hues = rng.random(2)
    sats = rng.uniform(0.0, 1.0, 2)
    if contrast:
        values = np.array([rng.uniform(0.08, 0.45), rng.uniform(0.62, 1.0)])
        rng.shuffle(values)
    else:
        values = rng.uniform(0.2, 0.95, 2)
    rgb = [colorsys.hsv_to_rgb(h, s, v) for h, s, v in zip(hues, sats, values)]
    return np.array(rgb, np.float32) * 255.0


def _smooth_field(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """A smooth random field in [0, 1] (size, size) float32: ``cells`` x ``cells`` values, cubic-interpolated."""
    import cv2

    coarse = rng.random((cells + 1, cells + 1)).astype(np.float32)
    fine = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(fine, 0.0, 1.0)


def _background(rng, size) -> np.ndarray:
    colours = _two_colours(rng, contrast=False)
    blend = 0.6 * _smooth_field(rng, size, 3) + 0.4 * _smooth_field(rng, size, 8)
    blend = blend[..., None]
    return colours[0] * (1.0 - blend) + colours[1] * blend


def _shape(kind: int, u: np.ndarray, v: np.ndarray, r: float, rng) -> np.ndarray:
    """Boolean inside-test of shape ``kind`` in the object's rotated coordinates ``u``, ``v``."""
    if kind == 1:  # disc (an ellipse)
        aspect = rng.uniform(0.7, 1.0)
        return (u / r) ** 2 + (v / (r * aspect)) ** 2 <= 1.0
    if kind == 2:  # square
        half = 0.85 * r
        return np.maximum(np.abs(u), np.abs(v)) <= half
    if kind == 3:  # equilateral triangle, circumradius 1.25 r: three half-planes at the inradius
        inside = np.ones(u.shape, bool)
        for k in range(3):
            a = np.pi / 2 + k * 2 * np.pi / 3 + np.pi  # edge normals point away from the vertices
            inside &= u * np.cos(a) + v * np.sin(a) <= 0.625 * r
        return inside
    d2 = u ** 2 + v ** 2  # ring
    inner = rng.uniform(0.45, 0.6) * r
    return (d2 <= r ** 2) & (d2 >= inner ** 2)


def _texture(kind: int, u: np.ndarray, v: np.ndarray, scale: float, rng) -> np.ndarray:
    """Boolean pattern of class ``kind`` (True = second colour), at a random angle and phase."""
    angle = rng.uniform(0, np.pi)
    c, s = np.cos(angle), np.sin(angle)
    a, b = u * c + v * s, -u * s + v * c
    if kind == 1:  # stripes
        period = rng.uniform(5.0, 9.0) * scale
        return (a / period + rng.random()) % 1.0 < 0.5
    if kind == 2:  # checkerboard
        cell = rng.uniform(3.5, 6.0) * scale
        return (np.floor(a / cell + rng.random()) + np.floor(b / cell + rng.random())) % 2 == 1
    if kind == 3:  # dots on a lattice
        period = rng.uniform(6.0, 9.0) * scale
        fa = (a / period + rng.random()) % 1.0 - 0.5
        fb = (b / period + rng.random()) % 1.0 - 0.5
        return fa ** 2 + fb ** 2 <= rng.uniform(0.22, 0.32) ** 2
    # ring: coarse speckle, random on/off cells of 2 pixels (at 128 px)
    cell = max(1, int(round(2 * scale)))
    h, w = u.shape
    coarse = rng.random((-(-h // cell), -(-w // cell))) < 0.5
    return np.repeat(np.repeat(coarse, cell, axis=0), cell, axis=1)[:h, :w]


def render(size: int, seed: int, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Image ``index`` of the set made with ``seed``: (RGB uint8 (size, size, 3), class-index mask uint8)."""
    import cv2

    rng = np.random.default_rng([GENERATOR_VERSION, seed, index, size])
    scale = size / REFERENCE_SIZE
    image = _background(rng, size).astype(np.float32)
    mask = np.zeros((size, size), np.uint8)
    for _ in range(rng.integers(3, 8)):
        kind = int(rng.integers(1, len(CLASS_NAMES)))
        r = rng.uniform(0.13, 0.27) * size
        cx, cy = rng.uniform(0.08, 0.92, 2) * size
        theta = rng.uniform(0, 2 * np.pi)
        # Only the object's bounding box is drawn (every shape fits in a circle of radius 1.25 r).
        y0, y1 = max(0, int(cy - 1.25 * r)), min(size, int(np.ceil(cy + 1.25 * r)) + 1)
        x0, x1 = max(0, int(cx - 1.25 * r)), min(size, int(np.ceil(cx + 1.25 * r)) + 1)
        dy = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5 - cy
        dx = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5 - cx
        u = dx * np.cos(theta) + dy * np.sin(theta)
        v = -dx * np.sin(theta) + dy * np.cos(theta)
        inside = _shape(kind, u, v, r, rng)
        pattern = _texture(kind, u, v, scale, rng)
        colours = _two_colours(rng, contrast=True)
        image[y0:y1, x0:x1][inside] = colours[pattern[inside].astype(np.intp)]
        mask[y0:y1, x0:x1][inside] = kind
    image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.3, 0.8) * scale)
    image += rng.standard_normal(image.shape, dtype=np.float32) * np.float32(rng.uniform(*NOISE_SIGMA))
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), mask


# === Writing a dataset ===

@dataclass
class SynthResult:
    """What :func:`generate` wrote."""

    out: Path
    size: int
    seed: int
    train: int
    val: int
    classes: list = field(default_factory=list)
    pixel_fraction: list = field(default_factory=list)  # per class, over all images
    bytes_written: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict:
        return {"out": str(self.out), "size": self.size, "seed": self.seed, "train": self.train, "val": self.val,
                "classes": self.classes, "pixel_fraction": self.pixel_fraction,
                "bytes_written": self.bytes_written, "seconds": round(self.seconds, 3)}


def split_counts(n: int, val_fraction: float) -> tuple[int, int]:
    """(train, val) image counts: val is ``round(n * val_fraction)``, at least 1 when asked for and n >= 2.

    >>> split_counts(120, 0.2), split_counts(10, 0.0), split_counts(2, 0.01), split_counts(1, 0.5)
    ((96, 24), (10, 0), (1, 1), (1, 0))
    """
    val = int(round(n * val_fraction))
    if val_fraction > 0 and n >= 2:
        val = max(val, 1)
    val = min(val, n - 1)
    return n - val, val


def _leftovers(out: Path) -> list[Path]:
    """Hidden work folders of an interrupted run."""
    return [p for p in out.glob(f"{TMP_PREFIX}*.tmp") if p.is_dir()]


def _entries(out: Path) -> list[Path]:
    leftovers = set(_leftovers(out))
    return [p for p in out.iterdir() if p not in leftovers]


def _check_args(out: Path, n: int, size: int, seed: int, val_fraction: float) -> None:
    if not 1 <= n <= MAX_IMAGES:
        raise UsageError(f"n {n}: the number of images must be between 1 and {MAX_IMAGES:,}.", value="n")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise UsageError(f"size {size}: images must be {MIN_SIZE} to {MAX_SIZE} pixels on a side.", value="size")
    if seed < 0:
        raise UsageError(f"seed {seed}: the seed must be 0 or a positive integer.", value="seed")
    if not 0.0 <= val_fraction < 1.0:
        raise UsageError(f"val fraction {val_fraction}: give a fraction from 0 up to (not including) 1.",
                         value="val_fraction")
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} is a file; give a folder for the dataset.")
    blocker = file_in_the_way(out)
    if blocker is not None:
        raise UsageError(f"{out} cannot be created: {blocker} is a file; choose another folder.")
    if out.is_dir() and _entries(out) and not (out / RECORD_FILE).is_file():
        raise UsageError(f"{out} is not empty and holds no earlier synthetic set; give a new or empty folder.")


def generate(out, n: int, size: int = REFERENCE_SIZE, seed: int = 0, val_fraction: float = 0.2) -> SynthResult:
    """Write ``n`` image/mask pairs into ``out`` in segcli's split layout, plus ``classes.json``.

    ``out/train/images/synth_00000.png`` pairs with ``out/train/masks/synth_00000.png``
    (the first ``n - val`` images), and the rest go to ``out/val``. Everything is written
    into a hidden folder inside ``out`` first and moved into place at the end. ``out`` must be
    new, empty, or an earlier synthetic set (it has ``synth.json``), which is replaced.

    >>> import tempfile
    >>> result = generate(tempfile.mkdtemp(), n=5, size=32, seed=1)
    >>> result.train, result.val, sorted(p.name for p in result.out.iterdir())
    (4, 1, ['classes.json', 'synth.json', 'train', 'val'])
    """
    from segcli.data.image_io import encode_png, write_atomic

    out = Path(out)
    _check_args(out, int(n), int(size), int(seed), float(val_fraction))
    started = time.perf_counter()
    n_train, n_val = split_counts(n, val_fraction)
    classes = class_table()
    out.mkdir(parents=True, exist_ok=True)
    for stale in _leftovers(out):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, suffix=".tmp", dir=out))
    digits = max(5, len(str(n - 1)))
    counts = np.zeros(len(CLASS_NAMES), np.int64)
    written = 0
    try:
        for i in range(n):
            image, mask = render(size, seed, i)
            counts += np.bincount(mask.ravel(), minlength=len(CLASS_NAMES))
            split = "train" if i < n_train else "val"
            stem = f"synth_{i:0{digits}d}"
            for folder, array in (("images", image), ("masks", mask)):
                data = encode_png(array)
                write_atomic(tmp / split / folder / f"{stem}.png", data)
                written += len(data)
        record = {"generator": "segcli data synth", "version": GENERATOR_VERSION, "n": n, "size": size,
                  "seed": seed, "val_fraction": val_fraction, "train": n_train, "val": n_val}
        write_atomic(tmp / "classes.json", (json.dumps({"classes": classes}, indent=2) + "\n").encode())
        write_atomic(tmp / RECORD_FILE, (json.dumps(record, indent=2) + "\n").encode())
        for name in OUTPUTS:  # replace a previous synthetic set: its record goes last, so a
            target = out / name  # half-finished swap is still recognised as ours next time
            if name != RECORD_FILE and target.is_dir():
                shutil.rmtree(target)
            elif name != RECORD_FILE and target.exists():
                target.unlink()
        for name in OUTPUTS:
            if (tmp / name).exists():
                (tmp / name).replace(out / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    total = counts.sum()
    return SynthResult(out=out, size=size, seed=seed, train=n_train, val=n_val, classes=classes,
                       pixel_fraction=[round(float(c / total), 4) for c in counts],
                       bytes_written=written, seconds=time.perf_counter() - started)
