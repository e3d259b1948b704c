"""ElasticFace's shared part: a margin drawn per sample from N(margin, sigma), seeded."""

from __future__ import annotations

import torch

from marginface.heads.base import check_int, check_real


class ElasticMargin:
    """What both ElasticFace heads add to their parent: sigma and a seeded stream of margins."""

    #: each rank of a ShardedHead would draw the same margins for its own rows
    shardable = False

    def setup_draws(self, sigma: float, seed: int | None) -> None:
        """sigma >= 0 and the CPU stream of margins from `seed` (None: torch.initial_seed())."""
        self.sigma = check_real("sigma", sigma, 0.0)
        # None is the run's seed: train() seeds torch (L.seed_everything(cfg.seed)) before it
        # builds the head; a config cannot name ${seed} itself, since conf/loss files also load
        # on their own
        self.seed = seed
        start = torch.initial_seed() if seed is None else check_int("seed", seed, 0)
        # mixed, so that the margins are not the first draws the global stream makes from the
        # same seed (the weights' initialisation)
        self.generator = torch.Generator().manual_seed((start * 1_000_003 + 0xE1A5) % 2**63)

    def drawn_margins(self, like: torch.Tensor) -> torch.Tensor | None:
        """(B, 1) margins from N(margin, sigma) in training; None in eval mode or at sigma = 0."""
        if not self.training or self.sigma == 0.0:
            return None
        # drawn on the CPU in float64 from the head's own stream: the same margins on any device
        draws = torch.normal(
            self.margin, self.sigma, (len(like), 1), generator=self.generator, dtype=torch.float64
        )
        return draws.to(device=like.device, dtype=like.dtype)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, sigma={self.sigma}, seed={self.seed}"
