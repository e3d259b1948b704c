"""The post-2018 heads against each paper's formula computed by hand, their state and limits."""

from __future__ import annotations

import copy
import math
import statistics

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch.func import functional_call

from marginface.heads import (
    AdaCosHead,
    AdaFaceHead,
    AMSoftmaxHead,
    ArcFaceHead,
    CurricularFaceHead,
    ElasticArcFaceHead,
    ElasticCosFaceHead,
    MagFaceHead,
    MarginHead,
    SubCenterArcFaceHead,
    curricularface,
)
from marginface.heads.sharded import ShardedHead
from marginface.training.factory import build_head

DTYPES = [torch.float32, torch.float64]
S = 10.0  # the scale of every hand computation below


def tolerance(dtype: torch.dtype) -> dict[str, float]:
    return (
        {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-12}
    )


def at(degrees: float, norm: float = 1.0) -> list[float]:
    """A 2-D vector at `degrees` with length `norm`."""
    return [norm * math.cos(math.radians(degrees)), norm * math.sin(math.radians(degrees))]


def with_weight(head: MarginHead, rows: list[list[float]]) -> MarginHead:
    with torch.no_grad():
        head.weight.copy_(torch.tensor(rows, dtype=head.weight.dtype))
    return head


def arc(t_deg: float, m: float) -> float:
    """ArcFace's target cosine at angle t (degrees) and margin m (radians), by the paper's cases."""
    t = math.radians(t_deg)
    return math.cos(t + m) if t <= math.pi - m else math.cos(t) - m * math.sin(m)


def cosd(degrees: float) -> float:
    return math.cos(math.radians(degrees))


# x at 30 degrees; classes at 0, 70 and 200 degrees (norms 3, 0.5, 1.5): theta = 30, 40, 170.
# 170 degrees is past ArcFace's pi - m for m = 0.5 (151.4 degrees).
CLASSES = [at(0.0, 3.0), at(70.0, 0.5), at(200.0, 1.5)]
THETA = [30.0, 40.0, 170.0]


def batch(norms: list[float], dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Row b at 30 degrees with |x| = norms[b] and label b."""
    x = torch.tensor([at(30.0, n) for n in norms], dtype=dtype)
    return x, torch.arange(len(norms))


# --------------------------------------------------------------------------------------------
# Sub-center ArcFace


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_subcenter_arcface_by_hand(dtype):
    # class 0: sub-centres at 0 and 100 degrees; class 1: at 70 and 200 (rows class-major)
    head = SubCenterArcFaceHead(2, 2, scale=S, margin=0.5, subcenters=2).to(dtype)
    with_weight(head, [at(0.0, 2.0), at(100.0), at(70.0, 0.3), at(200.0, 4.0)])
    x, labels = batch([3.0, 3.0], dtype)
    # class 0: max(cos 30, cos 70) -> 30 degrees; class 1: max(cos 40, cos 170) -> 40 degrees
    expected = [
        [S * arc(30.0, 0.5), S * cosd(40.0)],
        [S * cosd(30.0), S * arc(40.0, 0.5)],
    ]
    torch.testing.assert_close(
        head(x, labels), torch.tensor(expected, dtype=dtype), **tolerance(dtype)
    )
    plain = torch.tensor([[S * cosd(30.0), S * cosd(40.0)]] * 2, dtype=dtype)
    torch.testing.assert_close(head(x), plain, **tolerance(dtype))
    torch.testing.assert_close(head.cosine(x), plain / S, **tolerance(dtype))
    assert head.weight.shape == (4, 2) and head.head_size()["parameters"] == 8


def test_subcenter_angles_find_the_dominant_centre():
    head = SubCenterArcFaceHead(2, 1, subcenters=2).double()
    with_weight(head, [at(0.0), at(90.0)])
    # three samples nearest the 0-degree centre, one at 85 degrees: the dominant centre is 0
    x = torch.tensor([at(10.0), at(-20.0), at(40.0), at(85.0)], dtype=torch.float64)
    angles, dominant = head.subcenter_angles(x, torch.zeros(4, dtype=torch.long))
    assert dominant.tolist() == [0, 0, 0, 0]
    torch.testing.assert_close(angles, torch.tensor([10.0, 20.0, 40.0, 85.0], dtype=torch.float64))
    assert (angles > 75.0).tolist() == [False, False, False, True]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_one_subcenter_is_arcface_bit_for_bit(dtype):
    torch.manual_seed(0)
    sub = SubCenterArcFaceHead(8, 5, scale=30.0, margin=0.5, subcenters=1).to(dtype)
    plain = ArcFaceHead(8, 5, scale=30.0, margin=0.5).to(dtype)
    plain.load_state_dict(sub.state_dict())
    x, labels = torch.randn(16, 8, dtype=dtype), torch.randint(5, (16,))
    assert torch.equal(sub(x, labels), plain(x, labels))
    assert torch.equal(sub(x), plain(x))


def test_subcenter_arcface_equals_pytorch_metric_learning():
    losses = pytest.importorskip("pytorch_metric_learning.losses")
    torch.manual_seed(0)
    head = SubCenterArcFaceHead(8, 5, scale=64.0, margin=0.5, subcenters=3).double()
    # theirs: margin in degrees, W of shape (embedding_dim, classes * sub-centres), class-major
    theirs = losses.SubCenterArcFaceLoss(
        num_classes=5, embedding_size=8, margin=math.degrees(0.5), scale=64.0, sub_centers=3
    ).double()
    with torch.no_grad():
        theirs.W.copy_(head.weight.T)
    x, labels = torch.randn(12, 8, dtype=torch.float64), torch.randint(5, (12,))
    # theirs has no treatment past pi - m: keep every target angle below it
    assert (torch.acos(head.cosine(x).gather(1, labels[:, None])) < math.pi - 0.5).all()
    ours = F.cross_entropy(head(x, labels), labels)
    torch.testing.assert_close(ours, theirs(x, labels), rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------------------------------
# CurricularFace


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_curricularface_by_hand_with_the_update_first(dtype):
    head = with_weight(
        CurricularFaceHead(2, 3, scale=S, margin=0.5, momentum=0.1).to(dtype), CLASSES
    )
    with torch.no_grad():
        head.t.fill_(0.3)
    x, labels = batch([2.0, 2.0, 2.0], dtype)
    t = 0.3
    for _ in range(2):  # a second forward sees the t the first one left
        t = 0.1 * statistics.fmean(cosd(v) for v in THETA) + 0.9 * t
        expected = []
        for y in range(3):
            # hard: cos theta_j > cos(theta_y + m) by the addition formula, also past pi - m
            bound = math.cos(math.radians(THETA[y]) + 0.5)
            row = []
            for j in range(3):
                c = cosd(THETA[j])
                if j == y:
                    row.append(S * arc(THETA[j], 0.5))
                else:
                    row.append(S * c * (t + c) if c > bound else S * c)
            expected.append(row)
        logits = head(x, labels)
        torch.testing.assert_close(logits, torch.tensor(expected, dtype=dtype), **tolerance(dtype))
        assert head.t.item() == pytest.approx(t, rel=1e-6)
    # the table above has hard and easy negatives: row 1 treats class 0 as hard, class 2 as easy
    assert cosd(30.0) > math.cos(math.radians(40.0) + 0.5) > cosd(170.0)
    # eval mode and inference: t is used, not updated; no labels, plain s*cos
    head.eval()
    head(x, labels)
    assert head.t.item() == pytest.approx(t, rel=1e-6)
    torch.testing.assert_close(
        head(x), torch.tensor([[S * cosd(v) for v in THETA]] * 3, dtype=dtype), **tolerance(dtype)
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_curricularface_without_hard_negatives_is_arcface(dtype):
    torch.manual_seed(0)
    head = CurricularFaceHead(2, 3, scale=S, margin=0.5).to(dtype)
    with_weight(head, [at(0.0), at(120.0), at(240.0)])
    arcface = ArcFaceHead(2, 3, scale=S, margin=0.5).to(dtype)
    arcface.load_state_dict({"weight": head.weight})
    # each x within 20 degrees of its class: every other class lies beyond theta_y + m
    x = torch.tensor([at(5.0), at(130.0), at(225.0), at(-15.0)], dtype=dtype)
    labels = torch.tensor([0, 1, 2, 0])
    torch.testing.assert_close(
        head(x, labels),
        arcface(x, labels),
        rtol=0.0,
        atol=1e-12 if dtype == torch.float64 else 1e-5,
    )


@pytest.mark.parametrize("block", [1, 8, 1 << 17], ids=lambda b: f"block{b}")
def test_curricularface_reweight_equals_autograd_through_where(block, monkeypatch):
    """The blocked in-place re-weighting: values and gradient of where(hard, l*(t + l/s), l)."""
    monkeypatch.setattr(
        curricularface, "REWEIGHT_BLOCK", block
    )  # 1 row per block; 2 (the last short); all
    generator = torch.Generator().manual_seed(0)
    batch, classes, s, t = 5, 4, 10.0, 0.35
    logits = 10.0 * (2.0 * torch.rand(batch, classes, generator=generator, dtype=torch.float64) - 1)
    bound = 10.0 * (2.0 * torch.rand(batch, 1, generator=generator, dtype=torch.float64) - 1)
    index = torch.tensor([[0], [3], [1], [2], [2]])
    logits[1, 2] = bound[1, 0]  # a tie: not hard (strictly greater is)
    logits[4, 2] = bound[4, 0] + 5.0  # a target above its bound (past pi - m): still not hard
    grad = torch.randn(batch, classes, generator=generator, dtype=torch.float64)

    ours_in = logits.clone().requires_grad_()
    ours = curricularface._Reweight.apply(
        ours_in * 1.0,
        bound,
        index,
        logits.gather(1, index),
        torch.tensor(t, dtype=torch.float64),
        s,
    )
    ours.backward(grad)

    theirs_in = logits.clone().requires_grad_()
    hard = (logits > bound).scatter_(1, index, False)
    theirs = torch.where(hard, theirs_in * (t + theirs_in / s), theirs_in)
    theirs.backward(grad)

    assert hard.any() and (~hard).any() and not hard[1, 2] and not hard[4, 2]
    torch.testing.assert_close(ours, theirs, rtol=0.0, atol=1e-12)
    torch.testing.assert_close(ours_in.grad, theirs_in.grad, rtol=0.0, atol=1e-12)
    # the slope by hand at one hard and one easy entry
    b, j = hard.nonzero()[0].tolist()
    assert ours_in.grad[b, j].item() == pytest.approx(
        grad[b, j].item() * (t + 2 * logits[b, j].item() / s)
    )
    assert ours_in.grad[1, 2].item() == grad[1, 2].item()


# --------------------------------------------------------------------------------------------
# MagFace


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_magface_by_hand(dtype):
    head = with_weight(MagFaceHead(2, 3, scale=S).to(dtype), CLASSES)
    # |x| = 5, 50, 200: a = 10, 50, 110 and m(a) = 0.45, 0.45 + 0.35 * 40/100, 0.8
    x, labels = batch([5.0, 50.0, 200.0], dtype)
    a, margins = [10.0, 50.0, 110.0], [0.45, 0.45 + 0.35 * 0.4, 0.8]
    expected = [
        [S * arc(THETA[j], margins[y]) if j == y else S * cosd(THETA[j]) for j in range(3)]
        for y in range(3)
    ]
    torch.testing.assert_close(
        head(x, labels), torch.tensor(expected, dtype=dtype), **tolerance(dtype)
    )
    g = 35.0 * statistics.fmean(v / 110.0**2 + 1.0 / v for v in a)
    torch.testing.assert_close(
        head.regularizer(x), torch.tensor(g, dtype=dtype), **tolerance(dtype)
    )
    assert head.regularizer(x).dim() == 0


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_magface_with_one_margin_is_arcface(dtype):
    torch.manual_seed(0)
    mag = MagFaceHead(8, 5, scale=30.0, lower_margin=0.5, upper_margin=0.5, lambda_g=0.0)
    arcface = ArcFaceHead(8, 5, scale=30.0, margin=0.5)
    mag, arcface = mag.to(dtype), arcface.to(dtype)
    arcface.load_state_dict(mag.state_dict())
    x, labels = 40 * torch.randn(16, 8, dtype=dtype), torch.randint(5, (16,))
    atol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(mag(x, labels), arcface(x, labels), rtol=0.0, atol=atol)
    assert mag.regularizer(x).item() == 0.0


def test_base_heads_have_no_regularizer():
    assert ArcFaceHead(4, 3).regularizer(torch.randn(2, 4)) is None


def test_face_module_adds_the_regularizer():
    from marginface.training.module import FaceModule

    torch.manual_seed(0)
    head = MagFaceHead(4, 3, scale=S, lower_norm=1.0, upper_norm=8.0)
    module = FaceModule(torch.nn.Identity(), head, optimizer=torch.optim.SGD)
    x, labels = 3 * torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    with pytest.warns(UserWarning):  # self.log without a trainer: Lightning warns, logs nothing
        loss = module.training_step((x, labels), 0)
    expected = F.cross_entropy(head(x, labels), labels) + head.regularizer(x)
    torch.testing.assert_close(loss, expected)


# --------------------------------------------------------------------------------------------
# AdaFace


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_adaface_by_hand_with_the_update_first(dtype):
    head = with_weight(
        AdaFaceHead(2, 3, scale=S, margin=0.4, h=1.0, momentum=0.5).to(dtype), CLASSES
    )
    x, labels = batch([10.0, 30.0, 50.0], dtype)
    # batch norms 10, 30, 50: mean 30, unbiased std 20; buffers start at 20 and 100
    mean, std = 0.5 * 30.0 + 0.5 * 20.0, 0.5 * 20.0 + 0.5 * 100.0
    z = [max(-1.0, min(1.0, (n - mean) / (std + 1e-3))) for n in [10.0, 30.0, 50.0]]
    expected = []
    for y in range(3):
        row = []
        for j in range(3):
            c = cosd(THETA[j])
            if j == y:
                t = math.acos(min(max(c, -1 + 1e-3), 1 - 1e-3)) - 0.4 * z[y]
                t = min(max(t, 1e-3), math.pi - 1e-3)
                row.append(S * (math.cos(t) - (0.4 + 0.4 * z[y])))
            else:
                row.append(S * c)
        expected.append(row)
    torch.testing.assert_close(
        head(x, labels), torch.tensor(expected, dtype=dtype), **tolerance(dtype)
    )
    assert head.norm_mean.item() == pytest.approx(mean) and head.norm_std.item() == pytest.approx(
        std
    )
    # eval mode: the statistics are used, not updated
    head.eval()
    head(x, labels)
    assert head.norm_mean.item() == pytest.approx(mean) and head.norm_std.item() == pytest.approx(
        std
    )


def test_adaface_clips_the_norms_and_a_single_sample_keeps_the_std():
    head = AdaFaceHead(2, 2, momentum=1.0)
    head(torch.tensor([at(0.0, 1e4)]), torch.tensor([0]))
    # |x| = 10^4 clipped to 100; one sample has no std: the std stays at its start
    assert head.norm_mean.item() == pytest.approx(100.0) and head.norm_std.item() == 100.0


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_adaface_at_h_zero_is_cosface(dtype):
    torch.manual_seed(0)
    ada = AdaFaceHead(8, 5, scale=30.0, margin=0.4, h=0.0).to(dtype)
    cosface = AMSoftmaxHead(8, 5, scale=30.0, margin=0.4).to(dtype)
    cosface.load_state_dict({"weight": ada.weight})
    x, labels = torch.randn(16, 8, dtype=dtype), torch.randint(5, (16,))
    # inside AdaFace's cosine clamp [-1 + 1e-3, 1 - 1e-3], where the two agree
    assert (ada.cosine(x).abs() < 1 - 1e-3).all()
    atol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(ada(x, labels), cosface(x, labels), rtol=0.0, atol=atol)


# --------------------------------------------------------------------------------------------
# ElasticFace


def expected_draws(seed: int, n: int, mean: float, sigma: float) -> list[float]:
    """The margins the head should draw: its documented stream, seeded independently here."""
    generator = torch.Generator().manual_seed((seed * 1_000_003 + 0xE1A5) % 2**63)
    return torch.normal(mean, sigma, (n, 1), generator=generator, dtype=torch.float64)[
        :, 0
    ].tolist()


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_elastic_arcface_by_hand(dtype):
    head = with_weight(
        ElasticArcFaceHead(2, 3, scale=S, margin=0.5, sigma=0.1, seed=7).to(dtype), CLASSES
    )
    x, labels = batch([2.0, 2.0, 2.0], dtype)
    draws = expected_draws(7, 3, 0.5, 0.1)
    expected = [
        [S * arc(THETA[j], draws[y]) if j == y else S * cosd(THETA[j]) for j in range(3)]
        for y in range(3)
    ]
    torch.testing.assert_close(
        head(x, labels), torch.tensor(expected, dtype=dtype), **tolerance(dtype)
    )
    # the next batch draws the next margins; eval mode uses the mean
    assert not torch.equal(head(x, labels), torch.tensor(expected, dtype=dtype))
    head.eval()
    eval_expected = [
        [S * arc(THETA[j], 0.5) if j == y else S * cosd(THETA[j]) for j in range(3)]
        for y in range(3)
    ]
    torch.testing.assert_close(
        head(x, labels), torch.tensor(eval_expected, dtype=dtype), **tolerance(dtype)
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_elastic_cosface_by_hand(dtype):
    head = with_weight(
        ElasticCosFaceHead(2, 3, scale=S, margin=0.35, sigma=0.1, seed=3).to(dtype), CLASSES
    )
    x, labels = batch([2.0, 2.0, 2.0], dtype)
    draws = expected_draws(3, 3, 0.35, 0.1)
    expected = [[S * (cosd(THETA[j]) - draws[y] * (j == y)) for j in range(3)] for y in range(3)]
    torch.testing.assert_close(
        head(x, labels), torch.tensor(expected, dtype=dtype), **tolerance(dtype)
    )


@pytest.mark.parametrize(
    ("elastic", "parent"),
    [
        (
            lambda: ElasticArcFaceHead(8, 5, scale=30.0, margin=0.5, sigma=0.0),
            lambda: ArcFaceHead(8, 5, scale=30.0, margin=0.5),
        ),
        (
            lambda: ElasticCosFaceHead(8, 5, scale=30.0, margin=0.35, sigma=0.0),
            lambda: AMSoftmaxHead(8, 5, scale=30.0, margin=0.35),
        ),
    ],
    ids=["arc", "cos"],
)
def test_elastic_at_sigma_zero_is_the_parent_bit_for_bit(elastic, parent):
    torch.manual_seed(0)
    elastic, parent = elastic(), parent()
    parent.load_state_dict(elastic.state_dict())
    x, labels = torch.randn(16, 8), torch.randint(5, (16,))
    x[0] = -x[0]  # whatever the angles, past pi - m included
    assert torch.equal(elastic(x, labels), parent(x, labels))


def test_elastic_margins_follow_the_seed():
    x, labels = torch.randn(64, 8), torch.randint(5, (64,))
    runs = {}
    for seed in (0, 0, 1):
        torch.manual_seed(0)  # the same weights each time
        runs.setdefault(seed, []).append(ElasticArcFaceHead(8, 5, seed=seed)(x, labels))
    assert torch.equal(*runs[0])
    assert not torch.equal(runs[0][0], runs[1][0])
    # seed None: the run's seed, torch.initial_seed()
    torch.manual_seed(5)
    assert (
        ElasticArcFaceHead(8, 5, seed=None).generator.initial_seed()
        == ElasticArcFaceHead(8, 5, seed=5).generator.initial_seed()
    )


# --------------------------------------------------------------------------------------------
# AdaCos


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_adacos_dynamic_scale_by_hand(dtype):
    head = with_weight(AdaCosHead(2, 3).to(dtype), CLASSES)
    x, labels = batch([2.0, 2.0, 2.0], dtype)
    s = math.sqrt(2.0) * math.log(2.0)
    cos = [cosd(v) for v in THETA]
    for _ in range(2):  # the scale is updated first, from the previous scale's B_avg
        b_avg = sum(math.exp(s * cos[j]) for y in range(3) for j in range(3) if j != y) / 3
        theta_med = statistics.median(math.radians(v) for v in THETA)  # odd batch: the middle one
        s = math.log(b_avg) / math.cos(min(math.pi / 4, theta_med))
        expected = torch.tensor([[s * c for c in cos]] * 3, dtype=dtype)
        torch.testing.assert_close(head(x, labels), expected, **tolerance(dtype))
        assert head.adaptive_scale.item() == pytest.approx(s, rel=1e-6)
    head.eval()
    torch.testing.assert_close(head(x, labels), expected, **tolerance(dtype))
    torch.testing.assert_close(head(x), expected, **tolerance(dtype))


def test_adacos_median_of_an_even_batch_is_the_lower_middle_angle():
    head = with_weight(AdaCosHead(2, 3).double(), CLASSES)
    x = torch.tensor([at(30.0)] * 4, dtype=torch.float64)
    labels = torch.tensor([0, 1, 1, 2])  # target angles 30, 40, 40, 170: lower middle 40
    s = math.sqrt(2.0) * math.log(2.0)
    cos = [cosd(v) for v in THETA]
    b_avg = sum(math.exp(s * cos[j]) for y in labels.tolist() for j in range(3) if j != y) / 4
    expected = math.log(b_avg) / math.cos(math.radians(40.0))
    head(x, labels)
    assert head.adaptive_scale.item() == pytest.approx(expected, rel=1e-12)


def test_adacos_dynamic_scale_gradients_are_those_of_a_constant_scale(monkeypatch):
    # the new scale is set without gradient; the loss's gradients are then those of s*cos with s
    # the updated value held fixed (autograd through F.normalize); blocks of 8 classes, ragged
    import marginface.heads.adacos as adacos

    monkeypatch.setattr(adacos, "GEMM_BLOCK", 8)
    torch.manual_seed(4)
    head = AdaCosHead(5, 21).double().train()
    x = torch.randn(7, 5, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 20, 7, 8, 8, 15, 3])  # block edges, a repeat
    before = float(head.adaptive_scale)
    loss = F.cross_entropy(head(x, labels), labels)
    grads = torch.autograd.grad(loss, (x, head.weight))
    s = float(head.adaptive_scale)
    # the update by hand from the old scale: B_avg over the non-target terms, median angle
    cos = F.normalize(x.detach(), dim=1) @ F.normalize(head.weight.detach(), dim=1).t()
    mask = torch.ones_like(cos, dtype=torch.bool)
    mask[torch.arange(7), labels] = False
    b_avg = torch.exp(before * cos[mask]).sum() / 7
    theta_med = torch.acos(cos[torch.arange(7), labels]).median()
    assert s == pytest.approx(float(b_avg.log() / torch.cos(theta_med.clamp(max=math.pi / 4))))
    weight = head.weight.detach().clone().requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    logits = s * F.normalize(x_ref, dim=1) @ F.normalize(weight, dim=1).t()
    expected = torch.autograd.grad(F.cross_entropy(logits, labels), (x_ref, weight))
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_adacos_fixed_scale(dtype):
    head = with_weight(AdaCosHead(2, 3, dynamic=False).to(dtype), CLASSES)
    x, labels = batch([2.0, 2.0, 2.0], dtype)
    s = math.sqrt(2.0) * math.log(2.0)
    expected = torch.tensor([[s * cosd(v) for v in THETA]] * 3, dtype=dtype)
    torch.testing.assert_close(head(x, labels), expected, **tolerance(dtype))
    assert head.adaptive_scale.item() == pytest.approx(s)


# --------------------------------------------------------------------------------------------
# All new heads: the contract, gradients, state, bad input


def frozen(head: MarginHead) -> MarginHead:
    """The head with its state fixed at non-trivial values, so that repeated calls agree."""
    if isinstance(head, CurricularFaceHead):
        head.t.fill_(0.4)
    if isinstance(head, AdaFaceHead):
        head.norm_mean.fill_(2.0)
        head.norm_std.fill_(0.5)
    return head


FACTORIES = {
    "subcenter_arcface": lambda d, c: SubCenterArcFaceHead(d, c, scale=S, margin=0.5, subcenters=3),
    "curricularface": lambda d, c: CurricularFaceHead(d, c, scale=S, margin=0.5),
    # norms of the test embeddings (about 2) inside [l_a, u_a]: the margin varies with |x|
    "magface": lambda d, c: MagFaceHead(d, c, scale=S, lower_norm=0.5, upper_norm=5.0),
    "adaface": lambda d, c: AdaFaceHead(d, c, scale=S, margin=0.4, h=0.333),
    "elasticface": lambda d, c: ElasticArcFaceHead(d, c, scale=S, margin=0.5, sigma=0.05, seed=0),
    "elasticface_cos": lambda d, c: ElasticCosFaceHead(
        d, c, scale=S, margin=0.35, sigma=0.05, seed=0
    ),
    "adacos": lambda d, c: AdaCosHead(d, c),
}


def restart(head: MarginHead, z: float = 1.0) -> None:
    """Reset what a training forward changes, so that gradcheck's repeated calls agree."""
    frozen(head)
    if isinstance(head, AdaFaceHead):
        # z is detached (as the official code): gradcheck's numerical derivative would see it
        # move with |x|, unless it sits at its clip, -1 or +1, where it does not move
        head.norm_mean.fill_(0.0 if z > 0 else 100.0)
        head.norm_std.fill_(1e-6)
    if isinstance(head, ElasticArcFaceHead | ElasticCosFaceHead):
        head.generator.manual_seed(0)


@pytest.mark.parametrize(
    ("name", "z"), [(name, 1.0) for name in FACTORIES] + [("adaface", -1.0)], ids=str
)
def test_gradcheck(name, z):
    torch.manual_seed(0)
    if name == "adacos":
        # the dynamic scale is set without gradient (as in the paper): a constant to autograd,
        # not to gradcheck's numerical derivative; the fixed scale checks the same formula
        head = AdaCosHead(5, 6, dynamic=False).double()
    else:
        head = FACTORIES[name](5, 6).double()
    if name == "curricularface":
        # t is updated without gradient from the whole batch (as the official code): eval mode
        # keeps it fixed, with the same hard-negative and margin arithmetic
        head.eval()
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(4, 5, generator=generator, dtype=torch.float64)
    labels = torch.tensor([0, 3, 5, 3])
    with torch.no_grad():
        # one target almost opposite its class: past pi - m for the arc margins
        x[2] = (
            -2.0 * F.normalize(head.weight[5 * getattr(head, "subcenters", 1)], dim=0) + 0.05 * x[2]
        )
    weight = head.weight.detach().clone().requires_grad_()

    def training(x, weight):
        restart(head, z)
        return functional_call(head, {"weight": weight}, (x, labels), strict=False)

    def inference(x, weight):
        return functional_call(head, {"weight": weight}, (x,), strict=False)

    x.requires_grad_()
    assert torch.autograd.gradcheck(training, (x, weight))
    assert torch.autograd.gradcheck(inference, (x, weight))


@pytest.mark.parametrize("name", FACTORIES)
def test_finite_gradients_at_cos_plus_minus_one_and_extreme_norms(name):
    head = FACTORIES[name](2, 3)
    rows = [[3.0, 0.0], [0.0, 1.0], [-1.0, 1.0]]
    with_weight(head, [r for r in rows for _ in range(getattr(head, "subcenters", 1))])
    # on and against the target (cos = +-1), a zero embedding, huge and tiny norms
    x = torch.tensor(
        [[2.0, 0.0], [-2.0, 0.0], [0.0, 0.0], [1e12, 0.0], [0.0, 1e-20]], requires_grad=True
    )
    labels = torch.tensor([0, 0, 1, 0, 2])
    logits = head(x, labels)
    loss = F.cross_entropy(logits, labels) + (head.regularizer(x) or 0.0)
    loss.backward()
    assert torch.isfinite(logits).all() and torch.isfinite(loss)
    assert torch.isfinite(x.grad).all() and torch.isfinite(head.weight.grad).all()


@pytest.mark.parametrize("name", FACTORIES)
def test_only_curricularface_changes_other_logits_and_inference_is_plain(name):
    torch.manual_seed(0)
    head = frozen(FACTORIES[name](6, 4).double())
    x, labels = torch.randn(16, 6, dtype=torch.float64), torch.randint(4, (16,))
    with torch.no_grad():
        inference = head(x)
        scale = head.adaptive_scale if isinstance(head, AdaCosHead) else head.scale
        torch.testing.assert_close(inference, scale * head.cosine(x))
        training = head(x, labels)
        others = torch.ones_like(training, dtype=torch.bool).scatter_(1, labels[:, None], False)
        if isinstance(head, AdaCosHead):
            # no margin: every logit moves with the updated scale only
            torch.testing.assert_close(training, head.adaptive_scale * head.cosine(x))
        elif isinstance(head, CurricularFaceHead):
            assert not torch.equal(training[others], inference[others])
        else:
            assert torch.equal(training[others], inference[others])
            target, plain = (
                training.gather(1, labels[:, None]),
                inference.gather(1, labels[:, None]),
            )
            assert (target < plain).all()


STATEFUL = {
    "curricularface": ("t",),
    "adaface": ("norm_mean", "norm_std"),
    "adacos": ("adaptive_scale",),
}


@pytest.mark.parametrize("name", STATEFUL)
def test_state_round_trip_through_a_checkpoint_file(name, tmp_path):
    torch.manual_seed(0)
    head = FACTORIES[name](6, 4)
    x, labels = torch.randn(16, 6), torch.randint(4, (16,))
    for _ in range(3):
        head(x, labels)
    state = head.state_dict()
    assert set(STATEFUL[name]) <= set(state)
    torch.save({"state_dict": state}, tmp_path / "head.ckpt")
    fresh = FACTORIES[name](6, 4)
    assert any(not torch.equal(getattr(fresh, b), getattr(head, b)) for b in STATEFUL[name])
    fresh.load_state_dict(torch.load(tmp_path / "head.ckpt")["state_dict"])
    for buffer in STATEFUL[name]:
        assert torch.equal(getattr(fresh, buffer), getattr(head, buffer))
    assert torch.equal(fresh(x, labels), copy.deepcopy(head)(x, labels))


def test_new_configs_build_the_new_heads():
    from pathlib import Path

    conf = Path(__file__).resolve().parents[2] / "conf" / "loss"
    for name in FACTORIES:
        cfg = OmegaConf.load(conf / f"{name}.yaml")
        head = build_head(cfg, 8, 5)
        assert type(head).__name__ == cfg["_target_"].rsplit(".", 1)[1]
        assert (conf / f"{name}.yaml").read_text().startswith("# ")


@pytest.mark.parametrize("name", [n for n in FACTORIES if n != "magface"])
def test_sharding_a_stateful_or_pooling_head_fails_at_start(name):
    cfg = OmegaConf.load(
        __import__("pathlib").Path(__file__).resolve().parents[2] / "conf" / "loss" / f"{name}.yaml"
    )
    for options in ({"sharded": True}, {"sample_rate": 0.5}):
        with pytest.raises(
            ValueError, match=r"cannot be sharded or class-sampled.*head.sharded=false"
        ):
            build_head(cfg, 8, 5, options)


def test_sharded_magface_keeps_its_regularizer():
    torch.manual_seed(0)
    head = MagFaceHead(6, 4, scale=S, lower_norm=0.5, upper_norm=5.0).double()
    x, labels = torch.randn(8, 6, dtype=torch.float64), torch.randint(4, (8,))
    loss = F.cross_entropy(head(x, labels), labels)
    reg = head.regularizer(x)
    sharded = ShardedHead(copy.deepcopy(head))
    sharded.setup_shard()
    torch.testing.assert_close(sharded(x, labels), loss, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(sharded.regularizer(x), reg)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: SubCenterArcFaceHead(4, 3, subcenters=0),
            r"subcenters must be an integer >= 1, got 0",
        ),
        (lambda: SubCenterArcFaceHead(4, 3, subcenters=1.5), r"subcenters must be an integer >= 1"),
        (lambda: CurricularFaceHead(4, 3, momentum=0.0), r"momentum must be .* \(0, 1\], got 0.0"),
        (lambda: CurricularFaceHead(4, 3, momentum=1.5), r"momentum must be .* \(0, 1\], got 1.5"),
        (lambda: AdaFaceHead(4, 3, momentum=-0.1), r"momentum must be .* \(0, 1\], got -0.1"),
        (lambda: CurricularFaceHead(4, 3, margin=2.0), r"margin must be .* \[0, 1.5708\), got 2.0"),
        (
            lambda: MagFaceHead(4, 3, lower_norm=110.0, upper_norm=110.0),
            r"lower_norm must be below upper_norm.*110",
        ),
        (lambda: MagFaceHead(4, 3, lower_norm=120.0), r"lower_norm must be below upper_norm"),
        (lambda: MagFaceHead(4, 3, lower_norm=0.0), r"lower_norm must be .* \(0, inf\), got 0.0"),
        (lambda: MagFaceHead(4, 3, lower_margin=-0.1), r"lower_margin must be .* \[0, 1.5708\)"),
        (
            lambda: MagFaceHead(4, 3, upper_margin=math.pi / 2),
            r"upper_margin must be .* \[0, 1.5708\)",
        ),
        (lambda: MagFaceHead(4, 3, lambda_g=-1.0), r"lambda_g must be .* \[0, inf\)"),
        (lambda: AdaFaceHead(4, 3, margin=1.6), r"margin must be .* \[0, 1.5708\), got 1.6"),
        (lambda: AdaFaceHead(4, 3, h=-0.1), r"h must be .* \[0, inf\), got -0.1"),
        (lambda: ElasticArcFaceHead(4, 3, margin=-0.5), r"margin must be .* \[0, 1.5708\)"),
        (lambda: ElasticArcFaceHead(4, 3, sigma=-0.01), r"sigma must be .* \[0, inf\), got -0.01"),
        (lambda: ElasticCosFaceHead(4, 3, sigma=-1.0), r"sigma must be .* \[0, inf\), got -1.0"),
        (lambda: ElasticCosFaceHead(4, 3, seed=-1), r"seed must be an integer >= 0, got -1"),
        (lambda: AdaCosHead(4, 2), r"AdaCos needs num_classes >= 3.*got num_classes=2"),
        (lambda: AdaCosHead(4, 5, dynamic="yes"), r"dynamic must be true or false, got 'yes'"),
    ],
)
def test_bad_arguments(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_training_a_magface_run_logs_its_regularizer(tiny_train_cfg):
    import csv
    from pathlib import Path

    from marginface.pipeline import train

    cfg = tiny_train_cfg(
        "loss=magface", "loss.lower_norm=1.0", "loss.upper_norm=8.0", "trainer.log_every_n_steps=1"
    )
    train(cfg)
    rows = list(csv.DictReader((Path(cfg.paths.output_dir) / "csv" / "metrics.csv").open()))
    values = [float(r["train/regularizer"]) for r in rows if r.get("train/regularizer")]
    # 35 * mean(a / 64 + 1 / a) for a in [1, 8]: between 35 * 2 / 8 (a = 8) and 35 * (1/64 + 1)
    assert values and all(35 * 0.25 - 1e-6 <= v <= 35 * (1 / 64 + 1) + 1e-6 for v in values)


def test_adacos_scale_update_survives_underflow():
    # at s = 200 every non-target exp(s (cos - 1)) underflows float32: the exact fallback
    head = with_weight(AdaCosHead(2, 3), [at(30.0), at(150.0), at(210.0)])
    with torch.no_grad():
        head.adaptive_scale.fill_(200.0)
    x, labels = torch.tensor([at(30.0)]), torch.tensor([0])
    head(x, labels)
    values = [200.0 * cosd(120.0), 200.0 * cosd(180.0)]
    top = max(values)
    log_b_avg = top + math.log(sum(math.exp(v - top) for v in values))  # B = 1
    expected = log_b_avg / math.cos(math.radians(0.0))
    assert head.adaptive_scale.item() == pytest.approx(expected, rel=1e-5)
