"""Find image/mask pairs in a dataset folder and work out its classes.

The layouts are the entries of :data:`segcli.data.layouts.LAYOUTS` (split,
mmseg, flat). A mask belongs to the image with the same stem (path relative
to the images folder, without extension), as :func:`segcli.data.layouts.find_pairs`
matches them: hidden files and folders are left out, and files sharing a stem
are kept in ``duplicates`` (``data check`` reports them; the ``.png`` is the
one paired). When there is no val split, a seeded fraction
of the train pairs is drawn; a single pair stays in train with an empty val
split (eval scores it; training refuses it).

Classes come from ``DATA/classes.json`` or ``DATA/classes.txt`` (read by
:func:`segcli.classes.read_class_file`), or are inferred from the masks. A
mask set that holds only 0 and 255 is read as two classes (background,
foreground) rather than "everything is ignore".

:meth:`FolderDataset.read_label` gives class indices (uint8, 255 = ignore) for
index masks, palette PNGs, 0/255 binary masks and RGB colour masks alike. A
3-channel mask whose colours are all gray (ADE20K's wall is (120, 120, 120))
is read as colours when the class table gives colours, and as its single
channel of values otherwise (see :meth:`FolderDataset.read_mask_values`). A
``label_map`` (raw mask value -> class id, see :func:`read_label_map`) is
applied first, and ``keep_classes`` then keeps a subset of the classes, in
the given order, turning every other class's pixels into 255.

>>> import tempfile, numpy as np
>>> from segcli.data.image_io import encode_png, write_atomic
>>> root = Path(tempfile.mkdtemp())
>>> for i in range(4):
...     write_atomic(root / "images" / f"{i}.png", encode_png(np.zeros((8, 8, 3), np.uint8)))
...     write_atomic(root / "masks" / f"{i}.png", encode_png(np.full((8, 8), 255 * (i % 2), np.uint8)))
>>> ds = discover(root, val_fraction=0.25, seed=0)
>>> ds.layout, len(ds.splits["train"]), len(ds.splits["val"]), ds.num_classes
('flat', 3, 1, 2)
>>> ds.class_names, ds.binary_255
(['background', 'foreground'], True)
>>> int(ds.read_label(root / "masks" / "1.png").max())
1
>>> cats = discover(root, label_map={0: 0, 255: 1}, keep_classes="class_1")
>>> cats.class_names, [int(cats.read_label(root / "masks" / f"{i}.png").max()) for i in (0, 1)]
(['class_1'], [255, 0])
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from segcli.classes import ClassTable, read_class_file, split_names
from segcli.data.image_io import all_gray, read_mask
from segcli.data.label_map import (IGNORE_INDEX, REDUCE_ZERO_LABEL, check_label_map, is_reduce_zero_label,
                                    read_label_map)
from segcli.data.layouts import SPLITS, Pair, find_pairs  # noqa: F401  (re-exported: check and train use them here)
from segcli.errors import DataError

MAX_CLASSES = 255  # labels are uint8 and 255 is ignore


@dataclass
class FolderDataset:
    """What :func:`discover` found. ``splits`` maps "train" and "val" to pairs.

    ``classes`` are the classes labels are given in (after ``keep_classes``);
    ``all_classes`` is the full table before that subset (the same table when
    no subset was asked for), and ``kept`` the indices into it that were kept.
    """

    root: Path
    layout: str
    splits: dict
    classes: ClassTable
    val_source: str  # "folder", "drawn (seed S, fraction F)" or "none"
    binary_255: bool = False
    unpaired: dict = field(default_factory=dict)  # split folder -> ([images without masks], [masks without images])
    duplicates: list = field(default_factory=list)  # [("image" or "mask", [Path, ...])], the paired file first
    notes: list = field(default_factory=list)  # one-line messages about what was inferred
    split_notes: list = field(default_factory=list)  # those of ``notes`` about the val split only
    label_map: dict | None = None  # raw mask value -> class id of all_classes; unmapped values -> 255
    all_classes: ClassTable | None = None
    kept: tuple | None = None  # indices into all_classes, in the order of classes; None = all

    @property
    def images_without_masks(self) -> list:
        return [p for s in SPLITS for p in self.unpaired.get(s, ([], []))[0]]

    @property
    def masks_without_images(self) -> list:
        return [p for s in SPLITS for p in self.unpaired.get(s, ([], []))[1]]

    def unpaired_for(self, split: str) -> tuple:
        """(images without masks, masks without images) in the folders that ``split`` ("train", "val" or "all")
        is read from: its own folder when the dataset has a val folder, every folder otherwise."""
        splits = [split] if self.val_source == "folder" and split in self.unpaired else list(self.unpaired)
        return ([p for s in splits for p in self.unpaired[s][0]], [p for s in splits for p in self.unpaired[s][1]])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def class_names(self) -> list:
        return list(self.classes.names)

    @property
    def class_source(self) -> str:
        """Where the classes came from: "classes.json", "classes.txt", "inferred", "binary 0/255", "label map"."""
        return self.classes.source

    @property
    def full_classes(self) -> ClassTable:
        return self.all_classes if self.all_classes is not None else self.classes

    @property
    def has_colors(self) -> bool:
        """True when RGB colour masks can be mapped (every colour given by the class file or read off the masks)."""
        return self.full_classes.colors_given

    def pairs(self):
        """All pairs, train first."""
        return [p for s in SPLITS for p in self.splits.get(s, [])]

    def read_label(self, pair_or_mask) -> np.ndarray:
        """Class indices (H, W) uint8 with 255 = ignore, from any supported mask kind."""
        path = pair_or_mask.mask if isinstance(pair_or_mask, Pair) else Path(pair_or_mask)
        return self.subset_label(self.full_label(self.read_mask_values(path), path))

    def read_mask_values(self, path) -> np.ndarray:
        """The mask file as this dataset reads it: (H, W) values, or (H, W, 3) colours for the class colours.

        A 3-channel mask whose colours are all gray is colours when the class table gives colours and no
        label map is set (ADE20K's wall is (120, 120, 120), Cityscapes' building (70, 70, 70)), and its
        single channel of values otherwise (index masks saved as RGB).
        """
        mask = read_mask(path, keep_gray_rgb=True)
        if mask.ndim == 3 and (self.label_map is not None or not self.has_colors) and all_gray(mask):
            return mask[:, :, 0]
        return mask

    def full_label(self, mask: np.ndarray, path=None) -> np.ndarray:
        """A mask as :meth:`read_mask_values` gives it -> indices into ``full_classes`` (label map applied;
        255 = ignore).

        RGB masks go through the class colours; colours not in the palette
        become 255 (``data check`` reports them). Values at or above the class
        count are kept as they are (``data check`` reports them too).
        """
        if mask.ndim == 2:
            return self._gray_lut[mask]
        if self.label_map is not None:
            raise DataError(f"{path}: RGB colour mask, but a label map maps single-channel mask values; save index "
                            f"masks or drop the label map.")
        if not self.has_colors:
            raise DataError(f"{path}: RGB colour mask but {self.class_source} gives no class colours; list the "
                            f"classes in {self.root / 'classes.json'} with \"color\": [r, g, b].")
        return rgb_to_label(mask, self.full_classes)

    def subset_label(self, label: np.ndarray) -> np.ndarray:
        """Indices into ``full_classes`` -> indices into ``classes`` (classes not kept become 255)."""
        return label if self.kept is None else self._keep_lut[label]

    @cached_property
    def _gray_lut(self) -> np.ndarray:
        if self.label_map is not None:
            lut = np.full(256, IGNORE_INDEX, np.uint8)
            for raw, class_id in self.label_map.items():
                lut[raw] = class_id
            return lut
        lut = np.arange(256, dtype=np.uint8)
        if self.binary_255:
            lut[IGNORE_INDEX] = 1
        return lut

    @cached_property
    def _keep_lut(self) -> np.ndarray:
        lut = np.full(256, IGNORE_INDEX, np.uint8)
        lut[list(self.kept)] = np.arange(len(self.kept), dtype=np.uint8)
        return lut


def rgb_to_label(rgb: np.ndarray, table: ClassTable) -> np.ndarray:
    """(H, W, 3) colours -> class indices through ``table.colors``; other colours -> 255.

    >>> t = ClassTable(("a", "b"), ((0, 0, 0), (255, 0, 0)), True)
    >>> rgb_to_label(np.array([[[255, 0, 0], [0, 0, 0], [1, 2, 3]]], np.uint8), t).tolist()
    [[1, 0, 255]]
    """
    lut_keys = np.array([color_key(c) for c in table.colors], dtype=np.int64)
    order = np.argsort(lut_keys, kind="stable")
    sorted_keys = lut_keys[order]
    keys = color_keys(rgb)
    pos = np.clip(np.searchsorted(sorted_keys, keys), 0, len(sorted_keys) - 1)
    found = sorted_keys[pos] == keys
    return np.where(found, order[pos], IGNORE_INDEX).astype(np.uint8)


def color_key(color) -> int:
    r, g, b = (int(v) for v in color)
    return (r << 16) | (g << 8) | b


def color_keys(rgb: np.ndarray) -> np.ndarray:
    """One int64 per pixel: 0xRRGGBB."""
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def _draw_val(pairs: list, fraction: float, seed: int):
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pairs))
    n_val = min(len(pairs) - 1, max(1, int(round(fraction * len(pairs)))))
    val_idx = set(order[:n_val].tolist())
    train = [p for i, p in enumerate(pairs) if i not in val_idx]
    val = [p for i, p in enumerate(pairs) if i in val_idx]
    return train, val


def _mask_summary(path: Path):
    """('gray', set of values), or ('rgb' or 'gray rgb' for a 3-channel mask whose colours are all gray, set of
    colour keys); None if unreadable."""
    try:
        mask = read_mask(path, keep_gray_rgb=True)
    except DataError:
        return None
    if mask.ndim == 3:
        return "gray rgb" if all_gray(mask) else "rgb", set(np.unique(color_keys(mask)).tolist())
    return "gray", set(np.unique(mask).tolist())


def _mask_summaries(pairs: list, workers: int = 8) -> list:
    """:func:`_mask_summary` of every readable mask of ``pairs``, read in threads."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return [s for s in pool.map(lambda p: _mask_summary(p.mask), pairs) if s is not None]


def _infer_classes(pairs: list, num_classes, notes: list):
    """Classes from the masks themselves: (table, binary_255)."""
    summaries = _mask_summaries(pairs)
    found = {kind: set().union(*[v for k, v in summaries if k == kind]) for kind in ("gray", "rgb", "gray rgb")}
    gray, rgb = found["gray"], found["rgb"]
    if rgb:  # colour masks: the all-gray ones are colour masks too (their colours are classes)
        rgb |= found["gray rgb"]
    else:  # no colour mask: the all-gray 3-channel ones are index masks saved as RGB
        gray |= {key & 255 for key in found["gray rgb"]}
    if rgb:
        keys = sorted(rgb, key=lambda k: (k != 0, k))  # black first
        if len(keys) > MAX_CLASSES - 1:
            raise DataError(f"masks hold {len(keys)} different colours and there is no classes.json; "
                            f"add classes.json with the class colours.")
        colors = tuple(((k >> 16) & 255, (k >> 8) & 255, k & 255) for k in keys)
        table = ClassTable(tuple(f"class_{i}" for i in range(len(keys))), colors, True, "inferred")
        notes.append(f"no classes.json: inferred {len(table)} classes from the RGB mask colours "
                     f"(black first, then by colour value); add classes.json to name them.")
        return _fit(table, num_classes, notes), False
    labelled = gray - {IGNORE_INDEX}
    if gray and labelled <= {0} and IGNORE_INDEX in gray and num_classes in (None, 2):
        notes.append("masks hold only 0 and 255: read as 2 classes, background (0) and foreground (255), "
                     "not as ignore; add classes.txt to override.")
        return ClassTable.from_names(["background", "foreground"], source="binary 0/255"), True
    n = max(labelled) + 1 if labelled else 1
    if labelled:
        notes.append(f"no classes.json or classes.txt: inferred {n} classes (mask values 0..{n - 1}, 255 = ignore); "
                     f"add classes.txt to name them.")
    return _fit(ClassTable.from_names([f"class_{i}" for i in range(n)], source="inferred"), num_classes, notes), False


def _infer_reduced_classes(pairs: list, num_classes, notes: list) -> ClassTable:
    """Classes of index masks whose 0 means "not labelled": values 1..N are classes 0..N-1."""
    summaries = _mask_summaries(pairs)
    if any(kind == "rgb" for kind, _ in summaries):
        raise DataError(f"{REDUCE_ZERO_LABEL} is for masks of class indices, and these masks are colour images; "
                        f"map their colours with classes.json instead.")
    values = {v & 255 for _, found in summaries for v in found} - {0, IGNORE_INDEX}  # gray RGB keys: their gray
    n = max(values, default=1)
    notes.append(f"no classes.json or classes.txt: inferred {n} classes (mask values 1..{n} as class ids "
                 f"0..{n - 1}); add classes.txt to name them.")
    return _fit(ClassTable.from_names([f"class_{i}" for i in range(n)], source="inferred"), num_classes, notes)


def _classes_from_label_map(label_map: dict, num_classes, notes: list) -> ClassTable:
    n = max(v for v in label_map.values() if v != IGNORE_INDEX) + 1
    notes.append(f"no classes.json or classes.txt: {n} classes from the label map's class ids 0..{n - 1}; "
                 f"add classes.txt to name them.")
    return _fit(ClassTable.from_names([f"class_{i}" for i in range(n)], source="label map"), num_classes, notes)


def _fit(table: ClassTable, num_classes, notes: list) -> ClassTable:
    """Exactly ``num_classes`` classes when it is given (masks with larger values are reported by data check)."""
    if num_classes is None or num_classes == len(table):
        return table
    if num_classes < len(table):
        notes.append(f"the class count is set to {num_classes} but the masks hold values up to {len(table) - 1}.")
    return table.complete(num_classes)


def _val_split(splits: dict, val_fraction: float, seed: int, notes: list) -> str:
    """Draw a val split from train when there is none; the val source."""
    if splits.get("val"):
        return "folder"
    if len(splits["train"]) < 2:
        splits["val"] = []
        notes.append("only 1 image/mask pair and no val split: eval scores it, but training needs a val split "
                     "(add images or a val split).")
        return "none"
    splits["train"], splits["val"] = _draw_val(splits["train"], val_fraction, seed)
    notes.append(f"no val split: drew {len(splits['val'])} of {len(splits['train']) + len(splits['val'])} "
                 f"pairs for validation (val fraction {val_fraction}, seed {seed}).")
    return f"drawn (seed {seed}, fraction {val_fraction})"


def _keep(table: ClassTable, keep_classes, root: Path, notes: list):
    """(kept table, kept indices) for ``keep_classes`` (names, or one comma-separated string)."""
    if isinstance(keep_classes, str):
        keep_classes = split_names(keep_classes)
    kept = table.index_of(keep_classes, str(root))
    notes.append(f"using {len(kept)} of {len(table)} classes ({', '.join(table.names[i] for i in kept)}); "
                 f"every other class's pixels become 255 (ignore).")
    return table.subset(keep_classes), tuple(kept)


def discover(root, val_fraction: float = 0.1, seed: int = 0, num_classes: int | None = None,
             label_map=None, keep_classes=None) -> FolderDataset:
    """Pairs, splits and classes of the dataset folder ``root``.

    ``num_classes`` sets the class count when the class file or the masks do
    not say it; masks with values at or above it are reported by
    :func:`segcli.data.check.check_dataset`. ``label_map`` is a dict (or a
    JSON file, see :func:`read_label_map`) from raw mask values to class ids;
    ``keep_classes`` a list of class names (or "a,b,c") to keep, in that order.
    Raises :class:`DataError` for a missing or empty folder, an unknown
    layout, no pairs at all, or a bad class file, label map or class name.
    """
    root = Path(root).expanduser()
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction must be between 0 and 1 (exclusive); got {val_fraction}.")
    if num_classes is not None and not 1 <= num_classes <= MAX_CLASSES:
        raise DataError(f"num_classes must be between 1 and {MAX_CLASSES}; got {num_classes}.")
    reduced = is_reduce_zero_label(label_map)
    if label_map is not None:
        label_map = (read_label_map(label_map) if isinstance(label_map, (str, Path))
                     else check_label_map(label_map, "label map"))
    found = find_pairs(root)
    splits, notes = found.splits, []
    val_source = _val_split(splits, val_fraction, seed, notes)
    split_notes = list(notes)
    table, binary = read_class_file(root), False
    if table is not None:
        if len(table) > MAX_CLASSES:
            raise DataError(f"{root / table.source}: lists {len(table)} classes; masks hold at most {MAX_CLASSES} "
                            f"(0..254, 255 = ignore).")
        if num_classes is not None and num_classes != len(table):
            raise DataError(f"{root / table.source}: lists {len(table)} classes but num_classes is {num_classes}; "
                            f"make them agree or leave num_classes unset.")
    elif reduced:
        table = _infer_reduced_classes(splits["train"] + splits["val"], num_classes, notes)
    elif label_map is not None:
        table = _classes_from_label_map(label_map, num_classes, notes)
    else:
        table, binary = _infer_classes(splits["train"] + splits["val"], num_classes, notes)
    if reduced:
        notes.append(f"{REDUCE_ZERO_LABEL}: mask value 0 becomes 255 (ignore) and values 1..254 become class ids "
                     f"0..253, as mmsegmentation's reduce_zero_label does.")
    elif label_map is not None:
        notes.append(f"label map: {len(label_map)} mask value(s) mapped to class ids; every other value becomes "
                     f"255 (ignore).")
    classes, kept = table, None
    if keep_classes is not None:
        classes, kept = _keep(table, keep_classes, root, notes)
    return FolderDataset(root=root, layout=found.layout, splits=splits, classes=classes, val_source=val_source,
                         binary_255=binary, unpaired=found.unpaired, duplicates=found.duplicates, notes=notes,
                         split_notes=split_notes, label_map=label_map, all_classes=table, kept=kept)
