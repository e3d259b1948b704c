"""What a training loop may ask of any head: its optional abilities, each declared with a default."""

from __future__ import annotations

import torch
from torch import nn


class Head(nn.Module):
    """The contract FaceModule relies on; a head overrides only the abilities it has.

    `forward(embeddings, labels=None)` returns logits (B, num_classes), the margin applied where
    labels are given; a head with `computes_loss = True` (heads/sharded.py) returns the mean loss
    instead and sets `last_accuracy`. The defaults below make every other ability a no-op, so the
    caller never asks whether a head has it.
    """

    #: forward(embeddings, labels) returns the loss itself, not logits (then criterion must be ce)
    computes_loss = False
    #: with computes_loss: the training accuracy of the last forward's batch
    last_accuracy: torch.Tensor | None = None

    def anneal(self, step: int) -> None:
        """Set any schedule to optimizer step `step` (called before every training forward)."""

    def log_values(self) -> dict[str, float]:
        """Values worth logging during training (e.g. the annealed lambda); none by default."""
        return {}

    def setup_shard(self, root: nn.Module | None = None) -> None:
        """Place the head's share of the classes once the process group exists; nothing to place here."""

    def regularizer(self, embeddings: torch.Tensor) -> torch.Tensor | None:
        """An extra loss term added to the training loss (e.g. MagFace's); None: no extra term."""
        return None

    def head_size(self) -> dict[str, int]:
        """Number of parameters and their bytes: the cost that grows with num_classes."""
        params = list(self.parameters())
        return {
            "parameters": sum(p.numel() for p in params),
            "bytes": sum(p.numel() * p.element_size() for p in params),
        }
