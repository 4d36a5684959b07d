"""The dataset folder layouts segcli reads: one :class:`Layout` entry each.

:data:`LAYOUTS` is the registry. :func:`segcli.data.folder_dataset.discover`
finds a folder's layout with :func:`find_layout`, its error messages say what
was expected with :func:`expected`, and ``segcli data check --help`` draws
every entry's ``tree``. Adding a layout is adding one entry here.

:func:`find_pairs` then matches each split's images and masks by stem (the
path below the images or masks folder, without extension). Hidden files and
anything under a hidden folder (``.ipynb_checkpoints``, ``.git``) are left
out, as predict leaves them out. Files of one folder that share a stem
(``a.jpg`` and ``a.png``) are listed as duplicates; the ``.png`` is paired.

>>> [layout.name for layout in detection_order()]
['split', 'mmseg', 'flat']
>>> print(expected().replace(", ", ",\\n"))
expected DATA/images + DATA/masks,
DATA/train/{images,masks} (+ DATA/val/{images,masks}),
or DATA/img_dir/{train,val} + DATA/ann_dir/{train,val}
"""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from segcli.data.image_io import is_image_name
from segcli.data.known_sources import convert_hint
from segcli.errors import DataError

SPLITS = ("train", "val")


@dataclass(frozen=True)
class Layout:
    """One way of arranging images and masks under a dataset folder ``DATA``.

    ``detect(root)`` says whether ``root`` looks like this layout;
    ``dirs(root)`` maps each split present ("train", "val") to its
    ``(images_dir, masks_dir)``. ``fallback`` layouts have the loosest
    markers, so they are tried after every other one.
    """

    name: str
    description: str  # one line, after "expected ..." in error messages
    tree: str  # the drawing shown in `segcli data check --help` (a few lines, under 30 columns)
    detect: Callable[[Path], bool]
    dirs: Callable[[Path], dict]
    fallback: bool = False


def _split_dirs(root: Path) -> dict:
    return {s: (root / s / "images", root / s / "masks") for s in SPLITS if (root / s).is_dir()}


def _mmseg_dirs(root: Path) -> dict:
    return {s: (root / "img_dir" / s, root / "ann_dir" / s) for s in SPLITS
            if (root / "img_dir" / s).is_dir() or (root / "ann_dir" / s).is_dir()}


LAYOUTS: list[Layout] = [
    Layout(
        name="flat",
        description="DATA/images + DATA/masks",
        tree="DATA/\n├── images/a.jpg\n├── masks/a.png\n└── classes.json",
        detect=lambda root: (root / "images").is_dir() or (root / "masks").is_dir(),
        dirs=lambda root: {"train": (root / "images", root / "masks")},
        fallback=True,
    ),
    Layout(
        name="split",
        description="DATA/train/{images,masks} (+ DATA/val/{images,masks})",
        tree=("DATA/\n├── train/images/a.jpg\n├── train/masks/a.png\n"
              "├── val/images/c.jpg\n├── val/masks/c.png\n└── classes.json"),
        detect=lambda root: (root / "train" / "images").is_dir() or (root / "train" / "masks").is_dir(),
        dirs=_split_dirs,
    ),
    Layout(
        name="mmseg",
        description="DATA/img_dir/{train,val} + DATA/ann_dir/{train,val}",
        tree=("DATA/\n├── img_dir/train/a.jpg\n├── ann_dir/train/a.png\n"
              "├── img_dir/val/c.jpg\n├── ann_dir/val/c.png\n└── classes.json"),
        detect=lambda root: (root / "img_dir").is_dir() or (root / "ann_dir").is_dir(),
        dirs=_mmseg_dirs,
    ),
]


def detection_order() -> list[Layout]:
    """The registry with the fallback layouts last."""
    return [layout for layout in LAYOUTS if not layout.fallback] + [layout for layout in LAYOUTS if layout.fallback]


def find_layout(root) -> Layout | None:
    """The first layout (in :func:`detection_order`) that ``root`` matches, or None."""
    root = Path(root)
    return next((layout for layout in detection_order() if layout.detect(root)), None)


def expected() -> str:
    """"expected A, B, or C": every layout's description, for error messages."""
    parts = [layout.description for layout in LAYOUTS]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + ", or " + parts[-1]
    return f"expected {listed}"


def help_text(per_row: int = 3) -> str:
    """Every layout's tree under its name, ``per_row`` side by side, for ``--help``.

    Starts with click's "\\b" marker, which keeps the lines as they are.
    """
    blocks = [[layout.name, *layout.tree.splitlines()] for layout in LAYOUTS]
    rows = []
    for start in range(0, len(blocks), per_row):
        group = blocks[start:start + per_row]
        widths = [max(len(line) for line in block) for block in group]
        for i in range(max(len(block) for block in group)):
            cells = [(block[i] if i < len(block) else "").ljust(w) for block, w in zip(group, widths)]
            rows.append("   ".join(cells).rstrip())
        rows.append("")
    return "\b\n" + "\n".join(rows).rstrip()


@dataclass(frozen=True)
class Pair:
    """One training example: an image and its mask, matched by ``stem``."""

    image: Path
    mask: Path
    stem: str


@dataclass
class Found:
    """What :func:`find_pairs` found in a dataset folder."""

    layout: str  # the Layout's name
    splits: dict  # split -> [Pair]
    unpaired: dict  # split -> ([images without masks], [masks without images])
    duplicates: list  # [("image" or "mask", [Path, ...])]: files of one folder sharing a stem, the paired one first


def list_files(folder: Path):
    """(stem -> file, duplicates) for the image files under ``folder``, hidden ones left out.

    A stem with several files (``a.jpg``, ``a.png``) maps to the ``.png`` (else the first by name) and
    is one entry of ``duplicates``, a list of ``[file, ...]`` with the mapped file first. Stems are compared in
    Unicode NFC, so ``café`` written by macOS (decomposed, NFD) pairs with ``café`` written elsewhere.
    """
    groups: dict = {}
    for here, dirnames, filenames in os.walk(folder):  # as predict walks: hidden folders are not entered
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:  # a broken link is kept, so data check reports why it cannot be read (not "no mask")
            if is_image_name(name) and not name.startswith("."):
                path = Path(here) / name
                stem = unicodedata.normalize("NFC", path.relative_to(folder).with_suffix("").as_posix())
                groups.setdefault(stem, []).append(path)
    found, duplicates = {}, []
    for stem, files in sorted(groups.items()):
        files.sort()
        used = next((f for f in files if f.suffix.lower() == ".png"), files[0])
        found[stem] = used
        if len(files) > 1:
            duplicates.append([used, *(f for f in files if f != used)])
    return found, duplicates


def _match(images_dir: Path, masks_dir: Path):
    """(pairs, (images without masks, masks without images), duplicates) of one split's folders."""
    (images, image_dups), (masks, mask_dups) = list_files(images_dir), list_files(masks_dir)
    pairs = [Pair(images[s], masks[s], s) for s in sorted(images) if s in masks]
    lonely_images = [images[s] for s in sorted(images) if s not in masks]
    lonely_masks = [masks[s] for s in sorted(masks) if s not in images]
    return pairs, (lonely_images, lonely_masks), [("image", d) for d in image_dups] + [("mask", d) for d in mask_dups]


def _usable_folder(root: Path) -> Layout:
    """``root``'s layout; DataError when it is missing, not a folder, empty or of no known layout."""
    if not root.exists():
        raise DataError(f"{root}: no such folder; give the dataset folder ({expected()}).")
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; give the dataset folder ({expected()}).")
    layout = find_layout(root)
    if layout is None:
        if not any(root.iterdir()):
            raise DataError(f"{root}: empty folder; {expected()}.")
        raise DataError(f"{convert_hint(root) or f'{root}: no dataset layout found; {expected()}'}.")
    return layout


def find_pairs(root: Path) -> Found:
    """The image/mask pairs of dataset folder ``root`` per split; DataError for an unusable folder."""
    layout = _usable_folder(root)
    dirs = layout.dirs(root)
    found = Found(layout.name, {}, {}, [])
    for split, (images_dir, masks_dir) in dirs.items():
        found.splits[split], found.unpaired[split], duplicates = _match(images_dir, masks_dir)
        found.duplicates += duplicates
    if "train" not in found.splits:
        raise DataError(f"{root}: has a val split but no train split; {expected()}.")
    if not found.splits["train"]:
        lonely_images = [p for images, _ in found.unpaired.values() for p in images]
        lonely_masks = [p for _, masks in found.unpaired.values() for p in masks]
        if not lonely_images and not lonely_masks:
            where = " and ".join(str(d.relative_to(root)) for d in dirs["train"])
            raise DataError(f"{root}: empty dataset, no images or masks in {where}; {expected()}.")
        hint = convert_hint(root)
        if hint:
            raise DataError(f"{hint}.")
        raise DataError(f"{root}: no image has a mask with the same name (found {len(lonely_images)} images and "
                        f"{len(lonely_masks)} masks); masks must be <image stem>.png.")
    return found
