"""PReLU with a faster CPU backward: the same module, parameter and results as torch.nn.PReLU."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable


class PReLU(nn.PReLU):
    """torch.nn.PReLU, y = x if x > 0 else a_c * x, whose training backward is written out on a CPU.

    On machine D of docs/benchmarks.md (avx2 avx512f, 2 cores) PyTorch's own CPU backward of PReLU
    took about a quarter of the default backbone's training step (47 of 199 ms at batch 32, more than
    its batch norms, in a profile beside other jobs); the one here took 27 ms in the same profile,
    and the whole step is 15% shorter (quiet, by hand). The input gradient is PyTorch's bit for
    bit; the slope's gradient is summed a block at a time, so it can differ from PyTorch's in the last
    bits (by 1e-9 on the default backbone's gradients at batch 32). Under bf16 autocast it is summed in
    float32 (PyTorch's sums in bf16). Same `weight` (state-dict compatible with nn.PReLU checkpoints),
    same forward (F.prelu). PyTorch's path is kept where it is the better one: without gradient
    (inference, export), on an accelerator (one fused kernel there), and under torch.compile (which
    fuses the backward itself).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            x.device.type == "cpu"
            and x.dim() >= 2
            and torch.is_grad_enabled()
            and (x.requires_grad or self.weight.requires_grad)
            and not torch.compiler.is_compiling()
        ):
            return _PReLU.apply(x, self.weight)
        return F.prelu(x, self.weight)


#: elements per block of the backward: its two scratch buffers and the block's slices of x, the
#: gradient and dx stay in a core's cache (256 KiB each in float32)
BLOCK = 1 << 16


class _PReLU(torch.autograd.Function):
    """F.prelu with backward: dx = g where x > 0, else a_c g; da_c = sum of g * min(x, 0) over all
    but the channel dimension (1).

    A few images at a time (slices along the batch, contiguous in NCHW and channels_last alike), so
    that x and the gradient are read from memory once and dx written once, the passes between them
    running in cache; without a bool mask (masked and where kernels are several times slower than
    plain passes on a CPU): x > 0 is written as a 0/1 float and dx = lerp(a g, g, that), exact at 0
    and 1 (lerp returns its start or its end). At x = 0 the slope is a, as in PyTorch's backward.
    """

    @staticmethod
    def forward(ctx, x, weight):
        ctx.save_for_backward(x, weight)
        return F.prelu(x, weight)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        need_x, need_weight = ctx.needs_input_grad[:2]
        single = weight.numel() == 1
        a = weight.reshape(()) if single else weight.view(1, -1, *[1] * (x.dim() - 2))
        a = a.to(grad.dtype)
        batch = x.shape[0]
        step = max(1, BLOCK // max(1, x[0].numel())) if batch else 1
        grad_x = torch.empty_like(grad) if need_x else None
        total = torch.zeros(weight.shape if not single else (), dtype=weight.dtype)
        dims = [0, *range(2, x.dim())]
        scratch = torch.empty_like(grad[: min(step, batch)])
        positive = torch.empty_like(scratch)
        for start in range(0, batch, step):
            stop = min(start + step, batch)
            xs, gs, t = x[start:stop], grad[start:stop], scratch[: stop - start]
            if need_x:
                h = positive[: stop - start]
                torch.gt(xs, 0, out=h)
                torch.mul(gs, a, out=t)
                torch.lerp(t, gs, h, out=grad_x[start:stop])
            if need_weight:
                torch.clamp(xs, max=0, out=t).mul_(gs)
                total += t.sum(dtype=weight.dtype) if single else t.sum(dims, dtype=weight.dtype)
        grad_weight = total.reshape(weight.shape) if need_weight else None
        return grad_x, grad_weight
