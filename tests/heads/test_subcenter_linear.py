"""SubCenterLinear (the sub-center head's pooled cosine) against plain autograd on all C*K rows."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from marginface.heads.subcenter_arcface import SubCenterLinear


def reference(x, weight, labels, k):
    """cos against every row at unit norm, max over each class's K rows; targets at the labels."""
    cos = x @ F.normalize(weight, dim=1).t()
    pooled = cos.view(len(x), -1, k).max(dim=2).values
    return pooled, pooled.gather(1, labels.unsqueeze(1))


def outputs_and_grads(fn, x, weight, labels, k, seed=1):
    """Both outputs and the gradients of a random linear functional of them, w.r.t. x and W."""
    x = x.detach().clone().requires_grad_()
    weight = weight.detach().clone().requires_grad_()
    pooled, target = fn(x, weight, labels, k)
    generator = torch.Generator().manual_seed(seed)
    # drawn in float64 whatever the outputs' dtype: the same functional under autocast
    a = torch.randn(pooled.shape, generator=generator, dtype=torch.float64).to(pooled.dtype)
    b = torch.randn(target.shape, generator=generator, dtype=torch.float64).to(target.dtype)
    ((pooled * a).sum() + (target * b).sum()).backward()
    return pooled.detach(), target.detach(), x.grad, weight.grad


@pytest.mark.parametrize("k", [2, 3, 5])
def test_equals_autograd_through_max_in_float64(k):
    generator = torch.Generator().manual_seed(k)
    classes, dim, batch = 7, 6, 9
    # rows of unequal norms, embeddings not at unit norm: every chain-rule term counts
    weight = torch.randn(classes * k, dim, generator=generator, dtype=torch.float64)
    weight *= torch.rand(classes * k, 1, generator=generator, dtype=torch.float64) * 3 + 0.1
    x = torch.randn(batch, dim, generator=generator, dtype=torch.float64)
    labels = torch.tensor([0, 6, 3, 3, 1, 0, 5, 2, 6])
    ours = outputs_and_grads(SubCenterLinear.apply, x, weight, labels, k)
    theirs = outputs_and_grads(reference, x, weight, labels, k)
    for mine, expected in zip(ours, theirs, strict=True):
        torch.testing.assert_close(mine, expected, rtol=1e-10, atol=1e-10)


def test_ties_send_the_gradient_to_the_lowest_subcentre_as_max_does():
    # every class's 3 sub-centres are the same row: all three cosines tie
    generator = torch.Generator().manual_seed(0)
    rows = torch.randn(4, 5, generator=generator, dtype=torch.float64)
    weight = rows.repeat_interleave(3, dim=0)
    x = torch.randn(6, 5, generator=generator, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    _, _, _, grad = outputs_and_grads(SubCenterLinear.apply, x, weight, labels, 3)
    _, _, _, expected = outputs_and_grads(reference, x, weight, labels, 3)
    torch.testing.assert_close(grad, expected, rtol=1e-10, atol=1e-10)
    by_centre = grad.view(4, 3, 5)
    assert by_centre[:, 0].abs().sum() > 0
    assert torch.equal(by_centre[:, 1:], torch.zeros_like(by_centre[:, 1:]))


def test_without_labels_and_without_gradient():
    generator = torch.Generator().manual_seed(3)
    weight = torch.randn(12, 4, generator=generator)
    x = torch.randn(5, 4, generator=generator)
    none = torch.zeros(0, dtype=torch.long)
    with torch.no_grad():
        pooled, target = SubCenterLinear.apply(x, weight, none, 3)
    expected, _ = reference(x, weight, torch.zeros(5, dtype=torch.long), 3)
    torch.testing.assert_close(pooled, expected)
    assert target.shape == (0, 1)


def test_bf16_autocast_follows_the_float32_result():
    # 2-D, so that the winning sub-centre is the same in bf16: each class's 3 sub-centres 120
    # degrees apart (norms 0.5-2), every embedding well off the midway between two of them
    def at(degrees, norm=1.0):
        radians = torch.deg2rad(torch.tensor(degrees, dtype=torch.float64))
        return torch.stack([torch.cos(radians), torch.sin(radians)]) * norm

    weight = torch.stack(
        [at(c * 13.0 + k * 120.0, 0.5 + 0.5 * k) for c in range(5) for k in range(3)]
    ).float()
    x = torch.stack([at(d, 1.5) for d in (3.0, 21.0, 95.0, 140.0, 200.0, 250.0, 305.0, 340.0)])
    x = x.float()
    labels = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2])
    cos = x @ F.normalize(weight, dim=1).t()
    top2 = cos.view(8, 5, 3).topk(2, dim=2).values
    assert (top2[..., 0] - top2[..., 1]).min() > 0.03  # the test's premise
    exact = outputs_and_grads(SubCenterLinear.apply, x, weight, labels, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = outputs_and_grads(SubCenterLinear.apply, x, weight, labels, 3)
    assert low[0].dtype == torch.bfloat16 and low[3].dtype == torch.float32
    for mine, expected in zip(low, exact, strict=True):
        torch.testing.assert_close(mine.float(), expected, rtol=0.03, atol=0.03)
