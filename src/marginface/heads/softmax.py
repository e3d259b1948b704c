"""Plain softmax classifier head: the baseline without margin."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from marginface.heads.base import MarginHead


class SoftmaxHead(MarginHead):
    """Plain softmax logits W x + b, no margin: the baseline the margin heads are compared with.

    Its two weaknesses are those named in ArcFace https://arxiv.org/abs/1801.07698: W grows with
    the number of identities, and its features separate closed-set classes without being
    discriminative for open-set matching.
    """

    def __init__(self, embedding_dim: int, num_classes: int, bias: bool = False) -> None:
        super().__init__(embedding_dim, num_classes)
        if not isinstance(bias, bool):
            raise ValueError(f"bias must be true or false, got {bias!r}")
        if bias:
            bound = 1.0 / math.sqrt(self.embedding_dim)
            self.bias = nn.Parameter(torch.empty(self.num_classes).uniform_(-bound, bound))
        else:
            self.register_parameter("bias", None)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, num_classes); labels are checked but change nothing (no margin)."""
        self.check_inputs(embeddings, labels)
        return F.linear(embeddings, self.weight, self.bias)

    def block_logits(
        self,
        embeddings: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        target: torch.Tensor | None,
    ) -> torch.Tensor:
        """W x + b of a block of classes; the target changes nothing (no margin)."""
        return F.linear(embeddings, weight, bias)
