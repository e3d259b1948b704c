"""OpenSetMonitor: the open-set EER/AUC of a validation epoch, the same on 2 gloo processes as on one."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

from helpers import TINY, compose_config
from marginface.data.datamodule import CLOSED_SET, OPEN_SET
from marginface.inference.embed import extract_embeddings
from marginface.metrics.pairs import all_pairs, pair_scores
from marginface.metrics.verification import auc, eer
from marginface.pipeline import train
from marginface.training.callbacks import OpenSetMonitor
from marginface.training.factory import build

# 9 identities of 5 images, 2 folds: fold 0 leaves 5 open-set identities, 25 images; batches of
# 3, so that under 2 ranks the last batches are uneven and the sampler pads
SMALL = [
    *TINY,
    "data.dataset.num_identities=9",
    "data.dataset.images_per_identity=5",
    "data.eval_batch_size=3",
    "fold=0",
    "channels_last=false",
]


@pytest.fixture
def model(tmp_path):
    torch.manual_seed(0)
    datamodule, module = build(compose_config("train", SMALL, tmp_path))
    GlobalHydra.instance().clear()
    return datamodule, module


def by_hand(datamodule, module) -> dict[str, float]:
    """EER and AUC of all open-set pairs, the embeddings from one pass over the images, no flip."""
    images, labels = datamodule.open_set()
    embeddings = extract_embeddings(module.backbone, images, batch_size=len(images), flip=False)
    i, j, issame = all_pairs(labels.numpy())
    scores = pair_scores(embeddings, i, j)
    return {"open_set/eer": float(eer(scores, issame)), "open_set/auc": float(auc(scores, issame))}


def validate(datamodule, module, **trainer_args) -> dict[str, float]:
    trainer = L.Trainer(
        accelerator="cpu",
        callbacks=[OpenSetMonitor()],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **trainer_args,
    )
    (metrics, *_) = trainer.validate(module, datamodule=datamodule, verbose=False)
    return {key: metrics[key] for key in ("open_set/eer", "open_set/auc")}


def test_the_datamodule_names_its_validation_loaders(model):
    datamodule, module = model
    assert datamodule.val_loader_names == (CLOSED_SET, OPEN_SET)
    loaders = datamodule.val_dataloader()
    assert [len(loader.dataset) for loader in loaders] == [
        len(datamodule.val_index),
        len(datamodule.open_index),
    ]


def test_one_process_logs_the_eer_of_all_open_set_pairs(model):
    datamodule, module = model
    expected = by_hand(datamodule, module)
    got = validate(datamodule, module, devices=1)
    assert got == pytest.approx(expected, abs=1e-6)


@pytest.mark.slow  # two spawned processes: about 20 s here
def test_two_gloo_processes_log_the_single_process_value(model):
    datamodule, module = model
    assert len(datamodule.open_index) % 2 == 1  # the sampler pads rank 1 with a repeated image
    single = validate(datamodule, module, devices=1)
    try:
        double = validate(datamodule, module, devices=2, strategy="ddp_spawn")
    except torch.multiprocessing.ProcessExitedException:
        # a worker killed by a signal (gloo aborts now and then) is retried once, as elsewhere
        double = validate(datamodule, module, devices=2, strategy="ddp_spawn")
    assert double == pytest.approx(single, abs=1e-6)
    assert single == pytest.approx(by_hand(datamodule, module), abs=1e-6)


def test_eval_monitor_false_switches_the_curve_off(tiny_train_cfg):
    cfg = tiny_train_cfg("eval.monitor=false", "eval.artifacts=false")
    train(cfg)
    header = (Path(cfg.paths.output_dir) / "csv" / "metrics.csv").read_text().splitlines()[0]
    assert "val/accuracy" in header and "open_set/eer" not in header
