"""Find image/mask pairs in a dataset folder and work out its classes.

Three layouts are recognised (checked in this order):

* **split**: ``DATA/train/{images,masks}`` and optionally ``DATA/val/{images,masks}``;
* **mmseg**: ``DATA/img_dir/{train,val}`` and ``DATA/ann_dir/{train,val}``;
* **flat**: ``DATA/images`` and ``DATA/masks``.

A mask belongs to the image with the same stem (path relative to the images
folder, without extension); ``.png`` is preferred, any other image extension
is accepted. When there is no val split, a seeded fraction of the train pairs
is drawn.

Classes come from ``DATA/classes.json`` (a list of names, a list of
``{"name", "color"}`` objects, or ``{"classes": [...]}``), from
``DATA/classes.txt`` (one name per line), or are inferred from the masks. A
mask set that holds only 0 and 255 is read as two classes (background,
foreground) rather than "everything is ignore".

:meth:`FolderDataset.read_label` gives class indices (uint8, 255 = ignore) for
index masks, palette PNGs, 0/255 binary masks and RGB colour masks alike.

>>> import tempfile, numpy as np
>>> from segcli.data.image_io import encode_png, write_atomic
>>> root = Path(tempfile.mkdtemp())
>>> for i in range(4):
...     write_atomic(root / "images" / f"{i}.png", encode_png(np.zeros((8, 8, 3), np.uint8)))
...     write_atomic(root / "masks" / f"{i}.png", encode_png(np.full((8, 8), 255 * (i % 2), np.uint8)))
>>> ds = discover(root, val_fraction=0.25, seed=0)
>>> ds.layout, len(ds.splits["train"]), len(ds.splits["val"]), ds.num_classes
('flat', 3, 1, 2)
>>> [c["name"] for c in ds.classes], ds.binary_255
(['background', 'foreground'], True)
>>> int(ds.read_label(root / "masks" / "1.png").max())
1
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segcli.classes import classes_from_names, distinct_palette
from segcli.data.image_io import is_image_name, read_mask
from segcli.errors import DataError

IGNORE_INDEX = 255
SPLITS = ("train", "val")
CLASS_FILES = ("classes.json", "classes.txt")
LAYOUT_HELP = ("expected DATA/images + DATA/masks, DATA/train/{images,masks} (+ DATA/val/{images,masks}), "
               "or DATA/img_dir/{train,val} + DATA/ann_dir/{train,val}")


@dataclass(frozen=True)
class Pair:
    """One training example: an image and its mask, matched by ``stem``."""

    image: Path
    mask: Path
    stem: str


@dataclass
class FolderDataset:
    """What :func:`discover` found. ``splits`` maps "train" and "val" to pairs."""

    root: Path
    layout: str
    splits: dict
    classes: list
    class_source: str  # "classes.json", "classes.txt", "inferred" or "binary 0/255"
    val_source: str  # "folder" or "drawn (seed S, fraction F)"
    binary_255: bool = False
    images_without_masks: list = field(default_factory=list)  # [Path]
    masks_without_images: list = field(default_factory=list)  # [Path]
    notes: list = field(default_factory=list)  # one-line messages about what was inferred
    has_colors: bool = False  # True when RGB colour masks can be mapped (colours given or inferred)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def class_names(self) -> list:
        return [c["name"] for c in self.classes]

    def pairs(self):
        """All pairs, train first."""
        return [p for s in SPLITS for p in self.splits.get(s, [])]

    def read_label(self, pair_or_mask) -> np.ndarray:
        """Class indices (H, W) uint8 with 255 = ignore, from any supported mask kind."""
        path = pair_or_mask.mask if isinstance(pair_or_mask, Pair) else Path(pair_or_mask)
        mask = read_mask(path)
        if mask.ndim == 3 and not self.has_colors:
            raise DataError(f"{path}: RGB colour mask but {self.class_source} gives no class colours; list the "
                            f"classes in {self.root / 'classes.json'} with \"color\": [r, g, b].")
        return to_label(mask, self.classes, self.binary_255, path)


def to_label(mask: np.ndarray, classes: list, binary_255: bool = False, path=None) -> np.ndarray:
    """Turn a mask as read by ``read_mask`` into class indices (255 = ignore).

    RGB masks go through the class colours; colours not in the palette become
    255 (``data check`` reports them). 0/255 binary masks map 255 to class 1.
    """
    if mask.ndim == 3:
        colors = [c.get("color") for c in classes]
        if not classes or any(c is None for c in colors):
            raise DataError(f"{path}: RGB colour mask but the class list has no colours; give every class a "
                            f"\"color\": [r, g, b] in classes.json.")
        keys = _color_keys(mask)
        lut_keys = np.array([_key(c) for c in colors], dtype=np.int64)
        order = np.argsort(lut_keys)
        sorted_keys = lut_keys[order]
        pos = np.clip(np.searchsorted(sorted_keys, keys), 0, len(sorted_keys) - 1)
        found = sorted_keys[pos] == keys
        return np.where(found, order[pos], IGNORE_INDEX).astype(np.uint8)
    if binary_255:
        return np.where(mask == 255, 1, mask).astype(np.uint8)
    return mask.astype(np.uint8, copy=False)


def _key(color) -> int:
    r, g, b = (int(v) for v in color)
    return (r << 16) | (g << 8) | b


def _color_keys(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def _files(folder: Path) -> dict:
    """stem (relative path without suffix) -> file, for every image file under ``folder``."""
    found: dict = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and is_image_name(path) and not path.name.startswith("."):
            stem = path.relative_to(folder).with_suffix("").as_posix()
            # prefer .png for masks when a stem has several files
            if stem not in found or path.suffix.lower() == ".png":
                found[stem] = path
    return found


def _match(images_dir: Path, masks_dir: Path):
    images, masks = _files(images_dir), _files(masks_dir)
    pairs = [Pair(images[s], masks[s], s) for s in sorted(images) if s in masks]
    lonely_images = [images[s] for s in sorted(images) if s not in masks]
    lonely_masks = [masks[s] for s in sorted(masks) if s not in images]
    return pairs, lonely_images, lonely_masks


def _find_layout(root: Path):
    """(layout, {split: (images_dir, masks_dir)})."""
    if (root / "train" / "images").is_dir() or (root / "train" / "masks").is_dir():
        dirs = {s: (root / s / "images", root / s / "masks") for s in SPLITS if (root / s).is_dir()}
        return "split", dirs
    if (root / "img_dir").is_dir() or (root / "ann_dir").is_dir():
        dirs = {s: (root / "img_dir" / s, root / "ann_dir" / s) for s in SPLITS
                if (root / "img_dir" / s).is_dir() or (root / "ann_dir" / s).is_dir()}
        return "mmseg", dirs
    if (root / "images").is_dir() or (root / "masks").is_dir():
        return "flat", {"train": (root / "images", root / "masks")}
    return None, {}


def _draw_val(pairs: list, fraction: float, seed: int):
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pairs))
    n_val = min(len(pairs) - 1, max(1, int(round(fraction * len(pairs)))))
    val_idx = set(order[:n_val].tolist())
    train = [p for i, p in enumerate(pairs) if i not in val_idx]
    val = [p for i, p in enumerate(pairs) if i in val_idx]
    return train, val


def read_class_file(root: Path):
    """(classes, source) from classes.json / classes.txt, or (None, None)."""
    path = root / "classes.json"
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: not valid JSON ({exc}); fix it or remove it.") from None
        if isinstance(data, dict):
            data = data.get("classes")
        if not isinstance(data, list) or not data:
            raise DataError(f"{path}: expected a non-empty list of class names or {{\"name\", \"color\"}} objects.")
        names, colors = [], []
        for i, item in enumerate(data):
            if isinstance(item, str):
                names.append(item)
                colors.append(None)
            elif isinstance(item, dict) and isinstance(item.get("name"), str):
                names.append(item["name"])
                color = item.get("color")
                if color is not None and (not isinstance(color, list) or len(color) != 3 or
                                          not all(isinstance(v, int) and 0 <= v <= 255 for v in color)):
                    raise DataError(f"{path}: class {i} ('{item['name']}') has color {color!r}; "
                                    f"use [r, g, b] with integers 0-255.")
                colors.append(color)
            else:
                raise DataError(f"{path}: entry {i} is {item!r}; use a name or {{\"name\": ..., \"color\": [r, g, b]}}.")
        palette = distinct_palette(len(names))
        classes = [{"name": n, "color": list(c) if c is not None else palette[i]}
                   for i, (n, c) in enumerate(zip(names, colors))]
        return classes, "classes.json", all(c is not None for c in colors)
    path = root / "classes.txt"
    if path.is_file():
        names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        if not names:
            raise DataError(f"{path}: no class names; write one name per line.")
        return classes_from_names(names), "classes.txt", False
    return None, None, False


def _mask_summary(path: Path):
    """('gray', set of values) or ('rgb', set of colour keys); None if unreadable."""
    try:
        mask = read_mask(path)
    except DataError:
        return None
    if mask.ndim == 3:
        return "rgb", set(np.unique(_color_keys(mask)).tolist())
    return "gray", set(np.unique(mask).tolist())


def _infer_classes(pairs: list, num_classes, notes: list, workers: int = 8):
    """Classes from the masks themselves: (classes, source, binary_255)."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        summaries = [s for s in pool.map(lambda p: _mask_summary(p.mask), pairs) if s is not None]
    gray = set().union(*[v for k, v in summaries if k == "gray"]) if summaries else set()
    rgb = set().union(*[v for k, v in summaries if k == "rgb"]) if summaries else set()
    if rgb:
        keys = sorted(rgb, key=lambda k: (k != 0, k))  # black first
        if len(keys) > 254:
            raise DataError(f"masks hold {len(keys)} different colours and there is no classes.json; "
                            f"add classes.json with the class colours.")
        colors = [[(k >> 16) & 255, (k >> 8) & 255, k & 255] for k in keys]
        classes = [{"name": f"class_{i}", "color": c} for i, c in enumerate(colors)]
        notes.append(f"no classes.json: inferred {len(classes)} classes from the RGB mask colours "
                     f"(black first, then by colour value); add classes.json to name them.")
        return _pad(classes, num_classes, notes), "inferred", False
    labelled = gray - {IGNORE_INDEX}
    if gray and labelled <= {0} and IGNORE_INDEX in gray and num_classes in (None, 2):
        notes.append("masks hold only 0 and 255: read as 2 classes, background (0) and foreground (255), "
                     "not as ignore; add classes.txt to override.")
        return classes_from_names(["background", "foreground"]), "binary 0/255", True
    n = max(labelled) + 1 if labelled else 1
    classes = classes_from_names([f"class_{i}" for i in range(n)])
    if labelled:
        notes.append(f"no classes.json or classes.txt: inferred {n} classes (mask values 0..{n - 1}, 255 = ignore); "
                     f"add classes.txt to name them.")
    return _pad(classes, num_classes, notes), "inferred", False


def _pad(classes, num_classes, notes):
    """Exactly ``num_classes`` classes when it is given (masks with larger values are reported by data check)."""
    if num_classes is None or num_classes == len(classes):
        return classes
    if num_classes < len(classes):
        notes.append(f"--num-classes {num_classes} but the masks hold values up to {len(classes) - 1}.")
        return classes[:num_classes]
    palette = distinct_palette(num_classes)
    return classes + [{"name": f"class_{i}", "color": palette[i]} for i in range(len(classes), num_classes)]


def discover(root, val_fraction: float = 0.1, seed: int = 0, num_classes: int | None = None) -> FolderDataset:
    """Pairs, splits and classes of the dataset folder ``root``.

    ``num_classes`` (``--num-classes``) sets the class count when the class
    file or the masks do not say it; masks with values at or above it are
    reported by :func:`segcli.data.check.check_dataset`.
    Raises :class:`DataError` for a missing or empty folder, an unknown
    layout, or too few pairs to have both a train and a val split.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"{root}: no such folder; give the dataset folder ({LAYOUT_HELP}).")
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; give the dataset folder ({LAYOUT_HELP}).")
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"--val-fraction must be between 0 and 1 (exclusive); got {val_fraction}.")
    if num_classes is not None and not 1 <= num_classes <= 255:
        raise DataError(f"--num-classes must be between 1 and 255; got {num_classes}.")
    layout, dirs = _find_layout(root)
    if layout is None:
        if not any(root.iterdir()):
            raise DataError(f"{root}: empty folder; {LAYOUT_HELP}.")
        raise DataError(f"{root}: no dataset layout found; {LAYOUT_HELP}.")
    splits, lonely_images, lonely_masks = {}, [], []
    for split, (images_dir, masks_dir) in dirs.items():
        pairs, li, lm = _match(images_dir, masks_dir)
        splits[split] = pairs
        lonely_images += li
        lonely_masks += lm
    if "train" not in splits:
        raise DataError(f"{root}: has a val split but no train split; {LAYOUT_HELP}.")
    if not splits["train"]:
        if not lonely_images and not lonely_masks:
            where = " and ".join(str(d.relative_to(root)) for d in dirs["train"])
            raise DataError(f"{root}: empty dataset, no images or masks in {where}; {LAYOUT_HELP}.")
        raise DataError(f"{root}: no image has a mask with the same name (found {len(lonely_images)} images and "
                        f"{len(lonely_masks)} masks); masks must be <image stem>.png.")
    notes: list = []
    if splits.get("val"):
        val_source = "folder"
    else:
        if len(splits["train"]) < 2:
            raise DataError(f"{root}: only 1 image/mask pair and no val split, so no validation is possible; "
                            f"add images or a val split.")
        splits["train"], splits["val"] = _draw_val(splits["train"], val_fraction, seed)
        val_source = f"drawn (seed {seed}, fraction {val_fraction})"
        notes.append(f"no val split: drew {len(splits['val'])} of {len(splits['train']) + len(splits['val'])} "
                     f"pairs for validation (--val-fraction {val_fraction}, --seed {seed}).")
    classes, source, has_colors = read_class_file(root)
    binary = False
    if classes is None:
        classes, source, binary = _infer_classes(splits["train"] + splits["val"], num_classes, notes)
    elif num_classes is not None and num_classes != len(classes):
        raise DataError(f"{root / source}: lists {len(classes)} classes but --num-classes is {num_classes}; "
                        f"make them agree or drop --num-classes.")
    ds = FolderDataset(root=root, layout=layout, splits=splits, classes=classes, class_source=source,
                       val_source=val_source, binary_255=binary, images_without_masks=lonely_images,
                       masks_without_images=lonely_masks, notes=notes,
                       has_colors=has_colors or source == "inferred")
    return ds
