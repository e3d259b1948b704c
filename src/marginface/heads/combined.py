"""Combined margin head: multiplicative, additive angular and additive cosine margins at once."""

from __future__ import annotations

import math

import torch

from marginface.heads.arcface import cos_plus, sine
from marginface.heads.base import MarginHead, check_real


class CombinedMarginHead(MarginHead):
    """Combined margin: target logit s*(cos(m1*theta_y + m2) - m3), others s*cos(theta_j).

    Insightface's combined form, from ArcFace https://arxiv.org/abs/1801.07698: (m1, m2, m3) =
    (1, m, 0) is ArcFace, (1, 0, m) CosFace, (m, 0, 0) a SphereFace-like multiplicative margin.
    `scale` s > 0, `m1` > 0, `m2` in radians in [0, pi/2), `m3` >= 0 in cosine units.

    Numerics, as in ArcFaceHead. With m1 = 1 the angle is added by the addition formula (no acos,
    bit-exact at m2 = 0); otherwise theta = atan2(sin(theta), cos(theta)) with ArcFaceHead's
    floored sine, so the gradient stays finite at cos = +-1. Past t* = (pi - m2)/m1, where
    m1*theta + m2 passes pi and the cosine would turn back up, the target is cos(theta) - m3 - k
    with the constant k = 1 + cos(t*) + (m2*sin(m2) + cos(m2) - 1): the target keeps decreasing in
    theta and steps down at t* by ArcFace's step; with m1 = 1, k = m2*sin(m2) and this is
    ArcFaceHead. The margin arithmetic runs in float32 (or float64) even under bf16/fp16 autocast.
    """

    def __init__(
        self,
        embedding_dim: int,
        num_classes: int,
        scale: float = 32.0,
        m1: float = 1.0,
        m2: float = 0.3,
        m3: float = 0.2,
    ) -> None:
        super().__init__(embedding_dim, num_classes, scale)
        self.m1 = check_real("m1", m1, 0.0, low_open=True)
        self.m2 = check_real("m2", m2, 0.0, math.pi / 2)
        self.m3 = check_real("m3", m3, 0.0)
        turn = (math.pi - self.m2) / self.m1
        # None: m1*theta + m2 stays below pi for every theta in [0, pi], nothing to guard
        self.threshold = math.cos(turn) if turn < math.pi else None
        arcface_step = self.m2 * math.sin(self.m2) + math.cos(self.m2) - 1.0
        self.shift = 1.0 + math.cos(turn) + arcface_step

    def target_cosine(self, cos: torch.Tensor) -> torch.Tensor:
        if self.m1 == 1.0:
            inside = cos_plus(cos, self.m2)
        else:
            # atan2(sin, cos) rather than acos(cos): the same angle, but a finite gradient at
            # cos = +-1 (acos' is infinite there) without nudging cos away from +-1
            inside = torch.cos(self.m1 * torch.atan2(sine(cos), cos) + self.m2)
        if self.threshold is not None:
            inside = torch.where(cos >= self.threshold, inside, cos - self.shift)
        return inside - self.m3

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, scale={self.scale}, m1={self.m1}, m2={self.m2}, m3={self.m3}"
        )
