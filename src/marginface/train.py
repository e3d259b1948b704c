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
from omegaconf import DictConfig, OmegaConf

from marginface.evaluate import (
    apply_wccn,
    build_results,
    closed_set_accuracy,
    distractor_embeddings,
    evaluate_embeddings,
    extract_embeddings,
    load_checkpoint,
)
from marginface.heads.sharded import build_head, gather_head
from marginface.io import write_json
from marginface.module import FaceModule
from marginface.provenance import record_run
from marginface.reliability import (
    CHECKPOINT_DIR,
    LAST,
    AtomicCheckpointIO,
    add_to_checkpoints,
    epochs_trained,
    records_failure,
    resume_path,
    training_callbacks,
)
from marginface.report.diagnostics import write_diagnostics
from marginface.schemas import validate_config
from marginface.whitening import CHECKPOINT_KEY

log = logging.getLogger(__name__)


def loss_name(cfg: DictConfig) -> str:
    """The `loss=` choice of this run (from Hydra when it runs the job, else from the head's class)."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        choice = HydraConfig.get().runtime.choices.get("loss")
        if choice:
            return str(choice)
    target = str(cfg.loss.get("_target_", "unknown")).rsplit(".", 1)[-1]
    return target.removesuffix("Head").lower()


def _fmt(value: float | None) -> str:
    return "null" if value is None else f"{value:.4f}"


def output_dir(cfg: DictConfig) -> Path:
    path = Path(cfg.paths.output_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


class _ConfigInCheckpoint(L.Callback):
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


def init_backbone(backbone: torch.nn.Module, path: str | Path) -> None:
    """Load the backbone weights of the training checkpoint at `path` into `backbone` (fine-tuning).

    Every parameter and buffer must be there with the same shape: a checkpoint of another
    architecture is refused with the keys and shapes that differ, before any training.
    """
    ckpt = load_checkpoint(path)
    prefix = "backbone."
    theirs = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    mine = backbone.state_dict()
    missing = sorted(set(mine) - set(theirs))
    extra = sorted(set(theirs) - set(mine))
    shapes = [
        f"{k}: {tuple(theirs[k].shape)} in the checkpoint, {tuple(v.shape)} here"
        for k, v in mine.items()
        if k in theirs and theirs[k].shape != v.shape
    ]
    if missing or extra or shapes:
        stored = ckpt["marginface_config"].get("backbone", {})
        details = shapes[:5] + [f"missing: {', '.join(missing[:5])}"] * bool(missing)
        details += [f"unexpected: {', '.join(extra[:5])}"] * bool(extra)
        raise ValueError(
            f"init_from={path}: its backbone ({stored}) does not match this run's backbone; "
            + "; ".join(details)
            + ". Use the checkpoint's backbone settings (and data.channels) for the fine-tuning run"
        )
    backbone.load_state_dict(theirs)


def build(cfg: DictConfig) -> tuple[Any, FaceModule]:
    """(datamodule, module) from the config, the datamodule already set up."""
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    backbone = instantiate(cfg.backbone)
    if cfg.get("init_from"):
        init_backbone(backbone, cfg.init_from)  # fine-tuning: backbone from a run, head new
    head = build_head(  # heads/sharded.py: the plain head unless head.sharded / head.sample_rate
        cfg.loss, cfg.get("head"), backbone.embedding_dim, datamodule.num_classes
    )
    scheduler = instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    module = FaceModule(
        backbone,
        head,
        optimizer=instantiate(cfg.optimizer),
        scheduler=scheduler,
        criterion=cfg.get("criterion", "ce"),
        channels_last=bool(cfg.get("channels_last", False)),
        compile=bool(cfg.get("compile", False)),
    )
    return datamodule, module


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
        save_last=False,  # last.ckpt is written at every epoch end by reliability.EpochCheckpoint
        auto_insert_metric_name=False,
    )
    callbacks = [checkpoint, _ConfigInCheckpoint(cfg, datamodule.num_classes, name)]
    callbacks += training_callbacks(int(cfg.seed), run_dir)  # last.ckpt, per-epoch seeds, NaN guard
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
    distractors = distractor_embeddings(cfg, module.backbone, datamodule, whitening, device)
    closed = closed_set_accuracy(
        module.backbone, module.head, *datamodule.closed_set(), device=device
    )
    block = evaluate_embeddings(embeddings, labels.numpy(), cfg, run_dir, distractors)
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
