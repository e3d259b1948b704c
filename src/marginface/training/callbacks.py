"""The callbacks of a training run: epoch-end last.ckpt, per-epoch seeds, the NaN/Inf guard, the open-set monitor.

- `EpochCheckpoint`: `<run dir>/checkpoints/last.ckpt` holds the state at the end of the latest epoch.
- `SeedEachEpoch` (with data.samplers.EpochShuffleSampler): the data order and every random draw of an
  epoch depend on (seed, epoch) alone, so a run resumed from an epoch-end checkpoint replays the
  uninterrupted one.
- `NonFiniteGuard`: a NaN/Inf loss or gradient stops training before the optimizer step, naming
  the step, the loss and the head; the last good checkpoint stays as it was.
- `OpenSetMonitor`: the open-set EER/AUC learning curve, from all ranks' embeddings.
"""

from __future__ import annotations

import inspect
import os
import random
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Checkpoint
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DistributedSampler

from marginface.data.datamodule import OPEN_SET
from marginface.data.samplers import epoch_seed
from marginface.training.checkpoints import CHECKPOINT_DIR, LAST


class SeedEachEpoch(L.Callback):
    """Re-seed Python, NumPy and torch at the start of every training epoch from (seed, epoch, rank).

    Augmentation (and dropout) draw from the global generators; re-seeding per epoch makes an
    epoch's draws independent of what ran before it, e.g. of whether the run was resumed.
    """

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # each process of a multi-GPU run augments its own images with its own draws
        seed = epoch_seed(self.seed, trainer.current_epoch, getattr(trainer, "global_rank", 0))
        random.seed(seed)
        np.random.seed(seed)  # noqa: NPY002 - the global generator other libraries draw from
        torch.manual_seed(seed)  # also every CUDA device


class EpochCheckpoint(Checkpoint):
    """Write `<dirpath>/last.ckpt` at the end of every training epoch.

    Lightning's ModelCheckpoint writes last.ckpt only when it also saves a top-k checkpoint (with
    monitor="val/accuracy": only when the accuracy improves), which is not a point to resume from.
    Being a `Checkpoint`, this callback runs after ModelCheckpoint, so its file also holds the
    updated best-model record. Epoch ends are the only points Lightning resumes from exactly.
    """

    def __init__(self, dirpath: str | os.PathLike, filename: str = LAST) -> None:
        self.path = Path(dirpath) / filename
        self.saved_epoch: int | None = None
        self.first_epoch: int | None = None  # where this fit started (after a resume: not 0)
        self._saved_step = -1

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.first_epoch = trainer.current_epoch

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if (
            trainer.fast_dev_run
            or trainer.sanity_checking
            or trainer.global_step == self._saved_step
        ):
            return
        trainer.save_checkpoint(self.path, weights_only=False)  # full state: resumable
        self.saved_epoch, self._saved_step = trainer.current_epoch, trainer.global_step


def epochs_trained(trainer: L.Trainer) -> int:
    """Epochs this `trainer.fit` call ran itself (a resumed run does not count those before it)."""
    for callback in trainer.callbacks:
        if isinstance(callback, EpochCheckpoint):
            # never started: resumed from the checkpoint of a run that had already finished
            start = callback.first_epoch
            return 0 if start is None else trainer.current_epoch - start
    return trainer.current_epoch


class ConfigInCheckpoint(L.Callback):
    """Store what `scripts/evaluate.py` needs to rebuild the model next to the weights."""

    def __init__(self, cfg: DictConfig, num_classes: int, loss: str) -> None:
        self.config = OmegaConf.to_container(cfg, resolve=True)
        self.num_classes, self.loss = num_classes, loss

    def on_save_checkpoint(
        self, trainer: L.Trainer, module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint["marginface_config"] = self.config
        checkpoint["num_classes"] = self.num_classes
        checkpoint["loss_name"] = self.loss


class OpenSetMonitor(L.Callback):
    """Log `open_set/eer` and `open_set/auc` of each validation epoch, over all ranks' open-set images.

    A learning curve only: no checkpoint is selected on it (switch it off with eval.monitor=false).
    FaceModule's validation_step returns the embeddings of the loader its datamodule names OPEN_SET;
    under DDP each rank embeds its slice of that loader, and the slices are gathered back into the
    data set's order before the pairs are scored, so every rank logs the single-process value.
    """

    def __init__(self) -> None:
        self._embeddings: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []
        self._loader: int | None = None

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._embeddings, self._labels, self._loader = [], [], None

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if pl_module.val_loader_name(dataloader_idx) != OPEN_SET:
            return
        self._embeddings.append(outputs["embeddings"].detach().float())
        self._labels.append(outputs["labels"].detach())
        self._loader = dataloader_idx

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from marginface.metrics.pairs import all_pairs, pair_scores
        from marginface.metrics.verification import auc, eer

        if not self._embeddings:
            return
        loader = _val_loader(trainer, self._loader)
        embeddings = gather_in_order(pl_module, torch.cat(self._embeddings), loader)
        labels = gather_in_order(pl_module, torch.cat(self._labels), loader)
        self._embeddings, self._labels = [], []
        embeddings, labels = embeddings.cpu().numpy(), labels.cpu().numpy()
        i, j, issame = all_pairs(labels)
        if issame.all() or not issame.any():
            return
        scores = pair_scores(embeddings, i, j)
        pl_module.log("open_set/eer", float(eer(scores, issame)), prog_bar=True)
        pl_module.log("open_set/auc", float(auc(scores, issame)))


def _val_loader(trainer: L.Trainer, index: int | None) -> Any:
    loaders = trainer.val_dataloaders
    return loaders[index or 0] if isinstance(loaders, list | tuple) else loaders


def gather_in_order(pl_module: L.LightningModule, local: torch.Tensor, loader: Any) -> torch.Tensor:
    """This rank's rows of a validation loader, joined with every rank's, in the loader's data order.

    Lightning gives each of W ranks a DistributedSampler without shuffling: rank r holds the items
    r, r + W, r + 2W, ... of the data set, padded by repeating the first items so that every rank
    holds as many. Interleaving the ranks' rows restores the order; the padding is cut off.
    A loader every rank reads whole (no DistributedSampler) gives rank 0's rows.
    """
    if pl_module.trainer.world_size == 1:
        return local
    everyone = pl_module.all_gather(local)  # (W, rows, ...): a collective, every rank calls it
    sampler = loader.sampler
    if not isinstance(sampler, DistributedSampler):
        return everyone[0]
    ordered = everyone.transpose(0, 1).reshape(-1, *local.shape[1:])
    return ordered[: len(sampler.dataset)]


# -- non-finite values --------------------------------------------------------------------------
class NonFiniteError(FloatingPointError):
    """Training produced a NaN or Inf loss or gradient; the message says where and what to try."""


def _describe_head(module: L.LightningModule) -> str:
    head = getattr(module, "head", None)
    if head is None:
        return type(module).__name__
    return f"{type(head).__name__}({head.extra_repr()})"


def _margin_head(module: L.LightningModule) -> Any:
    """The module's head, a ShardedHead's wrapped one in its place (None without a head)."""
    head = getattr(module, "head", None)
    return getattr(head, "inner", head)


def _head_hint(module: L.LightningModule) -> str:
    """The head's own advice on a divergence (its `divergence_hint()`), as a sentence, or ""."""
    hint = getattr(_margin_head(module), "divergence_hint", None)
    text = hint() if callable(hint) else None
    return f"{text} " if text else ""


def _scale_advice(module: L.LightningModule) -> str:
    """ "a smaller loss.scale or " where the head takes a `scale` argument (AdaCos sets its own)."""
    head = _margin_head(module)
    takes_scale = head is None or "scale" in inspect.signature(type(head).__init__).parameters
    return "a smaller loss.scale or " if takes_scale else "or "


def _last_good_checkpoint(trainer: L.Trainer) -> str:
    for callback in trainer.callbacks:
        if isinstance(callback, EpochCheckpoint) and callback.path.is_file():
            epoch = (
                "" if callback.saved_epoch is None else f" (end of epoch {callback.saved_epoch})"
            )
            return f"the last good checkpoint is {callback.path}{epoch}, untouched"
    return "no checkpoint was written before it (the first epoch did not finish)"


def _uses_grad_scaler(trainer: L.Trainer) -> bool:
    # fp16 loss scaling makes Inf gradients on purpose and skips those steps itself
    return getattr(trainer.precision_plugin, "scaler", None) is not None


class NonFiniteGuard(L.Callback):
    """Stop training at the first NaN/Inf loss (before backward) or gradient (before the step).

    Raises NonFiniteError naming the global step, the epoch, the loss value and the head, so the
    weights of the last good checkpoint are never overwritten by a diverged state. Costs one
    device sync per step for the loss and one for the gradient norm (skipped under fp16 loss
    scaling, which handles Inf gradients itself).
    """

    def __init__(self, check_gradients: bool = True) -> None:
        self.check_gradients = bool(check_gradients)
        self._loss: torch.Tensor | None = None

    def on_before_backward(
        self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor
    ) -> None:
        self._loss = loss.detach()
        if not bool(torch.isfinite(self._loss).all()):
            self._stop(trainer, pl_module, "loss")

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if not self.check_gradients or _uses_grad_scaler(trainer):
            return
        grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
        if grads and not bool(torch.isfinite(torch.nn.utils.get_total_norm(grads))):
            bad = [
                name
                for name, p in pl_module.named_parameters()
                if p.grad is not None and not bool(torch.isfinite(p.grad).all())
            ]
            shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
            self._stop(trainer, pl_module, f"gradient (in {shown or 'the gradient norm'})")

    def _stop(self, trainer: L.Trainer, pl_module: L.LightningModule, what: str) -> None:
        loss = "unknown" if self._loss is None else f"{self._loss.float().mean().item():.6g}"
        raise NonFiniteError(
            f"non-finite {what} at global step {trainer.global_step} (epoch {trainer.current_epoch}), "
            f"loss {loss}, head {_describe_head(pl_module)}: training stopped before the optimizer "
            f"step; {_last_good_checkpoint(trainer)}. {_head_hint(pl_module)}Try a lower "
            f"optimizer.lr, {_scale_advice(pl_module)}trainer.gradient_clip_val=5, then resume with "
            "ckpt_path=last (docs/reliability.md)"
        )


def training_callbacks(seed: int, run_dir: str | os.PathLike) -> list[L.Callback]:
    """The callbacks every training run gets: epoch-end last.ckpt, per-epoch seeding, the NaN guard."""
    return [
        EpochCheckpoint(Path(run_dir) / CHECKPOINT_DIR),
        SeedEachEpoch(seed),
        NonFiniteGuard(),
    ]
