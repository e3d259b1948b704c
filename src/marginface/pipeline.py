"""train(cfg), the entry point of `scripts/train.py`: fit (marginface.training), then evaluate the fitted
model (marginface.evaluation) on the open-set identities and write results.json.

It sits above both layers (docs/architecture.md): training never imports the evaluation.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from marginface.evaluation.diagnostics import write_diagnostics
from marginface.evaluation.evaluate import (
    build_results,
    closed_set_accuracy,
    distractor_embeddings,
    evaluate_embeddings,
    whiten_and_cohort,
)
from marginface.inference.embed import embeddings_and_norms
from marginface.io import write_json
from marginface.training.checkpoints import CHECKPOINT_DIR, LAST, add_to_checkpoints
from marginface.training.failures import records_failure
from marginface.training.fit import fit
from marginface.whitening import CHECKPOINT_KEY

log = logging.getLogger(__name__)


@records_failure  # an exception leaves <run dir>/error.txt (docs/reliability.md)
def train(cfg: DictConfig) -> dict:
    """Fit one run and write results.json (plus scores and figures) into the run dir; returns the results."""
    fitted = fit(cfg)
    run_dir, module, trainer, train_s = (
        fitted.run_dir,
        fitted.module,
        fitted.trainer,
        fitted.train_s,
    )

    start = time.perf_counter()
    closed, block = evaluate_fitted(cfg, run_dir, module, fitted.datamodule, trainer.is_global_zero)
    timing = {
        "train_s": train_s,
        "eval_s": time.perf_counter() - start,
        "images_per_s": fitted.seen / train_s if train_s > 0 else None,
    }
    results = build_results(cfg, fitted.name, module.head, closed, block, timing)
    write_json(run_dir / "results.json", results)
    log_results(closed, block["verification"], run_dir / "results.json")
    return results


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
    embeddings, whitening, cohort = whiten_and_cohort(
        cfg, module.backbone, datamodule, embeddings, device=device
    )
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
        embeddings,
        labels.numpy(),
        cfg,
        run_dir,
        distractors=distractors,
        norms=norms,
        cohort=cohort,
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
