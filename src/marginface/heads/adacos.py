"""AdaCos: cosine logits with a scale set from the number of classes, or adapted each batch."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from marginface.heads.base import GEMM_BLOCK, ClassLinear, MarginHead, check_int


class AdaCosHead(MarginHead):
    """Logits s*cos(theta_j) for every class, no margin; s fixed or adapted (AdaCos).

    AdaCos https://arxiv.org/abs/1905.00292. The fixed scale is s_f = sqrt(2) ln(C - 1) (C =
    num_classes >= 3). With `dynamic` (the default) s starts at s_f and each training forward first
    sets s <- ln(B_avg) / cos(min(pi/4, theta_med)), with, for this batch of B samples and the
    previous s, B_avg = (1/B) sum_i sum_{j != y_i} exp(s cos(theta_ij)) and theta_med the median
    target angle (torch.median: the lower of the two middle values for an even batch); the new s
    then scales this batch's logits (the order of the common implementation). The scale is the
    buffer `adaptive_scale`, saved in checkpoints; in eval mode and without labels it is used, not
    updated. The update is applied as written: where B_avg <= 1 (a large s with mostly negative
    non-target cosines) it gives s <= 0. No margin: the target logit is s*cos(theta_y), so the
    head has no parent to reduce to beyond scaled softmax (NormFace). Under DDP the scale is per rank (DDP's buffer broadcast, on
    by default, copies rank 0's before each forward); not shardable (B_avg needs every logit).
    """

    shardable = False

    def __init__(self, embedding_dim: int, num_classes: int, dynamic: bool = True) -> None:
        classes = check_int("num_classes", num_classes, 1)
        if classes < 3:
            raise ValueError(
                f"AdaCos needs num_classes >= 3: its scale sqrt(2) ln(C - 1) is 0 at C = 2, "
                f"got num_classes={num_classes!r}"
            )
        if not isinstance(dynamic, bool):
            raise ValueError(f"dynamic must be true or false, got {dynamic!r}")
        super().__init__(embedding_dim, classes, math.sqrt(2.0) * math.log(classes - 1))
        self.dynamic = dynamic
        # float64 at the start, so that the fixed scale is exact in a float64 head (.float()
        # and .double() cast it with the rest)
        self.register_buffer("adaptive_scale", torch.tensor(self.scale, dtype=torch.float64))

    def project(self, embeddings: torch.Tensor) -> torch.Tensor:
        # the scale on the (B, D) side, as MarginHead.project; a buffer, so it gets no gradient;
        # a copy, since the product's backward keeps it and a training forward updates the buffer
        return F.normalize(embeddings, dim=1) * self.adaptive_scale.to(embeddings.dtype).clone()

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        self.check_inputs(embeddings, labels)
        update = self.dynamic and self.training and labels is not None and len(embeddings) > 0
        if not update:
            return super().forward(embeddings)
        index = labels.long().unsqueeze(1)
        old = self.adaptive_scale.clone()

        def rescale(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            # run by ClassLinear without gradient, once the logits at the old scale exist; it
            # multiplies them by the returned factor, and its backward treats it as a constant
            self.adaptive_scale.copy_(self.next_scale(logits, target, index, old))
            return self.adaptive_scale / old

        projected = self.project(embeddings)
        return ClassLinear.apply(projected, self.weight, index, True, rescale)[0]

    def next_scale(
        self, logits: torch.Tensor, target: torch.Tensor, index: torch.Tensor, scale: torch.Tensor
    ) -> torch.Tensor:
        """ln(B_avg) / cos(min(pi/4, theta_med)) from a batch's logits s*cos at scale `scale`.

        logits (B, C), target (B, 1) its entries at the labels, index (B, 1) the labels.
        """
        dtype = torch.promote_types(logits.dtype, torch.float32)
        scale = scale.to(dtype)
        cos = (target.to(dtype) / scale).clamp(-1.0, 1.0)
        theta_med = torch.acos(cos).median()
        # ln(B_avg) = ln(sum of exp over the non-target logits) - ln(B). Shifted by s, the largest
        # a logit s*cos can be, no term overflows. Block by block of classes in one small buffer
        # that stays in cache (a (B, C) temporary would cost a page-faulted pass of its own),
        # the targets in each block zeroed after exp (exactly: no subtraction afterwards)
        batch, classes = logits.shape
        width = min(GEMM_BLOCK, classes)
        buffer = torch.empty(batch, width, dtype=dtype, device=logits.device)
        total = torch.zeros((), dtype=dtype, device=logits.device)
        for start in range(0, classes, width):
            stop = min(start + width, classes)
            block = torch.sub(logits[:, start:stop], scale, out=buffer[:, : stop - start])
            block.exp_()
            # rows whose label lies in this block get 0 there; the others rewrite one entry as
            # it was (no index list: nothing waits for the device)
            column = (index - start).clamp(0, stop - start - 1)
            outside = (index < start) | (index >= stop)
            block.scatter_(1, column, block.gather(1, column) * outside)
            total += block.sum()
        if total > 0:
            log_b_avg = total.log() + scale - math.log(len(logits))
        else:
            # every non-target term underflowed (s large, cosines near -1): the exact way
            others = logits.to(dtype).scatter(1, index, -math.inf)
            log_b_avg = torch.logsumexp(others.reshape(-1), dim=0) - math.log(len(logits))
        return log_b_avg / torch.cos(theta_med.clamp(max=math.pi / 4))

    def divergence_hint(self) -> str | None:
        """What to try when training diverges: the dynamic update has no upper bound on s."""
        if not self.dynamic:
            return None
        return (
            f"AdaCos's dynamic scale is now s={float(self.adaptive_scale):g}: the paper's update has "
            "no upper bound and runs away when non-target cosines exceed cos(theta_med) "
            "(docs/results.md); try loss.dynamic=false (s = sqrt(2) ln(C - 1))."
        )

    def log_values(self) -> dict[str, float]:
        return {"scale": float(self.adaptive_scale)} if self.dynamic else {}

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, scale={float(self.adaptive_scale):g}, dynamic={self.dynamic}"
        )
