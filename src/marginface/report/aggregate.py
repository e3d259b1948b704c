"""Per-row means and intervals of the results.json figures, and paired differences against a reference head."""

from __future__ import annotations

from dataclasses import dataclass

from marginface.report.runs import Group, Run
from marginface.report.stats import Interval, mean_ci, paired_ci


@dataclass(frozen=True)
class Metric:
    """One figure of results.json: its column name, where it lives, and which direction is better."""

    name: str
    path: tuple[str, ...]
    higher_is_better: bool = True
    digits: int = 3

    def of(self, run: Run) -> float | None:
        value = run.get(*self.path)
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None


METRICS = (
    Metric("closed-set accuracy", ("closed_set", "accuracy")),
    Metric("AUC", ("open_set", "verification", "auc"), digits=4),
    Metric("EER", ("open_set", "verification", "eer"), higher_is_better=False, digits=4),
    Metric("TAR@FAR=1e-2", ("open_set", "verification", "tar@far=1e-2")),
    Metric("TAR@FAR=1e-3", ("open_set", "verification", "tar@far=1e-3")),
    Metric("10-fold accuracy", ("open_set", "verification", "accuracy_10fold")),
    Metric("rank-1", ("open_set", "identification", "rank1")),
    Metric("DIR@FPIR=1e-2", ("open_set", "identification", "dir@fpir=1e-2")),
    Metric("precision@1", ("open_set", "retrieval", "precision@1")),
    Metric("head parameters", ("head", "parameters"), higher_is_better=False, digits=0),
    Metric("training s", ("timing", "train_s"), higher_is_better=False, digits=1),
)

#: the metrics a margin head is compared on against softmax (sizes and times are not effects)
COMPARED = tuple(m for m in METRICS if m.path[0] in ("closed_set", "open_set"))

ANGLES = (
    Metric("genuine angle (deg)", ("open_set", "angles", "genuine_mean_deg"), False, 1),
    Metric("impostor angle (deg)", ("open_set", "angles", "impostor_mean_deg"), True, 1),
)


def row_table(group: Group, metrics=METRICS) -> dict[str, dict[str, Interval]]:
    """Row label -> metric name -> mean and 95% t-interval over the row's runs (folds x seeds)."""
    return {
        row: {m.name: mean_ci(m.of(r) for r in runs) for m in metrics}
        for row, runs in group.rows().items()
    }


#: the heads the report pairs every other head against: plain softmax (the question of the project)
#: and ArcFace (the margin head the post-2018 heads set out to improve on)
REFERENCES = ("softmax", "arcface")


def is_baseline(run: Run, reference: str = "softmax") -> bool:
    """Whether `run` is the reference of paired comparisons: head `reference` trained with cross-entropy."""
    return run.loss == reference and run.criterion == "ce"


def baseline_row(group: Group, reference: str = "softmax") -> str | None:
    """The row whose runs are the partners of paired comparisons against `reference`.

    Among the rows of the reference head (criterion=ce): the only one, or else the only one run
    as conf/loss configures the head (no `loss.*` override on its command line), or else the one
    with the most runs (the first in row order on a tie). None when the head has no row here.
    """
    rows = {
        row: runs
        for row, runs in group.rows().items()
        if all(is_baseline(r, reference) for r in runs)
    }
    if len(rows) <= 1:
        return next(iter(rows), None)
    as_configured = [row for row, runs in rows.items() if not any(r.head_overridden for r in runs)]
    if len(as_configured) == 1:
        return as_configured[0]
    return max(rows, key=lambda row: len(rows[row]))  # max keeps the first of equals


@dataclass(frozen=True)
class Paired:
    """Row minus its reference partner (same fold, seed and recipe) on one metric."""

    metric: Metric
    interval: Interval
    pairs: list[tuple[int, int]]

    @property
    def shown(self) -> bool:
        """Whether the 95% interval of the difference excludes zero."""
        return self.interval.excludes_zero()

    @property
    def better(self) -> bool | None:
        """Whether the row beats the reference (in the metric's good direction); None when not shown."""
        if not self.shown:
            return None
        return (self.interval.mean > 0) == self.metric.higher_is_better


def paired_table(
    group: Group, metrics=COMPARED, reference: str = "softmax"
) -> dict[str, list[Paired]]:
    """Row label -> paired differences against the `reference` head, for every other row.

    A run is paired with the `reference` (criterion=ce) run of the same fold, seed and recipe (all
    config values but the head and the criterion); runs without such a partner are left out of the
    pairs. Empty when the group has no run of the reference head. When the group holds the
    reference head in several settings (rows such as "arcface (loss.scale=32.0)" and "arcface
    (loss.scale=64)"), the partners come from one of them, and the others are
    paired with it like any other row (`baseline_row`).
    """
    chosen = baseline_row(group, reference)
    rows = group.rows()
    partners = {(r.context, r.key): r for r in rows.get(chosen, [])}
    out: dict[str, list[Paired]] = {}
    for row, runs in rows.items():
        if row == chosen or runs[0].loss == "eigenfaces":
            continue
        matched = [
            (r, partners[(r.context, r.key)]) for r in runs if (r.context, r.key) in partners
        ]
        if not matched:
            continue
        out[row] = []
        for m in metrics:
            a = {r.key: m.of(r) for r, _ in matched}
            b = {r.key: m.of(s) for r, s in matched}
            interval, keys = paired_ci(a, b)
            out[row].append(Paired(m, interval, keys))
    return out
