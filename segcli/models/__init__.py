"""segcli.models: SegFormer, MiTBackbone and the SegFormerB0..B5 aliases (keras-cv 0.9's API).

Importing this package imports Keras; ``segcli`` itself stays light.
"""

from segcli.models import segmentation
from segcli.models.aliases import SegFormerB0, SegFormerB1, SegFormerB2, SegFormerB3, SegFormerB4, SegFormerB5
from segcli.models.factory import create_model
from segcli.models.mit_backbone import MiTBackbone
from segcli.models.segformer import SegFormer

__all__ = ["MiTBackbone", "SegFormer", "SegFormerB0", "SegFormerB1", "SegFormerB2", "SegFormerB3", "SegFormerB4",
           "SegFormerB5", "create_model", "segmentation"]
