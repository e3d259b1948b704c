"""Samplers whose order depends on (seed, epoch) alone: a resumed run replays the uninterrupted one."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """A 32-bit seed for one epoch (of one process) of a run, mixed by numpy's SeedSequence."""
    if min(seed, epoch, rank) < 0:
        raise ValueError(f"seed, epoch and rank must be >= 0, got {seed}, {epoch}, {rank}")
    entropy = [int(seed), int(epoch)] + ([int(rank)] if rank else [])
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


class EpochShuffleSampler(Sampler[int]):
    """A new permutation of range(n) every epoch, drawn from (seed, epoch) only.

    A DataLoader's own generator carries its state from epoch to epoch, so a resumed run would
    start again from the first epoch's order; this sampler has no state but the epoch, which
    Lightning sets (`set_epoch`) before each epoch, also after a resume.
    """

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n, self.seed, self.epoch = int(n), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        return iter(torch.randperm(self.n, generator=generator).tolist())
