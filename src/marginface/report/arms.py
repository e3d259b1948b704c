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


def arms_markdown(reference: str | Path, arms: Sequence[Arm]) -> str:
    """A table per arm: metric, reference mean, arm mean, paired difference, verdict."""
    lines = []
    for arm in arms:
        lines += [f"## {arm.path} minus {reference}", ""]
        table = []
        for row in arm.rows:
            d = row.difference
            if d.n < 2:
                verdict = "fewer than 2 pairs"
            elif not d.excludes_zero():
                verdict = "not shown"
            else:
                better = (d.mean > 0) == row.metric.higher_is_better
                verdict = "arm better" if better else "arm worse"
            digits = row.metric.digits
            table.append(
                [
                    row.metric.name,
                    fmt_interval(row.reference, digits),
                    fmt_interval(row.arm, digits),
                    fmt_difference(d, max(digits, 3)),
                    str(row.pairs),
                    verdict,
                ]
            )
        header = ["metric", "reference", "arm", "arm - reference (95%)", "pairs", "verdict"]
        lines += md_table(header, table)
        if arm.unpaired:
            lines.append(f"\n{arm.unpaired} run(s) of this arm have no partner in the reference.")
        lines.append("")
    return "\n".join(lines)
