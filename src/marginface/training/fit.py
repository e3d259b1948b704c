"""train(cfg): build data, backbone and head from the config, fit, then evaluate on the open-set identities."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig

from marginface.evaluation.diagnostics import write_diagnostics
from marginface.evaluation.evaluate import (
    apply_wccn,
    build_results,
    closed_set_accuracy,
    distractor_embeddings,
    evaluate_embeddings,
)
from marginface.heads.sharded import gather_head
from marginface.inference.embed import embeddings_and_norms
from marginface.io import write_json
from marginface.provenance import record_run
from marginface.training.callbacks import (
    ConfigInCheckpoint,
    OpenSetMonitor,
    epochs_trained,
    training_callbacks,
)
from marginface.training.checkpoints import (
    CHECKPOINT_DIR,
    LAST,
    AtomicCheckpointIO,
    add_to_checkpoints,
    resume_path,
)
from marginface.training.factory import build, loss_name
from marginface.training.failures import records_failure
from marginface.training.schemas import validate_config
from marginface.whitening import CHECKPOINT_KEY

log = logging.getLogger(__name__)


@records_failure  # an exception leaves <run dir>/error.txt (docs/reliability.md)
def train(cfg: DictConfig) -> dict:
    """Fit one run and write results.json (plus scores and figures) into the run dir; returns the results."""
    validate_config(cfg)  # typos, wrong types and bad values fail here, before any data is read
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # its AVX probing is noise to users
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
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

    start = time.perf_counter()
    closed, block = evaluate_fitted(cfg, run_dir, module, datamodule, trainer.is_global_zero)
    timing = {
        "train_s": train_s,
        "eval_s": time.perf_counter() - start,
        "images_per_s": seen / train_s if train_s > 0 else None,
    }
    results = build_results(cfg, name, module.head, closed, block, timing)
    write_json(run_dir / "results.json", results)
    log_results(closed, block["verification"], run_dir / "results.json")
    return results


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


def evaluate_fitted(
    cfg: DictConfig, run_dir: Path, module: Any, datamodule: Any, is_global_zero: bool
) -> tuple[float | None, dict]:
    """(closed-set accuracy, the results' open_set block) of the fitted model; figures and
    diagnostics into the run dir; the WCCN map (eval.wccn) into last.ckpt."""
    device = module.device
    images, labels = datamodule.open_set()
    embeddings, norms = embeddings_and_norms(
        module.backbone, images, flip=cfg.eval.flip, device=device
    )
    embeddings, whitening = apply_wccn(cfg, module.backbone, datamodule, embeddings, device=device)
    if whitening is not None and is_global_zero:
        # last.ckpt carries it (fit with these, the last weights; best.ckpt's weights may differ
        # and get theirs fit at evaluation), so enrol/identify and export use the same map
        add_to_checkpoints([run_dir / CHECKPOINT_DIR / LAST], CHECKPOINT_KEY, whitening.state())
    closed_images, closed_labels = datamodule.closed_set()
    closed = closed_set_accuracy(
        module.backbone, module.head, closed_images, closed_labels, device=device
    )
    distractors = distractor_embeddings(cfg, module.backbone, datamodule, whitening, device)
    block = evaluate_embeddings(
        embeddings, labels.numpy(), cfg, run_dir, distractors=distractors, norms=norms
    )
    if cfg.eval.get("artifacts", True):  # softmax confidence, KL check, angle statistics
        write_diagnostics(
            run_dir,
            module.backbone,
            module.head,
            closed_images,
            closed_labels,
            images,
            labels,
            device=device,
        )
    return closed, block


def log_split(name: str, datamodule: Any) -> None:
    log.info(
        "training %s on %d identities (%d images), open set: %d identities (%d images)",
        name,
        datamodule.num_classes,
        len(datamodule.train_index),
        len(datamodule.open_ids),
        len(datamodule.open_index),
    )


def _fmt(value: float | None) -> str:
    return "null" if value is None else f"{value:.4f}"


def log_results(closed: float | None, verification: dict, path: Path) -> None:
    log.info(
        "open set: EER %.4f  AUC %.4f  TAR@FAR=1e-2 %s  closed-set accuracy %s  -> %s",
        verification["eer"],
        verification["auc"],
        _fmt(verification.get("tar@far=1e-2")),
        _fmt(closed),
        path,
    )
