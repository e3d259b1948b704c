"""Heads against values computed here by hand from each paper's formula, plus their numerics."""

from __future__ import annotations

import inspect
import math
from pathlib import Path

import hydra
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf
from torch.func import functional_call

import marginface.heads
from marginface.heads import (
    AMSoftmaxHead,
    ArcFaceHead,
    CombinedMarginHead,
    LSoftmaxHead,
    MarginHead,
    SoftmaxHead,
    SphereFaceHead,
)

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "conf" / "loss").glob("*.yaml"))

# One instance per head, with a margin large enough to matter; lambda fixed at 0.5 (no annealing).
FACTORIES = {
    "softmax": lambda d, c: SoftmaxHead(d, c, bias=True),
    "lsoftmax": lambda d, c: LSoftmaxHead(d, c, margin=3, base=0.5, gamma=0.0, lambda_min=0.0),
    "sphereface": lambda d, c: SphereFaceHead(d, c, margin=4, base=0.5, gamma=0.0, lambda_min=0.0),
    "amsoftmax": lambda d, c: AMSoftmaxHead(d, c, scale=10.0, margin=0.35),
    "arcface": lambda d, c: ArcFaceHead(d, c, scale=10.0, margin=0.5),
    "combined": lambda d, c: CombinedMarginHead(d, c, scale=10.0, m1=1.0, m2=0.3, m3=0.1),
    "combined_m1": lambda d, c: CombinedMarginHead(d, c, scale=10.0, m1=1.35, m2=0.25, m3=0.1),
}
DTYPES = [torch.float32, torch.float64]


def unit(degrees: float) -> list[float]:
    return [math.cos(math.radians(degrees)), math.sin(math.radians(degrees))]


def set_weight(head: MarginHead, rows: list[list[float]]) -> None:
    with torch.no_grad():
        head.weight.copy_(torch.tensor(rows, dtype=head.weight.dtype))


# --------------------------------------------------------------------------------------------
# Known angles, by hand: x at 30 deg with |x| = 2; classes at 0, 90 and 200 deg with norms
# 3, 0.5 and 1.5, so theta = 30, 60 and 170 deg. Row b of the batch has label b: every head's
# target is seen at a small, a medium and a very large angle (past ArcFace's threshold and in
# L-Softmax's k > 0 pieces).

X_DEG, X_NORM = 30.0, 2.0
CLASSES = [(0.0, 3.0), (90.0, 0.5), (200.0, 1.5)]
BIAS = [0.1, -0.2, 0.3]


def theta(j: int) -> float:
    return math.radians(abs(((CLASSES[j][0] - X_DEG) + 180.0) % 360.0 - 180.0))


def psi_by_hand(t: float, m: int) -> float:
    k = min(math.floor(m * t / math.pi), m - 1)
    return (-1) ** k * math.cos(m * t) - 2 * k


def lsoftmax_target(t: float, m: int, lam: float, radius: float) -> float:
    return (lam * radius * math.cos(t) + radius * psi_by_hand(t, m)) / (1 + lam)


def arcface_target(t: float, s: float, m: float) -> float:
    return s * math.cos(t + m) if t <= math.pi - m else s * (math.cos(t) - m * math.sin(m))


def combined_target(t: float, s: float, m1: float, m2: float, m3: float) -> float:
    turn = (math.pi - m2) / m1
    if t <= turn:
        return s * (math.cos(m1 * t + m2) - m3)
    # past the turn: cosine minus a constant, dropping by ArcFace's step at the turn
    step = (m2 * math.sin(m2) + math.cos(m2) - 1) if m2 else 0.0
    return s * (math.cos(t) - m3 - (1 + math.cos(turn) + step))


def by_hand(name: str) -> tuple[list[list[float]], float]:
    """Expected logits (row b has label b) and mean cross-entropy, all in Python floats."""
    rows = []
    for label in range(3):
        row = []
        for j, (_, w_norm) in enumerate(CLASSES):
            t, cos = theta(j), math.cos(theta(j))
            if name == "softmax":
                value = w_norm * X_NORM * cos + BIAS[j]
            elif name == "lsoftmax":
                radius = w_norm * X_NORM
                value = lsoftmax_target(t, 3, 0.5, radius) if j == label else radius * cos
            elif name == "sphereface":
                value = lsoftmax_target(t, 4, 0.5, X_NORM) if j == label else X_NORM * cos
            elif name == "amsoftmax":
                value = 10.0 * (cos - 0.35 * (j == label))
            elif name == "arcface":
                value = arcface_target(t, 10.0, 0.5) if j == label else 10.0 * cos
            elif name == "combined":
                value = combined_target(t, 10.0, 1.0, 0.3, 0.1) if j == label else 10.0 * cos
            else:
                value = combined_target(t, 10.0, 1.35, 0.25, 0.1) if j == label else 10.0 * cos
            row.append(value)
        rows.append(row)
    losses = [math.log(sum(math.exp(v) for v in row)) - row[b] for b, row in enumerate(rows)]
    return rows, sum(losses) / len(losses)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", FACTORIES)
def test_logits_and_loss_at_known_angles(name, dtype):
    head = FACTORIES[name](2, 3).to(dtype)
    set_weight(head, [[w * c for c in unit(deg)] for deg, w in CLASSES])
    if name == "softmax":
        with torch.no_grad():
            head.bias.copy_(torch.tensor(BIAS, dtype=dtype))
    x = torch.tensor([[X_NORM * c for c in unit(X_DEG)]] * 3, dtype=dtype)
    labels = torch.arange(3)
    logits = head(x, labels)
    expected, loss = by_hand(name)
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-12}
    torch.testing.assert_close(logits, torch.tensor(expected, dtype=dtype), **tol)
    torch.testing.assert_close(
        F.cross_entropy(logits, labels), torch.tensor(loss, dtype=dtype), **tol
    )


def test_known_angle_case_reaches_every_branch():
    # the table above is only worth its name if it hits ArcFace's threshold and psi's k > 0
    assert theta(2) > math.pi - 0.5
    assert math.floor(3 * theta(2) / math.pi) == 2
    assert math.floor(4 * theta(1) / math.pi) == 1


# --------------------------------------------------------------------------------------------
# The cross-entropy worked example (McCaffrey's democrat/republican/other table).

FIRST = [[0.3, 0.3, 0.4], [0.3, 0.4, 0.3], [0.1, 0.2, 0.7]]
SECOND = [[0.1, 0.2, 0.7], [0.1, 0.7, 0.2], [0.3, 0.4, 0.3]]
TARGETS = [2, 1, 0]  # one-hot [0,0,1], [0,1,0], [1,0,0]


@pytest.mark.parametrize(("probs", "expected"), [(FIRST, 1.3784), (SECOND, 0.6391)])
def test_cross_entropy_worked_example(probs, expected):
    by_hand = -sum(math.log(row[t]) for row, t in zip(probs, TARGETS, strict=True)) / 3
    # log-probabilities are valid logits: log_softmax(log p) = log p when p sums to 1
    loss = F.cross_entropy(torch.tensor(probs, dtype=torch.float64).log(), torch.tensor(TARGETS))
    assert loss.item() == pytest.approx(by_hand, abs=1e-12)
    assert round(loss.item(), 4) == expected


@pytest.mark.parametrize(
    ("probs", "printed", "nearest"), [(FIRST, "1.37", "1.38"), (SECOND, "0.63", "0.64")]
)
def test_tutorial_rounding(probs, printed, nearest):
    losses = [-math.log(row[t]) for row, t in zip(probs, TARGETS, strict=True)]
    # each sample's loss cut to two decimals (0.91, 0.91, 2.30 | 0.35, 0.35, 1.20), then averaged,
    # gives the tutorial's 1.37 and 0.63; rounding each to nearest gives 1.38 and 0.64 instead,
    # and the exact means 1.3784 and 0.6391 also print as 1.38 and 0.64
    truncated = [math.floor(v * 100) / 100 for v in losses]
    rounded = [round(v, 2) for v in losses]
    assert f"{sum(truncated) / 3:.2f}" == printed
    assert f"{sum(rounded) / 3:.2f}" == nearest
    assert f"{sum(losses) / 3:.2f}" == nearest


# --------------------------------------------------------------------------------------------
# L-Softmax's psi.


@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_psi_continuous_decreasing_and_by_formula(m):
    head = LSoftmaxHead(2, 2, margin=m)
    t = np.linspace(0.0, math.pi, 20001)
    psi = head.psi(torch.from_numpy(np.cos(t))).numpy()
    k = np.minimum(np.floor(m * t / math.pi), m - 1)
    np.testing.assert_allclose(psi, (-1.0) ** k * np.cos(m * t) - 2 * k, atol=1e-9)
    steps = np.diff(psi)
    assert (steps < 0).all()
    # |psi'| = m |sin(m t)| <= m: no jump anywhere, the pieces join
    assert np.abs(steps).max() <= m * (t[1] - t[0]) * (1 + 1e-6)
    assert psi[0] == pytest.approx(1.0) and psi[-1] == pytest.approx(1.0 - 2 * m)


# --------------------------------------------------------------------------------------------
# Gradients.


def gradcheck_inputs(head: MarginHead) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(4, 5, generator=generator, dtype=torch.float64)
    labels = torch.tensor([0, 3, 5, 3])
    with torch.no_grad():
        # one target almost opposite its class: ArcFace/combined past the threshold, psi's k > 0
        x[2] = -2.0 * head.weight[5] + 0.05 * x[2]
    return x.requires_grad_(), labels


@pytest.mark.parametrize("name", FACTORIES)
def test_gradcheck(name):
    torch.manual_seed(0)
    head = FACTORIES[name](5, 6).double()
    x, labels = gradcheck_inputs(head)
    params = {k: v.detach().clone().requires_grad_() for k, v in head.named_parameters()}

    def training(x, weight):
        return functional_call(head, {**params, "weight": weight}, (x, labels))

    def inference(x, weight):
        return functional_call(head, {**params, "weight": weight}, (x,))

    assert torch.autograd.gradcheck(training, (x, params["weight"]))
    assert torch.autograd.gradcheck(inference, (x, params["weight"]))


def test_cosine_gradcheck():
    head = AMSoftmaxHead(5, 6).double()
    x = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, w: functional_call(head, {"weight": w}, (x,)), (x, head.weight)
    )
    assert torch.autograd.gradcheck(lambda x: head.cosine(x), (x,))


EDGE_FACTORIES = {
    **FACTORIES,
    "arcface64": lambda d, c: ArcFaceHead(d, c, scale=64.0, margin=0.5),
    "combined64": lambda d, c: CombinedMarginHead(d, c, scale=64.0, m1=1.0, m2=0.5, m3=0.2),
    "combined64_m1": lambda d, c: CombinedMarginHead(d, c, scale=64.0, m1=1.35, m2=0.25, m3=0.1),
}


@pytest.mark.parametrize("autocast", [None, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("name", EDGE_FACTORIES)
def test_finite_gradients_at_cos_plus_minus_one(name, autocast):
    head = EDGE_FACTORIES[name](2, 3)
    set_weight(head, [[3.0, 0.0], [0.0, 1.0], [-1.0, 1.0]])
    # exactly on and exactly against the target class: cos = 1 and cos = -1, sin = 0
    x = torch.tensor([[2.0, 0.0], [-2.0, 0.0], [0.0, 0.0]], requires_grad=True)
    labels = torch.tensor([0, 0, 1])
    with torch.autocast("cpu", dtype=autocast or torch.bfloat16, enabled=autocast is not None):
        logits = head(x, labels)
        loss = F.cross_entropy(logits, labels)
    loss.backward()
    assert torch.isfinite(logits).all() and torch.isfinite(loss)
    assert torch.isfinite(x.grad).all() and torch.isfinite(head.weight.grad).all()


@pytest.mark.parametrize("name", ["arcface64", "combined64", "combined64_m1", "sphereface"])
def test_autocast_matches_float32(name):
    # the margin arithmetic runs in float32: only the bf16 GEMMs' rounding shows, forward and back
    torch.manual_seed(0)
    head = EDGE_FACTORIES[name](16, 10)
    x, labels = torch.randn(8, 16, requires_grad=True), torch.arange(8)
    results = []
    for enabled in [False, True]:
        x.grad, head.weight.grad = None, None
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
            logits = head(x, labels)
        F.cross_entropy(logits.float(), labels).backward()
        results.append((logits.float(), x.grad, head.weight.grad))
    assert logits.dtype == torch.bfloat16
    for full, half in zip(*results, strict=True):
        torch.testing.assert_close(half, full, rtol=0.0, atol=2e-2 * full.abs().max().item())


# --------------------------------------------------------------------------------------------
# Shape of the target logit in theta.


def target_curve(head: MarginHead, t: np.ndarray) -> np.ndarray:
    set_weight(head, [[1.0, 0.0], [0.0, 1.0]])
    x = torch.from_numpy(np.stack([np.cos(t), np.sin(t)], axis=1))
    return head(x, torch.zeros(len(t), dtype=torch.long))[:, 0].detach().numpy()


@pytest.mark.parametrize("margin", [0.1, 0.5, 1.0, 1.5])
def test_arcface_target_monotone_in_theta(margin):
    t = np.linspace(0.0, math.pi, 4001)
    curve = target_curve(ArcFaceHead(2, 2, scale=64.0, margin=margin).double(), t)
    assert (np.diff(curve) <= 1e-12).all()
    inside = t <= math.pi - margin
    np.testing.assert_allclose(curve[inside], 64 * np.cos(t[inside] + margin), atol=1e-9)
    beyond = 64 * (np.cos(t[~inside]) - margin * math.sin(margin))
    np.testing.assert_allclose(curve[~inside], beyond, atol=1e-9)


@pytest.mark.parametrize(
    ("m1", "m2", "m3"),
    [(1.0, 0.5, 0.0), (1.35, 0.3, 0.1), (0.9, 0.4, 0.2), (2.0, 0.0, 0.0), (4.0, 0.2, 0.3)],
)
def test_combined_target_monotone_in_theta(m1, m2, m3):
    t = np.linspace(0.0, math.pi, 4001)
    curve = target_curve(CombinedMarginHead(2, 2, scale=64.0, m1=m1, m2=m2, m3=m3).double(), t)
    assert (np.diff(curve) <= 1e-12).all()
    expected = [combined_target(v, 64.0, m1, m2, m3) for v in t]
    np.testing.assert_allclose(curve, expected, atol=1e-8)


def test_combined_covers_arcface_and_cosface():
    torch.manual_seed(0)
    x, labels = torch.randn(32, 8, dtype=torch.float64), torch.randint(5, (32,))
    pairs = [
        (ArcFaceHead(8, 5, scale=30.0, margin=0.5), dict(m1=1.0, m2=0.5, m3=0.0)),
        (AMSoftmaxHead(8, 5, scale=30.0, margin=0.35), dict(m1=1.0, m2=0.0, m3=0.35)),
    ]
    for head, margins in pairs:
        combined = CombinedMarginHead(8, 5, scale=30.0, **margins).double()
        head = head.double()
        combined.load_state_dict(head.state_dict())
        torch.testing.assert_close(combined(x, labels), head(x, labels), rtol=0.0, atol=1e-12)


# --------------------------------------------------------------------------------------------
# No margin: margin 0 / m = 1, and inference.

ZERO_MARGIN = {
    "amsoftmax": lambda: AMSoftmaxHead(6, 4, margin=0.0),
    "arcface": lambda: ArcFaceHead(6, 4, margin=0.0),
    "combined": lambda: CombinedMarginHead(6, 4, m1=1.0, m2=0.0, m3=0.0),
    "lsoftmax": lambda: LSoftmaxHead(6, 4, margin=1, base=0.0, lambda_min=0.0),
    "sphereface": lambda: SphereFaceHead(6, 4, margin=1, base=0.0, lambda_min=0.0),
}


def plain_logits(head: MarginHead, x: torch.Tensor) -> torch.Tensor:
    """The no-margin logits of each head, from their definition."""
    if isinstance(head, SoftmaxHead):
        return x @ head.weight.T + (0.0 if head.bias is None else head.bias)
    if isinstance(head, SphereFaceHead):
        return x.norm(dim=1, keepdim=True) * head.cosine(x)
    if isinstance(head, LSoftmaxHead):
        return x @ head.weight.T
    return head.scale * head.cosine(x)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", ZERO_MARGIN)
def test_zero_margin_is_exactly_no_margin(name, dtype):
    torch.manual_seed(0)
    head = ZERO_MARGIN[name]().to(dtype)
    x, labels = torch.randn(16, 6, dtype=dtype), torch.randint(4, (16,))
    with torch.no_grad():
        assert torch.equal(head(x, labels), head(x))
        torch.testing.assert_close(head(x), plain_logits(head, x))


def test_lsoftmax_margin_one_is_exactly_linear():
    torch.manual_seed(0)
    head = LSoftmaxHead(6, 4, margin=1)
    x, labels = torch.randn(16, 6), torch.randint(4, (16,))
    assert torch.equal(head(x, labels), F.linear(x, head.weight))


@pytest.mark.parametrize("name", FACTORIES)
def test_margin_touches_the_target_only_and_inference_has_none(name):
    torch.manual_seed(0)
    head = FACTORIES[name](6, 4).double()
    x, labels = torch.randn(16, 6, dtype=torch.float64), torch.randint(4, (16,))
    with torch.no_grad():
        inference, training = head(x), head(x, labels)
        torch.testing.assert_close(inference, plain_logits(head, x))
        others = torch.ones_like(training, dtype=torch.bool).scatter_(1, labels[:, None], False)
        assert torch.equal(training[others], inference[others])
        target, plain = training.gather(1, labels[:, None]), inference.gather(1, labels[:, None])
        if name == "softmax":
            assert torch.equal(target, plain)
        else:
            assert (target < plain).all()


@pytest.mark.parametrize("name", FACTORIES)
def test_labels_are_optional_and_int32_works(name):
    head = FACTORIES[name](6, 4)
    x = torch.randn(3, 6)
    assert head(x).shape == (3, 4)
    labels = torch.tensor([0, 3, 1])
    assert torch.equal(head(x, labels.int()), head(x, labels))
    assert head(torch.randn(0, 6), torch.zeros(0, dtype=torch.long)).shape == (0, 4)


# hypothesis: a margin never raises the target logit (the whole point of one)

ANGLES = st.lists(st.floats(0.0, math.pi), min_size=1, max_size=16)


def assert_never_above(head: MarginHead, angles: list[float]) -> None:
    head = head.double()
    t = np.asarray(angles)
    set_weight(head, [[1.0, 0.0], [0.0, 1.0]])
    x = torch.from_numpy(np.stack([np.cos(t), np.sin(t)], axis=1))
    with torch.no_grad():
        training = head(x, torch.zeros(len(t), dtype=torch.long))[:, 0]
        inference = head(x)[:, 0]
    assert (training <= inference + 1e-9).all()


@settings(max_examples=40, deadline=None)
@given(angles=ANGLES, scale=st.floats(1.0, 64.0), margin=st.floats(0.0, 1.0))
def test_amsoftmax_target_never_above_plain(angles, scale, margin):
    assert_never_above(AMSoftmaxHead(2, 2, scale=scale, margin=margin), angles)


@settings(max_examples=40, deadline=None)
@given(
    angles=ANGLES, scale=st.floats(1.0, 64.0), margin=st.floats(0.0, math.pi / 2, exclude_max=True)
)
def test_arcface_target_never_above_plain(angles, scale, margin):
    assert_never_above(ArcFaceHead(2, 2, scale=scale, margin=margin), angles)


@settings(max_examples=40, deadline=None)
@given(
    angles=ANGLES,
    m1=st.floats(1.0, 4.0),
    m2=st.floats(0.0, math.pi / 2, exclude_max=True),
    m3=st.floats(0.0, 0.5),
)
def test_combined_target_never_above_plain(angles, m1, m2, m3):
    assert_never_above(CombinedMarginHead(2, 2, scale=32.0, m1=m1, m2=m2, m3=m3), angles)


@settings(max_examples=40, deadline=None)
@given(angles=ANGLES, margin=st.integers(1, 5), lam=st.floats(0.0, 100.0), sphere=st.booleans())
def test_lsoftmax_target_never_above_plain(angles, margin, lam, sphere):
    head_class = SphereFaceHead if sphere else LSoftmaxHead
    assert_never_above(head_class(2, 2, margin=margin, base=lam, lambda_min=0.0, gamma=0.0), angles)


# --------------------------------------------------------------------------------------------
# Annealing, logging, size.


@pytest.mark.parametrize("head_class", [LSoftmaxHead, SphereFaceHead])
@pytest.mark.parametrize(
    ("base", "gamma", "power", "lambda_min"), [(1000.0, 0.12, 1.0, 5.0), (1500.0, 0.01, 2.0, 0.0)]
)
def test_annealing_schedule(head_class, base, gamma, power, lambda_min):
    head = head_class(4, 3, base=base, gamma=gamma, power=power, lambda_min=lambda_min)
    assert head.log_values() == {"lambda": base}
    for step in [0, 1, 10, 100, 1000, 10**6]:
        head.anneal(step)
        expected = max(lambda_min, base * (1 + gamma * step) ** (-power))
        assert head.log_values() == {"lambda": pytest.approx(expected, rel=1e-12)}
    # at 1000 steps, the first schedule reads 1000 / 121 = 8.26; at 10^6 it sits on lambda_min
    if base == 1000.0:
        head.anneal(1000)
        assert head.log_values()["lambda"] == pytest.approx(1000 / 121)


def test_annealed_lambda_reaches_the_logits():
    head = LSoftmaxHead(2, 2, margin=2)
    set_weight(head, [[1.0, 0.0], [0.0, 1.0]])
    x, labels = torch.tensor([unit(30.0)], dtype=torch.float32), torch.tensor([0])
    for step, lam in [(0, 1000.0), (10**6, 5.0)]:
        head.anneal(step)
        expected = lsoftmax_target(math.radians(30.0), 2, lam, 1.0)
        assert head(x, labels)[0, 0].item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("name", ["softmax", "amsoftmax", "arcface", "combined"])
def test_heads_without_schedule_log_nothing(name):
    head = FACTORIES[name](4, 3)
    head.anneal(10)
    assert head.log_values() == {}


@pytest.mark.parametrize("name", FACTORIES)
def test_head_size(name):
    head = FACTORIES[name](7, 11)
    numel = 11 * 7 + (11 if name == "softmax" else 0)
    assert head.head_size() == {"parameters": numel, "bytes": 4 * numel}
    assert head.double().head_size() == {"parameters": numel, "bytes": 8 * numel}
    assert head.weight.shape == (11, 7)


# --------------------------------------------------------------------------------------------
# Every config under conf/loss builds a head that trains (a new head is tested once it has one).


def test_every_head_has_a_config():
    targets = {OmegaConf.load(path)["_target_"] for path in CONFIGS}
    exported = {f"marginface.heads.{n}" for n in marginface.heads.__all__ if n != "MarginHead"}
    assert exported <= targets
    assert len(CONFIGS) >= 7


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_instantiates_and_trains(path):
    cfg = OmegaConf.load(path)
    head_class = hydra.utils.get_class(cfg["_target_"])
    arguments = set(inspect.signature(head_class).parameters) - {"embedding_dim", "num_classes"}
    assert set(cfg) - {"_target_"} <= arguments
    torch.manual_seed(0)
    head = hydra.utils.instantiate(cfg, embedding_dim=8, num_classes=5)
    assert isinstance(head, MarginHead)
    x, labels = torch.randn(6, 8, requires_grad=True), torch.randint(5, (6,))
    head.anneal(0)
    loss = F.cross_entropy(head(x, labels), labels)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in head.parameters())


# --------------------------------------------------------------------------------------------
# Bad input: ValueError naming the argument, the value and the allowed range.


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: LSoftmaxHead(4, 3, margin=2.5), r"margin must be an integer >= 1, got 2.5"),
        (lambda: LSoftmaxHead(4, 3, margin=0), r"margin must be an integer >= 1, got 0"),
        (lambda: LSoftmaxHead(4, 3, margin=True), r"margin must be an integer >= 1, got True"),
        (lambda: SphereFaceHead(4, 3, margin=-4), r"margin must be an integer >= 1, got -4"),
        (lambda: LSoftmaxHead(4, 3, base=-1.0), r"base must be .* \[0, inf\), got -1.0"),
        (lambda: LSoftmaxHead(4, 3, lambda_min=-1.0), r"lambda_min must be .* \[0, inf\)"),
        (lambda: AMSoftmaxHead(4, 3, scale=0.0), r"scale must be .* \(0, inf\), got 0.0"),
        (lambda: AMSoftmaxHead(4, 3, scale=-1.0), r"scale must be .* \(0, inf\), got -1.0"),
        (lambda: AMSoftmaxHead(4, 3, margin=-0.1), r"margin must be .* \[0, inf\), got -0.1"),
        (lambda: ArcFaceHead(4, 3, scale=-64.0), r"scale must be .* \(0, inf\), got -64.0"),
        (lambda: ArcFaceHead(4, 3, margin=-0.1), r"margin must be .* \[0, 1.5708\), got -0.1"),
        (lambda: ArcFaceHead(4, 3, margin=math.pi / 2), r"margin must be .* \[0, 1.5708\)"),
        (lambda: ArcFaceHead(4, 3, margin=3.0), r"margin must be .* \[0, 1.5708\), got 3.0"),
        (lambda: ArcFaceHead(4, 3, margin=float("nan")), r"margin must be a finite number"),
        (lambda: CombinedMarginHead(4, 3, scale=0), r"scale must be .* \(0, inf\), got 0"),
        (lambda: CombinedMarginHead(4, 3, m1=0.0), r"m1 must be .* \(0, inf\), got 0.0"),
        (lambda: CombinedMarginHead(4, 3, m2=2.0), r"m2 must be .* \[0, 1.5708\), got 2.0"),
        (lambda: CombinedMarginHead(4, 3, m3=-0.2), r"m3 must be .* \[0, inf\), got -0.2"),
        (lambda: SoftmaxHead(4, 3, bias="yes"), r"bias must be true or false, got 'yes'"),
        (lambda: SoftmaxHead(0, 3), r"embedding_dim must be an integer >= 1, got 0"),
        (lambda: ArcFaceHead(4, 2.0), r"num_classes must be an integer >= 1, got 2.0"),
        (lambda: LSoftmaxHead(4, 3).anneal(-1), r"step must be an integer >= 0, got -1"),
    ],
)
def test_bad_arguments(build, message):
    with pytest.raises(ValueError, match=message):
        build()


BAD_INPUTS = {
    "dim_mismatch": (torch.randn(2, 7), None, r"embedding_dim=8 columns, got shape \(2, 7\)"),
    "one_dimensional": (torch.randn(8), None, r"embeddings must be a 2-D tensor"),
    "label_too_large": (torch.randn(2, 8), torch.tensor([0, 5]), r"\[0, num_classes=5\).*\[0, 5\]"),
    "label_negative": (
        torch.randn(2, 8),
        torch.tensor([-1, 2]),
        r"\[0, num_classes=5\).*\[-1, 2\]",
    ),
    "labels_2d": (torch.randn(2, 8), torch.tensor([[0], [1]]), r"shape \(2,\).*got \(2, 1\)"),
    "labels_short": (torch.randn(2, 8), torch.tensor([1]), r"shape \(2,\).*got \(1,\)"),
    "labels_float": (
        torch.randn(2, 8),
        torch.tensor([0.0, 1.0]),
        r"integer class indices.*float32",
    ),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
@pytest.mark.parametrize("name", FACTORIES)
def test_bad_forward_inputs(name, case):
    x, labels, message = BAD_INPUTS[case]
    with pytest.raises(ValueError, match=message):
        FACTORIES[name](8, 5)(x, labels)
