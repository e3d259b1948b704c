"""Embedding networks: image (B, C, H, W) in [-1, 1] -> embedding (B, embedding_dim)."""

from marginface.backbones.iresnet import IResNet
from marginface.backbones.small import SmallFaceNet

__all__ = ["IResNet", "SmallFaceNet"]
