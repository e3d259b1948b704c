"""ElasticFace (arc): ArcFace with a margin drawn per sample from a normal distribution."""

from __future__ import annotations

import torch

from marginface.heads.arcface import ArcFaceHead, arc_target
from marginface.heads.elastic_margin import ElasticMargin


class ElasticArcFaceHead(ElasticMargin, ArcFaceHead):
    """Target s*cos(theta_y + m_i), m_i ~ N(margin, sigma) per sample in training; others s*cos.

    ElasticFace https://arxiv.org/abs/2109.09416 (ElasticFace-Arc). `scale` s > 0, `margin` the
    mean in radians in [0, pi/2), `sigma` >= 0 its standard deviation (the paper's defaults:
    s = 64, m = 0.5, sigma = 0.05). The margins come from the head's own generator, started from
    `seed` (None, the default: the run's seed, torch.initial_seed()), so a run is reproducible;
    the stream is not saved in checkpoints (a resumed run draws from the seed again). In eval mode
    with labels the margin is the mean. At sigma = 0 the head is ArcFaceHead, bit for bit.

    One deviation from the official code: past theta_y = pi - m_i the target is ArcFaceHead's
    cos(theta) - m_i sin(m_i), where the official cos(theta + m_i) turns back up and rewards a
    worse angle (it matters only for targets within m_i of the opposite direction). Not shardable
    (each rank would draw the same margins for its own rows).
    """

    def __init__(
        self,
        embedding_dim: int,
        num_classes: int,
        scale: float = 64.0,
        margin: float = 0.5,
        sigma: float = 0.05,
        seed: int | None = None,
    ) -> None:
        super().__init__(embedding_dim, num_classes, scale, margin)
        self.setup_draws(sigma, seed)

    def sample_target_cosine(self, cos: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        margins = self.drawn_margins(cos)
        return self.target_cosine(cos) if margins is None else arc_target(cos, margins)
