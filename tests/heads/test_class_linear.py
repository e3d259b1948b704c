"""ClassLinear's blocked backward against plain autograd through F.normalize, in float64."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import marginface.heads.base as base
from marginface.heads import (
    AMSoftmaxHead,
    ArcFaceHead,
    CombinedMarginHead,
    LSoftmaxHead,
    SphereFaceHead,
)

HEADS = {
    "amsoftmax": lambda d, c: AMSoftmaxHead(d, c, scale=10.0, margin=0.35),
    "arcface": lambda d, c: ArcFaceHead(d, c, scale=64.0, margin=0.5),
    "combined": lambda d, c: CombinedMarginHead(d, c, scale=10.0, m1=1.35, m2=0.25, m3=0.1),
    "sphereface": lambda d, c: SphereFaceHead(d, c, margin=4, base=0.5, gamma=0.0, lambda_min=0.0),
    "lsoftmax": lambda d, c: LSoftmaxHead(d, c, margin=3, base=0.5, gamma=0.0, lambda_min=0.0),
}
TOLERANCE = {"rtol": 1e-10, "atol": 1e-10}


class Reference:
    """The three outputs of ClassLinear by autograd alone: F.normalize(W), a GEMM, row dots."""

    @staticmethod
    def apply(inputs, weight, index, normalize):
        unit = F.normalize(weight, dim=1) if normalize else weight
        rows = index.reshape(-1)
        # the target entries computed apart: the heads add their margin to the logits in place
        target = (inputs[: len(rows)] * unit[rows]).sum(1, keepdim=True)
        target_norm = torch.linalg.vector_norm(weight[rows], dim=1, keepdim=True)
        return inputs @ unit.t(), target, target_norm


@pytest.fixture
def small_blocks(monkeypatch):
    # 37 classes in blocks of 8 and 5: several blocks and a ragged last one in both loops
    monkeypatch.setattr(base, "GEMM_BLOCK", 8)
    monkeypatch.setattr(base, "PROJECTION_BLOCK", 5)


def loss_and_grads(head, x, labels):
    x = x.detach().clone().requires_grad_()
    head.weight.grad = None
    loss = F.cross_entropy(head(x, labels), labels)
    loss.backward()
    return loss.detach(), x.grad, head.weight.grad


def assert_same_outputs_and_gradients(fused, reference, upstream, leaves):
    """Both tuples of outputs equal, and so are the gradients of sum(output * upstream)."""
    results = []
    for outputs in (fused, reference):
        total = sum((o * u).sum() for o, u in zip(outputs, upstream, strict=True))
        results.append((outputs, torch.autograd.grad(total, leaves)))
    (fused_out, fused_grads), (ref_out, ref_grads) = results
    for got, expected in zip([*fused_out, *fused_grads], [*ref_out, *ref_grads], strict=True):
        torch.testing.assert_close(got, expected, **TOLERANCE)


@pytest.mark.parametrize("name", HEADS)
def test_head_loss_and_gradients_match_autograd(name, small_blocks, monkeypatch):
    torch.manual_seed(0)
    head = HEADS[name](6, 37).double()
    with torch.no_grad():
        head.weight.mul_(torch.rand(37, 1, dtype=torch.float64) * 3 + 0.1)  # norms far from 1
    x = torch.randn(9, 6, dtype=torch.float64)
    labels = torch.tensor([0, 36, 8, 8, 8, 15, 36, 2, 23])  # repeats, both ends, block edges
    fused = loss_and_grads(head, x, labels)
    with monkeypatch.context() as patch:
        patch.setattr(base, "ClassLinear", Reference)
        reference = loss_and_grads(head, x, labels)
    for got, expected in zip(fused, reference, strict=True):
        torch.testing.assert_close(got, expected, **TOLERANCE)


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("needs", ["both", "inputs", "weight"])
def test_all_three_outputs_match_autograd(normalize, needs, small_blocks):
    torch.manual_seed(1)
    x = torch.randn(7, 4, dtype=torch.float64, requires_grad=needs in ("both", "inputs"))
    w = torch.randn(37, 4, dtype=torch.float64) * torch.rand(37, 1, dtype=torch.float64) * 4
    w.requires_grad_(needs in ("both", "weight"))
    index = torch.tensor([[3], [3], [0], [36], [9], [17], [3]])
    upstream = [torch.randn(7, 37), torch.randn(7, 1), torch.randn(7, 1)]
    upstream = [u.double() for u in upstream]
    leaves = [t for t in (x, w) if t.requires_grad]
    fused = base.ClassLinear.apply(x, w, index, normalize)
    assert_same_outputs_and_gradients(
        fused, Reference.apply(x, w, index, normalize), upstream, leaves
    )


def test_zero_weight_row_is_scaled_not_normalised(small_blocks):
    # F.normalize divides a row under eps by eps; its gradient is then g / eps, with no radial
    # part (clamp_min passes no gradient to |w|): the same in the blocked backward
    torch.manual_seed(2)
    x = torch.randn(5, 3, dtype=torch.float64)
    w = torch.randn(11, 3, dtype=torch.float64)
    w[6] = 0.0
    index = torch.tensor([[6], [1], [10], [6], [2]])
    upstream = torch.randn(5, 11, dtype=torch.float64)
    grads = []
    for function in (base.ClassLinear, Reference):
        leaf = w.clone().requires_grad_()
        logits, target, _ = function.apply(x, leaf, index, True)
        ((logits * upstream).sum() + target.sum()).backward()
        grads.append(leaf.grad)
    scale = grads[1].abs().max()
    assert scale > 1e11  # the 1/eps row is there
    torch.testing.assert_close(grads[0] / scale, grads[1] / scale, rtol=0.0, atol=1e-15)


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("needs", ["both", "inputs", "weight"])
def test_rescale_is_a_constant_factor_on_every_output_but_the_norm(normalize, needs, small_blocks):
    # the factor is computed from the logits themselves (as AdaCos's scale), without gradient:
    # the reference multiplies its outputs by the same number, detached
    torch.manual_seed(3)
    x = torch.randn(6, 4, dtype=torch.float64, requires_grad=needs in ("both", "inputs"))
    w = torch.randn(37, 4, dtype=torch.float64) * torch.rand(37, 1, dtype=torch.float64) * 4
    w.requires_grad_(needs in ("both", "weight"))
    index = torch.tensor([[5], [0], [36], [8], [5], [20]])
    upstream = [torch.randn(6, 37), torch.randn(6, 1), torch.randn(6, 1)]
    upstream = [u.double() for u in upstream]
    leaves = [t for t in (x, w) if t.requires_grad]
    seen = []

    def rescale(logits, target):
        seen.append((logits.clone(), target.clone()))
        return 1.0 + logits.abs().mean() + target.sum() ** 2  # depends on both

    fused = base.ClassLinear.apply(x, w, index, normalize, rescale)
    logits, target, target_norm = Reference.apply(x, w, index, normalize)
    # rescale saw the unscaled logits and targets, once
    assert len(seen) == 1
    torch.testing.assert_close(seen[0][0], logits.detach(), **TOLERANCE)
    torch.testing.assert_close(seen[0][1], target.detach(), **TOLERANCE)
    factor = (1.0 + logits.abs().mean() + target.sum() ** 2).detach()
    reference = (logits * factor, target * factor, target_norm)
    assert_same_outputs_and_gradients(fused, reference, upstream, leaves)
