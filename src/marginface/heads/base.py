"""What every head shares: the class weight, the cosine, the target-logit plumbing, the checks."""

from __future__ import annotations

import math
from numbers import Integral, Real

import torch
import torch.nn.functional as F
from torch import nn

from marginface.heads.head import Head


def check_int(name: str, value: object, minimum: int) -> int:
    """`value` as an int, or ValueError naming `name`, the value and the allowed range."""
    # bool is an Integral in Python, but `margin=True` is a typo, never a margin of 1
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_real(
    name: str,
    value: object,
    low: float,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = True,
) -> float:
    """`value` as a float in the interval, or ValueError naming `name`, value and interval."""
    inside = (
        not isinstance(value, bool)
        and isinstance(value, Real)
        and math.isfinite(value)
        and (value > low if low_open else value >= low)
        and (value < high if high_open else value <= high)
    )
    if not inside:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be a finite number in {interval}, got {value!r}")
    return float(value)


# F.normalize's default: a zero row is divided by this instead of 0, and comes out as zeros
_NORM_EPS = 1e-12

# classes per block of the normalised backward: a GEMM block big enough to run at full speed, a
# projection block whose (rows, D) slices of the gradient and the weight stay in cache
GEMM_BLOCK = 4096
PROJECTION_BLOCK = 1024


class ClassLinear(torch.autograd.Function):
    """inputs @ W^T (rows of W at unit norm if `normalize`), its B target entries, and |W_y|.

    Written out rather than left to autograd because, with C in the hundreds of thousands, every
    extra pass over the (C, D) weight or the (B, C) logits shows, and so does every new (B, C) or
    (C, D) buffer (its pages are faulted in afresh): autograd through F.normalize(W) makes several
    (C, D) temporaries, and a gather from the logits (or W[labels]) sends back a dense (B, C) (or
    (C, D)) gradient of zeros. The forward is the GEMM and an in-place (B, C) rescaling by 1/|W_j|.
    The normalised backward is softmax's two GEMMs plus passes that stay in cache: grad_inputs
    from blocks of grad_logits scaled by 1/|W_j| (a small reused buffer), and grad_weight's rows
    scaled and projected (d(w/|w|) = (I - w w^T/|w|^2) / |w|) block by block right after its GEMM;
    the target entries' share of the radial part comes from their logits, without a (C, D) pass.
    The target entries add B-row updates.

    `rescale` (optional): a function (logits, target) -> factor, called once the logits and
    their target entries are computed (without gradient); the logits are then multiplied in
    place by the factor, which backward treats as a constant and folds into the per-class
    1/|W_j| it applies anyway, so that a head whose scale depends on its own logits (AdaCos)
    pays no (B, C) pass for the rescale in backward. The target output is read after the rescale.
    """

    @staticmethod
    def forward(ctx, inputs, weight, index, normalize, rescale=None):
        norm = scale = factor = None
        logits = F.linear(inputs, weight)
        if normalize:
            # in the weight's own precision (float32), also under autocast
            norm = torch.linalg.vector_norm(weight, dim=1)
            scale = norm.clamp_min(_NORM_EPS).reciprocal()
            # scaling the (B, C) product by 1/|W_j| is half the work of writing W/|W| (C, D)
            logits.mul_(scale)
        rows = index.reshape(-1)
        target_norm = torch.linalg.vector_norm(weight[rows], dim=1, keepdim=True)
        target = logits.gather(1, index)
        if rescale is not None:
            factor = torch.as_tensor(rescale(logits, target), device=logits.device)
            factor = factor.to(weight.dtype).reshape(())
            logits.mul_(factor.to(logits.dtype))
            target = logits.gather(1, index)
        ctx.save_for_backward(inputs, weight, index, norm, scale, target, factor)
        ctx.compute_dtype = logits.dtype
        return logits, target, target_norm

    @staticmethod
    def backward(ctx, grad_logits, grad_target, grad_target_norm):
        inputs, weight, index, norm, scale, target, factor = ctx.saved_tensors
        # the GEMMs run in the forward's precision (bf16 under autocast), the rest in the weight's
        dtype = ctx.compute_dtype
        need_inputs, need_weight = ctx.needs_input_grad[:2]
        rows = index.reshape(-1)
        targets = len(rows) > 0
        if targets:
            target_weight = weight[rows]
            # a target entry is one more entry of the (B, C) product: same chain rule, B rows
            grad_target = grad_target.to(weight.dtype)
        # what each column of the gradient is multiplied by: 1/|W_j| and the rescale's factor
        column_scale = scale
        if factor is not None and scale is not None:
            column_scale = scale * factor
        radial_target = None
        if targets and scale is not None:
            if need_weight:
                # <w_y, grad_target_b x_b / |w_y|> = grad_target_b * target_b: no (C, D) pass
                # (with a rescale, target holds the factor too, as the row's share does)
                radial_target = torch.zeros_like(scale).index_put_(
                    (rows,), (grad_target * target.to(weight.dtype)).squeeze(1), accumulate=True
                )
            grad_target = grad_target * column_scale[rows].unsqueeze(1)
        elif targets and factor is not None:
            grad_target = grad_target * factor
        if scale is None:
            grad = grad_logits.to(dtype)
            if factor is not None:
                grad = grad * factor.to(dtype)
            grad_inputs, grad_weight = ClassLinear.plain_grads(
                grad, inputs, weight, need_inputs, need_weight
            )
        else:
            grad_inputs, grad_weight = ClassLinear.normalized_grads(
                grad_logits, inputs, weight, norm, scale, radial_target, ctx, column_scale
            )
        if need_inputs and targets:
            grad_inputs = grad_inputs + (grad_target * target_weight).to(inputs.dtype)
        if need_weight and targets:
            # index_put_(accumulate=True), not index_add_: on CPU the latter walks all C rows;
            # their radial part was removed in the blocks already (the projection is linear)
            update = grad_target * inputs.to(weight.dtype)
            # d|W_y| / dW_y = W_y / |W_y|
            target_norm = torch.linalg.vector_norm(target_weight, dim=1, keepdim=True)
            unit_rows = target_weight / target_norm.clamp_min(_NORM_EPS)
            update = update + grad_target_norm.to(weight.dtype) * unit_rows
            grad_weight.index_put_((rows,), update, accumulate=True)
        if not need_inputs:
            grad_inputs = None
        if not need_weight:
            grad_weight = None
        return grad_inputs, grad_weight, None, None, None

    @staticmethod
    def plain_grads(grad, inputs, weight, need_inputs, need_weight):
        """(grad_inputs, grad_weight) of inputs @ W^T: the two GEMMs."""
        grad_inputs = grad_weight = None
        if need_inputs:
            grad_inputs = (grad @ weight.to(grad.dtype)).to(inputs.dtype)
        if need_weight:
            grad_weight = (grad.t() @ inputs.to(grad.dtype)).to(weight.dtype)
        return grad_inputs, grad_weight

    @staticmethod
    def normalized_grads(
        grad_logits, inputs, weight, norm, scale, radial_target, ctx, column_scale
    ):
        """(grad_inputs, grad_weight) of inputs @ (W/|W|)^T, block by block over the classes.

        Row c of grad_weight is v_c - <w_c, v_c> w_c / |w_c|^2 with v_c = sum_b G[b,c] x_b / |w_c|
        (G: grad_logits plus the target entries, whose share of <w_c, v_c> is `radial_target`;
        the caller adds their v_c afterwards: the projection is linear). `column_scale` is what
        column c of G is multiplied by: `scale` = 1/|w_c|, times the rescale's factor if any.
        """
        dtype = ctx.compute_dtype
        need_inputs, need_weight = ctx.needs_input_grad[:2]
        # a row floored at _NORM_EPS was scaled, not normalised: it has no radial part
        radial_scale = (scale * scale).masked_fill_(norm < _NORM_EPS, 0.0)
        scale = column_scale
        batch, classes = grad_logits.shape
        grad_inputs = grad_weight = None
        # the sum over blocks in float32 at least: bf16 would round it once per block
        total = torch.promote_types(dtype, torch.float32)
        if need_inputs:
            grad_inputs = torch.zeros(batch, weight.shape[1], dtype=total, device=weight.device)
        if need_weight:
            grad_weight = torch.empty_like(weight)
            x = inputs.to(dtype)
        # one block of classes at a time: G's columns scaled into a small reused buffer (where
        # G * scale would be a new (B, C) tensor, each of its pages faulted in afresh), then
        # (G / |W|) @ W for grad_inputs and (G / |W|)^T x for grad_weight's rows, which are
        # projected right after their GEMM, while in cache
        block = torch.empty(batch, min(GEMM_BLOCK, classes), dtype=dtype, device=weight.device)
        for start in range(0, classes, GEMM_BLOCK):
            stop = min(start + GEMM_BLOCK, classes)
            g = torch.mul(
                grad_logits[:, start:stop], scale[start:stop], out=block[:, : stop - start]
            )
            w = weight[start:stop]
            if need_inputs:
                if dtype == total:
                    grad_inputs.addmm_(g, w.to(dtype))
                else:
                    grad_inputs += g @ w.to(dtype)
            if need_weight:
                rows = grad_weight[start:stop]
                if dtype == weight.dtype:
                    torch.mm(g.t(), x, out=rows)
                else:
                    rows.copy_(g.t() @ x)
                ClassLinear.project_rows(
                    rows,
                    w,
                    None,
                    radial_scale[start:stop],
                    None if radial_target is None else radial_target[start:stop],
                )
        if need_inputs:
            grad_inputs = grad_inputs.to(inputs.dtype)
        return grad_inputs, grad_weight

    @staticmethod
    def project_rows(grad_weight, weight, scale, radial_scale, radial_target=None):
        """In place, row c of grad_weight: v_c -> s_c v_c - (s_c <w_c, v_c> + t_c) r_c w_c.

        v_c = sum_b G[b,c] x_b (the unscaled GEMM), s_c = `scale` (1/|w_c|, times a rescale's
        factor; None when v_c was computed from scaled columns of G already, s_c = 1 here),
        r_c = `radial_scale` (1/|w_c|^2, 0 for a row floored at _NORM_EPS), t_c =
        `radial_target` (the target entries' share of the radial part, or none). Block by block,
        so that each block of rows is read once while in cache.
        """
        for start in range(0, grad_weight.shape[0], PROJECTION_BLOCK):
            stop = min(start + PROJECTION_BLOCK, grad_weight.shape[0])
            v, w = grad_weight[start:stop], weight[start:stop]
            radial = torch.linalg.vecdot(v, w)
            if scale is not None:
                s = scale[start:stop]
                radial.mul_(s)
                v.mul_(s.unsqueeze(1))
            if radial_target is not None:
                radial += radial_target[start:stop]
            v.addcmul_(w, (radial * radial_scale[start:stop]).unsqueeze(1), value=-1.0)


class MarginHead(Head):
    """Shared base of the heads: weight (num_classes, embedding_dim), cosine logits, target margin.

    Every logit is read as f_j = r_j * cos(theta_j), with r_j the radius: the scale s for the cosine
    heads (this class's default), |W_j||x| for L-Softmax, |x| for SphereFace. With labels only the
    target logit changes, to r_y * target_cosine(cos(theta_y)); a head overrides `target_cosine`
    (its margin) and, where its logits are not s*cos, `project`, `target_radius` and
    `normalize_weight`. See ArcFace https://arxiv.org/abs/1801.07698 for this view.
    """

    #: whether the logits use W's rows at unit norm (cosine heads, SphereFace) or as they are
    normalize_weight = True
    #: also check the label range of batches on an accelerator (costs a device sync per step)
    check_label_range = False
    #: whether ShardedHead (heads/sharded.py) can split this head's rows over ranks: true where
    #: only the target logit changes, through project / target_correction, and no state is kept
    #: from the whole batch; a head that changes other logits, pools rows or keeps batch
    #: statistics sets it False, and ShardedHead refuses it at start
    shardable = True

    def __init__(self, embedding_dim: int, num_classes: int, scale: float = 1.0) -> None:
        super().__init__()
        self.embedding_dim = check_int("embedding_dim", embedding_dim, 1)
        self.num_classes = check_int("num_classes", num_classes, 1)
        self.scale = check_real("scale", scale, 0.0, low_open=True)
        self.weight = nn.Parameter(torch.empty(self.num_classes, self.embedding_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform in +-1/sqrt(embedding_dim), nn.Linear's default."""
        # the same start as nn.Linear keeps the softmax baseline exactly the usual last layer
        bound = 1.0 / math.sqrt(self.embedding_dim)
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, num_classes); with labels, each row's target logit carries the margin."""
        self.check_inputs(embeddings, labels)
        if labels is None:
            index = torch.zeros(len(embeddings), 0, dtype=torch.long, device=embeddings.device)
        else:
            index = labels.long().unsqueeze(1)
        logits, target, target_norm = ClassLinear.apply(
            self.project(embeddings), self.weight, index, self.normalize_weight
        )
        if labels is None:
            return logits
        correction = self.target_correction(target, target_norm, embeddings)
        # only the B target entries change; in place, since nothing saved the logits for backward
        return logits.scatter_add_(1, index, correction.to(logits.dtype))

    def block_logits(
        self,
        embeddings: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        target: torch.Tensor | None,
    ) -> torch.Tensor:
        """Logits of the classes whose rows are `weight`, the margin on each row's `target` column.

        For a class matrix split in blocks (heads/sharded.py): `target` (B,) is each row's label
        column in this block, or -1 where the label lies in another block (that row gets no
        margin); None: no margin at all. `bias` is the block's bias, for heads that have one.
        """
        if target is None:
            index = torch.zeros(len(embeddings), 0, dtype=torch.long, device=embeddings.device)
        else:
            # rows whose label is elsewhere point at column 0 and get no correction
            index = target.clamp_min(0).unsqueeze(1)
        logits, target_logit, target_norm = ClassLinear.apply(
            self.project(embeddings), weight, index, self.normalize_weight
        )
        if target is None:
            return logits
        rows = (target >= 0).nonzero().squeeze(1)
        correction = self.target_correction(target_logit[rows], target_norm[rows], embeddings[rows])
        full = correction.new_zeros(len(embeddings), 1).index_put((rows,), correction)
        # in place, as in forward: nothing saved the logits for backward
        return logits.scatter_add_(1, index, full.to(logits.dtype))

    def cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        """cos(theta_j) of each embedding with each class weight, (B, num_classes), in [-1, 1]."""
        self.check_inputs(embeddings, None)
        index = torch.zeros(len(embeddings), 0, dtype=torch.long, device=embeddings.device)
        cos = ClassLinear.apply(F.normalize(embeddings, dim=1), self.weight, index, True)[0]
        # rounding can overshoot 1 by an ulp; clamp's gradient is zero there, never infinite
        return cos.clamp(-1.0, 1.0)

    def project(self, embeddings: torch.Tensor) -> torch.Tensor:
        """What multiplies the class weights in the logits: here scale * x/|x|."""
        # the scale folded into the (B, D) side costs nothing next to scaling (B, C) logits;
        # normalize floors |x| at eps, so a zero embedding gives cosine 0 and finite gradients
        return F.normalize(embeddings, dim=1) * self.scale

    def target_radius(
        self, embeddings: torch.Tensor, target_weight_norm: torch.Tensor
    ) -> torch.Tensor | float:
        """r_y (B, 1) with plain target logit r_y * cos(theta_y): here the scale."""
        return self.scale

    def target_cosine(self, cos: torch.Tensor) -> torch.Tensor:
        """The margin: what cos(theta_y) of the target class becomes (identity: no margin)."""
        return cos

    def target_correction(
        self, target: torch.Tensor, target_weight_norm: torch.Tensor, embeddings: torch.Tensor
    ) -> torch.Tensor:
        """What to add to each (B, 1) target logit: r_y * (target_cosine(cos) - cos)."""
        # margin arithmetic in float32 at least: under bf16/fp16 autocast, sqrt(1 - cos^2) near
        # cos = 1 and the ArcFace threshold comparison would lose every significant digit
        dtype = torch.promote_types(target.dtype, torch.float32)
        target, embeddings = target.to(dtype), embeddings.to(dtype)
        radius = self.target_radius(embeddings, target_weight_norm.to(dtype))
        if isinstance(radius, torch.Tensor):
            # a zero embedding has logit 0 and radius 0: read it as cosine 0, not 0/0
            radius = radius.clamp_min(torch.finfo(dtype).tiny)
        # only the target cosine meets sqrt/atan2, so only it is clamped (zero gradient outside);
        # other logits may pass s by an ulp of rounding, which nothing downstream minds
        cos = (target / radius).clamp(-1.0, 1.0)
        # a correction to the untouched logit, so that a zero margin leaves its exact bits
        return radius * (self.sample_target_cosine(cos, embeddings) - cos)

    def sample_target_cosine(self, cos: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        """The margin where it depends on the sample (norm, random draw); target_cosine here."""
        return self.target_cosine(cos)

    def check_inputs(self, embeddings: torch.Tensor, labels: torch.Tensor | None) -> None:
        """ValueError unless embeddings are (B, embedding_dim) and labels (B,) integers in range."""
        if not isinstance(embeddings, torch.Tensor) or embeddings.dim() != 2:
            shape = (
                tuple(embeddings.shape)
                if isinstance(embeddings, torch.Tensor)
                else type(embeddings)
            )
            raise ValueError(
                f"embeddings must be a 2-D tensor (batch, {self.embedding_dim}), got {shape}"
            )
        if embeddings.shape[1] != self.embedding_dim:
            raise ValueError(
                f"embeddings must have embedding_dim={self.embedding_dim} columns, got shape "
                f"{tuple(embeddings.shape)}: the backbone's output size and the head's disagree"
            )
        if labels is None:
            return
        batch = embeddings.shape[0]
        if not isinstance(labels, torch.Tensor) or labels.shape != (batch,):
            shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels)
            raise ValueError(
                f"labels must be a tensor of shape ({batch},), one per embedding, got {shape}"
            )
        if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
            raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype}")
        # the range needs labels.min()/max() on the host: free on the CPU, but a device-to-host
        # sync per training step on an accelerator, where the labels come from the datamodule's
        # label map (in [0, num_classes) by construction) and an index past the matrix trips the
        # device's own bounds assert; check_label_range=True checks there too (debugging)
        on_host = labels.device.type == "cpu" or self.check_label_range
        if batch and on_host and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(
                f"labels must lie in [0, num_classes={self.num_classes}), got values in "
                f"[{int(labels.min())}, {int(labels.max())}]"
            )

    def anneal(self, step: int) -> None:
        """Set the schedule to optimizer step `step` (called before every training forward)."""
        check_int("step", step, 0)

    def extra_repr(self) -> str:
        return f"embedding_dim={self.embedding_dim}, num_classes={self.num_classes}"
