"""Diagnostics of one model: gradient curves, the KL identity, angle statistics and softmax confidence."""

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from marginface.evaluation.diagnostics import (
    centre_angles,
    confidence,
    kl_identity,
    softmax_diagnostics,
    weight_angles,
)
from marginface.heads import SoftmaxHead, SubCenterArcFaceHead
from marginface.heads.losses import target_logit_gradient


def test_target_logit_gradient_ce_and_mse():
    p = np.array([0.01, 0.2, 0.5, 0.8, 0.99])
    c = 7
    got = target_logit_gradient(p, num_classes=c)
    np.testing.assert_allclose(got["ce"], p - 1.0, atol=1e-6)
    # squared error on softmax, by hand: the other c-1 classes share 1 - p equally, so
    # dL/dz_y = 2 p_y [(p_y - 1)(1 - p_y) - sum_j p_j^2] = -2 p (1 - p)^2 c / (c - 1)
    np.testing.assert_allclose(got["mse"], -2 * p * (1 - p) ** 2 * c / (c - 1), atol=1e-6)
    # the point of the check: at a confident wrong answer CE pushes ~45x harder than MSE here
    assert abs(got["ce"][0]) > 40 * abs(got["mse"][0])


def test_kl_identity_holds_and_matches_scipy():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 5, generator=gen) * 3, torch.randn(6, 5, generator=gen)
    got = kl_identity(a, b)
    p, q = a.double().softmax(1).numpy(), b.double().softmax(1).numpy()
    assert got["kl_mean"] == pytest.approx(
        np.mean([stats.entropy(pi, qi) for pi, qi in zip(p, q, strict=True)]), rel=1e-10
    )
    assert got["entropy_mean"] == pytest.approx(np.mean([stats.entropy(pi) for pi in p]), rel=1e-10)
    assert got["max_abs_gap"] < 1e-12 and got["n"] == 6


def at(degrees):
    r = np.radians(degrees)
    return torch.tensor(np.stack([np.cos(r), np.sin(r)], axis=1), dtype=torch.float64)


def test_centre_and_weight_angles_at_known_angles():
    # class 0 at 0 +- 10 degrees, class 1 at 90 +- 10: centres at 0 and 90 degrees
    features = at([-10, 10, 80, 100]) * torch.tensor(
        [[1.0], [2.0], [3.0], [0.5]], dtype=torch.float64
    )
    labels = torch.tensor([0, 0, 1, 1])
    got = centre_angles(features, labels)
    assert got["intra_deg"] == pytest.approx(10.0) and got["inter_deg"] == pytest.approx(90.0)
    head = SoftmaxHead(2, 3)
    with torch.no_grad():
        head.weight.copy_(at([0, 90, 180]) * 3)  # norms do not matter
    w = weight_angles(features, labels, head)
    assert w["w_ex_deg"] == pytest.approx(10.0, abs=1e-4)
    assert w["w_inter_deg"] == pytest.approx(90.0, abs=1e-4)


def test_weight_angles_of_a_subcenter_head_use_the_nearest_subcentre():
    # 3 classes x 2 sub-centres, rows class-major: class 0 at 0 and 40 degrees, class 1 at 150
    # and 250, class 2 at 200 and 300
    head = SubCenterArcFaceHead(2, 3, subcenters=2)
    with torch.no_grad():
        head.weight.copy_(
            at([0, 40, 150, 250, 200, 300]) * torch.tensor([[1.0], [2.0]]).repeat(3, 1)
        )
    # features at 30 (class 0: 10 from 40), 230 (class 1: 20 from 250), 190 (class 2: 10 from 200)
    features, labels = at([30, 230, 190]) * 5, torch.tensor([0, 1, 2])
    w = weight_angles(features, labels, head)
    assert w["w_ex_deg"] == pytest.approx((10 + 20 + 10) / 3, abs=1e-4)
    # nearest other class's sub-centre: class 0 -> 300 (60, not its own 40 at 40 apart),
    # class 1 -> 200 (50), class 2 -> 150 or 250 (50)
    assert w["w_inter_deg"] == pytest.approx((60 + 50 + 50) / 3, abs=1e-4)


def test_confidence_of_a_uniform_and_a_certain_posterior():
    uniform = confidence(torch.zeros(3, 4))
    assert uniform["max_prob_mean"] == pytest.approx(0.25)
    assert uniform["entropy_mean_nats"] == pytest.approx(math.log(4))
    assert uniform["entropy_share_mean"] == pytest.approx(1.0)
    sure = confidence(torch.tensor([[50.0, 0.0, 0.0]]))
    assert sure["max_prob_over_0.9"] == 1.0 and sum(sure["max_prob_hist"]) == 1
    assert sure["max_prob_hist"][-1] == 1


def test_softmax_diagnostics_on_a_tiny_model():
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Flatten(), nn.Linear(1 * 6 * 5, 4))
    head = SoftmaxHead(4, 3)
    backbone.train(), head.train()
    images = torch.randint(0, 256, (10, 1, 6, 5), dtype=torch.uint8)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1, 2, 0])
    got = softmax_diagnostics(backbone, head, images[:6], labels[:6], images[6:], labels[6:] + 3)
    assert backbone.training and head.training  # modes restored
    assert got["confidence"]["closed_set"]["n"] == 6 and got["confidence"]["open_set"]["n"] == 4
    assert got["kl_identity"]["n"] == 10 and got["kl_identity"]["max_abs_gap"] < 1e-12
    for block in (got["angles"]["closed_set"], got["angles"]["open_set"]):
        assert all(0.0 <= v <= 180.0 for v in block.values())
