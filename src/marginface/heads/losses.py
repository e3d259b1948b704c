"""The classification losses on head logits, and the gradient each puts on the target logit."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

CRITERIA = ("ce", "mse")


def classification_loss(
    logits: torch.Tensor, labels: torch.Tensor, criterion: str = "ce"
) -> torch.Tensor:
    """Cross-entropy on head logits, or (criterion="mse") squared error between softmax and one-hot.

    The MSE option exists only to check the claim that squared error suits regression, not
    classification: its gradient vanishes as a wrong prediction saturates, cross-entropy's does not.
    """
    if criterion == "ce":
        return F.cross_entropy(logits.float(), labels)
    if criterion == "mse":
        probs = logits.float().softmax(dim=1)
        target = F.one_hot(labels, logits.shape[1]).to(probs.dtype)
        return (probs - target).pow(2).sum(dim=1).mean()
    raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")


def target_logit_gradient(
    probabilities: np.ndarray, num_classes: int = 10
) -> dict[str, np.ndarray]:
    """dLoss/d(target logit) against the target's predicted probability p, for CE and for MSE.

    Logits: 0 for the C-1 other classes and log(p (C-1) / (1-p)) for the target, so softmax gives
    the target exactly p. Both gradients come from autograd through the training loss
    (classification_loss above); CE's analytic value p - 1 is returned beside them.
    """
    p = torch.as_tensor(np.asarray(probabilities, dtype=np.float64))
    target_logit = torch.log(p * (num_classes - 1) / (1.0 - p))
    out: dict[str, np.ndarray] = {"p": p.numpy(), "ce_analytic": (p - 1.0).numpy()}
    for criterion in ("ce", "mse"):
        z = target_logit.clone().requires_grad_(True)
        logits = torch.cat([z[:, None], torch.zeros(len(p), num_classes - 1, dtype=p.dtype)], dim=1)
        labels = torch.zeros(len(p), dtype=torch.long)
        # classification_loss averages over the batch; times B gives each row's own gradient
        loss = classification_loss(logits.double(), labels, criterion) * len(p)
        (grad,) = torch.autograd.grad(loss, z)
        out[criterion] = grad.numpy()
    return out
