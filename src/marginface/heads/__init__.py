"""Classification heads: plain softmax and the margin heads, one class per file, one shared base."""

from marginface.heads.adacos import AdaCosHead
from marginface.heads.adaface import AdaFaceHead
from marginface.heads.amsoftmax import AMSoftmaxHead
from marginface.heads.arcface import ArcFaceHead
from marginface.heads.base import MarginHead
from marginface.heads.combined import CombinedMarginHead
from marginface.heads.curricularface import CurricularFaceHead
from marginface.heads.elastic_arcface import ElasticArcFaceHead
from marginface.heads.elastic_cosface import ElasticCosFaceHead
from marginface.heads.lsoftmax import LSoftmaxHead
from marginface.heads.magface import MagFaceHead
from marginface.heads.softmax import SoftmaxHead
from marginface.heads.sphereface import SphereFaceHead
from marginface.heads.subcenter_arcface import SubCenterArcFaceHead

__all__ = [
    "AMSoftmaxHead",
    "AdaCosHead",
    "AdaFaceHead",
    "ArcFaceHead",
    "CombinedMarginHead",
    "CurricularFaceHead",
    "ElasticArcFaceHead",
    "ElasticCosFaceHead",
    "LSoftmaxHead",
    "MagFaceHead",
    "MarginHead",
    "SoftmaxHead",
    "SphereFaceHead",
    "SubCenterArcFaceHead",
]
