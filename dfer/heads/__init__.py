"""Stage 2: light heads trained on cached encoder tokens (ROI compression, temporal encoder, audio segment pooling,
fusion). `DferHeads(HeadConfig(...))` is the whole model; the submodules are one concept each."""

from dfer.heads.fusion import FUSIONS, MODALITIES
from dfer.heads.model import DferHeads, HeadConfig

__all__ = ["DferHeads", "FUSIONS", "HeadConfig", "MODALITIES"]
