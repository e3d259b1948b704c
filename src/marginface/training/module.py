"""FaceModule: backbone -> embedding -> head logits -> loss, as a LightningModule."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import lightning as L
import torch
from torch import nn

from marginface.data.datamodule import CLOSED_SET, OPEN_SET
from marginface.heads.head import Head
from marginface.heads.losses import CRITERIA, classification_loss


class FaceModule(L.LightningModule):
    """Trains `backbone` + `head` with a classification loss; validates closed-set accuracy.

    optimizer / scheduler: callables taking parameters / the optimizer (Hydra `_partial_: true`).
    On the validation loader of held-out images of training identities it logs `val/accuracy`; on
    the open-set loader (named by the datamodule) it returns the embeddings, which the
    OpenSetMonitor callback scores over all ranks (`open_set/eer`, `open_set/auc`).

    frozen: names of backbone sub-modules (`backbone.get_submodule` paths such as "stem" or
    "blocks.0") kept as they are, for fine-tuning: their parameters get no gradient and no
    optimiser state, and they stay in eval mode, so batch norm keeps its pretrained statistics.
    """

    def __init__(
        self,
        backbone: nn.Module,
        head: Head,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        criterion: str = "ce",
        scheduler_interval: str = "step",
        channels_last: bool = False,
        compile: bool = False,
        frozen: Sequence[str] = (),
    ) -> None:
        super().__init__()
        if criterion not in CRITERIA:
            raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
        if criterion != "ce" and head.computes_loss:
            raise ValueError(
                f"a sharded head computes cross-entropy itself; criterion={criterion!r} needs "
                "head.sharded=false (docs/distributed.md)"
            )
        self.backbone = backbone
        self.head = head
        # a plain list (not a ModuleList): the modules are the backbone's, registered there once
        self._frozen_modules = [frozen_submodule(backbone, name) for name in frozen]
        for module in self._frozen_modules:
            # eval now as well as in train(): Lightning restores each sub-module's own mode after
            # validation, so the mode set here is the one that the whole fit keeps
            module.requires_grad_(False).eval()
        # NHWC lets the CPU convolution kernels run ~20% faster here (benchmarks/bench_train.py)
        self.channels_last = channels_last
        if channels_last:
            self.backbone.to(memory_format=torch.channels_last)
        # torch.compile of the training forward only: evaluation runs the eager backbone (no second
        # graph for eval mode); the compiled callable is kept out of the module tree, so checkpoints
        # hold the same keys with or without it
        self.compile_forward = compile  # not `self.compile`: that is nn.Module.compile()
        self._compiled_backbone: Callable[[torch.Tensor], torch.Tensor] | None = None
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.criterion = criterion
        self.scheduler_interval = scheduler_interval
        self._train_sums: torch.Tensor | None = None  # (loss x n, correct, n) of this epoch so far

    def train(self, mode: bool = True) -> FaceModule:
        super().train(mode)
        for module in self._frozen_modules:
            module.eval()  # frozen layers keep their batch-norm statistics (and no dropout)
        return self

    def configure_model(self) -> None:
        self.head.setup_shard(
            self
        )  # a sharded head's block of classes, once the process group exists

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Embeddings (not normalised) of a float image batch."""
        return self.backbone(images)

    def _layout(self, images: torch.Tensor) -> torch.Tensor:
        return (
            images.contiguous(memory_format=torch.channels_last) if self.channels_last else images
        )

    def _train_backbone(self, images: torch.Tensor) -> torch.Tensor:
        if not self.compile_forward:
            return self.backbone(images)
        if self._compiled_backbone is None:
            # dynamic=False: one static graph per batch shape (the full batch and the epoch's last)
            self.__dict__["_compiled_backbone"] = torch.compile(self.backbone, dynamic=False)
        return self._compiled_backbone(images)

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        images, labels = batch
        images = self._layout(images)
        self.head.anneal(self.global_step)
        embeddings = self._train_backbone(images)
        if self.head.computes_loss:
            # a sharded head never builds the full logits: it returns the loss (heads/sharded.py)
            loss = self.head(embeddings, labels)
            accuracy = self.head.last_accuracy
        else:
            logits = self.head(embeddings, labels)
            loss = classification_loss(logits, labels, self.criterion)
            accuracy = (logits.argmax(1) == labels).float().mean()
        # an extra loss term of the head (MagFace's norm term; MarginHead.regularizer)
        regularizer = self.head.regularizer(embeddings)
        if regularizer is not None:
            loss = loss + regularizer
        # each self.log call costs Lightning ~0.1 ms of bookkeeping (about 1% of a default step), so
        # the epoch means are summed here and logged once an epoch, and the step values only on the
        # steps the logger writes (trainer.log_every_n_steps)
        n = labels.new_tensor(len(labels), dtype=torch.float32)
        sums = torch.stack([loss.detach().float() * n, accuracy.detach().float() * n, n])
        self._train_sums = sums if self._train_sums is None else self._train_sums + sums
        if self._trainer is None or (self.global_step + 1) % self.trainer.log_every_n_steps == 0:
            self.log("train/loss_step", loss.detach(), prog_bar=True, batch_size=len(labels))
            if regularizer is not None:
                self.log("train/regularizer", regularizer.detach(), batch_size=len(labels))
            for key, value in self.head.log_values().items():
                self.log(f"train/{key}", float(value), batch_size=len(labels))
        return loss

    def on_train_epoch_end(self) -> None:
        if self._train_sums is None:
            return
        loss_sum, correct, n = self._train_sums
        self._train_sums = None
        sync = self._trainer is not None and self.trainer.world_size > 1
        self.log("train/loss_epoch", loss_sum / n, prog_bar=True, sync_dist=sync)
        self.log("train/accuracy", correct / n, prog_bar=True, sync_dist=sync)

    def validation_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> dict[str, torch.Tensor] | None:
        images, labels = batch
        images = self._layout(images)
        embeddings = self.backbone(images)
        if self.val_loader_name(dataloader_idx) == OPEN_SET:
            # scored over all ranks' images together by training.callbacks.OpenSetMonitor
            return {"embeddings": embeddings, "labels": labels}
        logits = self.head(embeddings)  # no labels: no margin, plain closed-set prediction
        accuracy = (logits.argmax(1) == labels).float().mean()
        self.log(
            "val/accuracy",
            accuracy,
            prog_bar=True,
            add_dataloader_idx=False,
            batch_size=len(labels),
        )
        return None

    def val_loader_name(self, dataloader_idx: int) -> str:
        """What validation loader `dataloader_idx` holds: its datamodule's name for it
        (FaceDataModule.val_loader_names); loaders given without a datamodule are closed-set."""
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        if datamodule is None:
            return CLOSED_SET
        return datamodule.val_loader_names[dataloader_idx]

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory([p for p in self.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return optimizer
        total = int(self.trainer.estimated_stepping_batches) if self._trainer is not None else 1
        scheduler = self.scheduler_factory(optimizer, total_steps=total)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": self.scheduler_interval},
        }


def frozen_submodule(backbone: nn.Module, name: str) -> nn.Module:
    """The sub-module of `backbone` at the dotted path `name`, or a ValueError naming the valid ones."""
    try:
        module = backbone.get_submodule(str(name))
    except AttributeError:
        module = None
    if module is None or module is backbone:
        names = ", ".join(n for n, _ in backbone.named_children())
        raise ValueError(
            f"freeze={name!r}: {type(backbone).__name__} has no such sub-module; its parts are "
            f"{names} (a dotted path such as blocks.0 names one block of a part)"
        )
    return module
