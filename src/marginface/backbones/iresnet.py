"""IResNet: the improved residual network of ArcFace (arXiv:1801.07698), for 112x112 RGB faces on GPUs."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from marginface.backbones.prelu import PReLU
from marginface.backbones.small import EmbeddingOutput

LAYERS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 14, 3), 100: (3, 13, 30, 3)}


class IBasicBlock(nn.Module):
    """BN -> conv3x3 -> BN -> PReLU -> conv3x3(stride) -> BN, plus a (projected) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(cin),
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            PReLU(cout),
            nn.Conv2d(cout, cout, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.shortcut = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


class IResNet(nn.Module):
    """IResNet-{18,34,50,100}: four stages of IBasicBlocks at 64/128/256/512 channels, stride 16 overall."""

    def __init__(
        self,
        num_layers: int = 50,
        in_channels: int = 3,
        input_size: Sequence[int] = (112, 112),
        embedding_dim: int = 512,
        dropout: float = 0.0,
        widths: Sequence[int] = (64, 128, 256, 512),
    ) -> None:
        super().__init__()
        if num_layers not in LAYERS:
            raise ValueError(f"num_layers must be one of {sorted(LAYERS)}, got {num_layers}")
        self.embedding_dim = int(embedding_dim)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            PReLU(widths[0]),
        )
        stages, cin = [], widths[0]
        h, w = int(input_size[0]), int(input_size[1])
        for width, blocks in zip(widths, LAYERS[num_layers], strict=True):
            stage = [IBasicBlock(cin, width, stride=2)]
            stage += [IBasicBlock(width, width, stride=1) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*stage))
            cin = width
            h, w = (h + 1) // 2, (w + 1) // 2
        self.stages = nn.Sequential(*stages)
        self.output = EmbeddingOutput(cin, h * w, embedding_dim, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.stages(self.stem(x)))
