"""Two or more arms of one comparison (e.g. fine-tuned vs from scratch, bf16 vs fp32), paired run by run.

An arm is a folder of runs (a Hydra multirun folder, or any folder above results.json files). A
run of an arm is paired with the reference arm's run of the same head, fold, seed and number of
training identities (an ensemble of checkpoints, `model=ensemble`, counts as its members' head);
each metric gets both arms' means with 95% t-intervals and the paired
difference (arm minus reference) with its 95% t-interval over the pairs (docs/metrics.md). Runs
without a partner are counted and left out of the difference, never averaged in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from marginface.report.aggregate import COMPARED, Metric
from marginface.report.build import fmt_interval, fmt_value, md_table
from marginface.report.runs import Run, collect
from marginface.report.stats import Interval, mean_ci, paired_ci
from marginface.results import ensemble_head

#: what a run of one arm is paired on: head, fold, seed, training identities
PairKey = tuple[str, int, int, int | None]

#: the figures compared by default (closed-set accuracy and the open-set verification figures)
DEFAULT_METRICS = tuple(
    m
    for m in COMPARED
    if m.name in ("closed-set accuracy", "EER", "TAR@FAR=1e-2", "TAR@FAR=1e-3", "rank-1")
)


def paired_head(run: Run) -> str:
    """The head a run is paired on: its loss, or for an ensemble (results' "ensemble" list, one
    block per member) its members' heads joined by "+", so that an ensemble of ArcFace models
    pairs with single ArcFace runs of the same fold and seed."""
    members = run.results.get("ensemble")
    return ensemble_head(members) if members else run.loss


def pair_key(run: Run) -> PairKey:
    n = (run.config.get("data") or {}).get("train_identities")
    return paired_head(run), int(run.results["fold"]), int(run.results["seed"]), n


@dataclass(frozen=True)
class ArmRow:
    """One metric of one arm against the reference: both means, the paired difference."""

    metric: Metric
    reference: Interval
    arm: Interval
    difference: Interval
    pairs: int


@dataclass(frozen=True)
class Arm:
    """One arm: its folder, its runs by pair key, and its rows against the reference."""

    path: Path
    runs: dict[PairKey, Run]
    rows: list[ArmRow]
    unpaired: int


def read_arm(path: str | Path) -> dict[PairKey, Run]:
    """The usable runs under `path` by pair key (a rerun supersedes its earlier run, as in the
    report); two different runs with one key is an error that names both."""
    runs: dict[PairKey, Run] = {}
    for run in collect(path).runs:
        key = pair_key(run)
        if key in runs:
            raise ValueError(
                f"two runs of {path} have the same head, fold, seed and train_identities {key}: "
                f"{runs[key].path} and {run.path}; an arm holds one run per key (split the folder)"
            )
        runs[key] = run
    if not runs:
        raise ValueError(f"no results.json under {path}: an arm is a folder of finished runs")
    return runs


def compare_arms(
    reference: str | Path, arms: Sequence[str | Path], metrics: Sequence[Metric] = DEFAULT_METRICS
) -> tuple[dict[PairKey, Run], list[Arm]]:
    """The reference arm's runs and every other arm against it (paired on `pair_key`)."""
    ref = read_arm(reference)
    out = []
    for path in arms:
        runs = read_arm(path)
        rows = []
        for m in metrics:
            a = {k: m.of(r) for k, r in runs.items()}
            b = {k: m.of(r) for k, r in ref.items()}
            difference, keys = paired_ci(a, b)
            rows.append(ArmRow(m, mean_ci(b.values()), mean_ci(a.values()), difference, len(keys)))
        out.append(Arm(Path(path), runs, rows, sum(k not in ref for k in runs)))
    return ref, out


def fmt_difference(d: Interval, digits: int) -> str:
    """'+mean [+lo, +hi]', or the mean alone when there is no interval."""
    if d.n == 0:
        return "n/m"
    if d.lo is None or d.hi is None:
        return f"{fmt_value(d.mean, digits, True)} (n=1, no interval)"
    lo, hi = fmt_value(d.lo, digits, True), fmt_value(d.hi, digits, True)
    return f"{fmt_value(d.mean, digits, True)} [{lo}, {hi}]"


def verdict(row: ArmRow) -> str:
    """'arm better' / 'arm worse' when the paired interval excludes zero, else 'not shown' (or
    'fewer than 2 pairs')."""
    d = row.difference
    if d.n < 2:
        return "fewer than 2 pairs"
    if not d.excludes_zero():
        return "not shown"
    return "arm better" if (d.mean > 0) == row.metric.higher_is_better else "arm worse"


def arms_figure(
    reference: str | Path,
    arms: Sequence[Arm],
    path: str | Path,
    metrics: Sequence[str] = ("EER",),
    labels: Sequence[str] | None = None,
) -> dict[str, list[tuple[str, float, float, float, int]]]:
    """A forest plot: one panel per metric, one row per arm, the paired difference (arm minus
    reference) as a dot with its 95% interval as a bar, a line at zero; green where the interval
    shows the arm better, red where it shows it worse, gray where it includes zero; in percent
    points (the compared figures are rates), each row labelled with the arm's mean (its name in the
    first panel). Returns what it drew: per metric, (label, mean, lo, hi, pairs) of the difference
    for every arm with an interval (arms with fewer than 2 pairs are left out and named in the
    panel's title)."""
    from matplotlib.figure import Figure

    labels = list(labels) if labels is not None else [a.path.name for a in arms]
    if len(labels) != len(arms):
        raise ValueError(f"{len(labels)} labels for {len(arms)} arms: give one label per arm")
    known = {row.metric.name for arm in arms for row in arm.rows}
    unknown = [m for m in metrics if m not in known]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; compared here: {sorted(known)}")
    colour = {"arm better": "tab:green", "arm worse": "tab:red", "not shown": "tab:gray"}
    fig = Figure(figsize=(3.6 * len(metrics) + 2.4, 0.45 * len(arms) + 1.4))
    drawn: dict[str, list[tuple[str, float, float, float, int]]] = {}
    for i, name in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), i + 1)
        rows = [
            (label, next(r for r in a.rows if r.metric.name == name))
            for label, a in zip(labels, arms, strict=True)
        ]
        shown = [(label, row) for label, row in rows if row.difference.n >= 2]
        drawn[name] = []
        for y, (label, row) in enumerate(reversed(shown)):
            d = row.difference
            mean, lo, hi = 100 * d.mean, 100 * d.lo, 100 * d.hi  # rates, in percent points
            ax.plot([lo, hi], [y, y], color=colour[verdict(row)], linewidth=2.5)
            ax.plot([mean], [y], "o", color=colour[verdict(row)])
            drawn[name].append((label, d.mean, d.lo, d.hi, row.pairs))
        drawn[name].reverse()
        ax.axvline(0.0, color="black", linewidth=0.8)
        ax.set_yticks(range(len(shown)))
        # each row labelled with the arm's mean (the arm's name in the first panel only); the
        # title with the reference's
        ticks = [
            f"{label + ' ' if i == 0 else ''}({100 * row.arm.mean:.1f}%)"
            for label, row in reversed(shown)
        ]
        ax.set_yticklabels(ticks, fontsize=8)
        ax.set_xlabel(f"{name}, arm minus reference (points)", fontsize=9)
        missing = [label for label, row in rows if row.difference.n < 2]
        ref_mean = rows[0][1].reference.mean
        title = f"paired 95% CI; reference {Path(reference).name}"
        title += f" ({100 * ref_mean:.1f}%)" if ref_mean is not None else ""
        ax.set_title(
            title + (f"\n(no interval: {', '.join(missing)})" if missing else ""), fontsize=8
        )
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return drawn


def arms_markdown(reference: str | Path, arms: Sequence[Arm]) -> str:
    """A table per arm: metric, reference mean, arm mean, paired difference, verdict."""
    lines = []
    for arm in arms:
        lines += [f"## {arm.path} minus {reference}", ""]
        table = []
        for row in arm.rows:
            d = row.difference
            digits = row.metric.digits
            table.append(
                [
                    row.metric.name,
                    fmt_interval(row.reference, digits),
                    fmt_interval(row.arm, digits),
                    fmt_difference(d, max(digits, 3)),
                    str(row.pairs),
                    verdict(row),
                ]
            )
        header = ["metric", "reference", "arm", "arm - reference (95%)", "pairs", "verdict"]
        lines += md_table(header, table)
        if arm.unpaired:
            lines.append(f"\n{arm.unpaired} run(s) of this arm have no partner in the reference.")
        lines.append("")
    return "\n".join(lines)
