"""Sub-center ArcFace: K centres per class, the nearest one carries the ArcFace margin."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from marginface.heads.arcface import ArcFaceHead
from marginface.heads.base import _NORM_EPS, ClassLinear, check_int


class SubCenterLinear(torch.autograd.Function):
    """max_k of x . W_{c,k} / |W_{c,k}| over each class's K sub-centres, (B, C), and its targets.

    `weight` is (C*K, D), class-major (row c*K + k). Where ClassLinear on all C*K rows followed by
    `.view(B, C, K).max(dim=2)` reduces over an inner axis of length K (a slow, unvectorised
    kernel, and a (B, C*K) scatter in backward), this runs one GEMM per sub-centre k against the
    strided (C, D) view of rows k, K+k, 2K+k, ... (BLAS reads it in place), so that every
    (B, C) pass is contiguous: the running maximum, and in backward the gradient of each k's
    entries. The index of the winning sub-centre is kept (uint8; ties go to the lowest k, as
    `max`), not the K cosine maps. Targets (B, 1) are the pooled entries at the labels; their
    gradient joins the (B, C) gradient of the sub-centre that won, so that the radial projection
    of the weight gradient (ClassLinear.project_rows) treats them as every other entry.
    """

    @staticmethod
    def forward(ctx, inputs, weight, labels, subcenters):
        classes = weight.shape[0] // subcenters
        norm = torch.linalg.vector_norm(weight, dim=1)
        scale = norm.clamp_min(_NORM_EPS).reciprocal()
        groups = weight.view(classes, subcenters, -1)
        group_scale = scale.view(classes, subcenters)
        pooled = F.linear(inputs, groups[:, 0]).mul_(group_scale[:, 0])
        # (B, C) buffers reused for every k: a new one would fault in its pages afresh; the
        # masks are bool written by a comparison and read as uint8 (where/masked_fill with a
        # bool mask run an order of magnitude slower on CPU than these in-place passes)
        which = cosine = better = None
        if any(ctx.needs_input_grad[:2]):
            which = torch.zeros(pooled.shape, dtype=torch.uint8, device=pooled.device)
            better = torch.empty(pooled.shape, dtype=torch.bool, device=pooled.device)
        for k in range(1, subcenters):
            if cosine is None or pooled.dtype != weight.dtype:
                cosine = F.linear(inputs, groups[:, k])
            else:
                torch.mm(inputs, groups[:, k].t(), out=cosine)
            cosine.mul_(group_scale[:, k])
            if which is not None:
                # which <- k where this sub-centre beats all before it (ties keep the lower k)
                index = torch.gt(cosine, pooled, out=better).view(torch.uint8).mul_(k)
                torch.maximum(which, index, out=which)
            torch.maximum(pooled, cosine, out=pooled)
        target = pooled.gather(1, labels.unsqueeze(1))
        ctx.save_for_backward(inputs, weight, labels, norm, scale, which)
        ctx.subcenters = subcenters
        ctx.compute_dtype = pooled.dtype
        return pooled, target

    @staticmethod
    def backward(ctx, grad_pooled, grad_target):
        inputs, weight, labels, norm, scale, which = ctx.saved_tensors
        subcenters, dtype = ctx.subcenters, ctx.compute_dtype
        need_inputs, need_weight = ctx.needs_input_grad[:2]
        classes, dim = weight.shape[0] // subcenters, weight.shape[1]
        groups = weight.view(classes, subcenters, dim)
        group_scale = scale.view(classes, subcenters)
        batch = torch.arange(len(labels), device=labels.device)
        target_k = which[batch, labels]
        grad_target = grad_target.squeeze(1).to(dtype)
        grad_pooled = grad_pooled.to(dtype)
        x = inputs.to(dtype)
        zero = torch.zeros((), dtype=dtype, device=weight.device)
        total = torch.promote_types(dtype, torch.float32)
        grad_inputs = grad_weight = None
        if need_inputs:
            grad_inputs = torch.zeros(len(inputs), dim, dtype=total, device=weight.device)
        if need_weight:
            # each row is written by exactly one of the K GEMMs below: no zero fill
            grad_weight = torch.empty_like(weight)
            by_group = grad_weight.view(classes, subcenters, dim)
        # the gradient of sub-centre k's entries, one (B, C) buffer for every k
        grad = torch.empty_like(grad_pooled)
        for k in range(subcenters):
            torch.eq(which, k, out=grad).mul_(grad_pooled)
            grad.index_put_(
                (batch, labels), torch.where(target_k == k, grad_target, zero), accumulate=True
            )
            # 1/|W_j| on G's columns first: both GEMMs take it from there, and the weight
            # gradient's rows need no rescaling pass of their own before the projection
            grad.mul_(group_scale[:, k].to(dtype))
            if need_weight:
                if dtype == weight.dtype:
                    torch.mm(grad.t(), x, out=by_group[:, k])
                else:
                    by_group[:, k] = grad.t() @ x
            if need_inputs:
                w = groups[:, k].to(dtype)
                if dtype == total:
                    grad_inputs.addmm_(grad, w)
                else:
                    grad_inputs += grad @ w
        if need_weight:
            radial_scale = (scale * scale).masked_fill_(norm < _NORM_EPS, 0.0)
            ClassLinear.project_rows(grad_weight, weight, None, radial_scale)
        if need_inputs:
            grad_inputs = grad_inputs.to(inputs.dtype)
        return grad_inputs, grad_weight, None, None


class SubCenterArcFaceHead(ArcFaceHead):
    """ArcFace on cos(theta_j) = max_k cos(x, W_{j,k}) over each class's K sub-centres.

    Sub-center ArcFace (Deng et al., ECCV 2020: "Sub-center ArcFace: Boosting Face Recognition
    by Large-scale Noisy Web Faces"), https://doi.org/10.1007/978-3-030-58621-8_43.
    `weight` has shape (num_classes * subcenters, embedding_dim), rows class-major: row c*K + k is
    sub-centre k of class c (as pytorch-metric-learning's SubCenterArcFaceLoss). The class cosine is
    the largest of its K sub-centre cosines, for the target and the other logits alike; the target
    then gets ArcFaceHead's margin (`scale` s, `margin` m in radians, the same treatment past
    pi - m). Logits are (B, num_classes). subcenters=1 is ArcFaceHead, bit for bit.
    `subcenter_angles` lists how far each sample lies from its class's dominant sub-centre: the
    paper drops samples beyond 75 degrees as label noise.

    Not shardable: the max pools rows that ShardedHead would split over the ranks.
    """

    shardable = False

    def __init__(
        self,
        embedding_dim: int,
        num_classes: int,
        scale: float = 64.0,
        margin: float = 0.5,
        subcenters: int = 3,
    ) -> None:
        subcenters = check_int("subcenters", subcenters, 1)
        super().__init__(embedding_dim, num_classes, scale, margin)
        self.subcenters = subcenters
        if subcenters > 1:
            self.weight = nn.Parameter(torch.empty(self.num_classes * subcenters, embedding_dim))
            self.reset_parameters()

    def _pooled(self, projected: torch.Tensor, labels: torch.Tensor | None):
        """Class logits (B, C) pooled over sub-centres; with labels, also the (B, 1) targets."""
        k = self.subcenters
        if labels is None:
            labels = torch.zeros(0, dtype=torch.long, device=projected.device)
        if k == 1:
            # ArcFace's own path, so that subcenters=1 is ArcFaceHead bit for bit
            logits, target, _ = ClassLinear.apply(
                projected, self.weight, labels.long()[:, None], True
            )
            return logits, target
        return SubCenterLinear.apply(projected, self.weight, labels.long(), k)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        self.check_inputs(embeddings, labels)
        logits, target = self._pooled(self.project(embeddings), labels)
        if labels is None:
            return logits
        # target_correction reads no weight norm for a cosine head: a placeholder stands for it
        correction = self.target_correction(target, target.new_ones(()), embeddings)
        return logits.scatter_add_(1, labels.long().unsqueeze(1), correction.to(logits.dtype))

    def cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        """cos(theta_j) of each class: the largest over its sub-centres, (B, num_classes)."""
        self.check_inputs(embeddings, None)
        return self._pooled(F.normalize(embeddings, dim=1), None)[0].clamp(-1.0, 1.0)

    @torch.no_grad()
    def subcenter_angles(
        self, embeddings: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per sample: the angle in degrees to its class's dominant sub-centre, and that centre.

        The dominant sub-centre of a class is the one nearest to most of the class's samples in
        this batch (pass all of a class's samples at once); returns (angle_degrees (B,), dominant
        index (B,)). Angles above DROP_DEGREES (75) are the paper's noisy-label candidates.
        """
        self.check_inputs(embeddings, labels)
        k, labels = self.subcenters, labels.long()
        weight = F.normalize(self.weight.detach().view(self.num_classes, k, -1), dim=2)[labels]
        cos = torch.einsum("bkd,bd->bk", weight, F.normalize(embeddings, dim=1).to(weight.dtype))
        votes = torch.zeros(self.num_classes, k, dtype=torch.long, device=cos.device)
        votes.index_put_((labels, cos.argmax(dim=1)), torch.ones_like(labels), accumulate=True)
        dominant = votes.argmax(dim=1)[labels]
        chosen = cos.gather(1, dominant.unsqueeze(1)).squeeze(1).clamp(-1.0, 1.0)
        return torch.rad2deg(torch.acos(chosen)), dominant

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, subcenters={self.subcenters}"


#: the paper's threshold for a sample too far from its class's dominant sub-centre (label noise)
DROP_DEGREES = 75.0
