"""ElasticFace (arc): ArcFace with a margin drawn per sample from a normal distribution."""

from __future__ import annotations

import torch

from marginface.heads.arcface import ArcFaceHead, arc_target
from marginface.heads.base import check_int, check_real


def margin_stream(seed: int | None) -> torch.Generator:
    """The CPU generator of the per-sample margins, from `seed` (None: torch.initial_seed())."""
    # None is the run's seed: train() seeds torch (L.seed_everything(cfg.seed)) before it builds
    # the head; a config cannot name ${seed} itself, since conf/loss files also load on their own
    seed = torch.initial_seed() if seed is None else check_int("seed", seed, 0)
    # mixed, so that the margins are not the first draws the global stream makes from the same
    # seed (the weights' initialisation)
    return torch.Generator().manual_seed((seed * 1_000_003 + 0xE1A5) % 2**63)


def draw_margins(
    generator: torch.Generator, mean: float, sigma: float, like: torch.Tensor
) -> torch.Tensor:
    """(B, 1) margins from N(mean, sigma), on `like`'s device and dtype (B = len(like))."""
    # drawn on the CPU in float64 from the module's own stream: the same margins on every device
    draws = torch.normal(mean, sigma, (len(like), 1), generator=generator, dtype=torch.float64)
    return draws.to(device=like.device, dtype=like.dtype)


class ElasticArcFaceHead(ArcFaceHead):
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

    shardable = False

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
        self.sigma = check_real("sigma", sigma, 0.0)
        self.seed = seed
        self.generator = margin_stream(seed)

    def sample_target_cosine(self, cos: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        if not self.training or self.sigma == 0.0:
            return self.target_cosine(cos)
        return arc_target(cos, draw_margins(self.generator, self.margin, self.sigma, cos))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, sigma={self.sigma}, seed={self.seed}"
