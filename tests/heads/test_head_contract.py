"""The Head contract: optional abilities declared with defaults; the sharded head wraps any head through it."""

from __future__ import annotations

from pathlib import Path

import hydra
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from marginface.heads import ArcFaceHead, SoftmaxHead
from marginface.heads.head import Head
from marginface.heads.sharded import ShardedHead

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "conf" / "loss").glob("*.yaml"))
DIM, CLASSES = 6, 5


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_configured_head_declares_the_abilities(path):
    head = hydra.utils.instantiate(OmegaConf.load(path), embedding_dim=DIM, num_classes=CLASSES)
    assert isinstance(head, Head)
    assert head.computes_loss is False  # logits, not a loss: FaceModule applies the criterion
    head.setup_shard(None)  # nothing to place, and no error
    head.anneal(3)
    assert isinstance(head.log_values(), dict)
    x = torch.ones(2, DIM)
    if (
        not head.shardable
    ):  # heads/sharded.py refuses it, tested in tests/heads/test_modern_heads.py
        assert head.regularizer(x) is None or head.regularizer(x).dim() == 0
        return
    sharded = ShardedHead(head, sample_rate=0.5, sharded=False)
    assert sharded.computes_loss is True
    # the wrapper passes the extra loss term through (None for heads without one)
    term, through = head.regularizer(x), sharded.regularizer(x)
    assert (term is None and through is None) or torch.equal(term, through)


class _Counting(ArcFaceHead):
    """An ArcFace head with state: a buffer counting training forwards (like CurricularFace's t)."""

    def __init__(self, embedding_dim: int, num_classes: int) -> None:
        super().__init__(embedding_dim, num_classes)
        self.register_buffer("seen", torch.zeros(()))

    def target_cosine(self, cos):
        self.seen += 1
        return super().target_cosine(cos)


def test_the_wrapped_head_is_a_submodule_whose_state_is_saved_under_the_plain_names():
    torch.manual_seed(0)
    plain = _Counting(DIM, CLASSES)
    plain.seen.fill_(7.0)
    keys = set(plain.state_dict())
    wrapped = ShardedHead(plain, sample_rate=0.999, sharded=False)
    assert wrapped.inner is plain and any(m is plain for m in wrapped.modules())
    assert set(wrapped.state_dict()) == keys == {"weight", "seen"}
    # buffers travel with the module (no hidden copy left behind)
    assert wrapped.double().inner.seen.dtype == torch.float64
    wrapped.float()
    x, y = torch.randn(4, DIM), torch.tensor([0, 1, 2, 4])
    wrapped(x, y).backward()
    assert wrapped.inner.seen.item() == 8.0 and wrapped.weight.grad is not None
    # a checkpoint of the wrapped head loads into a fresh plain head, and back
    fresh = _Counting(DIM, CLASSES)
    fresh.load_state_dict(wrapped.state_dict())
    assert fresh.seen.item() == 8.0 and torch.equal(fresh.weight, wrapped.weight)
    other = ShardedHead(_Counting(DIM, CLASSES), sample_rate=0.999, sharded=False)
    other.load_state_dict(fresh.state_dict())
    assert other.inner.seen.item() == 8.0 and torch.equal(other.weight, fresh.weight)


def test_a_head_with_state_built_on_meta_cannot_be_sharded():
    with torch.device("meta"):
        head = _Counting(DIM, CLASSES)
    with pytest.raises(ValueError, match=r"buffers \['seen'\].*head.sharded=false"):
        ShardedHead(head)


@pytest.mark.parametrize(
    "factory",
    [
        lambda: SoftmaxHead(DIM, CLASSES, bias=True),
        lambda: ArcFaceHead(DIM, CLASSES, scale=8.0, margin=0.4),
    ],
)
def test_block_logits_of_the_whole_matrix_equal_forward(factory):
    torch.manual_seed(1)
    head = factory()
    x, y = torch.randn(4, DIM, dtype=torch.float64), torch.tensor([0, 3, 3, 1])
    head = head.double()
    bias = dict(head.named_parameters()).get("bias")
    torch.testing.assert_close(head.block_logits(x, head.weight, bias, y), head(x, y))
    torch.testing.assert_close(head.block_logits(x, head.weight, bias, None), head(x))
    # a row whose label lies in another block (-1) gets no margin
    partial = head.block_logits(x, head.weight, bias, torch.tensor([0, -1, 3, -1]))
    torch.testing.assert_close(partial[[1, 3]], head(x)[[1, 3]])
    torch.testing.assert_close(partial[[0, 2]], head(x, y)[[0, 2]])
    assert F.cross_entropy(partial, y).isfinite()


def test_the_label_range_is_read_on_the_host_only_for_cpu_labels_or_when_asked():
    # meta tensors hold no values: reading one on the host (what a GPU would sync for) raises
    head = ArcFaceHead(DIM, CLASSES)
    x, y = torch.empty(2, DIM, device="meta"), torch.tensor([0, CLASSES + 3], device="meta")
    head.check_inputs(x, y)  # off the CPU: no host read, so no error either
    head.check_label_range = True
    with pytest.raises((RuntimeError, NotImplementedError)):
        head.check_inputs(x, y)
    with pytest.raises(ValueError, match=r"\[0, num_classes=5\).*\[0, 8\]"):
        head.check_inputs(torch.zeros(2, DIM), torch.tensor([0, CLASSES + 3]))
