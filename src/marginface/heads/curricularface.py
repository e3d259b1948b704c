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
        logits = _Reweight.apply(
            logits, bound, index, target.to(dtype), self.t.to(dtype), self.scale
        )
        correction = self.target_correction(target, target_norm, embeddings)
        return logits.scatter_add_(1, index, correction.to(dtype))

    def log_values(self) -> dict[str, float]:
        return {"t": float(self.t)}


#: (B, C) entries per block of the re-weighting: its few (rows, C) buffers stay in a core's cache
REWEIGHT_BLOCK = 1 << 17


class _Reweight(torch.autograd.Function):
    """l -> l * (t + l/s) where l > bound (hard), l elsewhere: the hard negatives' s*cos*(t + cos).

    For logits l = s*cos, `bound` (B, 1) = s*cos(theta_y + m); the target column (`index`, whose
    logit `target` is ArcFace's to set) is never hard. In place on l (ClassLinear's output, which
    nothing saved). Written out because on a CPU each pass over the (B, C) logits costs 2-4% of a
    softmax step (100 MB at B=256, C=100,000: memory bound), and masks cost more: masked_fill and
    where on a bool mask ran at a quarter of a plain pass's speed (machine D: avx2 avx512f, 2 cores). Here the forward
    reads and writes l once and writes the slope once; the rest happens a block of rows at a time
    in cache, the hard/easy choice as lerp with a 0/1 float weight (exact at 0 and 1: lerp returns
    its start or its end). Saved for backward: the slope, t + 2l/s on hard entries (d/dl of
    l*(t + l/s)), 1 elsewhere, so backward is one product.
    """

    @staticmethod
    def forward(ctx, logits, bound, index, target, t, scale):
        batch, classes = logits.shape
        rows = max(1, REWEIGHT_BLOCK // max(classes, 1))
        slope = torch.empty_like(logits)
        hard = logits.new_empty(min(rows, batch), classes)
        factor = torch.empty_like(hard)
        ones = torch.ones_like(hard)
        neg_t = -t
        for start in range(0, batch, rows):
            stop = min(start + rows, batch)
            x, d, n = logits[start:stop], slope[start:stop], stop - start
            h, f = hard[:n], factor[:n]
            torch.gt(x, bound[start:stop], out=h)  # 1.0 where hard, 0.0 where easy
            torch.add(t, x, alpha=1.0 / scale, out=f)  # t + l/s
            torch.add(neg_t, f, alpha=2.0, out=d)  # t + 2l/s
            torch.lerp(ones[:n], d, h, out=d)
            f.mul_(x)
            x.lerp_(f, h)
        # the target column is never hard: its logit back as it came, slope 1
        logits.scatter_(1, index, target)
        slope.scatter_(1, index, 1.0)
        ctx.mark_dirty(logits)
        ctx.save_for_backward(slope)
        return logits

    @staticmethod
    def backward(ctx, grad):
        (slope,) = ctx.saved_tensors
        return slope * grad, None, None, None, None, None
