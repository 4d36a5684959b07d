"""Label maps: raw mask values -> class ids, read from a JSON object file, or the one built in.

Cityscapes' ``*_labelIds.png`` to its 19 train ids, for example, is
``{"7": 0, "8": 1, "11": 2, ...}``; every mask value the map does not name
becomes 255 (ignore). :func:`segcli.data.folder_dataset.discover` applies it.

:data:`REDUCE_ZERO_LABEL` names mmsegmentation's ``reduce_zero_label``, for datasets whose
value 0 means "not labelled" (ADE20K, LoveDA, ISPRS Potsdam and Vaihingen as mmsegmentation
prepares them): 0 becomes 255 (ignore) and 1..255 become classes 0..254, 255 staying ignore.

>>> m = reduce_zero_label_map()
>>> m[0], m[1], m[150], m[255]
(255, 0, 149, 255)

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "map.json"
>>> _ = path.write_text('{"7": 0, "8": 1, "0": 255}')
>>> read_label_map(path)
{7: 0, 8: 1, 0: 255}
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from segcli.errors import DataError

IGNORE_INDEX = 255
REDUCE_ZERO_LABEL = "reduce_zero_label"  # the built-in map's name, given where a label map file would be
_EXAMPLE = '{"7": 0, "8": 1}'


def reduce_zero_label_map() -> dict:
    """mmsegmentation's ``reduce_zero_label`` as a label map: 0 -> 255, v -> v - 1 for 1..254, 255 -> 255."""
    return {0: IGNORE_INDEX, **{v: v - 1 for v in range(1, IGNORE_INDEX)}, IGNORE_INDEX: IGNORE_INDEX}


def is_reduce_zero_label(label_map) -> bool:
    """Whether ``label_map`` (a path, a name or a dict) names the built-in :data:`REDUCE_ZERO_LABEL`."""
    return isinstance(label_map, (str, Path)) and str(label_map) == REDUCE_ZERO_LABEL


def read_label_map(path) -> dict:
    """The label map in the JSON file ``path``: ``{raw mask value: class id}`` (``{"7": 0, "8": 1}``); the
    built-in map for ``path`` = :data:`REDUCE_ZERO_LABEL`.

    Keys are mask values 0-255, values class ids 0-254 or 255 (ignore); mask
    values the map does not name become 255. DataError naming the file otherwise.
    """
    if is_reduce_zero_label(path):
        return reduce_zero_label_map()
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: no such label map file; give a JSON object of mask value -> class id, such as "
                        f"{_EXAMPLE}, or {REDUCE_ZERO_LABEL}.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: the label map cannot be read ({exc}); fix it or give another file.") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise DataError(f"{path}: not valid JSON ({exc}); write a JSON object such as {_EXAMPLE}.") from None
    return check_label_map(data, path)


def check_label_map(data, where) -> dict:
    """``data`` as ``{int mask value: int class id}``; DataError naming ``where`` when it is not a valid label map.

    >>> check_label_map({"7": 0, 8: 255, "26": 1}, "m.json")
    {7: 0, 8: 255, 26: 1}
    >>> check_label_map({"7": 300}, "m.json")
    Traceback (most recent call last):
    segcli.errors.DataError: m.json: value 300 of key '7' is not a class id; use a whole number 0-254, or 255 for ignore.
    """
    if not isinstance(data, dict) or not data:
        raise DataError(f"{where}: expected a non-empty JSON object of mask value -> class id, such as "
                        f"{_EXAMPLE}.")
    out, keys = {}, {}
    for key, value in data.items():
        raw = key if isinstance(key, int) and not isinstance(key, bool) else None
        if isinstance(key, str) and re.fullmatch(r"\s*\d+\s*", key):
            raw = int(key)
        if raw is None or not 0 <= raw <= 255:
            raise DataError(f"{where}: key {key!r} is not a mask value; keys are whole numbers 0-255.")
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= IGNORE_INDEX:
            raise DataError(f"{where}: value {value!r} of key {key!r} is not a class id; use a whole number 0-254, "
                            f"or 255 for ignore.")
        if raw in out:
            raise DataError(f"{where}: mask value {raw} is mapped twice ({keys[raw]!r} and {key!r}); keep one.")
        out[raw], keys[raw] = value, key
    if all(v == IGNORE_INDEX for v in out.values()):
        raise DataError(f"{where}: maps every value to 255 (ignore); map at least one value to a class id.")
    return out
