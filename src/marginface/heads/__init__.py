"""Classification heads: plain softmax and the margin heads, one class per file, one shared base."""

from marginface.heads.amsoftmax import AMSoftmaxHead
from marginface.heads.arcface import ArcFaceHead
from marginface.heads.base import MarginHead
from marginface.heads.combined import CombinedMarginHead
from marginface.heads.lsoftmax import LSoftmaxHead
from marginface.heads.softmax import SoftmaxHead
from marginface.heads.sphereface import SphereFaceHead

__all__ = [
    "AMSoftmaxHead",
    "ArcFaceHead",
    "CombinedMarginHead",
    "LSoftmaxHead",
    "MarginHead",
    "SoftmaxHead",
    "SphereFaceHead",
]
