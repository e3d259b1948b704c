"""MagFace: an ArcFace margin that grows with the feature norm, plus a norm regularizer."""

from __future__ import annotations

import math

import torch

from marginface.heads.arcface import arc_target
from marginface.heads.base import MarginHead, check_real


class MagFaceHead(MarginHead):
    """Target s*cos(theta_y + m(a)), a = clamp(|x|, l_a, u_a), m linear in a; others s*cos(theta_j).

    MagFace https://arxiv.org/abs/2103.06627. `scale` s > 0; norms `lower_norm` l_a > 0 <
    `upper_norm` u_a (units of |x|, the backbone's raw embedding norm); margins `lower_margin` l_m
    and `upper_margin` u_m in radians in [0, pi/2): m(a) = l_m + (u_m - l_m)(a - l_a)/(u_a - l_a),
    from l_m at l_a to u_m at u_a. The target is ArcFaceHead's with the per-sample m(a) (the same
    treatment past pi - m(a), as the official code). m(a) is differentiable in |x| inside
    [l_a, u_a], as in the official code (clamped outside: zero gradient there).

    `regularizer(x)` = lambda_g * mean_b(a/u_a^2 + 1/a), the paper's g(a) that rewards larger norms
    for easier samples; FaceModule adds it to the loss. Defaults are the official ones. With
    l_m = u_m = m and lambda_g = 0 the head is ArcFaceHead with margin m.
    """

    def __init__(
        self,
        embedding_dim: int,
        num_classes: int,
        scale: float = 64.0,
        lower_norm: float = 10.0,
        upper_norm: float = 110.0,
        lower_margin: float = 0.45,
        upper_margin: float = 0.8,
        lambda_g: float = 35.0,
    ) -> None:
        super().__init__(embedding_dim, num_classes, scale)
        self.lower_norm = check_real("lower_norm", lower_norm, 0.0, low_open=True)
        self.upper_norm = check_real("upper_norm", upper_norm, 0.0, low_open=True)
        if self.lower_norm >= self.upper_norm:
            raise ValueError(
                f"lower_norm must be below upper_norm (the norm range [l_a, u_a] where the margin "
                f"grows), got lower_norm={lower_norm!r} >= upper_norm={upper_norm!r}"
            )
        self.lower_margin = check_real("lower_margin", lower_margin, 0.0, math.pi / 2)
        self.upper_margin = check_real("upper_margin", upper_margin, 0.0, math.pi / 2)
        self.lambda_g = check_real("lambda_g", lambda_g, 0.0)

    def clamped_norm(self, embeddings: torch.Tensor) -> torch.Tensor:
        """a = |x| clamped to [lower_norm, upper_norm], (B, 1)."""
        norm = torch.linalg.vector_norm(embeddings, dim=1, keepdim=True)
        return norm.clamp(self.lower_norm, self.upper_norm)

    def margin_of(self, embeddings: torch.Tensor) -> torch.Tensor:
        """m(a) in radians, (B, 1)."""
        slope = (self.upper_margin - self.lower_margin) / (self.upper_norm - self.lower_norm)
        return slope * (self.clamped_norm(embeddings) - self.lower_norm) + self.lower_margin

    def sample_target_cosine(self, cos: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        return arc_target(cos, self.margin_of(embeddings))

    def regularizer(self, embeddings: torch.Tensor) -> torch.Tensor:
        """lambda_g * mean(a / u_a^2 + 1 / a): the paper's g(a), smallest at a = u_a."""
        dtype = torch.promote_types(embeddings.dtype, torch.float32)
        a = self.clamped_norm(embeddings.to(dtype))
        return self.lambda_g * (a / self.upper_norm**2 + 1.0 / a).mean()

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, scale={self.scale}, norms=[{self.lower_norm}, "
            f"{self.upper_norm}], margins=[{self.lower_margin}, {self.upper_margin}], "
            f"lambda_g={self.lambda_g}"
        )
