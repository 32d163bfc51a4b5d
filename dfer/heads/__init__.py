"""Stage 2: light heads trained on cached encoder tokens (ROI compression, temporal encoder, audio segment pooling,
fusion). `DferHeads(HeadConfig(...))` is the whole model; the submodules are one concept each. `HeadMembers` is
several seeds' heads answering as one, `LinearProbe` the linear-probe baseline behind the same batch interface,
`ZeroShot` the vision encoder's own classifier."""

from dfer.heads.fusion import FUSIONS
from dfer.heads.members import HeadMembers
from dfer.heads.model import DferHeads, HeadConfig
from dfer.heads.probe import LinearProbe
from dfer.heads.zeroshot import ZeroShot

__all__ = ["DferHeads", "FUSIONS", "HeadConfig", "HeadMembers", "LinearProbe", "ZeroShot"]
