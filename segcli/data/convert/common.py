"""What every converter shares: the report, the plan a format module hands the writer, the class table,
the canvas that paints annotations in order, and the geometry (polygons, run-length masks).

A format module reads its source and returns a :class:`Plan`: the class table, and one :class:`Sample`
per image whose ``render(height, width, issues)`` paints that image's annotations into an index mask
(uint8, 0 = background, 255 = ignore) and returns it with the number of annotations drawn per class.
Everything it cannot draw goes into ``issues`` as an :class:`Issue` naming the file, the annotation
and the reason: nothing is dropped silently.

>>> canvas = Canvas(4, 6)
>>> big, small = np.zeros((4, 6), bool), np.zeros((4, 6), bool)
>>> big[:, :4], small[1:3, 1:3] = True, True
>>> canvas.paint(big, 1, "a.json", "shape 1 ('road')")
>>> canvas.paint(small, 2, "a.json", "shape 2 ('car')")
>>> label, counts = canvas.finish([])
>>> label
array([[1, 1, 1, 1, 0, 0],
       [1, 2, 2, 1, 0, 0],
       [1, 2, 2, 1, 0, 0],
       [1, 1, 1, 1, 0, 0]], dtype=uint8)
>>> dict(counts)
{1: 1, 2: 1}
>>> rle_decode([2, 3, 1], 2, 3, order="C")
array([[0, 0, 1],
       [1, 1, 0]], dtype=uint8)
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from segcli.classes import distinct_palette
from segcli.errors import DataError, MissingDependencyError, UsageError

IGNORE = 255
BACKGROUND = "background"
#: Label names drawn as background (0) and as ignore (255); LabelMe's labels.txt uses the underscored ones.
BACKGROUND_NAMES = ("background", "_background_", "__background__")
IGNORE_NAMES = ("__ignore__",)
MAX_CLASSES = 254  # class ids 0..253 plus 255 = ignore stay below the ignore value


@dataclass(frozen=True)
class Issue:
    """One annotation (or image) that was dropped, clipped or partly ignored, and why."""

    file: str  # the annotation file (or mask) it comes from
    item: str  # which annotation: "annotation 7 ('cat')", "shape 2 ('dog')", "image a.jpg"
    action: str  # "dropped", "clipped" or "ignored"
    reason: str  # one line


@dataclass
class ConvertReport:
    """What a conversion wrote and everything it could not convert as given."""

    format: str
    source: str
    out: str
    images_linked: bool
    classes: list  # [{"name", "color"}], index = class id
    images: dict  # split -> images written
    annotations: dict  # class name -> annotations drawn (mask formats: images that show the class)
    issues: list = field(default_factory=list)  # [Issue]
    notes: list = field(default_factory=list)  # one-line remarks on how the source was read

    def count(self, action: str) -> int:
        return sum(1 for i in self.issues if i.action == action)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Sample:
    """One image of the source and how to draw its mask."""

    split: str  # "train" or "val"
    name: str  # where the image goes, relative to DATA/<split>/images, with its suffix ("a/b.jpg")
    source: str  # the annotation file the report names
    image: Optional[Path]  # the image file; None when only ``image_bytes`` exist
    render: Callable  # (height, width, issues) -> (uint8 label, Counter {class id: annotations})
    size: Optional[tuple] = None  # (height, width) the annotation declares; None = take the image's
    annotations: int = 0  # how many annotations the image has (named when the image is missing)
    image_bytes: Optional[Callable] = None  # () -> bytes of an embedded image (LabelMe imageData)


@dataclass
class Plan:
    """What a format module read: classes, samples, the folders images come from, early issues and notes."""

    classes: list
    samples: list
    image_dirs: list
    issues: list = field(default_factory=list)
    notes: list = field(default_factory=list)


def class_table(names: list, colors: Optional[dict] = None) -> list:
    """``[{"name", "color"}]`` with background first: colours from ``colors`` (name -> [r, g, b]) where given,
    else segcli's distinct palette.

    >>> [(c["name"], c["color"]) for c in class_table(["cat", "dog"], {"dog": [1, 2, 3]})]
    [('background', [0, 0, 0]), ('cat', [230, 25, 75]), ('dog', [1, 2, 3])]
    """
    colors = colors or {}
    names = [n for n in names if n not in BACKGROUND_NAMES]
    background = next((colors[n] for n in BACKGROUND_NAMES if n in colors), None)
    if len(names) + 1 > MAX_CLASSES:
        raise DataError(f"{len(names)} classes besides background; segcli masks hold at most {MAX_CLASSES - 1}.")
    palette = distinct_palette(len(names) + 1)
    table = [{"name": BACKGROUND, "color": list(background) if background else palette[0]}]
    return table + [{"name": n, "color": list(colors.get(n) or palette[i + 1])} for i, n in enumerate(names)]


def chosen_names(names: Optional[list]) -> Optional[list]:
    """Check a user's class list (foreground names in order; a leading background name is allowed)."""
    if names is None:
        return None
    names = [n.strip() for n in names]
    if any(not n for n in names):
        raise UsageError("the class list has an empty name; give names separated by commas, e.g. cat,dog.")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise UsageError(f"the class list names {', '.join(repeated)} more than once; give each class once.")
    misplaced = [n for n in names[1:] if n in BACKGROUND_NAMES]
    if misplaced:
        raise UsageError(f"'{misplaced[0]}' is class 0 (background); put it first or leave it out.")
    return [n for n in names if n not in BACKGROUND_NAMES]


def label_ids(classes: list) -> dict:
    """Label name -> class id, with the background and ignore aliases.

    >>> label_ids(class_table(["cat"]))
    {'background': 0, '_background_': 0, '__background__': 0, '__ignore__': 255, 'cat': 1}
    """
    ids = {n: 0 for n in BACKGROUND_NAMES}
    ids.update({n: IGNORE for n in IGNORE_NAMES})
    ids.update({c["name"]: i for i, c in enumerate(classes) if i > 0})
    return ids


def unknown_label(file, item: str, label) -> Issue:
    return Issue(str(file), item, "dropped", f"unknown label '{label}' (not in the class list)")


_SPLIT_WORDS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                "test": "test", "testing": "test", "testdev": "test"}


def split_of(name: str) -> Optional[str]:
    """"train", "val" or "test" when ``name`` has such a word ("instances_val2017", "Validation"), else None.

    >>> split_of("instances_val2017.json"), split_of("valid/_annotations.coco.json"), split_of("default")
    ('val', 'val', None)
    """
    for word in re.split(r"[^a-z0-9]+", name.lower()):
        found = _SPLIT_WORDS.get(re.sub(r"\d+$", "", word))
        if found:
            return found
    return None


class Canvas:
    """Paints regions in order, later over earlier, remembering which annotation owns each pixel, so that an
    annotation hidden entirely under later ones is reported instead of vanishing."""

    def __init__(self, height: int, width: int):
        self.owner = np.full((height, width), -1, np.int32)
        self.values: list = []
        self.names: list = []  # (file, item)

    def paint(self, region: np.ndarray, value: int, file, item: str) -> None:
        self.owner[region] = len(self.values)
        self.values.append(int(value))
        self.names.append((str(file), item))

    def finish(self, issues: list):
        """(label, Counter {class id: annotations with at least one visible pixel}); hidden ones go to ``issues``."""
        visible = np.bincount(self.owner.ravel() + 1, minlength=len(self.values) + 1)[1:]
        counts: Counter = Counter()
        for (file, item), value, pixels in zip(self.names, self.values, visible):
            if pixels:
                counts[value] += 1
            else:
                issues.append(Issue(file, item, "dropped", "covered entirely by annotations drawn over it"))
        lut = np.array([0] + self.values, np.uint8)
        return lut[self.owner + 1], counts


def place(canvas: Canvas, issues: list, region: np.ndarray, value: int, file, item: str, outside: bool) -> None:
    """Paint ``region``; report it when it is empty (outside the image or under a pixel) or was clipped."""
    height, width = region.shape
    if not region.any():
        reason = f"outside the image ({width}x{height})" if outside else "degenerate: covers no pixel"
        issues.append(Issue(str(file), item, "dropped", reason))
        return
    if outside:
        issues.append(Issue(str(file), item, "clipped", f"partly outside the image ({width}x{height}); clipped"))
    canvas.paint(region, value, file, item)


def polygon_problem(xy: np.ndarray) -> Optional[str]:
    """Why the (N, 2) polygon cannot be drawn, or None.

    >>> polygon_problem(np.array([[0, 0], [4, 0]])), polygon_problem(np.array([[0, 0], [4, 0], [8, 0]]))
    ('degenerate polygon: 2 points (it needs at least 3)', 'degenerate polygon: zero area')
    """
    if len(xy) < 3:
        return f"degenerate polygon: {len(xy)} point{'s' if len(xy) != 1 else ''} (it needs at least 3)"
    x, y = xy[:, 0].astype(np.float64), xy[:, 1].astype(np.float64)
    if abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) == 0:
        return "degenerate polygon: zero area"
    return None


def outside(xy: np.ndarray, low: float, width: float, height: float) -> bool:
    """True when a point lies outside [low, width] x [low, height]."""
    return bool((xy < low).any() or (xy[:, 0] > width).any() or (xy[:, 1] > height).any())


def _pycocotools_mask():
    try:
        from pycocotools import mask
    except ImportError:
        raise MissingDependencyError("converting polygons needs pycocotools; install it with "
                                     "`pip install pycocotools`.") from None
    return mask


def polygon_region(polygons: list, height: int, width: int) -> np.ndarray:
    """Pixels inside the union of ``polygons`` (each (N, 2), x then y, continuous coordinates where pixel
    (i, j) spans [i, i+1] x [j, j+1]), rasterised with pycocotools as COCO's own tools do; clipped to the image.

    >>> int(polygon_region([np.array([[1, 1], [3, 1], [3, 4], [1, 4]])], 5, 5).sum())
    6
    """
    mask = _pycocotools_mask()
    rles = mask.frPyObjects([p.astype(np.float64).ravel().tolist() for p in polygons], height, width)
    return mask.decode(mask.merge(rles)).astype(bool)


def rle_decode(counts, height: int, width: int, order: str = "F") -> np.ndarray:
    """A 0/1 mask from run lengths that alternate 0s and 1s, starting with 0s: column-major (COCO, ``"F"``)
    or row-major (CVAT, ``"C"``). DataError when the runs do not add up to ``height * width``."""
    runs = np.asarray(counts, dtype=np.int64)
    if (runs < 0).any() or int(runs.sum()) != height * width:
        raise DataError(f"run lengths cover {int(runs.sum())} pixels, not {height}x{width} = {height * width}")
    values = np.arange(len(runs), dtype=np.int64) % 2
    flat = np.repeat(values.astype(np.uint8), runs)
    if order == "C":
        return flat.reshape(height, width)
    return np.ascontiguousarray(flat.reshape(width, height).T)


def coco_counts(text: str) -> list:
    """The run lengths of a compressed COCO RLE string (pycocotools' ``rleFrString``).

    >>> coco_counts("52203")
    [5, 2, 2, 2, 5]
    """
    counts: list = []
    pos = 0
    while pos < len(text):
        value, shift, more = 0, 0, True
        while more:
            if pos >= len(text):
                raise DataError("truncated compressed RLE string")
            c = ord(text[pos]) - 48
            if not 0 <= c < 64:
                raise DataError(f"character {text[pos]!r} cannot occur in a compressed RLE string")
            value |= (c & 0x1F) << (5 * shift)
            more = bool(c & 0x20)
            pos += 1
            shift += 1
            if not more and c & 0x10:
                value |= -1 << (5 * shift)
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    return counts


def json_or_reason(path: Path):
    """(the JSON in ``path``, None), or (None, why it cannot be read: one clause without the path)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8")), None
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
    except UnicodeDecodeError:
        return None, "not a UTF-8 text file"
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"


def read_json(path: Path, what: str):
    """The JSON in ``path``; one DataError line naming the file and ``what`` to do otherwise."""
    data, why = json_or_reason(path)
    if why is not None:
        raise DataError(f"{path}: {why}" + ("." if why.startswith("cannot be read") else f"; {what}."))
    return data


def image_with_stem(image_dir: Path, stem: str) -> Path:
    """``<stem>.jpg`` in ``image_dir``, else the first other image file with that stem (``<stem>.jpg`` when none is
    there, so the writer reports it as missing)."""
    from segcli.data.image_io import IMAGE_EXTENSIONS

    for suffix in (".jpg",) + IMAGE_EXTENSIONS:
        if (image_dir / f"{stem}{suffix}").is_file():
            return image_dir / f"{stem}{suffix}"
    return image_dir / f"{stem}.jpg"


def relabel(mask_path: Path, table: np.ndarray, highest: int, colour_error: str, unknown: str, issues: list):
    """(label, Counter of class ids) of a one-value-per-pixel mask mapped through ``table``: a colour image is
    DataError ``colour_error``, and values above ``highest`` go to ``issues`` as ``unknown`` (formatted with the
    values) and become whatever ``table`` maps them to (255)."""
    from segcli.data.image_io import read_mask

    mask = read_mask(mask_path)
    if mask.ndim != 2:
        raise DataError(f"{mask_path}: {colour_error}")
    values = sorted(int(v) for v in np.unique(mask) if v > highest)
    if values:
        shown = ", ".join(map(str, values[:8])) + (", ..." if len(values) > 8 else "")
        issues.append(Issue(str(mask_path), "mask", "ignored", f"{unknown.format(shown)}; set to 255 (ignore)"))
    label = table[np.minimum(mask, len(table) - 1)]  # a 16-bit mask's values past the table map as its last entry
    return label, Counter(int(v) for v in np.unique(label) if v != IGNORE)
