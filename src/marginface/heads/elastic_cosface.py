"""ElasticFace (cos): CosFace with a margin drawn per sample from a normal distribution."""

from __future__ import annotations

import torch

from marginface.heads.amsoftmax import AMSoftmaxHead
from marginface.heads.elastic_margin import ElasticMargin


class ElasticCosFaceHead(ElasticMargin, AMSoftmaxHead):
    """Target s*(cos(theta_y) - m_i), m_i ~ N(margin, sigma) per sample in training; others s*cos.

    ElasticFace https://arxiv.org/abs/2109.09416 (ElasticFace-Cos). `scale` s > 0, `margin` the
    mean in cosine units >= 0, `sigma` >= 0 its standard deviation (the paper's defaults: s = 64,
    m = 0.35, sigma = 0.05). Margins from the head's own generator started from `seed`, as
    ElasticArcFaceHead; in eval mode with labels the margin is the mean. At sigma = 0 the head is
    AMSoftmaxHead (CosFace), bit for bit. Not shardable (see ElasticArcFaceHead).
    """

    def __init__(
        self,
        embedding_dim: int,
        num_classes: int,
        scale: float = 64.0,
        margin: float = 0.35,
        sigma: float = 0.05,
        seed: int | None = None,
    ) -> None:
        super().__init__(embedding_dim, num_classes, scale, margin)
        self.setup_draws(sigma, seed)

    def sample_target_cosine(self, cos: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        margins = self.drawn_margins(cos)
        return self.target_cosine(cos) if margins is None else cos - margins
