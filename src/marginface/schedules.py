"""Learning-rate schedules that need the run's total step count (known only once the Trainer is set up)."""

from __future__ import annotations

import math

import torch


def warmup_cosine(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_fraction: float = 0.05,
    min_lr_ratio: float = 0.01,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over `warmup_fraction` of the steps, then cosine decay to `min_lr_ratio` x the base rate."""
    if not 0 <= warmup_fraction < 1:
        raise ValueError(f"warmup_fraction must be in [0, 1), got {warmup_fraction}")
    total = max(1, int(total_steps))
    warmup = int(round(warmup_fraction * total))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def multistep(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    milestones: tuple[float, ...] = (0.6, 0.85),
    gamma: float = 0.1,
) -> torch.optim.lr_scheduler.MultiStepLR:
    """Divide the rate by 1/gamma at the given fractions of the run (the ArcFace paper's step schedule)."""
    steps = [max(1, int(round(m * total_steps))) for m in milestones]
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, steps, gamma)
