"""CurricularFace: ArcFace's target, hard negatives re-weighted by a running curriculum t."""

from __future__ import annotations

import torch

from marginface.heads.arcface import ArcFaceHead, cos_plus
from marginface.heads.base import ClassLinear, check_real


class CurricularFaceHead(ArcFaceHead):
    """ArcFace target s*cos(theta_y + m); hard negatives s*cos(theta_j)*(t + cos(theta_j)).

    CurricularFace https://arxiv.org/abs/2004.00288. `scale` s > 0, `margin` m in radians in
    [0, pi/2) (ArcFaceHead's target, with its treatment past pi - m), `momentum` in (0, 1].

    The one head that changes non-target logits: a negative j is hard when
    cos(theta_j) > cos(theta_y + m) (computed by the addition formula, as in the official code,
    also past pi - m), and its logit becomes s*cos(theta_j)*(t + cos(theta_j)): early in training
    (t near 0) hard negatives weigh less than in ArcFace, later (t near 1) more. Easy negatives and
    inference (no labels) keep s*cos(theta_j).

    State: the buffer `t` (starts at 0, saved in checkpoints) is updated first in each training
    forward, t <- momentum * mean_b(cos(theta_y)) + (1 - momentum) * t, without gradient, and the
    new t re-weights this batch (the official order). In eval mode t is used, not updated. Under
    DDP t is per rank, as in the official code; DDP's buffer broadcast (on by default) copies rank
    0's t to every rank before each forward, so all ranks use rank 0's running value. Not
    shardable (it needs every logit of a row).
    """

    shardable = False

    def __init__(
        self,
        embedding_dim: int,
        num_classes: int,
        scale: float = 64.0,
        margin: float = 0.5,
        momentum: float = 0.01,
    ) -> None:
        super().__init__(embedding_dim, num_classes, scale, margin)
        self.momentum = check_real("momentum", momentum, 0.0, 1.0, low_open=True, high_open=False)
        self.register_buffer("t", torch.zeros(()))

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is None:
            return super().forward(embeddings)
        self.check_inputs(embeddings, labels)
        index = labels.long().unsqueeze(1)
        logits, target, target_norm = ClassLinear.apply(
            self.project(embeddings), self.weight, index, True
        )
        # float32 at least, as the target margin: under autocast the hard/easy split and the
        # quadratic re-weighting would be done on bf16 logits otherwise
        dtype = torch.promote_types(logits.dtype, torch.float32)
        logits = logits.to(dtype)
        cos = (target.to(dtype) / self.scale).clamp(-1.0, 1.0)
        if self.training and len(cos):
            with torch.no_grad():
                self.t.copy_(self.momentum * cos.mean() + (1.0 - self.momentum) * self.t)
        bound = self.scale * cos_plus(cos, self.margin)
        # easy: cos(theta_j) <= cos(theta_y + m), and the target column (its logit is ArcFace's)
        easy = (logits <= bound).scatter_(1, index, True)
        # a copy of t: backward keeps it, and the next training forward updates the buffer
        logits = _Reweight.apply(logits, easy, self.t.to(dtype, copy=True), self.scale)
        correction = self.target_correction(target, target_norm, embeddings)
        return logits.scatter_add_(1, index, correction.to(dtype))

    def log_values(self) -> dict[str, float]:
        return {"t": float(self.t)}


class _Reweight(torch.autograd.Function):
    """l -> l * (t + l/s) where not `easy`, for logits l = s*cos: the hard negatives' s*cos*(t + cos).

    In place on l (ClassLinear's output, which nothing saved). Written out because each pass over
    the (B, C) logits costs about 5% of a softmax step on a CPU: autograd through where and two
    products allocates six (B, C) temporaries and walks seven; here there are seven passes and two
    float allocations. Saved for backward: the factor r = t + l/s (1 where easy), from which the
    slope is 2r - t on hard entries (d/dl of l*(t + l/s) = t + 2l/s) and 1 on easy ones.
    """

    @staticmethod
    def forward(ctx, logits, easy, t, scale):
        factor = torch.add(t, logits, alpha=1.0 / scale).masked_fill_(easy, 1.0)
        logits.mul_(factor)
        ctx.mark_dirty(logits)
        ctx.save_for_backward(factor, easy, t)
        return logits

    @staticmethod
    def backward(ctx, grad):
        factor, easy, t = ctx.saved_tensors
        slope = torch.add(-t, factor, alpha=2.0).masked_fill_(easy, 1.0)
        return slope.mul_(grad), None, None, None
