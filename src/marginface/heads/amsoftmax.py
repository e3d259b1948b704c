"""Additive cosine margin head (AM-Softmax, CosFace)."""

from __future__ import annotations

import torch

from marginface.heads.base import MarginHead, check_real


class AMSoftmaxHead(MarginHead):
    """Additive cosine margin: target logit s*(cos(theta_y) - m), others s*cos(theta_j).

    AM-Softmax https://arxiv.org/abs/1801.05599; CosFace https://arxiv.org/abs/1801.09414 is the
    same head. `scale` s > 0; `margin` m >= 0 in cosine units (not radians).
    """

    def __init__(
        self, embedding_dim: int, num_classes: int, scale: float = 32.0, margin: float = 0.35
    ) -> None:
        super().__init__(embedding_dim, num_classes, scale)
        self.margin = check_real("margin", margin, 0.0)

    def target_cosine(self, cos: torch.Tensor) -> torch.Tensor:
        return cos - self.margin

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, scale={self.scale}, margin={self.margin}"
