"""The toy figures of the margin papers: one backbone, 8 identities, 2-D (and 3-D) embeddings, one panel per head.

The models are trained by marginface.experiments.toy.train_toy, which leaves in each run folder the
features of every image and the direction of every class weight (toy_features.npz); these figures
draw them from those files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from marginface.report.figures import save

TOY_HEADS = ("softmax", "lsoftmax", "sphereface", "amsoftmax", "arcface")
#: each toy run's features and class weights, written by marginface.experiments.toy.train_toy
FEATURES_FILE = "toy_features.npz"


def read_toy_features(run_dir: str | Path) -> dict[str, Any]:
    """A toy run's features of the trained and unseen identities' images, class weights, results."""
    run_dir = Path(run_dir)
    with np.load(run_dir / FEATURES_FILE) as arrays:
        features = {k: arrays[k] for k in ("features", "labels", "open_features", "weight")}
    return {**features, "results": json.loads((run_dir / "results.json").read_text())}


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
        features = {head: read_toy_features(run_dir) for head, run_dir in by_head.items()}
        plot = {2: plot_toy_2d, 3: plot_toy_3d}.get(dim)
        if plot is not None:
            paths.append(plot(features, Path(out_dir) / f"toy_{dim}d.png"))
    return paths


def find_toy_runs(toy_dir: str | Path) -> dict[int, dict[str, Path]]:
    """The trained toy runs under toy_dir (d<dim>/<head>/ with results.json and toy_features.npz)."""
    runs: dict[int, dict[str, Path]] = {}
    for results in sorted(Path(toy_dir).glob("d*/*/results.json")):
        run_dir = results.parent
        if not (run_dir / FEATURES_FILE).is_file() or not run_dir.parent.name[1:].isdigit():
            continue
        runs.setdefault(int(run_dir.parent.name[1:]), {})[run_dir.name] = run_dir
    order = {h: k for k, h in enumerate(TOY_HEADS)}
    return {
        d: dict(sorted(r.items(), key=lambda kv: order.get(kv[0], 99))) for d, r in runs.items()
    }
