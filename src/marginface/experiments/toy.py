"""The toy models of the margin papers, trained: one backbone, 8 identities, 2-D (and 3-D) embeddings.

Each model is trained by `marginface.pipeline.train` on a config composed from conf/ with overrides
(synthetic identities by default, 8 trained + 2 never seen), then re-read from its checkpoint to
embed every image; the features and class weights go into the run's toy_features.npz, which the
report's toy figures (marginface.report.toy) draw. Trained runs are reused: a folder whose
results.json was made from the same resolved config, beside its checkpoint, is not trained again.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from marginface.configs import config_dir
from marginface.io import atomic_write_bytes
from marginface.report.runs import SKIP_MARKER
from marginface.report.toy import FEATURES_FILE, TOY_HEADS

#: 10 generated identities in 5 folds: 8 trained, 2 never seen; a small CNN; 100 epochs (~15 s each)
TOY_OVERRIDES = (
    "data=synthetic",
    "data.dataset.num_identities=10",
    "data.dataset.images_per_identity=24",
    "data.dataset.noise=0.35",
    "data.num_folds=5",
    "data.val_per_identity=4",
    "data.batch_size=32",
    "data.image_size=[28,24]",
    "backbone.widths=[16,32,32,64]",
    "trainer.max_epochs=100",  # at 40, ArcFace and AM-Softmax in 2-D still misclassify a quarter
    "trainer.check_val_every_n_epoch=100",
    "trainer.enable_progress_bar=false",
    "eval.artifacts=false",
    "threads=1",  # tiny layers: a second thread only waits for the first on a busy machine
)


def compose_train(overrides: Sequence[str], output_dir: str | Path, conf: str | Path | None = None):
    """conf/train.yaml composed with `overrides`, the Hydra runtime set as a real run sets it."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf or config_dir()), version_base="1.3"):
            cfg = compose(config_name="train", overrides=list(overrides), return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()
    HydraConfig().set_config(cfg)  # train() reads the `loss=` choice from here
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        del cfg["hydra"]
    return cfg


def _already_trained(run_dir: Path, config: dict[str, Any]) -> bool:
    if not (run_dir / "checkpoints" / "last.ckpt").is_file():
        return False
    try:
        return json.loads((run_dir / "results.json").read_text()).get("config") == config
    except (OSError, ValueError):
        return False


def train_toy(
    out_dir: str | Path,
    heads: Sequence[str] = TOY_HEADS,
    dims: Sequence[int] = (2, 3),
    overrides: Sequence[str] = (),
    log: Callable[[str], None] | None = print,
) -> dict[int, dict[str, Path]]:
    """Train (or reuse) one model per head and embedding size under out_dir/d<dim>/<head>."""
    from omegaconf import OmegaConf

    from marginface.pipeline import train

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / SKIP_MARKER).write_text("toy models: not part of any ablation table\n")
    runs: dict[int, dict[str, Path]] = {}
    for dim in dims:
        for head in heads:
            run_dir = out_dir / f"d{dim}" / head
            runs.setdefault(dim, {})[head] = run_dir
            cfg = compose_train(
                [*TOY_OVERRIDES, f"loss={head}", f"backbone.embedding_dim={dim}", *overrides],
                run_dir,
            )
            trained = _already_trained(run_dir, OmegaConf.to_container(cfg, resolve=True))
            if not trained:
                if log:
                    log(f"toy: training {head} with {dim}-D embeddings -> {run_dir}")
                train(cfg)
            if not trained or not (run_dir / FEATURES_FILE).is_file():
                write_toy_features(run_dir)  # what the report's toy figures draw
    return runs


@torch.no_grad()
def toy_features(run_dir: str | Path) -> dict[str, Any]:
    """Features of the trained and the unseen identities' images, class weights, and the run's figures."""
    from omegaconf import OmegaConf

    from marginface.inference.embed import raw_embeddings
    from marginface.training.checkpoints import load_checkpoint
    from marginface.training.factory import build

    run_dir = Path(run_dir)
    results = json.loads((run_dir / "results.json").read_text())
    ckpt = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    datamodule, module = build(OmegaConf.create(ckpt["marginface_config"]))
    module.load_state_dict(ckpt["state_dict"])
    module.eval()
    images, labels = datamodule.training_identities()
    open_images, _ = datamodule.open_set()
    return {
        "features": raw_embeddings(module.backbone, images, progress=False).numpy(),
        "labels": labels.numpy(),
        "open_features": raw_embeddings(module.backbone, open_images, progress=False).numpy(),
        "weight": module.head.weight.detach().numpy(),
        "results": results,
    }


def write_toy_features(run_dir: str | Path) -> Path:
    """<run_dir>/toy_features.npz: the arrays of `toy_features`, read by marginface.report.toy."""
    arrays = {k: v for k, v in toy_features(run_dir).items() if k != "results"}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path = Path(run_dir) / FEATURES_FILE
    atomic_write_bytes(path, buffer.getvalue())
    return path
