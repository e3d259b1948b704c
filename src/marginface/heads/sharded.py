"""Any head with its class matrix split over the ranks (model parallel), and optional class sampling."""

from __future__ import annotations

import math

import torch
from torch import nn

from marginface.distributed import (
    all_reduce_,
    assemble_rows,
    gather_rows,
    gather_to,
    rank_and_world,
    scale_grad,
    shard_bounds,
)
from marginface.heads.base import MarginHead, check_real
from marginface.heads.head import Head
from marginface.heads.partial_fc import remap_labels, sample_classes


class _ShardedCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy over the rows of logits whose columns (classes) are spread over the ranks.

    logits (N, K): this rank's columns for all N rows; target (N,): the label's column here, or -1
    where the label lives on another rank. The maximum, the sum of exponentials and the target logit
    are combined with all_reduce, so the (N, num_classes) logits never exist anywhere. Returns the
    loss and, per row, whether the target logit is the largest of all (the argmax is the label).
    """

    @staticmethod
    def forward(ctx, logits, target):
        rows = (target >= 0).nonzero().squeeze(1)
        columns = target[rows]
        # the maximum only steadies exp(); any constant per row gives the same softmax
        maximum = all_reduce_(logits.amax(dim=1), "max")
        probs = (logits - maximum.unsqueeze(1)).exp_()
        total = all_reduce_(probs.sum(dim=1))
        probs.div_(total.unsqueeze(1))
        picked = logits.new_zeros(len(logits))
        picked[rows] = logits[rows, columns]
        picked = all_reduce_(picked)
        losses = total.log() + maximum - picked
        ctx.save_for_backward(probs, rows, columns)
        ctx.consumed = False
        correct = picked >= maximum
        ctx.mark_non_differentiable(correct)
        return losses.mean(), correct

    @staticmethod
    def backward(ctx, grad_loss, grad_correct):
        if ctx.consumed:
            raise RuntimeError(
                "ShardedHead's loss was differentiated twice (retain_graph=True); it reuses its "
                "softmax buffer for the gradient, so backward may run once per forward"
            )
        ctx.consumed = True
        probs, rows, columns = ctx.saved_tensors
        # d mean(loss) / d logit = (softmax - one_hot) / N, written into the softmax buffer: the
        # largest tensor of the step is not duplicated
        grad = probs
        grad[rows, columns] -= 1.0
        grad.mul_(grad_loss / max(1, len(grad)))
        return grad, None


class ShardedHead(Head):
    """A head whose class matrix is split over the ranks; forward with labels returns the loss.

    Each of the W ranks holds a contiguous block of about num_classes / W rows of the wrapped head's
    `weight` (and `bias`, for softmax). A training forward gathers the embeddings and labels of all
    ranks, computes this block's logits for all of them, applies the wrapped head's margin where the
    label falls in the block, and combines the softmax over the blocks with all_reduce
    (max, sum of exponentials, target logit): no rank ever holds the whole matrix or the whole logits.

    The contract differs from the other heads: since the full logits never exist, `forward(x, labels)`
    returns the mean cross-entropy over the whole (all ranks') batch, the same value on every rank,
    and `computes_loss` is True (FaceModule then uses the returned loss; `last_accuracy` holds the
    batch's training accuracy). `forward(x)` without labels returns the plain logits
    (B, num_classes) of this rank's rows, for evaluation (without gradient when W > 1).

    Gradients: each rank's block gets the exact gradient of that loss. Each embedding's gradient is
    summed over the ranks back to its own rank and multiplied by W, because DDP averages the
    backbone's gradients over ranks while this loss is already the mean over the whole batch: after
    DDP, the backbone's gradient is that of the whole batch's mean loss, as with an unsharded head.

    `sample_rate` r < 1 (Partial FC, https://arxiv.org/abs/2010.05222): per step and per rank, the
    block's positive classes (labels of the batch) and a random share r of its other classes enter the
    softmax; r = 1 (the default) is no sampling. `sharded=False` keeps the whole matrix on every rank
    (replicated by DDP as usual) and samples locally: Partial FC on one device.

    Every head with `shardable` True is supported, through its `block_logits` (heads/base.py: the
    margin heads' `project` / `target_correction`; softmax's W x + b); the others are refused. The
    wrapped head is an ordinary submodule that lends its arithmetic and keeps any buffers, its class
    matrix held here. The rows are allocated by `setup_shard()`, once the process group exists
    (FaceModule.configure_model calls it); the state dict holds the whole matrix
    under the wrapped head's names (assembled from the ranks on the host), so a checkpoint loads
    into the unsharded head, and into a sharded one on any number of ranks.
    """

    #: forward(embeddings, labels) returns the loss, not logits (heads/head.py)
    computes_loss = True

    def __init__(self, head: MarginHead, sample_rate: float = 1.0, sharded: bool = True) -> None:
        super().__init__()
        if not isinstance(head, MarginHead):
            raise ValueError(
                f"ShardedHead wraps a marginface head (heads/), got {type(head).__name__}"
            )
        if not head.shardable:
            raise ValueError(
                f"{type(head).__name__} cannot be sharded or class-sampled: it changes logits other "
                "than the target's, pools rows or keeps statistics of the whole batch, which a "
                "block of classes does not see; use head.sharded=false and head.sample_rate=1 "
                "(docs/heads.md, docs/distributed.md)"
            )
        if not isinstance(sharded, bool):
            raise ValueError(f"sharded must be true or false, got {sharded!r}")
        self.sample_rate = check_real(
            "sample_rate", sample_rate, 0.0, 1.0, low_open=True, high_open=False
        )
        self.sharded = sharded
        self.embedding_dim, self.num_classes = head.embedding_dim, head.num_classes
        own = dict(head.named_parameters(recurse=False))
        meta_state = [name for name, b in head.named_buffers() if b.is_meta]
        if meta_state:
            raise ValueError(
                f"{type(head).__name__} keeps state in buffers {meta_state}, which were built on the "
                "meta device with the sharded matrix and hold no values: a head with state cannot be "
                "sharded yet; use head.sharded=false (class sampling works without sharding)"
            )
        # the class matrix moves here, to be cut into this rank's block; the wrapped head keeps its
        # margin arithmetic and its state (buffers), saved under its own names (state dict hooks)
        self.weight = own["weight"]
        self.bias = own.get("bias")
        head.register_parameter("weight", None)
        if self.bias is not None:
            head.register_parameter("bias", None)
        self.inner = head
        # an unallocated (meta) matrix waits for setup_shard; a real one is the whole matrix
        self.rows: tuple[int, int] | None = None if self.weight.is_meta else (0, self.num_classes)
        self.rank, self.world_size = 0, 1
        self.last_accuracy: torch.Tensor | None = None
        self.register_state_dict_post_hook(_inner_state_under_own_names)

    # -- placement -------------------------------------------------------------------------

    def setup_shard(self, root: nn.Module | None = None) -> None:
        """Allocate (or cut out) this rank's block of classes; idempotent; call on every rank.

        With `root` (the module DDP will wrap), this head's parameters are put on its DDP ignore
        list: DDP neither broadcasts them from rank 0 nor averages their gradients.
        """
        rank, world_size = rank_and_world() if self.sharded else (0, 1)
        if self.num_classes < world_size:
            raise ValueError(
                f"cannot shard {self.num_classes} classes over {world_size} ranks: each rank needs "
                f"at least one class; use head.sharded=false"
            )
        rows = shard_bounds(self.num_classes, rank, world_size)
        if self.rows != rows:
            if self.rows is None:
                weight, bias = self._initial_rows(*rows, rank)
            elif self.rows == (0, self.num_classes):
                weight = self.weight.detach()[rows[0] : rows[1]].clone()
                bias = None if self.bias is None else self.bias.detach()[rows[0] : rows[1]].clone()
            else:
                raise RuntimeError(
                    f"this head holds classes [{self.rows[0]}, {self.rows[1]}) and was asked for "
                    f"[{rows[0]}, {rows[1]}): to reshard, save a checkpoint and load it"
                )
            self.weight = nn.Parameter(weight)
            if bias is not None:
                self.bias = nn.Parameter(bias)
            self.rows = rows
        self.rank, self.world_size = rank, world_size
        if root is not None and world_size > 1:
            prefix = next(name for name, module in root.named_modules() if module is self)
            names = {f"{prefix}.{name}" if prefix else name for name, _ in self.named_parameters()}
            ignored = set(getattr(root, "_ddp_params_and_buffers_to_ignore", ()))
            root._ddp_params_and_buffers_to_ignore = sorted(ignored | names)

    def _initial_rows(
        self, start: int, stop: int, rank: int
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Fresh rows [start, stop): nn.Linear's uniform start, drawn from a per-rank stream."""
        # on the default device, which Lightning sets to the rank's device during configure_model
        device = torch.get_default_device()
        generator = torch.Generator(device=device)
        # ranks share the global seed: without the rank in the seed, every block would start equal
        generator.manual_seed((torch.initial_seed() * 1_000_003 + rank) % 2**63 + 1)
        bound = 1.0 / math.sqrt(self.embedding_dim)
        shape = (stop - start, self.embedding_dim)
        weight = torch.empty(shape, dtype=self.weight.dtype, device=device)
        weight.uniform_(-bound, bound, generator=generator)
        bias = None
        if self.bias is not None:
            bias = torch.empty(stop - start, dtype=self.bias.dtype, device=device)
            bias.uniform_(-bound, bound, generator=generator)
        return weight, bias

    def _apply(self, fn, recurse=True):
        # an unplaced head has no data to move or cast (Lightning calls .cpu() at teardown, also
        # in the main process of ddp_spawn when a worker failed)
        return self if self.rows is None else super()._apply(fn, recurse)

    def _check_ready(self) -> None:
        if self.rows is None:
            raise RuntimeError(
                "ShardedHead has no class rows yet: call setup_shard() on every rank once "
                "torch.distributed is initialised (FaceModule.configure_model does it)"
            )

    # -- forward ---------------------------------------------------------------------------

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """With labels: the mean cross-entropy of all ranks' batch. Without: logits (B, num_classes)."""
        self.inner.check_inputs(embeddings, labels)
        self._check_ready()
        if labels is None:
            return self._inference_logits(embeddings)
        sizes = None
        if self.world_size > 1:
            # DDP divides the backbone's gradient by W; the loss below is already the batch mean
            embeddings, sizes = gather_rows(scale_grad(embeddings, self.world_size))
            labels, _ = gather_rows(labels, sizes)
        start, stop = self.rows
        local = (labels >= start) & (labels < stop)
        target = torch.where(local, labels.long() - start, -1)
        weight, bias = self.weight, self.bias
        if self.sample_rate < 1.0:
            generator = self._sampling_generator(embeddings.device)
            kept = sample_classes(target[local], stop - start, self.sample_rate, generator)
            weight = weight.index_select(0, kept)
            bias = None if bias is None else bias.index_select(0, kept)
            target[local] = remap_labels(target[local], kept)
        logits = self.inner.block_logits(embeddings, weight, bias, target)
        dtype = torch.promote_types(logits.dtype, torch.float32)
        loss, correct = _ShardedCrossEntropy.apply(logits.to(dtype), target)
        self.last_accuracy = correct.float().mean()
        return loss

    def _sampling_generator(self, device: torch.device) -> torch.Generator:
        """This step's stream of class draws on this rank, seeded from torch's global stream."""
        # ranks share the global seed: drawing from the global stream itself would pick the same
        # positions in every block; one global draw per step, mixed with the rank, keeps the draws
        # a function of the run's seeds (a run reseeded at an epoch start replays them)
        step_seed = int(torch.randint(0, 2**62, (1,)))
        return torch.Generator(device=device).manual_seed(
            (step_seed * 1_000_003 + self.rank) % 2**63
        )

    def _inference_logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        if self.world_size == 1:
            return self.inner.block_logits(embeddings, self.weight, self.bias, None)
        with torch.no_grad():
            everyone, sizes = gather_rows(embeddings.detach())
            block = self.inner.block_logits(everyone, self.weight, self.bias, None)
            widths = [
                stop - start
                for start, stop in (
                    shard_bounds(self.num_classes, r, self.world_size)
                    for r in range(self.world_size)
                )
            ]
            mine, first = None, 0
            for rank, size in enumerate(sizes):
                assembled = gather_to(block[first : first + size], rank, widths)
                if rank == self.rank:
                    mine = assembled
                first += size
            return mine

    # -- the whole matrix: checkpoints and evaluation ----------------------------------------

    def gathered(self, device: torch.device | str | None = None) -> MarginHead:
        """The wrapped head, given the whole class matrix (on `device`, default this block's).

        A collective: every rank must call it. For evaluation after training, where the plain
        logits (B, num_classes) and the whole matrix are wanted.
        """
        self._check_ready()
        device = self.weight.device if device is None else device
        head = self.inner
        head.weight = nn.Parameter(assemble_rows(self.weight, self.num_classes, device))
        if self.bias is not None:
            head.bias = nn.Parameter(assemble_rows(self.bias, self.num_classes, device))
        return head

    def _save_to_state_dict(self, destination, prefix, keep_vars) -> None:
        if self.world_size == 1 or self.rows is None:
            super()._save_to_state_dict(destination, prefix, keep_vars)
            return
        # a collective: Lightning builds the state dict on every rank (it saves rank 0's)
        destination[prefix + "weight"] = assemble_rows(self.weight, self.num_classes)
        if self.bias is not None:
            destination[prefix + "bias"] = assemble_rows(self.bias, self.num_classes)

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ) -> None:
        for name, _ in self.inner.named_buffers():
            if prefix + name in state_dict:
                # saved under the plain head's names: the wrapped head's own loader reads them
                state_dict[f"{prefix}inner.{name}"] = state_dict.pop(prefix + name)
        names = ["weight"] + ([] if self.bias is None else ["bias"])
        for name in names:
            key = prefix + name
            if key not in state_dict:
                missing_keys.append(key)
                continue
            whole, current = state_dict[key], getattr(self, name)
            if whole.shape[0] != self.num_classes or whole.shape[1:] != current.shape[1:]:
                error_msgs.append(
                    f"{key}: expected the whole matrix ({self.num_classes}, "
                    f"{', '.join(map(str, current.shape[1:]))}) of all ranks, got {tuple(whole.shape)}"
                )
                continue
            if self.rows is None:
                # not placed yet (e.g. the main process after ddp_spawn): it holds everything
                setattr(self, name, nn.Parameter(whole.detach().clone()))
            else:
                with torch.no_grad():
                    current.copy_(whole[self.rows[0] : self.rows[1]])
        if self.rows is None and not missing_keys and not error_msgs:
            self.rows = (0, self.num_classes)
        if strict:
            unexpected_keys.extend(
                key
                for key in state_dict
                if key.startswith(prefix)
                and key[len(prefix) :] not in names
                and not key.startswith(f"{prefix}inner.")
            )

    # -- what the module and the results read ----------------------------------------------

    def anneal(self, step: int) -> None:
        self.inner.anneal(step)

    def log_values(self) -> dict[str, float]:
        return self.inner.log_values()

    def regularizer(self, embeddings: torch.Tensor) -> torch.Tensor | None:
        return self.inner.regularizer(embeddings)

    def head_size(self) -> dict[str, int]:
        """Parameters and bytes of the whole head (all ranks together), as for the plain head."""
        per_class = self.embedding_dim + (0 if self.bias is None else 1)
        return {
            "parameters": self.num_classes * per_class,
            "bytes": self.num_classes * per_class * self.weight.element_size(),
        }

    def extra_repr(self) -> str:
        rows = "unplaced" if self.rows is None else f"classes [{self.rows[0]}, {self.rows[1]})"
        return (
            f"{self.inner.__class__.__name__}({self.inner.extra_repr()}), {rows} on rank "
            f"{self.rank} of {self.world_size}, sample_rate={self.sample_rate}"
        )


def _inner_state_under_own_names(
    module: nn.Module, state_dict: dict, prefix: str, local_metadata: dict
) -> None:
    """Save the wrapped head's buffers as `<prefix><name>`, as the plain head saves them."""
    inner = prefix + "inner."
    for key in [k for k in state_dict if k.startswith(inner)]:
        state_dict[prefix + key[len(inner) :]] = state_dict.pop(key)


def gather_head(head: nn.Module) -> nn.Module:
    """`head` itself, or for a ShardedHead the plain head with the whole matrix (a collective)."""
    return head.gathered() if isinstance(head, ShardedHead) else head
