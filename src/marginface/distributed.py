"""The few collectives a sharded head needs, each also correct without a process group (world size 1).

Every function here that talks to other ranks must be called by all ranks in the same order (the
usual torch.distributed contract); without an initialised default group they are local no-ops.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

#: bytes per broadcast when the class matrix is assembled on the host
_CHUNK_BYTES = 64 * 2**20


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of the default process group; (0, 1) when there is none."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard_bounds(num_rows: int, rank: int, world_size: int) -> tuple[int, int]:
    """[start, stop) of the contiguous block of `num_rows` that `rank` holds; sizes differ by <= 1."""
    return num_rows * rank // world_size, num_rows * (rank + 1) // world_size


def _all_sizes(x: torch.Tensor, world_size: int) -> list[int]:
    """len(x) on every rank (the last batch of an epoch may differ between ranks)."""
    size = torch.tensor([len(x)], dtype=torch.long, device=x.device)
    sizes = [torch.empty_like(size) for _ in range(world_size)]
    dist.all_gather(sizes, size)
    return [int(s) for s in sizes]


def _gather_padded(x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """Concatenation over ranks of the first sizes[r] rows of each rank's `x`."""
    longest = max(sizes)
    padded = x.new_zeros((longest, *x.shape[1:]))
    padded[: len(x)] = x
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([part[:size] for part, size in zip(parts, sizes, strict=True)])


class _GatherRows(torch.autograd.Function):
    """All ranks' rows concatenated in rank order; the gradient of each row goes back to its owner."""

    @staticmethod
    def forward(ctx, x, sizes, offset):
        ctx.offset, ctx.size = offset, len(x)
        return _gather_padded(x, sizes)

    @staticmethod
    def backward(ctx, grad):
        # every rank differentiated the same loss through its own block of classes: a row's full
        # gradient is the sum over ranks, and only its owner needs it
        # a copy: the incoming gradient belongs to autograd, all_reduce works in place
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.offset : ctx.offset + ctx.size], None, None


def gather_rows(x: torch.Tensor, sizes: list[int] | None = None) -> tuple[torch.Tensor, list[int]]:
    """(all ranks' rows of `x` concatenated in rank order, the number of rows of each rank).

    Differentiable: backward sums each row's gradient over the ranks and hands it to the row's owner.
    `sizes` (from an earlier call on tensors of the same lengths) saves one collective.
    """
    rank, world_size = rank_and_world()
    if world_size == 1:
        return x, [len(x)]
    if sizes is None:
        sizes = _all_sizes(x, world_size)
    if torch.is_grad_enabled() and x.requires_grad:
        return _GatherRows.apply(x, sizes, sum(sizes[:rank])), sizes
    return _gather_padded(x, sizes), sizes


class _ScaleGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, factor):
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.factor, None


def scale_grad(x: torch.Tensor, factor: float) -> torch.Tensor:
    """`x` unchanged, with its gradient multiplied by `factor` on the way back."""
    return x if factor == 1 else _ScaleGrad.apply(x, factor)


def all_reduce_(x: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """In-place all_reduce of `x` ("sum" or "max") over the default group; `x` itself without one."""
    if rank_and_world()[1] > 1:
        dist.all_reduce(x, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return x


def assemble_rows(
    shard: torch.Tensor, num_rows: int, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """The whole (num_rows, ...) matrix whose blocks (shard_bounds) the ranks hold, on every rank.

    Sent block by block in chunks of about 64 MiB, so that beside the result (on `device`, the host by
    default) no rank holds more than one chunk of another rank's rows at a time.
    """
    rank, world_size = rank_and_world()
    if world_size == 1:
        return shard.detach().to(device, copy=True)
    whole = torch.empty((num_rows, *shard.shape[1:]), dtype=shard.dtype, device=device)
    row_bytes = max(1, shard[0:1].numel() * shard.element_size())
    chunk = max(1, _CHUNK_BYTES // row_bytes)
    for source in range(world_size):
        start, stop = shard_bounds(num_rows, source, world_size)
        for first in range(start, stop, chunk):
            last = min(first + chunk, stop)
            if source == rank:
                buffer = shard.detach()[first - start : last - start].contiguous()
            else:
                buffer = shard.new_empty((last - first, *shard.shape[1:]))
            dist.broadcast(buffer, src=source)
            whole[first:last] = buffer.to(device)
    return whole


def gather_to(rows: torch.Tensor, destination: int, sizes: list[int]) -> torch.Tensor | None:
    """On rank `destination`: the concatenation over ranks of their first sizes[r] columns of `rows`.

    Every rank passes a (B, sizes[rank]) tensor with the same B; the others get None.
    """
    rank, world_size = rank_and_world()
    widest = max(sizes)
    padded = rows.new_zeros((rows.shape[0], widest))
    padded[:, : rows.shape[1]] = rows
    parts = [torch.empty_like(padded) for _ in range(world_size)] if rank == destination else None
    dist.gather(padded, parts, dst=destination)
    if parts is None:
        return None
    return torch.cat([part[:, :size] for part, size in zip(parts, sizes, strict=True)], dim=1)
