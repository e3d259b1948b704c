"""train(cfg): build data, backbone and head from the config, fit, then evaluate on the open-set identities."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig

from marginface.evaluate import (
    apply_wccn,
    build_results,
    closed_set_accuracy,
    evaluate_embeddings,
    extract_embeddings,
)
from marginface.heads.sharded import gather_head
from marginface.io import write_json
from marginface.provenance import record_run
from marginface.report.diagnostics import write_diagnostics
from marginface.schemas import validate_config
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
from marginface.whitening import CHECKPOINT_KEY

log = logging.getLogger(__name__)


def _fmt(value: float | None) -> str:
    return "null" if value is None else f"{value:.4f}"


def output_dir(cfg: DictConfig) -> Path:
    path = Path(cfg.paths.output_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


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
    checkpoint = ModelCheckpoint(
        dirpath=run_dir / CHECKPOINT_DIR,
        filename="best",
        monitor="val/accuracy",
        mode="max",
        save_last=False,  # last.ckpt is written at every epoch end by training.callbacks.EpochCheckpoint
        auto_insert_metric_name=False,
    )
    callbacks = [checkpoint, ConfigInCheckpoint(cfg, datamodule.num_classes, name)]
    callbacks += training_callbacks(int(cfg.seed), run_dir)  # last.ckpt, per-epoch seeds, NaN guard
    if cfg.eval.get("monitor", True):
        callbacks.append(OpenSetMonitor())  # open_set/eer and /auc of each validation epoch
    callbacks += [instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=instantiate(cfg.logger) if cfg.get("logger") else False,
        default_root_dir=run_dir,
        plugins=[AtomicCheckpointIO()],  # checkpoints: temp file + fsync + rename
    )
    record_run(cfg, run_dir, trainer.loggers)  # provenance.json: commit, command, versions
    log.info(
        "training %s on %d identities (%d images), open set: %d identities (%d images)",
        name,
        datamodule.num_classes,
        len(datamodule.train_index),
        len(datamodule.open_ids),
        len(datamodule.open_index),
    )
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_path(cfg.get("ckpt_path"), run_dir))
    train_s = time.perf_counter() - start
    module.head = gather_head(module.head)  # a sharded head's blocks, assembled for evaluation
    seen = len(datamodule.train_index) * epochs_trained(trainer)  # a resumed run: its own epochs

    start = time.perf_counter()
    device = module.device
    images, labels = datamodule.open_set()
    embeddings = extract_embeddings(module.backbone, images, flip=cfg.eval.flip, device=device)
    embeddings, whitening = apply_wccn(cfg, module.backbone, datamodule, embeddings, device=device)
    if whitening is not None and trainer.is_global_zero:
        # last.ckpt carries it (fit with these, the last weights; best.ckpt's weights may differ
        # and get theirs fit at evaluation), so enrol/identify and export use the same map
        add_to_checkpoints([run_dir / CHECKPOINT_DIR / LAST], CHECKPOINT_KEY, whitening.state())
    closed = closed_set_accuracy(
        module.backbone, module.head, *datamodule.closed_set(), device=device
    )
    block = evaluate_embeddings(embeddings, labels.numpy(), cfg, run_dir)
    if cfg.eval.get("artifacts", True):  # softmax confidence, KL check, angle statistics
        closed_set = datamodule.closed_set()
        write_diagnostics(
            run_dir, module.backbone, module.head, *closed_set, images, labels, device=device
        )
    eval_s = time.perf_counter() - start
    timing = {
        "train_s": train_s,
        "eval_s": eval_s,
        "images_per_s": seen / train_s if train_s > 0 else None,
    }
    results = build_results(cfg, name, module.head, closed, block, timing)
    write_json(run_dir / "results.json", results)
    verification = block["verification"]
    log.info(
        "open set: EER %.4f  AUC %.4f  TAR@FAR=1e-2 %s  closed-set accuracy %s  -> %s",
        verification["eer"],
        verification["auc"],
        _fmt(verification.get("tar@far=1e-2")),
        _fmt(closed),
        run_dir / "results.json",
    )
    return results
