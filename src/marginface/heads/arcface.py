"""Additive angular margin head (ArcFace)."""

from __future__ import annotations

import math

import torch

from marginface.heads.base import MarginHead, check_int, check_real


def sine(cos: torch.Tensor) -> torch.Tensor:
    """sin(theta) from cos(theta) for theta in [0, pi], with a finite gradient at cos = +-1."""
    # the true derivative -cos/sin is infinite at sin = 0; flooring 1 - cos^2 at the smallest
    # normal number zeroes the gradient there instead, and only there: for |cos| < 1 rounding
    # never makes 1 - cos^2 smaller than about eps, so values elsewhere are untouched
    return torch.sqrt((1.0 - cos * cos).clamp_min(torch.finfo(cos.dtype).tiny))


def cos_plus(cos: torch.Tensor, margin: float) -> torch.Tensor:
    """cos(theta + margin) from cos(theta), by the addition formula (no acos)."""
    # margin 0 multiplies by exactly 1 and 0, so the no-margin cosine comes back bit for bit
    return cos * math.cos(margin) - sine(cos) * math.sin(margin)


def arc_target(cos: torch.Tensor, margin: torch.Tensor) -> torch.Tensor:
    """ArcFaceHead's target cosine for a margin per sample (tensor, radians, broadcast with cos)."""
    # the same two pieces as ArcFaceHead.target_cosine: cos(theta + m) up to theta = pi - m, then
    # cos(theta) - m*sin(m); theta > pi - m <=> cos(theta) < -cos(m), and a margin <= 0 never
    # carries theta past pi
    sin_m = torch.sin(margin)
    plus = cos * torch.cos(margin) - sine(cos) * sin_m
    beyond = (cos < -torch.cos(margin)) & (margin > 0)
    return torch.where(beyond, cos - margin * sin_m, plus)


class ArcFaceHead(MarginHead):
    """Additive angular margin: target logit s*cos(theta_y + m), others s*cos(theta_j).

    ArcFace https://arxiv.org/abs/1801.07698. `scale` s > 0; `margin` m in radians, [0, pi/2).

    Numerics. cos(theta + m) is computed as cos(theta)cos(m) - sin(theta)sin(m) with
    sin(theta) = sqrt(max(1 - cos^2, tiny)), so gradients stay finite at cos = +-1 and no acos is
    needed. Where theta > pi - m, cos(theta + m) would turn back up (theta + m passes pi) and reward
    a worse angle; there the target logit is s*(cos(theta) - m*sin(m)) instead (insightface's
    treatment with easy_margin off), which keeps it decreasing in theta: at the threshold it steps
    down from -s to -s*(cos(m) + m*sin(m)), never up. The margin arithmetic runs in float32 (or
    float64) even under bf16/fp16 autocast.

    `warmup_steps` > 0 ramps the margin linearly from 0 to `margin` over that many optimizer steps
    (set by `anneal`): on small data sets the full margin from step 0 can keep the target logit
    so low that training stalls (docs/recipe.md).
    """

    def __init__(
        self,
        embedding_dim: int,
        num_classes: int,
        scale: float = 32.0,
        margin: float = 0.5,
        warmup_steps: int = 0,
    ) -> None:
        super().__init__(embedding_dim, num_classes, scale)
        self.full_margin = check_real("margin", margin, 0.0, math.pi / 2)
        self.warmup_steps = check_int("warmup_steps", warmup_steps, 0)
        self.set_margin(self.full_margin)

    def set_margin(self, margin: float) -> None:
        self.margin = margin
        # theta > pi - m  <=>  cos(theta) < cos(pi - m)
        self.threshold = math.cos(math.pi - self.margin)

    def anneal(self, step: int) -> None:
        super().anneal(step)
        if self.warmup_steps:
            self.set_margin(self.full_margin * min(1.0, step / self.warmup_steps))

    def log_values(self) -> dict[str, float]:
        return {"margin": self.margin} if self.warmup_steps else {}

    def target_cosine(self, cos: torch.Tensor) -> torch.Tensor:
        beyond = cos - self.margin * math.sin(self.margin)
        return torch.where(cos >= self.threshold, cos_plus(cos, self.margin), beyond)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, scale={self.scale}, margin={self.margin}"
