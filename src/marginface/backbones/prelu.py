"""PReLU with a faster CPU backward: the same module, parameter and results as torch.nn.PReLU."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable


class PReLU(nn.PReLU):
    """torch.nn.PReLU, y = x if x > 0 else a_c * x, whose training backward is written out on a CPU.

    On the 2-core AVX-512 machine D of docs/benchmarks.md PyTorch's own CPU backward of PReLU took
    about a quarter of the default backbone's training step (47 of 199 ms at batch 32, more than its
    batch norms); the one here takes about half of that. The gradients are PyTorch's: bit for bit for
    the whole default backbone at batch 32 (NCHW and channels_last, 1 and 2 threads, checked on D),
    and to float32 rounding in the tests. Under bf16 autocast the slope's gradient is summed in
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


class _PReLU(torch.autograd.Function):
    """F.prelu with backward: dx = g where x > 0, else a_c g; da_c = sum of g * min(x, 0) over all
    but the channel dimension (1).

    Without a bool mask (masked and where kernels are several times slower than plain passes on a
    CPU): x > 0 is written as a 0/1 float and dx = lerp(a g, g, that), exact at 0 and 1 (lerp returns
    its start or its end). At x = 0 the slope is a, as in PyTorch's backward.
    """

    @staticmethod
    def forward(ctx, x, weight):
        ctx.save_for_backward(x, weight)
        return F.prelu(x, weight)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        single = weight.numel() == 1
        grad_x = grad_weight = None
        if ctx.needs_input_grad[0]:
            a = weight.reshape(()) if single else weight.view(1, -1, *[1] * (x.dim() - 2))
            positive = torch.gt(x, 0, out=torch.empty_like(grad))
            grad_x = torch.lerp(grad * a.to(grad.dtype), grad, positive)
        if ctx.needs_input_grad[1]:
            product = grad * x.clamp(max=0)
            if single:
                grad_weight = product.sum(dtype=weight.dtype).reshape(weight.shape)
            else:
                dims = [0, *range(2, x.dim())]
                grad_weight = product.sum(dims, dtype=weight.dtype)
        return grad_x, grad_weight
