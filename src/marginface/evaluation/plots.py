"""Figures and files for one run's open-set pairs: ROC, score and angle histograms, the quality
curve (error versus reject), scores.npz, roc.csv.

Figures are matplotlib `Figure` objects saved directly (Agg canvas), so no pyplot state is touched.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from marginface.metrics.verification import roc

_MAX_CURVE_POINTS = 2000  # ROC points kept for plots and roc.csv; scores.npz keeps everything


def thin_roc(far: np.ndarray, max_points: int = _MAX_CURVE_POINTS) -> np.ndarray:
    """Indices of at most ~max_points ROC points, spread evenly over log FAR, ends included.

    Each kept point is the last one at or below a FAR grid value, i.e. a true TAR@FAR point.
    """
    far = np.asarray(far)
    if len(far) <= max_points:
        return np.arange(len(far))
    positive = far[far > 0]
    low = positive.min() if len(positive) else 1.0
    grid = np.logspace(np.log10(low), 0.0, max_points - 2)
    idx = np.searchsorted(far, grid, side="right") - 1
    return np.unique(np.concatenate(([0], idx, [len(far) - 1], np.flatnonzero(far == 0)[-1:])))


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def plot_roc(
    far: np.ndarray | Mapping[str, tuple[np.ndarray, np.ndarray]],
    tar: np.ndarray | None = None,
    path: str | Path | None = None,
    label: str = "model",
    title: str = "ROC on open-set pairs",
) -> Path:
    """Plot TAR against FAR (log axis) to `path`; `far` may be a dict label -> (far, tar) instead."""
    if path is None:
        raise ValueError("plot_roc needs a path to write the figure to")
    if isinstance(far, Mapping):
        if tar is not None:
            raise ValueError(
                "plot_roc takes either far and tar arrays or a dict of curves, not both"
            )
        curves = dict(far)
    else:
        if tar is None:
            raise ValueError("plot_roc needs tar when far is an array")
        curves = {label: (far, tar)}
    fig = Figure(figsize=(6, 4.5), layout="constrained")
    ax = fig.add_subplot()
    low = 1.0
    for name, (f, t) in curves.items():
        f, t = np.asarray(f, dtype=np.float64), np.asarray(t, dtype=np.float64)
        keep = thin_roc(f)
        f, t = f[keep], t[keep]
        ax.step(f, t, where="post", label=name)
        if (f > 0).any():
            low = min(low, f[f > 0].min())
    ax.set_xscale("log")
    ax.set_xlim(low, 1.0)
    ax.set_ylim(0.0, 1.01)
    ax.set_xlabel("false accept rate (FAR, fraction of impostor pairs, log scale)")
    ax.set_ylabel("true accept rate (TAR, fraction of genuine pairs)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    return _save(fig, path)


def _two_histograms(
    values: np.ndarray,
    issame: np.ndarray,
    bins: np.ndarray,
    xlabel: str,
    ylabel: str,
    title: str,
    path: str | Path,
) -> Path:
    issame = np.asarray(issame, dtype=bool)
    fig = Figure(figsize=(6, 4.5), layout="constrained")
    ax = fig.add_subplot()
    for mask, name, colour in ((issame, "genuine", "tab:green"), (~issame, "impostor", "tab:red")):
        if mask.any():
            counts, edges = np.histogram(values[mask], bins=bins, density=True)
            ax.stairs(
                counts, edges, fill=True, alpha=0.45, color=colour, label=f"{name} ({mask.sum()})"
            )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    return _save(fig, path)


def plot_score_hist(
    scores: np.ndarray, issame: np.ndarray, path: str | Path, normalized: bool = False
) -> Path:
    """Histograms (densities) of genuine and impostor pair scores to `path`: cosine similarity, or
    with `normalized` S-norm scores (cohort standard deviations, metrics/score_norm.py)."""
    scores = np.asarray(scores, dtype=np.float64)
    if not normalized:
        return _two_histograms(
            scores,
            issame,
            np.linspace(-1.0, 1.0, 101),
            "cosine similarity of the pair (unitless, -1 to 1)",
            "density (fraction of pairs per unit of cosine)",
            "Open-set pair scores",
            path,
        )
    low, high = (float(scores.min()), float(scores.max())) if len(scores) else (-1.0, 1.0)
    return _two_histograms(
        scores,
        issame,
        np.linspace(low, max(high, low + 1e-6), 101),
        "S-norm score of the pair (cohort standard deviations)",
        "density (fraction of pairs per unit of score)",
        "Open-set pair scores, S-normalised",
        path,
    )


def plot_angle_hist(scores: np.ndarray, issame: np.ndarray, path: str | Path) -> Path:
    """Histograms of the angle between pair embeddings, arccos(score) in degrees, as in ArcFace Fig. 5."""
    angles = np.degrees(np.arccos(np.clip(np.asarray(scores, dtype=np.float64), -1.0, 1.0)))
    return _two_histograms(
        angles,
        issame,
        np.linspace(0.0, 180.0, 91),
        "angle between the pair's embeddings (degrees)",
        "density (fraction of pairs per degree)",
        "Open-set pair angles",
        path,
    )


def plot_quality(quality: Mapping, path: str | Path) -> Path:
    """FNMR at the fixed FAR against the share of lowest-norm images rejected (the results'
    "open_set.quality" block, metrics/quality.py); points that are not measurable are left out."""
    reject = np.asarray(quality["reject"], dtype=np.float64)
    fnmr = np.array([np.nan if v is None else v for v in quality["fnmr"]], dtype=np.float64)
    fig = Figure(figsize=(6, 4.5), layout="constrained")
    ax = fig.add_subplot()
    shown = np.isfinite(fnmr)
    if shown.any():
        ax.plot(100 * reject[shown], fnmr[shown], marker="o")
    else:
        # a FAR the impostor pairs cannot measure, or no genuine pair: say so, draw nothing
        ax.text(0.5, 0.5, "not measurable on these pairs", ha="center", transform=ax.transAxes)
    ax.set_xlim(0.0, 100 * max(reject.max(initial=0.0), 0.05))
    ax.set_ylim(0.0, max(1.05 * fnmr[shown].max(initial=0.0), 0.01))
    ax.set_xlabel("images rejected, lowest embedding norm first (% of open-set images)")
    ax.set_ylabel(f"FNMR at FAR={quality['far']:g} (fraction of genuine pairs)")
    ax.set_title("Error versus reject: does the embedding norm carry quality?")
    ax.grid(True, alpha=0.3)
    return _save(fig, path)


def write_open_set_artifacts(
    run_dir: str | Path,
    scores: np.ndarray,
    issame: np.ndarray,
    pairs: tuple[np.ndarray, np.ndarray] | None = None,
    norms: np.ndarray | None = None,
    quality: Mapping | None = None,
    cosines: np.ndarray | None = None,
) -> list[Path]:
    """Write scores.npz, roc.csv, roc.png, scores.png, angles.png (and quality.png, given the
    results' `quality` block) into run_dir; return the paths.

    scores.npz holds `scores` and `issame` per pair, plus `i` and `j` (the pair's image indices)
    given `pairs`, and `norms` (each image's embedding norm) given `norms`. `cosines`: each pair's
    cosine when `scores` are S-normalised (eval.score_norm); scores.npz then holds them too, and
    angles.png is drawn from them.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    scores = np.asarray(scores, dtype=np.float32)
    issame = np.asarray(issame, dtype=bool)
    from marginface.io import atomic_file

    arrays = {"scores": scores, "issame": issame}
    if pairs is not None:
        arrays.update(i=np.asarray(pairs[0], np.int64), j=np.asarray(pairs[1], np.int64))
    if norms is not None:
        arrays["norms"] = np.asarray(norms, dtype=np.float32)
    if cosines is not None:
        arrays["cosines"] = np.asarray(cosines, dtype=np.float32)
    npz = run_dir / "scores.npz"
    with atomic_file(npz) as file:  # a crash leaves no half-written scores
        np.savez(file, **arrays)
    far, tar, thresholds = roc(scores, issame)
    keep = thin_roc(far)
    csv = run_dir / "roc.csv"  # thinned like the plot; scores.npz holds every pair
    with atomic_file(csv) as file:
        np.savetxt(
            file,
            np.column_stack((thresholds[keep], far[keep], tar[keep])),
            delimiter=",",
            header="threshold,far,tar",
            comments="",
            fmt="%.9g",
        )
    paths = [
        npz,
        csv,
        plot_roc(far, tar, run_dir / "roc.png"),
        plot_score_hist(scores, issame, run_dir / "scores.png", normalized=cosines is not None),
        plot_angle_hist(scores if cosines is None else cosines, issame, run_dir / "angles.png"),
    ]
    if quality is not None:
        paths.append(plot_quality(quality, run_dir / "quality.png"))
    return paths
