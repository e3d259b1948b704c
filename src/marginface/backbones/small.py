"""SmallFaceNet: the CPU-sized default embedding CNN (BN + PReLU blocks, BN-dropout-FC-BN embedding)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from marginface.backbones.prelu import PReLU


def conv_bn_prelu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        PReLU(cout),
    )


class EmbeddingOutput(nn.Module):
    """BN -> dropout -> flatten -> FC -> BN: the embedding layer of the ArcFace paper ("option E")."""

    def __init__(
        self, channels: int, spatial: int, embedding_dim: int, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels * spatial, embedding_dim)
        self.features = nn.BatchNorm1d(embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(self.fc(self.dropout(self.bn(x)).flatten(1)))


class SmallFaceNet(nn.Module):
    """A 4-stage CNN for small grayscale faces (default 56x48): each stage halves the resolution.

    Stage k: a stride-2 conv-BN-PReLU then `depth` conv-BN-PReLU at `widths[k]` channels (residual
    when `residual`). pooling="flatten" keeps the spatial layout of the last feature map (for well
    aligned faces); "avg" pools it globally (tolerant to the pose and framing changes of loosely
    aligned sets such as ORL).
    """

    def __init__(
        self,
        in_channels: int = 1,
        input_size: Sequence[int] = (56, 48),
        widths: Sequence[int] = (32, 64, 128, 256),
        depth: int = 1,
        embedding_dim: int = 128,
        dropout: float = 0.0,
        residual: bool = True,
        pooling: str = "flatten",
    ) -> None:
        super().__init__()
        if embedding_dim < 1:
            raise ValueError(f"embedding_dim must be >= 1, got {embedding_dim}")
        self.embedding_dim = int(embedding_dim)
        self.residual = residual
        self.stem = conv_bn_prelu(in_channels, widths[0])
        self.down = nn.ModuleList()
        self.blocks = nn.ModuleList()
        cin = widths[0]
        h, w = int(input_size[0]), int(input_size[1])
        for width in widths:
            self.down.append(conv_bn_prelu(cin, width, stride=2))
            self.blocks.append(nn.Sequential(*[conv_bn_prelu(width, width) for _ in range(depth)]))
            cin = width
            h, w = (h + 1) // 2, (w + 1) // 2
        if pooling not in ("flatten", "avg"):
            raise ValueError(f"pooling must be 'flatten' or 'avg', got {pooling!r}")
        self.pool = nn.AdaptiveAvgPool2d(1) if pooling == "avg" else nn.Identity()
        self.output = EmbeddingOutput(cin, 1 if pooling == "avg" else h * w, embedding_dim, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for down, block in zip(self.down, self.blocks, strict=True):
            x = down(x)
            x = x + block(x) if self.residual else block(x)
        return self.output(self.pool(x))
