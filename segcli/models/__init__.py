"""segcli.models: SegFormer, MiTBackbone and the SegFormerB0..B5 aliases (keras-cv 0.9's API).

The names are imported on first use, so ``segcli.models.registry`` (the preset
table) stays light enough for ``segcli presets``; touching ``SegFormer`` imports Keras.
"""

from __future__ import annotations

import importlib

_HOMES = {
    "SegFormer": "segcli.models.segformer.model",
    "SegFormerB0": "segcli.models.segformer.aliases", "SegFormerB1": "segcli.models.segformer.aliases",
    "SegFormerB2": "segcli.models.segformer.aliases", "SegFormerB3": "segcli.models.segformer.aliases",
    "SegFormerB4": "segcli.models.segformer.aliases", "SegFormerB5": "segcli.models.segformer.aliases",
    "MiTBackbone": "segcli.models.mit.backbone",
    "create_model": "segcli.models.load",
}


def __getattr__(name):
    if name in _HOMES:
        from segcli.models import load  # noqa: F401  (registers the factory that from_preset builds through)

        return getattr(importlib.import_module(_HOMES[name]), name)
    if name == "segmentation":
        return importlib.import_module("segcli.models.segmentation")
    raise AttributeError(f"module 'segcli.models' has no attribute {name!r}")


__all__ = sorted([*_HOMES, "segmentation"])
