"""segcli: SegFormer semantic segmentation from the command line.

The top-level names are lazy, so ``import segcli`` does not import TensorFlow
(``tests/cli/test_presets_cmd.py`` checks that in a fresh process); touching a model name imports it:

>>> import segcli
>>> segcli.SegFormer.__name__, segcli.SegFormer.__module__
('SegFormer', 'segcli.models.segformer.model')
"""

from __future__ import annotations

from segcli.tf_allocator import prefer_bfc_allocator

__version__ = "0.2.0"

prefer_bfc_allocator()  # before anything imports TensorFlow; see segcli/tf_allocator.py

_LAZY = {"SegFormer", "MiTBackbone", "SegFormerB0", "SegFormerB1", "SegFormerB2", "SegFormerB3", "SegFormerB4",
         "SegFormerB5", "create_model"}


def __getattr__(name):
    if name in _LAZY:
        from segcli import models

        return getattr(models, name)
    if name == "models":
        import importlib

        return importlib.import_module("segcli.models")
    raise AttributeError(f"module 'segcli' has no attribute {name!r}")


__all__ = sorted(_LAZY)
