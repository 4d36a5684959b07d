"""The dataset folder layouts segcli reads: one :class:`Layout` entry each.

:data:`LAYOUTS` is the registry. :func:`segcli.data.folder_dataset.discover`
finds a folder's layout with :func:`find_layout`, its error messages say what
was expected with :func:`expected`, and ``segcli data check --help`` draws
every entry's ``tree``. Adding a layout is adding one entry here.

>>> [layout.name for layout in detection_order()]
['split', 'mmseg', 'flat']
>>> print(expected().replace(", ", ",\\n"))
expected DATA/images + DATA/masks,
DATA/train/{images,masks} (+ DATA/val/{images,masks}),
or DATA/img_dir/{train,val} + DATA/ann_dir/{train,val}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

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
