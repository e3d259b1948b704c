"""AdaFace: a margin adapted to image quality, read from the feature norm."""

from __future__ import annotations

import math

import torch

from marginface.heads.base import MarginHead, check_real

#: the official code's clamp of the cosines and the angle, for acos' stability
EPS = 1e-3


class AdaFaceHead(MarginHead):
    """Target s*(cos(clip(theta_y - m z, eps, pi - eps)) - (m + m z)); others s*cos(theta_j).

    AdaFace https://arxiv.org/abs/2204.00964. `scale` s > 0; `margin` m in [0, pi/2) (radians in
    the angular part, cosine units in the additive part); `h` >= 0 (the share of the norm spread
    mapped into [-1, 1]); `momentum` in (0, 1]. z = clip(h (|x| - mu) / (sd + eps), -1, 1) with
    |x| the raw embedding norm clipped to [0.001, 100] and detached (z carries no gradient), and
    eps = 1e-3: a high-norm (high-quality) sample gets z near +1, an angular margin that pushes
    harder and a larger additive one. The target cosine is clamped to [-1 + eps, 1 - eps] before
    acos, as in the official code (zero gradient outside). At h = 0, z = 0 and the head is CosFace
    (AMSoftmaxHead) with margin m wherever cos(theta_y) lies inside that clamp.

    One deviation from the official code, for the contract (only target logits change): the
    official head also clamps the non-target cosines to [-1 + eps, 1 - eps]; here they stay
    s*cos(theta_j), which differs only for a non-target class within 2.6 degrees of x.

    State: buffers `norm_mean` mu (starts 20) and `norm_std` sd (starts 100), saved in
    checkpoints, updated first in each training forward with the batch's mean and unbiased std of
    the clipped norms: v <- momentum * batch + (1 - momentum) * v (a batch of one sample updates
    the mean only: it has no std). In eval mode they are used, not updated. Under DDP they are per
    rank, as in the official code; DDP's buffer broadcast (on by default) copies rank 0's to every
    rank before each forward. Not shardable (the statistics need the whole batch).
    """

    shardable = False

    def __init__(
        self,
        embedding_dim: int,
        num_classes: int,
        scale: float = 64.0,
        margin: float = 0.4,
        h: float = 0.333,
        momentum: float = 0.01,
    ) -> None:
        super().__init__(embedding_dim, num_classes, scale)
        self.margin = check_real("margin", margin, 0.0, math.pi / 2)
        self.h = check_real("h", h, 0.0)
        self.momentum = check_real("momentum", momentum, 0.0, 1.0, low_open=True, high_open=False)
        self.register_buffer("norm_mean", torch.tensor(20.0))
        self.register_buffer("norm_std", torch.tensor(100.0))

    @staticmethod
    def safe_norms(embeddings: torch.Tensor) -> torch.Tensor:
        """|x| clipped to [0.001, 100], detached, (B, 1)."""
        norm = torch.linalg.vector_norm(embeddings.detach(), dim=1, keepdim=True)
        return norm.clamp(0.001, 100.0)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is not None and self.training:
            self.check_inputs(embeddings, labels)
            self.update_statistics(embeddings)
        return super().forward(embeddings, labels)

    @torch.no_grad()
    def update_statistics(self, embeddings: torch.Tensor) -> None:
        """The running mean and std of the norms, from this batch (the official update)."""
        if len(embeddings) == 0:
            return
        norms = self.safe_norms(embeddings).to(self.norm_mean.dtype)
        keep = 1.0 - self.momentum
        self.norm_mean.copy_(norms.mean() * self.momentum + keep * self.norm_mean)
        if len(norms) > 1:
            self.norm_std.copy_(norms.std() * self.momentum + keep * self.norm_std)

    def quality(self, embeddings: torch.Tensor) -> torch.Tensor:
        """z = clip(h (|x| - mu) / (sd + eps), -1, 1), (B, 1): the margin's quality factor."""
        norms = self.safe_norms(embeddings)
        mean, std = self.norm_mean.to(norms.dtype), self.norm_std.to(norms.dtype)
        return (self.h * ((norms - mean) / (std + EPS))).clamp(-1.0, 1.0)

    def sample_target_cosine(self, cos: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        z = self.quality(embeddings)
        theta = torch.acos(cos.clamp(-1.0 + EPS, 1.0 - EPS))
        angular = torch.cos((theta - self.margin * z).clamp(EPS, math.pi - EPS))
        return angular - (self.margin + self.margin * z)

    def log_values(self) -> dict[str, float]:
        return {"norm_mean": float(self.norm_mean), "norm_std": float(self.norm_std)}

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, scale={self.scale}, margin={self.margin}, h={self.h}, "
            f"momentum={self.momentum}"
        )
