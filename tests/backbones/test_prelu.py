"""marginface's PReLU: torch.nn.PReLU's values and gradients, its state dict, and where it steps aside."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from marginface.backbones import SmallFaceNet, prelu
from marginface.backbones.prelu import PReLU, _PReLU


def both(channels: int, weight: torch.Tensor | None = None) -> tuple[PReLU, nn.PReLU]:
    ours, theirs = PReLU(channels), nn.PReLU(channels)
    with torch.no_grad():
        w = weight if weight is not None else torch.linspace(-0.5, 0.7, channels)
        ours.weight.copy_(w)
        theirs.weight.copy_(w)
    return ours, theirs


@pytest.mark.parametrize("block", [1, 50, prelu.BLOCK], ids=lambda b: f"block{b}")
@pytest.mark.parametrize(
    ("shape", "channels_last"),
    [((4, 3, 5, 6), False), ((4, 3, 5, 6), True), ((6, 5), False), ((2, 4, 7), False)],
    ids=["nchw", "channels_last", "2d", "3d"],
)
def test_values_and_gradients_equal_torch_prelu(shape, channels_last, block, monkeypatch):
    # one image per block, a few (the last one short), or all at once
    monkeypatch.setattr(prelu, "BLOCK", block)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=generator)
    x.view(-1)[:3] = 0.0  # x = 0 takes the slope a, as in PyTorch
    grad = torch.randn(shape, generator=generator)
    if channels_last:
        x, grad = (t.contiguous(memory_format=torch.channels_last) for t in (x, grad))
    ours, theirs = both(shape[1])
    results = []
    for module in (ours, theirs):
        xi = x.clone().requires_grad_()
        y = module(xi)
        y.backward(grad)
        results.append((y, xi.grad, module.weight.grad))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    # by hand: dx = g where x > 0 else a_c g; da_c = sum over x <= 0 of g * x
    a = ours.weight.view(1, -1, *[1] * (len(shape) - 2))
    torch.testing.assert_close(results[0][1], torch.where(x > 0, grad, a * grad))
    dims = [0, *range(2, len(shape))]
    torch.testing.assert_close(results[0][2], (grad * torch.where(x > 0, 0.0, x)).sum(dims))


def test_gradcheck_and_a_single_shared_slope():
    x = torch.randn(3, 4, 2, 2, dtype=torch.float64, requires_grad=True)
    for channels in (4, 1):
        weight = torch.full((channels,), 0.3, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(_PReLU.apply, (x, weight))
    ours, theirs = both(1, torch.tensor([0.2]))
    xi, xj = x.float().detach().requires_grad_(), x.float().detach().requires_grad_()
    ours(xi).sum().backward()
    theirs(xj).sum().backward()
    assert ours.weight.grad.shape == (1,)
    torch.testing.assert_close(ours.weight.grad, theirs.weight.grad)
    torch.testing.assert_close(xi.grad, xj.grad)


def test_input_without_gradient_and_frozen_weight():
    ours, theirs = both(3)
    x = torch.randn(2, 3, 4, 4)
    ours(x).sum().backward()  # the stem: images need no gradient, the weight does
    theirs(x).sum().backward()
    torch.testing.assert_close(ours.weight.grad, theirs.weight.grad)
    ours.weight.requires_grad_(False)
    xi = x.clone().requires_grad_()
    ours(xi).sum().backward()
    torch.testing.assert_close(xi.grad, torch.where(x > 0, 1.0, ours.weight.view(1, -1, 1, 1)))


def test_pytorchs_path_without_gradient_and_the_same_state_dict():
    ours, theirs = both(3)
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    with torch.no_grad():
        assert ours(x).grad_fn is None
        torch.testing.assert_close(ours(x), theirs(x))
    assert type(ours(x).grad_fn).__name__ == "_PReLUBackward"
    # checkpoints of nn.PReLU load as they are (and the other way round)
    fresh = PReLU(3)
    fresh.load_state_dict(theirs.state_dict())
    torch.testing.assert_close(fresh.weight, theirs.weight)
    net = SmallFaceNet(embedding_dim=8, widths=(4, 8))
    assert all(type(m) is not nn.PReLU for m in net.modules())
    assert any(isinstance(m, PReLU) for m in net.modules())


def test_bf16_autocast_keeps_the_input_dtype_and_sums_the_slope_in_float32():
    ours, _ = both(3)
    x = torch.randn(4, 3, 8, 8).bfloat16().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = ours(x)
    assert y.dtype == torch.bfloat16
    y.float().sum().backward()
    assert x.grad.dtype == torch.bfloat16
    assert ours.weight.grad.dtype == torch.float32
    # with g = 1 every product is exact in bf16: the float32 sum is the float64 one to rounding
    expected = torch.where(x.detach().double() > 0, 0.0, x.detach().double()).sum([0, 2, 3])
    torch.testing.assert_close(ours.weight.grad.double(), expected, rtol=1e-6, atol=1e-5)
