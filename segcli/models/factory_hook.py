"""How ``from_preset`` reaches the model factory without the model classes importing it.

The factory (:mod:`segcli.models.load`) imports the model classes to build them,
so the classes cannot import the factory back without an import circle. The
factory registers its builders here when it is imported, and ``segcli.models``
imports it before it hands out a model class, so ``SegFormer.from_preset`` and
``MiTBackbone.from_preset`` always find it (keras-hub resolves its classes through
Keras's registry the same way).
"""

from __future__ import annotations

from segcli.errors import ModelError

_BUILDERS: dict = {}


def register(**builders) -> None:
    """Called by the factory: ``register(backbone=fn, segmenter=fn)``."""
    _BUILDERS.update(builders)


def build(what: str, *args, **kwargs):
    """Build a ``"backbone"`` or ``"segmenter"`` through the registered factory."""
    if what not in _BUILDERS:
        raise ModelError("from_preset needs segcli's model factory: import the model classes from segcli.models "
                         "(for example `from segcli.models import SegFormer`).")
    return _BUILDERS[what](*args, **kwargs)
