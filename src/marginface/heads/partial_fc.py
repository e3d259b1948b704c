"""Class sampling for very many classes: every positive centre of the batch, a random share of the rest.

Partial FC, An et al. https://arxiv.org/abs/2010.05222: the softmax over a random subset of the
negative class centres trains as well as the full softmax while the head's work shrinks with the subset.
"""

from __future__ import annotations

import math

import torch


def sample_classes(
    positives: torch.Tensor,
    num_classes: int,
    rate: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Sorted indices of the classes kept for one step, out of range(num_classes).

    `positives`: class indices present in the batch (repeats allowed), all kept. Of the other
    classes, floor(rate * count + 0.5) are drawn uniformly without replacement (at least one class is
    kept in all). With every class kept the result is range(num_classes), in order.
    """
    device = positives.device
    is_positive = torch.zeros(num_classes, dtype=torch.bool, device=device)
    is_positive[positives] = True
    negatives = (~is_positive).nonzero().squeeze(1)
    keep = math.floor(rate * len(negatives) + 0.5)
    if not is_positive.any():
        keep = max(keep, 1)  # an empty softmax over this block would have no normaliser
    kept = is_positive
    if keep < len(negatives):
        order = torch.randperm(len(negatives), device=device, generator=generator)
        kept[negatives[order[:keep]]] = True
    else:
        kept.fill_(True)
    # a mask read back in order: sorted indices without sorting
    return kept.nonzero().squeeze(1)


def remap_labels(labels: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """Position of each label (which must be kept) in the sorted `kept` indices."""
    return torch.searchsorted(kept, labels)
