"""fit(cfg): build data, backbone and head from the config and fit them (train(cfg) in marginface.pipeline
then evaluates the fitted model)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig

from marginface.allocator import keep_freed_memory
from marginface.heads.sharded import gather_head
from marginface.provenance import record_run
from marginface.training.callbacks import (
    ConfigInCheckpoint,
    OpenSetMonitor,
    epochs_trained,
    training_callbacks,
)
from marginface.training.checkpoints import CHECKPOINT_DIR, AtomicCheckpointIO, resume_path
from marginface.training.factory import build, loss_name
from marginface.training.schemas import validate_config

log = logging.getLogger(__name__)


@dataclass
class Fitted:
    """A fitted run: where it writes, its loss name, the data and the module, the Trainer, its timing."""

    run_dir: Path
    name: str
    datamodule: Any
    module: Any
    trainer: L.Trainer
    train_s: float
    seen: int  # training images seen by this run's own epochs (a resumed run: not the earlier ones)


def fit(cfg: DictConfig) -> Fitted:
    """Check the config, build data, backbone and head, fit them; the head gathered for evaluation."""
    validate_config(cfg)  # typos, wrong types and bad values fail here, before any data is read
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # its AVX probing is noise to users
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    if cfg.get("malloc_keep", True):
        keep_freed_memory()  # freed tensors' pages reused, not faulted in afresh (allocator.py)
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    run_dir = output_dir(cfg)
    name = loss_name(cfg)
    datamodule, module = build(cfg)
    trainer = make_trainer(cfg, run_dir, run_callbacks(cfg, run_dir, datamodule.num_classes, name))
    record_run(cfg, run_dir, trainer.loggers)  # provenance.json: commit, command, versions
    log_split(name, datamodule)

    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_path(cfg.get("ckpt_path"), run_dir))
    train_s = time.perf_counter() - start
    module.head = gather_head(module.head)  # a sharded head's blocks, assembled for evaluation
    seen = len(datamodule.train_index) * epochs_trained(trainer)  # a resumed run: its own epochs
    return Fitted(run_dir, name, datamodule, module, trainer, train_s, seen)


def output_dir(cfg: DictConfig) -> Path:
    path = Path(cfg.paths.output_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_callbacks(cfg: DictConfig, run_dir: Path, num_classes: int, name: str) -> list[L.Callback]:
    """best.ckpt, the config in every checkpoint, last.ckpt / seeds / NaN guard, the open-set
    monitor (eval.monitor), then the config's own `callbacks`."""
    checkpoint = ModelCheckpoint(
        dirpath=run_dir / CHECKPOINT_DIR,
        filename="best",
        monitor="val/accuracy",
        mode="max",
        save_last=False,  # last.ckpt is written at every epoch end by training.callbacks.EpochCheckpoint
        auto_insert_metric_name=False,
    )
    callbacks = [checkpoint, ConfigInCheckpoint(cfg, num_classes, name)]
    callbacks += training_callbacks(int(cfg.seed), run_dir)  # last.ckpt, per-epoch seeds, NaN guard
    if cfg.eval.get("monitor", True):
        callbacks.append(OpenSetMonitor())  # open_set/eer and /auc of each validation epoch
    return callbacks + [instantiate(c) for c in (cfg.get("callbacks") or {}).values()]


def make_trainer(cfg: DictConfig, run_dir: Path, callbacks: list[L.Callback]) -> L.Trainer:
    """The `trainer` config's Trainer, writing into the run dir, its checkpoints written atomically."""
    return instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=instantiate(cfg.logger) if cfg.get("logger") else False,
        default_root_dir=run_dir,
        plugins=[AtomicCheckpointIO()],  # checkpoints: temp file + fsync + rename
    )


def log_split(name: str, datamodule: Any) -> None:
    log.info(
        "training %s on %d identities (%d images), open set: %d identities (%d images)",
        name,
        datamodule.num_classes,
        len(datamodule.train_index),
        len(datamodule.open_ids),
        len(datamodule.open_index),
    )
