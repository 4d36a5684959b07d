"""Class names and colours: the one :class:`ClassTable` type and the one parser of class files.

Every class list in segcli (a dataset's ``classes.json`` / ``classes.txt``, a
run directory's, a checkpoint's, the bundled ADE20K and Cityscapes tables)
becomes a :class:`ClassTable`, read by :func:`parse_classes` under one rule set:

* a JSON list of names, or of ``{"name": ..., "color": [r, g, b]}`` objects
  (``"colour"`` is accepted too), or an object ``{"classes": [...]}``
  (``"names"`` also works) with an optional top-level ``"palette"`` (or
  ``"colors"``) list of ``[r, g, b]``, one per class;
* ``classes.txt``: one name per line.

Classes without a colour get the fixed :func:`distinct_palette` colour of
their index. Empty lists, malformed colours and entries without a name are
refused with a :class:`~segcli.errors.DataError` that names the file.

>>> dataset_classes("cityscapes").as_dicts()[0]
{'name': 'road', 'color': [128, 64, 128]}
>>> distinct_palette(3)
[[0, 0, 0], [230, 25, 75], [60, 180, 75]]
>>> table = parse_classes({"classes": ["sky", {"name": "road", "colour": [128, 64, 128]}]}, "classes.json")
>>> table.as_dicts(), table.colors_given
([{'name': 'sky', 'color': [0, 0, 0]}, {'name': 'road', 'color': [128, 64, 128]}], False)
>>> table.complete(3).names
('sky', 'road', 'class_2')
"""

from __future__ import annotations

import colorsys
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from segcli.errors import DataError, UsageError

#: The class files a dataset folder or run directory may hold, in the order they are looked for.
CLASS_FILES = ("classes.json", "classes.txt")
#: The bundled tables (``segcli/tables/<name>.json``).
DATASETS = ("ade20k", "cityscapes")

# A fixed table of easily told-apart colours (Sasha Trubetskoy's list order), background black.
_DISTINCT = [
    (0, 0, 0), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
    (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128),
]
_SHAPES = "expected a non-empty list of class names or {\"name\", \"color\"} objects."


def distinct_palette(n: int) -> list[list[int]]:
    """``n`` colours: the fixed table first, then evenly spread hues."""
    colours = [list(c) for c in _DISTINCT[:n]]
    golden = 0.618033988749895
    i = 0
    while len(colours) < n:
        h = (i * golden) % 1.0
        r, g, b = colorsys.hsv_to_rgb(h, 0.65 + 0.35 * (i % 2), 0.95 - 0.25 * ((i // 2) % 2))
        colours.append([round(r * 255), round(g * 255), round(b * 255)])
        i += 1
    return colours


@dataclass(frozen=True)
class ClassTable:
    """Class ``i`` is ``names[i]``, drawn in ``colors[i]`` (RGB).

    ``colors_given`` is True when every colour is a real mask colour (from a
    class file, a bundled table or read off RGB masks), so RGB masks can be
    mapped to indices through them. ``source`` says where the table came from:
    "classes.json", "classes.txt", "ade20k", "inferred", "binary 0/255", ...

    >>> t = ClassTable.from_names(["bg", "cat"], source="classes.txt")
    >>> len(t), t.colors, t.to_json()["classes"][1]
    (2, ((0, 0, 0), (230, 25, 75)), {'name': 'cat', 'color': [230, 25, 75]})
    """

    names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]
    colors_given: bool = False
    source: str = ""

    def __post_init__(self):
        names = tuple(str(n) for n in self.names)
        colors = tuple(tuple(int(v) for v in c) for c in self.colors)
        if len(names) != len(colors) or any(len(c) != 3 for c in colors):
            raise ValueError(f"ClassTable needs one (r, g, b) colour per name; got {len(names)} names and "
                             f"colours {colors!r}.")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "colors", colors)

    def __len__(self) -> int:
        return len(self.names)

    def as_dicts(self) -> list[dict]:
        """``[{"name": str, "color": [r, g, b]}]``, the form run directories and exported models store."""
        return [{"name": n, "color": list(c)} for n, c in zip(self.names, self.colors)]

    def to_json(self) -> dict:
        """What ``classes.json`` holds: ``{"classes": [...]}``."""
        return {"classes": self.as_dicts()}

    def complete(self, n: int) -> ClassTable:
        """Exactly ``n`` classes: the known ones first, then ``class_<i>`` in colours no kept class uses.

        >>> ClassTable.from_dicts([{"name": "a", "color": [230, 25, 75]}]).complete(3).colors
        ((230, 25, 75), (255, 225, 25), (60, 180, 75))
        """
        names, colors = list(self.names[:n]), list(self.colors[:n])
        used = set(colors)
        spare = iter(tuple(c) for c in distinct_palette(2 * n + len(colors))[n:])  # past the ones padding takes
        palette = distinct_palette(n)
        for i in range(len(names), n):
            color = tuple(palette[i])
            while color in used:
                color = next(spare)
            used.add(color)
            names.append(f"class_{i}")
            colors.append(color)
        return ClassTable(tuple(names), tuple(colors), self.colors_given, self.source)

    def index_of(self, keep, where: str = "") -> list[int]:
        """The indices of the classes named in ``keep``; DataError (prefixed by ``where``) for an unknown or
        repeated name.

        >>> ClassTable.from_names(["bg", "cat", "dog"]).index_of(["dog", "bg"])
        [2, 0]
        >>> ClassTable.from_names(["bg", "cat"], source="classes.txt").index_of(["cow"], "data")
        Traceback (most recent call last):
        segcli.errors.DataError: data: class 'cow' is not one of the 2 classes of classes.txt (bg, cat); use their names.
        """
        prefix = f"{where}: " if where else ""
        keep = list(keep)
        if not keep:
            raise DataError(f"{prefix}no classes to keep; name at least one class.")
        index = {name: i for i, name in reversed(list(enumerate(self.names)))}
        for k in keep:
            if k not in index:
                shown = ", ".join(self.names[:12]) + (", ..." if len(self) > 12 else "")
                raise DataError(f"{prefix}class '{k}' is not one of the {len(self)} classes of "
                                f"{self.source or 'the class list'} ({shown}); use their names.")
            if keep.count(k) > 1:
                raise DataError(f"{prefix}class '{k}' is named twice in the classes to keep; name each once.")
        return [index[k] for k in keep]

    def subset(self, keep, where: str = "") -> ClassTable:
        """The classes named in ``keep``, in that order (the caller maps every other class to ignore).

        >>> ClassTable.from_names(["bg", "cat", "dog"]).subset(["dog", "bg"]).names
        ('dog', 'bg')
        """
        picked = self.index_of(keep, where)
        return ClassTable(tuple(self.names[i] for i in picked), tuple(self.colors[i] for i in picked),
                          self.colors_given, self.source)

    @classmethod
    def from_names(cls, names, source: str = "") -> ClassTable:
        """Names in :func:`distinct_palette` colours (``colors_given`` False)."""
        names = tuple(str(n) for n in names)
        return cls(names, tuple(tuple(c) for c in distinct_palette(len(names))), False, source)

    @classmethod
    def from_dicts(cls, items, source: str = "") -> ClassTable:
        """A table from ``[{"name", "color"}]`` (a checkpoint's or exported model's list); empty for None or [].

        A :class:`ClassTable` is returned as it is. Other entries follow :func:`parse_classes`'s rules.
        """
        if isinstance(items, ClassTable):
            return items
        if not items:
            return cls((), (), False, source)
        return parse_classes(list(items), source or "class list")


def _color(value, where: str, what: str):
    """(r, g, b) from a JSON colour; None for a missing one; DataError for anything else."""
    if value is None:
        return None
    if (isinstance(value, (list, tuple)) and len(value) == 3
            and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in value)):
        return tuple(value)
    raise DataError(f"{where}: {what} has color {value!r}; use [r, g, b] with integers 0-255.")


def _entry(i: int, item, where: str):
    """(name, colour or None) of one class-list entry."""
    if isinstance(item, str) and item.strip():
        return item.strip(), None
    if isinstance(item, dict) and isinstance(item.get("name"), str) and item["name"].strip():
        name = item["name"].strip()
        color = item.get("color", item.get("colour"))
        return name, _color(color, where, f"class {i} ('{name}')")
    raise DataError(f"{where}: entry {i} is {item!r}; use a name or {{\"name\": ..., \"color\": [r, g, b]}}.")


def split_names(text: str, option: str = "--classes") -> list[str]:
    """The class names of a comma-separated option value, in order; :class:`UsageError` for an empty name.

    >>> split_names(" sky, road ")
    ['sky', 'road']
    >>> split_names(",disc")
    Traceback (most recent call last):
    segcli.errors.UsageError: --classes ',disc' has an empty name; give names separated by commas, e.g. sky,road.
    """
    names = [name.strip() for name in str(text).split(",")]
    if not any(names) or not all(names):
        raise UsageError(f"{option} {text!r} has an empty name; give names separated by commas, e.g. sky,road.")
    return names


def parse_classes(data, where) -> ClassTable:
    """The table a ``classes.json`` value describes; :class:`DataError` naming ``where`` when it is malformed.

    >>> parse_classes({"classes": ["a", "b"], "palette": [[1, 2, 3], [4, 5, 6]]}, "x.json").colors_given
    True
    >>> parse_classes([], "x.json")
    Traceback (most recent call last):
    segcli.errors.DataError: x.json: expected a non-empty list of class names or {"name", "color"} objects.
    """
    where = str(where)
    palette = None
    if isinstance(data, dict):
        palette = data.get("palette", data.get("colors"))
        data = data.get("classes", data.get("names"))
    if not isinstance(data, list) or not data:
        raise DataError(f"{where}: {_SHAPES}")
    entries = [_entry(i, item, where) for i, item in enumerate(data)]
    if palette is not None:
        if not isinstance(palette, list):
            raise DataError(f"{where}: palette {palette!r} is not a list; give one [r, g, b] per class.")
        if len(palette) != len(entries):
            colours = f"{len(palette)} colour{'' if len(palette) == 1 else 's'}"
            raise DataError(f"{where}: the palette has {colours} for {len(entries)} classes; give one [r, g, b] "
                            f"per class.")
        entries = [(name, color or _color(p, where, f"palette entry {i}"))
                   for i, ((name, color), p) in enumerate(zip(entries, palette))]
    defaults = distinct_palette(len(entries))
    colors = tuple(c if c is not None else tuple(defaults[i]) for i, (_, c) in enumerate(entries))
    given = all(c is not None for _, c in entries)
    source = Path(where).name if where.endswith(CLASS_FILES) else where
    return ClassTable(tuple(n for n, _ in entries), colors, given, source)


def read_class_file(folder) -> ClassTable | None:
    """The table in ``folder``'s ``classes.json`` (preferred) or ``classes.txt``; None when there is neither.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "classes.txt").write_text("background\\ncat\\n")
    >>> read_class_file(folder).names, read_class_file(folder).source
    (('background', 'cat'), 'classes.txt')
    """
    folder = Path(folder)
    for name in CLASS_FILES:
        path = folder / name
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: cannot be read ({exc}); fix it or remove it.") from None
        if name.endswith(".json"):
            try:
                data = json.loads(text)
            except ValueError as exc:
                raise DataError(f"{path}: not valid JSON ({exc}); fix it or remove it.") from None
            return parse_classes(data, path)
        names = [line.strip() for line in text.splitlines() if line.strip()]
        if not names:
            raise DataError(f"{path}: no class names; write one name per line.")
        return ClassTable.from_names(names, source=name)
    return None


@lru_cache(maxsize=None)
def dataset_classes(name: str) -> ClassTable:
    """The bundled class table of ``name`` ("ade20k" or "cityscapes")."""
    if name not in DATASETS:
        raise DataError(f"No bundled class table '{name}'; use one of {', '.join(DATASETS)}.")
    text = resources.files("segcli").joinpath("tables", f"{name}.json").read_text(encoding="utf-8")
    return parse_classes(json.loads(text), name)
