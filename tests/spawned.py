"""Code that tests run in processes they start (torch.multiprocessing spawn): importable by name.

Spawned processes unpickle their function by module name, and test modules (imported by pytest
under `--import-mode=importlib`) cannot be found that way; tests/ is on the path, so this module can.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from marginface.distributed import gather_rows
from marginface.heads import (
    AMSoftmaxHead,
    ArcFaceHead,
    CombinedMarginHead,
    LSoftmaxHead,
    MagFaceHead,
    SoftmaxHead,
    SphereFaceHead,
)
from marginface.heads.partial_fc import remap_labels, sample_classes
from marginface.heads.sharded import ShardedHead, gather_head


def _ranked(rank: int, world_size: int, rendezvous: str, fn: Callable, args: tuple) -> None:
    dist.init_process_group("gloo", init_method=rendezvous, rank=rank, world_size=world_size)
    try:
        torch.set_num_threads(1)
        fn(rank, world_size, *args)
        # no rank may tear the group down while the other is still inside a collective: that
        # aborts the other process ("terminate called without an active exception")
        dist.barrier()
    finally:
        dist.destroy_process_group()


def run_ranks(fn: Callable, world_size: int, tmp_path: Path, *args) -> None:
    """Run fn(rank, world_size, *args) in `world_size` processes joined by a gloo process group."""
    for attempt in range(2):
        rendezvous = f"file://{tmp_path / f'rendezvous{attempt}'}"
        try:
            mp.spawn(_ranked, args=(world_size, rendezvous, fn, args), nprocs=world_size, join=True)
            return
        except mp.ProcessExitedException:
            # a worker killed by a signal (gloo's teardown aborts now and then on a loaded 2-core
            # machine) is retried once; a failed check raises ProcessRaisedException and is not
            if attempt:
                raise


# ------------------------------------------------------------------------------------------
# the sharded head (tests/heads/test_sharded.py)

DIM, CLASSES = 6, 11
# every head kind, with margins large enough to matter and L-Softmax's lambda fixed
FACTORIES = {
    "softmax": lambda: SoftmaxHead(DIM, CLASSES, bias=True),
    "lsoftmax": lambda: LSoftmaxHead(DIM, CLASSES, margin=3, base=0.5, gamma=0.0, lambda_min=0.0),
    "sphereface": lambda: SphereFaceHead(
        DIM, CLASSES, margin=4, base=0.5, gamma=0.0, lambda_min=0.0
    ),
    "amsoftmax": lambda: AMSoftmaxHead(DIM, CLASSES, scale=10.0, margin=0.35),
    "arcface": lambda: ArcFaceHead(DIM, CLASSES, scale=10.0, margin=0.5),
    "combined": lambda: CombinedMarginHead(DIM, CLASSES, scale=10.0, m1=1.35, m2=0.25, m3=0.1),
    # norms of the test batch (about 2.4) inside [l_a, u_a]: the margin varies per sample
    "magface": lambda: MagFaceHead(DIM, CLASSES, scale=10.0, lower_norm=1.0, upper_norm=4.0),
}
# rows per rank in the 2-rank tests: unequal on purpose (the last batch of an epoch may be)
SIZES = (5, 3)


def batch(seed: int, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(sum(SIZES), DIM, generator=generator, dtype=dtype)
    # labels on both ranks' blocks, one class repeated
    y = torch.tensor([0, 7, 3, 10, 5, 7, 1, 9])
    return x, y


def plain_head(name: str, dtype: torch.dtype = torch.float64):
    torch.manual_seed(1)
    return FACTORIES[name]().to(dtype)


def reference(head, x, y):
    """(loss, d loss/d x, d loss/d W) of the plain head with F.cross_entropy on the whole batch."""
    head = copy.deepcopy(head)
    x = x.clone().requires_grad_(True)
    loss = F.cross_entropy(head(x, y), y)
    loss.backward()
    return loss.detach(), x.grad, head.weight.grad


class _Model(nn.Module):
    """A linear 'backbone' and a head: what DDP wraps in the end-to-end check."""

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.backbone = nn.Linear(DIM, DIM).double()
        self.head = head

    def forward(self, images, labels):
        return self.head(self.backbone(images), labels)


def sharded_head_checks(rank: int, world_size: int) -> None:
    """On each of 2 ranks: the sharded head against the plain head on the whole batch."""
    first = sum(SIZES[:rank])
    mine = slice(first, first + SIZES[rank])
    for name in sorted(FACTORIES):
        head = plain_head(name)
        x, y = batch(0)
        loss_ref, grad_x_ref, grad_w_ref = reference(head, x, y)
        for rate in (1.0, 0.999):  # no sampling, and sampling that keeps every class
            sharded = ShardedHead(copy.deepcopy(head), sample_rate=rate)
            sharded.setup_shard()
            start, stop = sharded.rows
            assert (start, stop) == ((0, 5), (5, 11))[rank]
            xs = x[mine].clone().requires_grad_(True)
            loss = sharded(xs, y[mine])
            loss.backward()
            torch.testing.assert_close(loss, loss_ref, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(
                sharded.weight.grad, grad_w_ref[start:stop], rtol=1e-10, atol=1e-12
            )
            # multiplied by the world size, which DDP's average over ranks takes back
            torch.testing.assert_close(
                xs.grad, world_size * grad_x_ref[mine], rtol=1e-10, atol=1e-12
            )
        with torch.no_grad():
            torch.testing.assert_close(sharded(x[mine]), head(x[mine]), rtol=1e-12, atol=0)
        state = sharded.state_dict()
        torch.testing.assert_close(state["weight"], head.weight.detach(), rtol=0, atol=0)
        whole = gather_head(sharded)
        assert type(whole) is type(head) and whole.weight.shape == (CLASSES, DIM)
        torch.testing.assert_close(whole.weight, head.weight, rtol=0, atol=0)

    # DDP end to end: backbone gradient equals the single-process whole-batch gradient
    torch.manual_seed(2)
    single = _Model(plain_head("arcface"))
    x, y = batch(4)
    F.cross_entropy(single(x, y), y).backward()
    model = _Model(ShardedHead(copy.deepcopy(plain_head("arcface"))))
    model.backbone.load_state_dict(single.backbone.state_dict())
    model.head.setup_shard(model)
    assert model._ddp_params_and_buffers_to_ignore == ["head.weight"]
    ddp = DistributedDataParallel(model)
    ddp(x[mine], y[mine]).backward()
    for ours, theirs in zip(
        model.backbone.parameters(), single.backbone.parameters(), strict=False
    ):
        torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-10, atol=1e-12)
    start, stop = model.head.rows
    torch.testing.assert_close(
        model.head.weight.grad, single.head.weight.grad[start:stop], rtol=1e-10, atol=1e-12
    )
    # DDP did not overwrite rank 1's block with rank 0's
    torch.testing.assert_close(model.head.weight, single.head.weight[start:stop], rtol=0, atol=0)

    # sampling on 2 ranks: the softmax over the union of both ranks' kept classes
    head = plain_head("amsoftmax")
    x, y = batch(5)
    sharded = ShardedHead(copy.deepcopy(head), sample_rate=0.3)
    sharded.setup_shard()
    start, stop = sharded.rows
    torch.manual_seed(9)
    loss = sharded(x[mine], y[mine])
    torch.manual_seed(9)  # the same draw again, on each rank
    here = (y >= start) & (y < stop)
    kept = sample_classes(y[here] - start, stop - start, 0.3, sharded._sampling_generator(x.device))
    union, _ = gather_rows(kept + start)
    assert set(y.tolist()) <= set(union.tolist()) and len(union) < CLASSES
    expected = F.cross_entropy(head(x, y)[:, union], remap_labels(y, union))
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=1e-12)
    # the ranks draw from different streams, though they share the global seed
    torch.manual_seed(9)
    order = torch.randperm(1000, generator=sharded._sampling_generator(x.device))
    orders, _ = gather_rows(order.unsqueeze(0))
    assert not torch.equal(orders[0], orders[1])

    # fresh blocks (no whole matrix ever built) differ between ranks
    with torch.device("meta"):
        fresh = ShardedHead(ArcFaceHead(DIM, 10))
    torch.manual_seed(0)
    fresh.setup_shard()
    blocks = [torch.empty(5, DIM) for _ in range(world_size)]
    dist.all_gather(blocks, fresh.weight.detach().contiguous())
    assert not torch.equal(blocks[0], blocks[1])
