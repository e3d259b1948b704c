"""The toy figures of the margin papers: one backbone, 8 identities, 2-D (and 3-D) embeddings, one panel per head.

Each model is trained by `marginface.pipeline.train` on a config composed from conf/ with overrides
(synthetic identities by default, 8 trained + 2 never seen), then re-read from its checkpoint to
draw the features of every image and the direction of every class weight. Trained runs are reused:
a folder whose results.json was made from the same resolved config, beside its checkpoint, is not
trained again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from marginface.configs import config_dir
from marginface.report.figures import save
from marginface.report.runs import SKIP_MARKER

TOY_HEADS = ("softmax", "lsoftmax", "sphereface", "amsoftmax", "arcface")

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
            if _already_trained(run_dir, OmegaConf.to_container(cfg, resolve=True)):
                continue
            if log:
                log(f"toy: training {head} with {dim}-D embeddings -> {run_dir}")
            train(cfg)
    return runs


@torch.no_grad()
def toy_features(run_dir: str | Path) -> dict[str, Any]:
    """Features of the trained and the unseen identities' images, class weights, and the run's figures."""
    from omegaconf import OmegaConf

    from marginface.data.transforms import to_float
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
        "features": module.backbone(to_float(images)).numpy(),
        "labels": labels.numpy(),
        "open_features": module.backbone(to_float(open_images)).numpy(),
        "weight": module.head.weight.detach().numpy(),
        "results": results,
    }


def _caption(head: str, results: dict[str, Any]) -> str:
    closed = results.get("closed_set", {}).get("accuracy")
    eer = results.get("open_set", {}).get("verification", {}).get("eer")
    parts = [head]
    if closed is not None:
        parts.append(f"closed acc {closed:.2f}")
    if eer is not None:
        parts.append(f"open EER {eer:.2f}")
    return ", ".join(parts)


def plot_toy_2d(features: dict[str, dict[str, Any]], path: str | Path) -> Path:
    """One panel per head: 2-D features coloured by identity, unseen identities grey, class weights as rays."""
    fig = Figure(figsize=(3.3 * len(features), 3.6), layout="constrained")
    for k, (head, f) in enumerate(features.items()):
        ax = fig.add_subplot(1, len(features), k + 1)
        x, y = f["features"], f["labels"]
        radius = 1.15 * float(np.abs(np.concatenate([x, f["open_features"]])).max() or 1.0)
        for c in np.unique(y):
            ax.scatter(*x[y == c].T, s=6, color=f"C{c % 10}", alpha=0.7)
        ax.scatter(*f["open_features"].T, s=10, marker="x", color="0.35", label="never seen")
        w = f["weight"] / np.linalg.norm(f["weight"], axis=1, keepdims=True).clip(1e-12)
        for c, direction in enumerate(w):
            ax.plot(
                [0, radius * direction[0]], [0, radius * direction[1]], color=f"C{c % 10}", lw=1.2
            )
        ax.set_xlim(-radius, radius)
        ax.set_ylim(-radius, radius)
        ax.set_aspect("equal")
        ax.axhline(0, color="0.85", lw=0.5)
        ax.axvline(0, color="0.85", lw=0.5)
        ax.set_title(_caption(head, f["results"]), fontsize=8)
    fig.axes[0].legend(fontsize=7, loc="lower left")
    fig.suptitle(
        "2-D features: 8 trained identities (colours), class weights (lines), "
        "2 unseen identities (grey x)",
        fontsize=9,
    )
    return save(fig, path)


def plot_toy_3d(features: dict[str, dict[str, Any]], path: str | Path) -> Path:
    """One panel per head: 3-D features on the unit sphere, class-weight directions as lines."""
    import mpl_toolkits.mplot3d  # noqa: F401 - registers the 3d projection

    fig = Figure(figsize=(3.4 * len(features), 3.8), layout="constrained")
    u, v = np.mgrid[0 : 2 * np.pi : 24j, 0 : np.pi : 12j]
    for k, (head, f) in enumerate(features.items()):
        ax = fig.add_subplot(1, len(features), k + 1, projection="3d")
        ax.plot_wireframe(
            np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v), color="0.9", lw=0.4
        )
        x = F.normalize(torch.as_tensor(f["features"]), dim=1).numpy()
        y = f["labels"]
        for c in np.unique(y):
            ax.scatter(*x[y == c].T, s=5, color=f"C{c % 10}")
        unseen = F.normalize(torch.as_tensor(f["open_features"]), dim=1).numpy()
        ax.scatter(*unseen.T, s=8, marker="x", color="0.35")
        w = f["weight"] / np.linalg.norm(f["weight"], axis=1, keepdims=True).clip(1e-12)
        for c, direction in enumerate(w):
            ax.plot(*np.stack([np.zeros(3), 1.3 * direction]).T, color=f"C{c % 10}", lw=1.5)
        ax.set_box_aspect((1, 1, 1))
        ax.set_axis_off()
        ax.set_title(_caption(head, f["results"]), fontsize=8)
    fig.suptitle(
        "3-D embeddings, normalised onto the sphere (unseen identities: grey x)", fontsize=9
    )
    return save(fig, path)


def toy_figures(runs: dict[int, dict[str, Path]], out_dir: str | Path) -> list[Path]:
    """toy_2d.png and toy_3d.png (whichever sizes were trained) into out_dir."""
    paths = []
    for dim, by_head in sorted(runs.items()):
        features = {head: toy_features(run_dir) for head, run_dir in by_head.items()}
        plot = {2: plot_toy_2d, 3: plot_toy_3d}.get(dim)
        if plot is not None:
            paths.append(plot(features, Path(out_dir) / f"toy_{dim}d.png"))
    return paths


def find_toy_runs(toy_dir: str | Path) -> dict[int, dict[str, Path]]:
    """The trained toy runs under toy_dir (d<dim>/<head>/ with results.json and a checkpoint)."""
    runs: dict[int, dict[str, Path]] = {}
    for results in sorted(Path(toy_dir).glob("d*/*/results.json")):
        run_dir = results.parent
        if (
            not (run_dir / "checkpoints" / "last.ckpt").is_file()
            or not run_dir.parent.name[1:].isdigit()
        ):
            continue
        runs.setdefault(int(run_dir.parent.name[1:]), {})[run_dir.name] = run_dir
    order = {h: k for k, h in enumerate(TOY_HEADS)}
    return {
        d: dict(sorted(r.items(), key=lambda kv: order.get(kv[0], 99))) for d, r in runs.items()
    }
