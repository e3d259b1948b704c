"""Angular softmax head (SphereFace, A-Softmax)."""

from __future__ import annotations

from marginface.heads.lsoftmax import LSoftmaxHead


class SphereFaceHead(LSoftmaxHead):
    """A-Softmax: L-Softmax with unit-norm class weights, logits |x|cos(theta_j).

    SphereFace https://arxiv.org/abs/1704.08063. Target logit
    (lam*|x|cos(t) + |x|psi(t)) / (1 + lam) with the same integer `margin`, psi and annealing as
    LSoftmaxHead; the paper uses margin 4.
    """

    normalize_weight = True

    def __init__(
        self,
        embedding_dim: int,
        num_classes: int,
        margin: int = 4,
        base: float = 1000.0,
        gamma: float = 0.12,
        power: float = 1.0,
        lambda_min: float = 5.0,
    ) -> None:
        super().__init__(embedding_dim, num_classes, margin, base, gamma, power, lambda_min)
