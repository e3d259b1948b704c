"""Figures over many runs (matplotlib Figure objects on the Agg canvas; pyplot is never touched)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from marginface.report.stats import Interval

GENUINE, IMPOSTOR = "tab:green", "tab:red"


def save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def _grid(n: int, width: float = 3.4, height: float = 2.8, most: int = 4) -> tuple[Figure, list]:
    cols = min(n, most)
    rows = max(1, math.ceil(n / cols))
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = [fig.add_subplot(rows, cols, k + 1) for k in range(n)]
    return fig, axes


def _yerr(intervals: Sequence[Interval]) -> tuple[np.ndarray, np.ndarray]:
    means = np.array([np.nan if i.mean is None else i.mean for i in intervals])
    half = np.array([0.0 if i.half_width is None else i.half_width for i in intervals])
    return means, half


def plot_head_scaling(data: Mapping[str, Any], path: str | Path) -> Path:
    """Parameters, step memory and fwd+bwd time per step against classes (log-log), data sets marked."""
    rows = data["rows"]
    marks = data.get("at_datasets", [])
    heads = list(dict.fromkeys(r["head"] for r in rows))
    fig = Figure(figsize=(15, 4.4), layout="constrained")
    axes = [fig.add_subplot(1, 3, k + 1) for k in range(3)]
    for k, head in enumerate(heads):
        colour = f"C{k}"
        mine = [r for r in rows if r["head"] == head]
        extra = [m for m in marks if m["head"] == head]
        sizes = sorted({(r["classes"], r["parameters"], r["memory_bytes"]) for r in mine + extra})
        c = np.array([s[0] for s in sizes], dtype=float)
        axes[0].plot(c, [s[1] for s in sizes], "-o", color=colour, label=head, ms=3)
        axes[1].plot(c, np.array([s[2] for s in sizes]) / 2**30, "-o", color=colour, ms=3)
        timed = sorted(
            (r["classes"], r["step_s"], r["measured"]) for r in mine if r["step_s"] is not None
        )
        timed += sorted(
            (m["classes"], m["step_s"], False)
            for m in extra
            if m["time"] == "extrapolated" and m["step_s"] is not None
        )
        timed.sort()
        solid = [(cc, t) for cc, t, measured in timed if measured]
        if solid:
            axes[2].plot(*np.array(solid).T * [[1], [1e3]], "-o", color=colour, ms=3)
        dashed = solid[-1:] + [(cc, t) for cc, t, measured in timed if not measured]
        if len(dashed) > 1:
            axes[2].plot(*np.array(dashed).T * [[1], [1e3]], "--x", color=colour, ms=4)
    labels = (
        "head parameters (count)",
        "step memory (GiB: weight+grad+momentum+logits)",
        "forward+backward per step (ms)",
    )
    for ax, label in zip(axes, labels, strict=True):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("number of classes (identities)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.25)
        for name, c in data.get("datasets", {}).items():
            ax.axvline(c, color="grey", lw=0.8, ls=":")
            ax.text(
                c,
                0.98,
                f" {name}",
                transform=ax.get_xaxis_transform(),
                rotation=90,
                va="top",
                ha="right",
                fontsize=7,
                color="grey",
            )
    axes[0].legend(fontsize=7)
    axes[0].set_title("exact counts (same for every head: C x D)", fontsize=9)
    axes[1].set_title("exact counts from tensor sizes", fontsize=9)
    axes[2].set_title("solid: measured, dashed: extrapolated linearly in C", fontsize=9)
    fig.suptitle(
        f"Weakness 1: the head grows with the identities (D={data['dim']}, B={data['batch']}, "
        f"{data['device']}, {data.get('threads', '?')} thread(s))"
    )
    return save(fig, path)


def plot_closed_vs_open(
    table: Mapping[str, Mapping[str, Interval]],
    metrics: Sequence[str],
    path: str | Path,
    title: str,
) -> Path:
    """Per row, closed-set accuracy beside the open-set figures (bars: mean, whiskers: 95% CI)."""
    rows = list(table)
    fig = Figure(figsize=(max(6.0, 1.3 * len(rows) + 2), 4.4), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / len(metrics)
    x = np.arange(len(rows))
    for k, metric in enumerate(metrics):
        means, half = _yerr([table[r][metric] for r in rows])
        ax.bar(
            x + (k - (len(metrics) - 1) / 2) * width,
            np.nan_to_num(means),
            width,
            yerr=half,
            capsize=3,
            label=metric,
            color=f"C{k}",
        )
    ax.set_xticks(x, [r.replace(" (", "\n(") for r in rows], fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("fraction (mean over folds x seeds; 95% CI)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(True, axis="y", alpha=0.3)
    return save(fig, path)


def plot_angle_histograms(
    hists: Mapping[str, Mapping[str, Any]], edges: np.ndarray, path: str | Path, title: str
) -> Path:
    """One panel per row: densities of genuine and impostor pair angles (degrees), runs weighted alike."""
    fig, axes = _grid(len(hists))
    for ax, (row, h) in zip(axes, hists.items(), strict=True):
        for kind, colour in (("genuine", GENUINE), ("impostor", IMPOSTOR)):
            density = h.get(kind)
            if density is None:
                continue
            ax.stairs(density, edges, fill=True, alpha=0.45, color=colour, label=kind)
            ax.axvline(h[f"{kind}_mean"], color=colour, lw=1)
        ax.set_title(f"{row} ({h['runs']} runs)", fontsize=8)
        ax.set_xlim(0, 180)
        ax.set_xlabel("angle between the pair (degrees)", fontsize=8)
    axes[0].set_ylabel("density per degree")
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return save(fig, path)


def plot_angle_stats(
    stats: Mapping[str, Mapping[str, Interval]],
    pairs: Sequence[tuple[str, str, str]],
    path: str | Path,
    title: str,
) -> Path:
    """One panel per (name, intra key, inter key): intra- beside inter-class angle per row, with 95% CI."""
    fig, axes = _grid(len(pairs), width=max(4.0, 0.9 * len(stats) + 1.5), most=3)
    rows = list(stats)
    x = np.arange(len(rows))
    for ax, (name, intra, inter) in zip(axes, pairs, strict=True):
        for k, (key, colour) in enumerate(((intra, GENUINE), (inter, IMPOSTOR))):
            means, half = _yerr([stats[r][key] for r in rows])
            ax.bar(
                x + (k - 0.5) * 0.38,
                np.nan_to_num(means),
                0.38,
                yerr=half,
                capsize=3,
                color=colour,
                alpha=0.7,
                label=key,
            )
        ax.set_xticks(x, [r.replace(" (", "\n(") for r in rows], fontsize=7)
        ax.set_ylabel("degrees")
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return save(fig, path)


def plot_target_gradient(
    curves: Mapping[str, np.ndarray], path: str | Path, num_classes: int
) -> Path:
    """dLoss/dz_y against p_y for cross-entropy and squared error (analytic CE dotted)."""
    fig = Figure(figsize=(6.2, 4.3), layout="constrained")
    ax = fig.add_subplot()
    p = curves["p"]
    ax.plot(p, curves["ce"], label="cross-entropy (autograd)", lw=2)
    ax.plot(p, curves["ce_analytic"], ":", color="k", label="cross-entropy, analytic p - 1")
    ax.plot(p, curves["mse"], label="squared error on softmax (autograd)", lw=2)
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_xlabel("predicted probability of the true class, p_y")
    ax.set_ylabel("gradient of the loss w.r.t. the target logit z_y")
    ax.set_title(
        f"A wrong, confident prediction (p_y -> 0): CE pushes hardest, MSE barely ({num_classes} classes)",
        fontsize=8,
    )
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    return save(fig, path)


def plot_learning_curves(
    curves: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]]],
    path: str | Path,
    title: str,
) -> Path:
    """One panel per logged metric: mean over runs per epoch (band: min..max of the runs) per label."""
    metrics = list(dict.fromkeys(m for c in curves.values() for m in c))
    fig, axes = _grid(len(metrics), most=4)
    for ax, metric in zip(axes, metrics, strict=True):
        for k, (label, c) in enumerate(curves.items()):
            if metric not in c:
                continue
            epochs, mean, (low, high) = c[metric][0], c[metric][1], c[metric][2]
            ax.plot(epochs, mean, color=f"C{k}", label=label)
            ax.fill_between(epochs, low, high, color=f"C{k}", alpha=0.2)
        ax.set_title(metric, fontsize=9)
        ax.set_xlabel("epoch")
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return save(fig, path)


def plot_confidence(
    hists: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]], path: str | Path, title: str
) -> Path:
    """Per row: max-probability and normalised-entropy histograms, closed-set vs open-set images."""
    fig = Figure(figsize=(7.0, 2.5 * len(hists) + 0.6), layout="constrained")
    edges = None
    for k, (row, h) in enumerate(hists.items()):
        for j, (key, label) in enumerate(
            (
                ("max_prob_hist", "max class probability"),
                ("entropy_share_hist", "entropy / log(classes)"),
            )
        ):
            ax = fig.add_subplot(len(hists), 2, 2 * k + j + 1)
            for which, colour, name in (
                ("closed_set", GENUINE, "known identities (held out)"),
                ("open_set", IMPOSTOR, "unseen identities"),
            ):
                counts = np.asarray(h[which][key], dtype=float)
                if counts.sum() == 0:
                    continue
                edges = np.linspace(0.0, 1.0, len(counts) + 1)
                ax.stairs(
                    counts / counts.sum(), edges, fill=True, alpha=0.45, color=colour, label=name
                )
            ax.set_xlabel(label, fontsize=8)
            ax.set_title(row, fontsize=8)
            if j == 0:
                ax.set_ylabel("share of images")
            if k == 0 and j == 0:
                ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return save(fig, path)


def plot_identity_scaling(
    differences: Mapping[str, Mapping[str, Mapping[int, Interval]]],
    softmax: Mapping[str, Mapping[int, Interval]],
    metrics: Sequence[str],
    path: str | Path,
    title: str,
) -> Path:
    """Head minus softmax against training identities N, one panel per metric; softmax's own figures last."""
    fig, axes = _grid(len(metrics) + 1, width=3.6, height=3.0, most=5)
    every_n = sorted(
        {n for m in softmax.values() for n in m}
        | {n for d in differences.values() for m in d.values() for n in m}
    )
    for ax, metric in zip(axes, metrics, strict=False):
        for k, (row, by_metric) in enumerate(differences.items()):
            by_n = by_metric.get(metric, {})
            ns = sorted(n for n, i in by_n.items() if i.mean is not None)
            if not ns:
                continue
            means, half = _yerr([by_n[n] for n in ns])
            ax.errorbar(
                ns, means, yerr=half, fmt="-o", ms=3, capsize=3, color=f"C{k + 1}", label=row
            )
        ax.axhline(0.0, color="black", lw=0.8)
        _n_axis(ax, every_n)
        ax.set_title(f"{metric}: head - softmax", fontsize=9)
        ax.set_xlabel("training identities N")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("paired difference (95% CI)")
    if differences:
        axes[0].legend(fontsize=7)
    ax = axes[len(metrics)]
    for k, (metric, by_n) in enumerate(softmax.items()):
        ns = sorted(n for n, i in by_n.items() if i.mean is not None)
        if ns:
            means, half = _yerr([by_n[n] for n in ns])
            ax.errorbar(
                ns, means, yerr=half, fmt="-o", ms=3, capsize=3, color=f"C{k}", label=metric
            )
    _n_axis(ax, every_n)
    ax.set_ylim(0, 1.05)
    ax.set_title("softmax: closed set vs open set", fontsize=9)
    ax.set_xlabel("training identities N")
    ax.grid(True, alpha=0.3)
    if softmax:
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return save(fig, path)


def _n_axis(ax, ns: Sequence[int]) -> None:
    """A log axis of identity counts, ticked at the measured N only."""
    ax.set_xscale("log")
    ax.set_xticks(list(ns), [f"{n:,}" for n in ns])
    ax.minorticks_off()
