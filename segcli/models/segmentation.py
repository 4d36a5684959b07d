"""``segcli.models.segmentation.SegFormer``, the path keras-cv used."""

from segcli.models.segformer.model import SegFormer

__all__ = ["SegFormer"]
