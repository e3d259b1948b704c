"""ShardedHead against the unsharded head: same loss and gradients on 1 and on 2 ranks (gloo, CPU).

The reference is always the plain head of heads/ on the whole batch with F.cross_entropy.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from marginface.heads import (
    ArcFaceHead,
    SoftmaxHead,
)
from marginface.heads.partial_fc import remap_labels, sample_classes
from marginface.heads.sharded import ShardedHead, gather_head
from marginface.training.factory import build_head
from spawned import (
    CLASSES,
    DIM,
    FACTORIES,
    batch,
    plain_head,
    reference,
    run_ranks,
    sharded_head_checks,
)

# ------------------------------------------------------------------------------------------
# one process


# (rtol, atol) of the loss and of the gradients: float64 to the last digits, float32 to float tolerance
TOLERANCES = {
    torch.float64: ((1e-12, 1e-12), (1e-10, 1e-12)),
    torch.float32: ((1e-6, 1e-6), (1e-5, 1e-6)),
}


@pytest.mark.parametrize("dtype", sorted(TOLERANCES, key=str))
@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_one_rank_equals_the_plain_head(name, dtype):
    (loss_rtol, loss_atol), (rtol, atol) = TOLERANCES[dtype]
    head = plain_head(name, dtype)
    x, y = batch(0, dtype)
    loss_ref, grad_x_ref, grad_w_ref = reference(head, x, y)
    sharded = ShardedHead(copy.deepcopy(head))
    sharded.setup_shard()
    x = x.clone().requires_grad_(True)
    loss = sharded(x, y)
    loss.backward()
    torch.testing.assert_close(loss, loss_ref, rtol=loss_rtol, atol=loss_atol)
    torch.testing.assert_close(x.grad, grad_x_ref, rtol=rtol, atol=atol)
    torch.testing.assert_close(sharded.weight.grad, grad_w_ref, rtol=rtol, atol=atol)
    # without labels: the plain head's logits, no margin, through the same code
    torch.testing.assert_close(sharded(x), head(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", ["arcface", "softmax"])
def test_sampling_path_keeping_every_class_equals_sample_rate_one(name):
    # 11 classes, at most 7 positives: round(0.999 * negatives) keeps every negative, so the
    # sampling code (index_select, label remapping) runs and must change nothing, bit for bit
    head = plain_head(name)
    x, y = batch(2)
    results = []
    for rate in (1.0, 0.999):
        sharded = ShardedHead(copy.deepcopy(head), sample_rate=rate)
        xs = x.clone().requires_grad_(True)
        loss = sharded(xs, y)
        loss.backward()
        results.append((loss.detach(), xs.grad, sharded.weight.grad))
    for one, sampled in zip(*results, strict=True):
        torch.testing.assert_close(sampled, one, rtol=0, atol=0)


def test_sampled_loss_is_the_softmax_over_the_kept_classes():
    head = plain_head("arcface")
    x, y = batch(3)
    sharded = ShardedHead(copy.deepcopy(head), sample_rate=0.4)
    torch.manual_seed(5)
    loss = sharded(x, y)
    torch.manual_seed(5)  # the same draw again
    kept = sample_classes(y, CLASSES, 0.4, sharded._sampling_generator(x.device))
    # by hand: the plain margin logits, restricted to the kept columns, labels renumbered
    expected = F.cross_entropy(head(x, y)[:, kept], remap_labels(y, kept))
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=1e-12)
    # positives: 7 distinct labels of 11; negatives 4 -> round(1.6) = 2 kept
    assert len(kept) == 7 + 2


def test_draws_replay_after_reseeding_and_differ_between_steps():
    sharded = ShardedHead(plain_head("arcface"), sample_rate=0.3)
    x, y = batch(6)
    torch.manual_seed(11)
    first, second = sharded(x, y), sharded(x, y)
    torch.manual_seed(11)  # e.g. a resumed run reseeding at the epoch start
    assert sharded(x, y) == first and first != second
    # ranks draw different positions from the same global stream
    torch.manual_seed(11)
    draw = sharded._sampling_generator(x.device)
    torch.manual_seed(11)
    sharded.rank = 1
    other = sharded._sampling_generator(x.device)
    assert (
        torch.randint(0, 2**30, (4,), generator=draw).tolist()
        != torch.randint(0, 2**30, (4,), generator=other).tolist()
    )


def test_sample_classes_keeps_every_positive_and_a_share_of_the_rest():
    generator = torch.Generator().manual_seed(0)
    positives = torch.tensor([3, 3, 17, 40, 99])
    for _ in range(20):
        kept = sample_classes(positives, 100, 0.1, generator)
        assert set(positives.tolist()) <= set(kept.tolist())
        assert len(kept) == 4 + round(0.1 * 96)  # 4 distinct positives, 96 negatives
        assert torch.equal(kept, kept.unique())  # sorted, no repeats
    assert torch.equal(sample_classes(positives, 100, 1.0), torch.arange(100))
    # no positive in this block: one class is still kept, so the softmax has a normaliser
    assert len(sample_classes(torch.tensor([], dtype=torch.long), 50, 0.001)) == 1


def test_negatives_are_drawn_uniformly():
    generator = torch.Generator().manual_seed(0)
    counts = torch.zeros(20)
    for _ in range(2000):
        counts[sample_classes(torch.tensor([0]), 20, 0.25, generator)] += 1
    # class 0 always; each of the 19 negatives with probability round(4.75)/19 = 5/19
    assert counts[0] == 2000
    expected = 2000 * 5 / 19
    assert (counts[1:] - expected).abs().max() < 5 * math.sqrt(expected)


def test_wrong_uses_are_named():
    with pytest.raises(ValueError, match="sample_rate"):
        ShardedHead(plain_head("arcface"), sample_rate=0.0)
    with pytest.raises(ValueError, match="wraps a marginface head"):
        ShardedHead(nn.Linear(3, 4))
    with torch.device("meta"):
        unplaced = ShardedHead(ArcFaceHead(DIM, CLASSES))
    with pytest.raises(RuntimeError, match="setup_shard"):
        unplaced(torch.zeros(2, DIM), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="unknown head options"):
        build_head({"_target_": "marginface.heads.ArcFaceHead"}, DIM, CLASSES, {"shard": True})


def test_build_head_allocates_nothing_until_placed():
    cfg = {"_target_": "marginface.heads.ArcFaceHead", "scale": 10.0, "margin": 0.5}
    assert type(build_head(cfg, DIM, CLASSES)) is ArcFaceHead
    head = build_head(cfg, DIM, CLASSES, {"sharded": True, "sample_rate": 0.5})
    assert isinstance(head, ShardedHead) and head.weight.is_meta and head.rows is None
    torch.manual_seed(0)
    head.setup_shard()  # no process group: rank 0 of 1 holds every class
    assert head.rows == (0, CLASSES) and not head.weight.is_meta
    bound = 1 / math.sqrt(DIM)
    assert head.weight.abs().max() <= bound and head.weight.std() > bound / 4
    assert head.head_size() == {"parameters": CLASSES * DIM, "bytes": CLASSES * DIM * 4}


def test_checkpoint_holds_the_whole_matrix_and_loads_into_the_plain_head():
    head = plain_head("softmax")
    with torch.device("meta"):
        unplaced = ShardedHead(copy.deepcopy(head))
    # e.g. the main process after ddp_spawn: it receives rank 0's (whole) state dict
    unplaced.load_state_dict(head.state_dict())
    assert unplaced.rows == (0, CLASSES)
    torch.testing.assert_close(unplaced.weight, head.weight, rtol=0, atol=0)
    fresh = plain_head("softmax")
    fresh.load_state_dict(unplaced.state_dict())
    torch.testing.assert_close(fresh.bias, head.bias, rtol=0, atol=0)
    assert type(gather_head(unplaced)) is SoftmaxHead
    with pytest.raises(RuntimeError, match="whole matrix"):
        unplaced.load_state_dict({"weight": head.weight[:3], "bias": head.bias})


# ------------------------------------------------------------------------------------------
# two processes (gloo); the checks live in tests/spawned.py, which spawned processes can import


def test_two_ranks_equal_the_plain_head(tmp_path: Path):
    run_ranks(sharded_head_checks, 2, tmp_path)
