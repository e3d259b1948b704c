"""Many trained checkpoints on one set of unseen identities: a row per checkpoint, and paired
differences against a reference checkpoint where the same pairs were scored (docs/report.md).

Each checkpoint is one run, so there is no spread over runs to build an interval from; where two
runs scored the same pairs (equal `pairs.sha1` in results.json) their scores.npz files are compared
pair by pair, with a paired bootstrap over the pairs. Pairs share images and identities, so that
interval is optimistic: it says what the scored pairs support, not what another set would give.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from marginface.metrics.verification import auc, eer, tar_at_far
from marginface.report.runs import Group, Run

#: the pair-level figures compared: (column name, function of (scores, issame), higher is better)
PAIR_METRICS: tuple[tuple[str, Callable[[np.ndarray, np.ndarray], float | None], bool], ...] = (
    ("EER", eer, False),
    ("AUC", auc, True),
    ("TAR@FAR=1e-3", lambda s, y: tar_at_far(s, y, 1e-3), True),
)


@dataclass(frozen=True)
class PairedOnPairs:
    """`row` minus `reference` on one figure over the same pairs: difference and bootstrap interval."""

    row: str
    reference: str
    metric: str
    difference: float | None
    lo: float | None
    hi: float | None
    pairs: int

    @property
    def shown(self) -> bool:
        """Whether the 95% bootstrap interval excludes zero."""
        return self.lo is not None and self.hi is not None and (self.lo > 0 or self.hi < 0)


def reference_row(group: Group) -> str:
    """The row the others are compared with: the first softmax checkpoint, else the first row."""
    rows = group.rows()
    return next((row for row, runs in rows.items() if runs[0].loss == "softmax"), next(iter(rows)))


def _scores(run: Run) -> tuple[np.ndarray, np.ndarray] | None:
    path = run.path / "scores.npz"
    if not path.is_file():
        return None
    with np.load(path) as data:
        return np.asarray(data["scores"], dtype=np.float64), np.asarray(data["issame"], dtype=bool)


def _value(f, scores: np.ndarray, issame: np.ndarray) -> float | None:
    if issame.all() or not issame.any():
        return None
    value = f(scores, issame)
    return None if value is None else float(value)


def bootstrap_difference(
    a: np.ndarray,
    b: np.ndarray,
    issame: np.ndarray,
    f: Callable[[np.ndarray, np.ndarray], float | None],
    resamples: int = 200,
    seed: int = 0,
) -> tuple[float | None, float | None, float | None]:
    """(f(b) - f(a), 2.5% and 97.5% percentiles of the difference over pairs resampled jointly)."""
    point_a, point_b = _value(f, a, issame), _value(f, b, issame)
    if point_a is None or point_b is None:
        return None, None, None
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(resamples):
        pick = rng.integers(0, len(a), size=len(a))
        da, db = _value(f, a[pick], issame[pick]), _value(f, b[pick], issame[pick])
        if da is not None and db is not None:
            diffs.append(db - da)
    if len(diffs) < resamples // 2:
        return point_b - point_a, None, None
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return point_b - point_a, float(lo), float(hi)


def paired_on_same_pairs(group: Group, resamples: int = 200) -> list[PairedOnPairs]:
    """Every row against the reference row, where both scored the same pairs and kept scores.npz."""
    rows = group.rows()
    reference = reference_row(group)
    ref_run = rows[reference][0]
    ref_scores = _scores(ref_run)
    out: list[PairedOnPairs] = []
    if ref_scores is None or ref_run.get("pairs", "sha1") is None:
        return out
    for row, runs in rows.items():
        run = runs[0]
        if row == reference or run.get("pairs", "sha1") != ref_run.get("pairs", "sha1"):
            continue
        scores = _scores(run)
        if scores is None or not np.array_equal(scores[1], ref_scores[1]):
            continue
        for name, f, _ in PAIR_METRICS:
            diff, lo, hi = bootstrap_difference(ref_scores[0], scores[0], scores[1], f, resamples)
            out.append(PairedOnPairs(row, reference, name, diff, lo, hi, len(scores[1])))
    return out


def unpaired_rows(group: Group, paired: Sequence[PairedOnPairs]) -> list[str]:
    """Rows (other than the reference) that scored other pairs than the reference, or kept no scores."""
    done = {p.row for p in paired} | {reference_row(group)}
    return [row for row in group.rows() if row not in done]
