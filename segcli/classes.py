"""Class names and colours: the bundled ADE20K and Cityscapes tables, and a
fixed palette of distinct colours for everything else.

>>> dataset_classes("cityscapes")[0]
{'name': 'road', 'color': [128, 64, 128]}
>>> distinct_palette(3)
[[0, 0, 0], [230, 25, 75], [60, 180, 75]]
"""

from __future__ import annotations

import colorsys
import json
from functools import lru_cache
from importlib import resources

# A fixed table of easily told-apart colours (Sasha Trubetskoy's list order), background black.
_DISTINCT = [
    (0, 0, 0), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
    (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128),
]


@lru_cache(maxsize=None)
def _load(dataset: str) -> dict:
    text = resources.files("segcli").joinpath("tables", f"{dataset}.json").read_text()
    return json.loads(text)


def dataset_classes(dataset: str) -> list[dict]:
    """The bundled class list of ``dataset`` ("ade20k" or "cityscapes")."""
    return [dict(c) for c in _load(dataset)["classes"]]


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


def classes_from_names(names: list[str]) -> list[dict]:
    return [{"name": n, "color": c} for n, c in zip(names, distinct_palette(len(names)))]
