"""Large-margin softmax head (L-Softmax), with the annealed blend used to train it."""

from __future__ import annotations

import math

import torch

from marginface.heads.base import MarginHead, check_int, check_real


def chebyshev(cos: torch.Tensor, m: int) -> torch.Tensor:
    """cos(m*theta) as the Chebyshev polynomial T_m(cos(theta)): no acos, a polynomial gradient."""
    previous, current = torch.ones_like(cos), cos
    for _ in range(m - 1):
        previous, current = current, 2.0 * cos * current - previous
    return current


class LSoftmaxHead(MarginHead):
    """Multiplicative angular margin: target |W_y||x| (lam*cos(t) + psi(t)) / (1 + lam).

    L-Softmax https://arxiv.org/abs/1612.02295. psi(t) = (-1)^k cos(m t) - 2k on
    [k pi/m, (k+1) pi/m] (continuous and decreasing on [0, pi]); the other logits are
    |W_j||x|cos(t_j) = W_j.x.
    `margin` m is an integer >= 1 (m = 1 is plain softmax without bias). The blend lam starts large
    (almost plain softmax, so training can start) and is annealed by `anneal(step)` to
    lam = max(lambda_min, base * (1 + gamma*step)^(-power)).
    """

    #: logits |W_j||x|cos(t_j) = W_j.x; SphereFace sets it to take |W_j| = 1
    normalize_weight = False

    def __init__(
        self,
        embedding_dim: int,
        num_classes: int,
        margin: int = 2,
        base: float = 1000.0,
        gamma: float = 0.12,
        power: float = 1.0,
        lambda_min: float = 5.0,
    ) -> None:
        super().__init__(embedding_dim, num_classes)
        self.margin = check_int("margin", margin, 1)
        self.base = check_real("base", base, 0.0)
        self.gamma = check_real("gamma", gamma, 0.0)
        self.power = check_real("power", power, 0.0)
        self.lambda_min = check_real("lambda_min", lambda_min, 0.0)
        # theta passes j*pi/m exactly where cos(theta) falls below cos(j*pi/m): k by comparisons
        self.thresholds = [math.cos(math.pi * j / self.margin) for j in range(1, self.margin)]
        self.current_lambda = self.lambda_at(0)

    def lambda_at(self, step: int) -> float:
        """max(lambda_min, base * (1 + gamma*step)^(-power))."""
        return max(self.lambda_min, self.base * (1.0 + self.gamma * step) ** (-self.power))

    def anneal(self, step: int) -> None:
        super().anneal(step)
        self.current_lambda = self.lambda_at(step)

    def log_values(self) -> dict[str, float]:
        return {"lambda": float(self.current_lambda)}

    def psi(self, cos: torch.Tensor) -> torch.Tensor:
        """psi(theta) = (-1)^k cos(m theta) - 2k on [k pi/m, (k+1) pi/m], from cos(theta) alone."""
        if self.margin == 1:
            return cos
        k = torch.zeros_like(cos)
        for threshold in self.thresholds:
            k = k + (cos < threshold).to(cos.dtype)
        sign = 1.0 - 2.0 * torch.remainder(k, 2.0)
        return sign * chebyshev(cos, self.margin) - 2.0 * k

    def project(self, embeddings: torch.Tensor) -> torch.Tensor:
        return embeddings

    def target_radius(
        self, embeddings: torch.Tensor, target_weight_norm: torch.Tensor
    ) -> torch.Tensor:
        radius = torch.linalg.vector_norm(embeddings, dim=1, keepdim=True)
        return radius if self.normalize_weight else radius * target_weight_norm

    def target_cosine(self, cos: torch.Tensor) -> torch.Tensor:
        # (lam*cos + psi)/(1 + lam) written as cos + (psi - cos)/(1 + lam): exact at m = 1
        return cos + (self.psi(cos) - cos) / (1.0 + self.current_lambda)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, margin={self.margin}, lambda={self.current_lambda:g}"
