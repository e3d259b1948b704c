"""Crash safety for training: atomic checkpoints, resumable epochs, a NaN/Inf guard, failures on disk.

What each piece guarantees (docs/reliability.md has the commands):
- `AtomicCheckpointIO`: a checkpoint file is the old one or the new one, never a truncated one.
- `EpochCheckpoint`: `<run dir>/checkpoints/last.ckpt` holds the state at the end of the latest epoch.
- `EpochShuffleSampler` + `SeedEachEpoch`: the data order and every random draw of an epoch depend on
  (seed, epoch) alone, so a run resumed from an epoch-end checkpoint replays the uninterrupted one.
- `NonFiniteGuard`: a NaN/Inf loss or gradient stops training before the optimizer step, naming
  the step, the loss and the head; the last good checkpoint stays as it was.
- `records_failure`: a run that raises leaves its traceback in `<run dir>/error.txt`.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch.utils.data import Sampler

from marginface.io import PARTIAL_SUFFIX, atomic_file, atomic_write_bytes

log = logging.getLogger(__name__)

ERROR_FILE = "error.txt"
CHECKPOINT_DIR = "checkpoints"
LAST = "last.ckpt"


# -- atomic files (marginface.io) ------------------------------------------------------------
def remove_partials(folder: str | os.PathLike) -> list[Path]:
    """Delete temporary files left in `folder` by writes that a kill interrupted; returns them."""
    folder = Path(folder)
    stale = sorted(folder.glob(f".*{PARTIAL_SUFFIX}")) if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    if stale:
        log.info("removed %d unfinished checkpoint write(s) in %s", len(stale), folder)
    return stale


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch.save checkpointing, written through `atomic_file` (local paths).

    Pass as `Trainer(plugins=[AtomicCheckpointIO()])`; every save (ModelCheckpoint's best.ckpt,
    EpochCheckpoint's last.ckpt, trainer.save_checkpoint) then goes through it. Remote URLs
    (s3://, ...) fall back to Lightning's own writer.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None
    ) -> None:
        if storage_options is not None or "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        with atomic_file(path) as file:
            torch.save(checkpoint, file)


def add_to_checkpoints(paths: list[str | os.PathLike], key: str, value: Any) -> list[Path]:
    """Add `key: value` to each checkpoint in `paths`, rewritten through AtomicCheckpointIO."""
    io = AtomicCheckpointIO()
    paths = [Path(p) for p in paths]
    for path in paths:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        checkpoint[key] = value
        io.save_checkpoint(checkpoint, path)
    return paths


# -- resuming -----------------------------------------------------------------------------------
def resume_path(ckpt_path: str | os.PathLike | None, run_dir: str | os.PathLike) -> str | None:
    """The checkpoint `trainer.fit` resumes from: `ckpt_path=last` is `<run_dir>/checkpoints/last.ckpt`.

    "last" without such a file (a job of a resumed multirun that never got to its first epoch end)
    starts from scratch with a warning; unfinished writes left by a kill are removed. Any other
    value is a path, which must exist.
    """
    if ckpt_path is None or str(ckpt_path) == "":
        return None
    folder = Path(run_dir) / CHECKPOINT_DIR
    if str(ckpt_path) == "last":
        remove_partials(folder)
        last = folder / LAST
        if last.is_file():
            log.info("resuming from %s", last)
            keep_logged_curves(run_dir)
            return str(last)
        log.warning(
            "ckpt_path=last but %s does not exist: training from scratch (to resume a killed run, "
            "pass its folder: hydra.run.dir=<run dir>; see docs/reliability.md)",
            last,
        )
        return None
    path = Path(ckpt_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"ckpt_path={ckpt_path}: no such checkpoint (runs keep theirs in <run dir>/"
            f"{CHECKPOINT_DIR}/{LAST}; ckpt_path=last resumes the run in hydra.run.dir)"
        )
    return str(path)


def keep_logged_curves(run_dir: str | os.PathLike) -> list[Path]:
    """Rename each metrics.csv under `run_dir` to metrics.before-resume-<k>.csv; returns the new names.

    Lightning's CSVLogger deletes an existing metrics.csv when it starts in the same folder, which
    would lose the curves of the epochs before a resume.
    """
    kept = []
    for path in sorted(Path(run_dir).rglob("metrics.csv")):
        k = 1
        while (target := path.with_name(f"metrics.before-resume-{k}.csv")).exists():
            k += 1
        path.rename(target)
        kept.append(target)
    return kept


def epochs_trained(trainer: L.Trainer) -> int:
    """Epochs this `trainer.fit` call ran itself (a resumed run does not count those before it)."""
    for callback in trainer.callbacks:
        if isinstance(callback, EpochCheckpoint):
            # never started: resumed from the checkpoint of a run that had already finished
            start = callback.first_epoch
            return 0 if start is None else trainer.current_epoch - start
    return trainer.current_epoch


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """A 32-bit seed for one epoch (of one process) of a run, mixed by numpy's SeedSequence."""
    if min(seed, epoch, rank) < 0:
        raise ValueError(f"seed, epoch and rank must be >= 0, got {seed}, {epoch}, {rank}")
    entropy = [int(seed), int(epoch)] + ([int(rank)] if rank else [])
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


class EpochShuffleSampler(Sampler[int]):
    """A new permutation of range(n) every epoch, drawn from (seed, epoch) only.

    A DataLoader's own generator carries its state from epoch to epoch, so a resumed run would
    start again from the first epoch's order; this sampler has no state but the epoch, which
    Lightning sets (`set_epoch`) before each epoch, also after a resume.
    """

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n, self.seed, self.epoch = int(n), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        return iter(torch.randperm(self.n, generator=generator).tolist())


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


# -- non-finite values --------------------------------------------------------------------------
class NonFiniteError(FloatingPointError):
    """Training produced a NaN or Inf loss or gradient; the message says where and what to try."""


def _describe_head(module: L.LightningModule) -> str:
    head = getattr(module, "head", None)
    if head is None:
        return type(module).__name__
    return f"{type(head).__name__}({head.extra_repr()})"


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
            f"step; {_last_good_checkpoint(trainer)}. Try a lower optimizer.lr, a smaller loss.scale "
            "or trainer.gradient_clip_val=5, then resume with ckpt_path=last (docs/reliability.md)"
        )


def training_callbacks(seed: int, run_dir: str | os.PathLike) -> list[L.Callback]:
    """The callbacks every training run gets: epoch-end last.ckpt, per-epoch seeding, the NaN guard."""
    return [
        EpochCheckpoint(Path(run_dir) / CHECKPOINT_DIR),
        SeedEachEpoch(seed),
        NonFiniteGuard(),
    ]


# -- failures -----------------------------------------------------------------------------------
def _overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    return list(HydraConfig.get().overrides.task)


def _summary(error: BaseException) -> str:
    first = str(error).strip().splitlines()[:1]
    return f"{type(error).__name__}: {first[0]}" if first else type(error).__name__


def write_failure(run_dir: str | os.PathLike, error: BaseException) -> Path:
    """Write `<run_dir>/error.txt`: a one-line summary, the overrides, then the traceback."""
    lines = [
        _summary(error),
        "",
        f"time: {time.strftime('%Y-%m-%d %H:%M:%S')}",
        f"overrides: {' '.join(_overrides()) or '(none)'}",
        "",
        *traceback.format_exception(error),
    ]
    text = "\n".join(line.rstrip("\n") for line in lines) + "\n"
    return atomic_write_bytes(Path(run_dir) / ERROR_FILE, text.encode())


def records_failure(function: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate `train(cfg)`: an exception leaves `<cfg.paths.output_dir>/error.txt`, then propagates.

    Propagating is right for multiruns too: Hydra's launcher stores each job's exception and runs
    the remaining jobs (the sweep exits non-zero at the end; Optuna counts the trial as failed).
    A stale error.txt from an earlier attempt is removed when the run starts again.
    """

    @functools.wraps(function)
    def wrapper(cfg: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            run_dir: Path | None = Path(str(cfg.paths.output_dir))
        except Exception:  # noqa: BLE001 - no run dir known: nothing to record into
            run_dir = None
        if run_dir is not None:
            (run_dir / ERROR_FILE).unlink(missing_ok=True)
        try:
            return function(cfg, *args, **kwargs)
        except BaseException as error:
            if run_dir is not None and not isinstance(error, GeneratorExit):
                try:
                    path = write_failure(run_dir, error)
                except OSError as unwritable:  # a full disk must not hide the original error
                    log.error("run failed: %s (no error.txt: %s)", _summary(error), unwritable)
                else:
                    log.error("run failed: %s (traceback in %s)", _summary(error), path)
            raise

    return wrapper
