"""The preset registry: every architecture and checkpoint segcli knows, from each model family.

A family is a folder under ``segcli/models/`` whose ``presets.py`` gives ``rows()``
(pure data, no Keras) and whose ``params.py`` counts parameters. Adding a family
is that folder plus one entry in :data:`FAMILIES`. Nothing here imports Keras, so
``segcli presets`` and ``segcli --help`` answer without TensorFlow.

>>> get_preset("mit_b0")["arch"]["hidden_sizes"]
(32, 64, 160, 256)
>>> get_preset("segformer_b2_ade20k_512")["num_classes"], preset_params(get_preset("mit_b0"))
(150, 3319392)
"""

from __future__ import annotations

import difflib

from segcli.errors import PresetError
from segcli.models.mit import params as mit_params
from segcli.models.mit import presets as mit_presets
from segcli.models.mit.presets import ARCHITECTURES, NVIDIA_LICENCE, NVIDIA_LICENCE_NOTE, SEED_MIT_ROW_CLASSES  # noqa: F401
from segcli.models.segformer import params as segformer_params
from segcli.models.segformer import presets as segformer_presets
from segcli.models.segformer.presets import SEGMENTER_ROW_CLASSES

#: The families' preset tables, in the order `segcli presets` lists them.
FAMILIES = (mit_presets, segformer_presets)
#: Encoder parameter count by backbone class (the row's ``backbone_class``), computed without Keras.
ENCODER_PARAMS = {mit_presets.BACKBONE_CLASS: mit_params.encoder_params}


def _table() -> dict[str, dict]:
    rows = [row for family in FAMILIES for row in family.rows()]
    rows.sort(key=lambda row: row["name"].endswith("_test"))  # tiny test variants last; stable otherwise
    table: dict[str, dict] = {}
    for row in rows:
        if row["name"] in table:
            raise ValueError(f"preset {row['name']!r} is registered twice")
        table[row["name"]] = row
    return table


PRESETS: dict[str, dict] = _table()


def preset_names() -> list[str]:
    return list(PRESETS)


def presets_of(model: str, with_weights: bool = False) -> dict[str, dict]:
    """The presets that build a ``model`` ("backbone" or "segmenter"), by name; with ``with_weights``, only those
    with weights to fetch (keras-cv's ``presets`` and ``presets_with_weights``).

    >>> list(presets_of("backbone", with_weights=True))[:2], presets_of("backbone")["mit_b0"]["arch"]["depths"]
    (['mit_b0_imagenet', 'mit_b1_imagenet'], (2, 2, 2, 2))
    """
    return {name: dict(row) for name, row in PRESETS.items()
            if row["model"] == model and (has_weights(row) or not with_weights)}


class _ClassProperty:
    """A read-only property of the class itself: ``SegFormer.presets``."""

    def __init__(self, fget):
        self.fget = fget
        self.__doc__ = fget.__doc__

    def __get__(self, instance, owner):
        return self.fget(owner)


class PresetListing:
    """keras-cv's ``presets`` and ``presets_with_weights`` for a model class whose presets build ``preset_model``."""

    preset_model = ""

    @_ClassProperty
    def presets(cls):
        """This class's presets, by name (``segcli presets`` lists them with their sizes)."""
        return presets_of(cls.preset_model)

    @_ClassProperty
    def presets_with_weights(cls):
        """This class's presets that have pretrained weights, by name."""
        return presets_of(cls.preset_model, with_weights=True)


def get_preset(name: str) -> dict:
    """Return the preset ``name``; an unknown name fails with the close matches."""
    try:
        return PRESETS[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), PRESETS, n=4, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise PresetError(
            f"Unknown preset '{name}'.{hint} Run `segcli presets` to list all {len(PRESETS)} presets."
        ) from None


def has_weights(preset: dict) -> bool:
    return "source" in preset


def weights_entry_name(preset: dict) -> str:
    """The cache entry that holds this preset's weights (shared where the source is)."""
    return preset.get("weights_from", preset["name"])


def preset_params(preset: dict, num_classes: int | None = None) -> int:
    """Parameters of the model a preset builds (segmenters at their class count, else the seed's 19)."""
    encoder = ENCODER_PARAMS[preset["backbone_class"]](**preset["arch"])
    if preset["model"] == "backbone":
        return encoder
    classes = num_classes or preset.get("num_classes") or SEGMENTER_ROW_CLASSES
    return encoder + segformer_params.head_params(preset["arch"]["hidden_sizes"], classes,
                                                  preset.get("projection_filters", 256))
