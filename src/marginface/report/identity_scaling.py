"""Where the margin helps: each head minus softmax against the number of training identities N.

Runs that differ only in `data.train_identities` form one study; at each N a head's run is paired
with the softmax run of the same fold (split), seed and recipe (aggregate.paired_table), and the
paired differences get a 95% t-interval (stats.paired_ci). The open set is the same at every N
(data/README.md), so the differences at two N compare like with like.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from marginface.report.aggregate import Metric, is_baseline, paired_table, row_table
from marginface.report.runs import Group, describe, without_n
from marginface.report.stats import Interval

#: the figures compared against softmax at each N
SCALING_METRICS = (
    Metric("EER", ("open_set", "verification", "eer"), higher_is_better=False, digits=4),
    Metric("TAR@FAR=1e-3", ("open_set", "verification", "tar@far=1e-3")),
    Metric("TAR@FAR=1e-4", ("open_set", "verification", "tar@far=1e-4")),
    Metric("rank-1, distractors", ("open_set", "identification_distractors", "rank1")),
)
#: softmax's own figures at each N: weakness 2 as a function of N
SOFTMAX_METRICS = (
    Metric("closed-set accuracy", ("closed_set", "accuracy")),
    Metric("TAR@FAR=1e-3", ("open_set", "verification", "tar@far=1e-3")),
    Metric("TAR@FAR=1e-4", ("open_set", "verification", "tar@far=1e-4")),
)
CSV_COLUMNS = ("train_identities", "head", "metric", "mean", "low", "high", "n")


@dataclass
class Study:
    """Groups that differ only by data.train_identities, by N (ascending)."""

    title: str
    synthetic: bool
    groups: dict[int, Group]

    def differences(self) -> dict[str, dict[str, dict[int, Interval]]]:
        """head row -> metric -> N -> interval of the paired head-minus-softmax difference."""
        out: dict[str, dict[str, dict[int, Interval]]] = defaultdict(lambda: defaultdict(dict))
        for n, group in self.groups.items():
            for row, items in paired_table(group, SCALING_METRICS).items():
                for p in items:
                    out[row][p.metric.name][n] = p.interval
        return {row: dict(metrics) for row, metrics in out.items()}

    def softmax(self) -> dict[str, dict[int, Interval]]:
        """metric -> N -> softmax's mean and interval (its closed-set and open-set figures)."""
        out: dict[str, dict[int, Interval]] = defaultdict(dict)
        for n, group in self.groups.items():
            rows = group.rows()
            table = row_table(group, SOFTMAX_METRICS)
            soft = [row for row in table if all(is_baseline(r) for r in rows[row])]
            if soft:
                for name, interval in table[soft[0]].items():
                    out[name][n] = interval
        return dict(out)


def find_studies(groups: Sequence[Group]) -> list[Study]:
    """The groups with data.train_identities set, gathered by the rest of their protocol."""
    by_rest: dict[str, dict[int, Group]] = defaultdict(dict)
    rest_of: dict[str, dict] = {}
    for group in groups:
        n = group.protocol["data"].get("train_identities")
        if not isinstance(n, int):
            continue
        rest = without_n(group.protocol)
        key = json.dumps(rest, sort_keys=True)
        by_rest[key][n] = group
        rest_of[key] = rest
    studies = []
    for key, found in by_rest.items():
        title, synthetic = describe(rest_of[key])
        studies.append(Study(title, synthetic, dict(sorted(found.items()))))
    return studies


def write_csv(studies: Sequence[Study], path: str | Path) -> Path:
    """identity_scaling.csv: one line per (study, N, head, metric); a `study` column when several."""
    path = Path(path)
    several = len(studies) > 1
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow((["study"] if several else []) + list(CSV_COLUMNS))
        for study in studies:
            for row, metrics in study.differences().items():
                for metric, by_n in metrics.items():
                    for n, i in by_n.items():
                        w.writerow(
                            ([study.title] if several else [])
                            + [n, row, metric, i.mean, i.lo, i.hi, i.n]
                        )
    return path


def verdicts(study: Study, digits: int = 3) -> list[str]:
    """One sentence per head and metric: at which N its interval excludes zero, and which way."""
    direction = {m.name: m.higher_is_better for m in SCALING_METRICS}
    sentences = []
    for row, metrics in study.differences().items():
        parts = []
        for metric, by_n in metrics.items():
            shown = {n: i for n, i in by_n.items() if i.excludes_zero()}
            measured = [n for n, i in by_n.items() if i.n >= 2]
            if not measured:
                parts.append(f"{metric}: too few measured pairs for an interval")
                continue
            if not shown:
                parts.append(f"{metric}: not shown at any N ({', '.join(map(str, measured))})")
                continue
            said = []
            for n, i in shown.items():
                better = (i.mean > 0) == direction[metric]
                said.append(
                    f"N={n} {'better' if better else 'worse'} "
                    f"({i.mean:+.{digits}f} [{i.lo:+.{digits}f}, {i.hi:+.{digits}f}])"
                )
            rest = [n for n in measured if n not in shown]
            text = f"{metric}: interval excludes zero at " + ", ".join(said)
            if rest:
                text += f"; not shown at N = {', '.join(map(str, rest))}"
            parts.append(text)
        sentences.append(f"{study.title}, {row} minus softmax: " + "; ".join(parts) + ".")
    return sentences
