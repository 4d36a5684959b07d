"""SegFormerB0 ... SegFormerB5: SegFormer built from the matching preset, as in keras-cv."""

from __future__ import annotations

from segcli.models.segformer.model import SegFormer


def _alias(size: int):
    preset = f"segformer_b{size}"

    def __new__(cls, num_classes, backbone=None, projection_filters=256, **kwargs):
        if backbone is not None:
            return SegFormer(backbone=backbone, num_classes=num_classes, projection_filters=projection_filters,
                             **kwargs)
        return SegFormer.from_preset(preset, num_classes=num_classes, projection_filters=projection_filters,
                                     **kwargs)

    doc = (f"SegFormer with a MiT-B{size} encoder (preset ``{preset}``).\n\n"
           f"``SegFormerB{size}(num_classes=19)`` builds the preset; passing ``backbone=`` "
           f"wraps that backbone instead. Returns a :class:`SegFormer`.")
    return type(f"SegFormerB{size}", (SegFormer,), {"__new__": __new__, "__doc__": doc, "__module__": __name__})


SegFormerB0 = _alias(0)
SegFormerB1 = _alias(1)
SegFormerB2 = _alias(2)
SegFormerB3 = _alias(3)
SegFormerB4 = _alias(4)
SegFormerB5 = _alias(5)
