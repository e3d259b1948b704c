"""Pool the paired differences of one study run in parts: `python scripts/pool_paired.py A.csv B.csv [--out F]`.

Each argument is a report's paired.csv (scripts/report.py) over disjoint sets of pairs, e.g. splits
0-19 and 20-39 of experiment=ablation_orl_repeated reported apart. For every (group, head, metric)
present in all files, the pooled mean difference and its exact 95% t-interval over all the pairs
(stats.pool_intervals: from each part's n, mean and interval), written in paired.csv's columns.
    python scripts/pool_paired.py docs/results/ablation_orl_repeated_paired_0-19.csv docs/results/ablation_orl_repeated_paired_20-39.csv
"""

import argparse
import csv
import sys
from pathlib import Path

COLUMNS = ["group", "row", "metric", "n_pairs", "mean_diff", "ci95_lo", "ci95_hi", "shown"]


def number(value: str) -> float | None:
    """A CSV cell as a float; empty or None (an unmeasured figure) as None."""
    return float(value) if value not in ("", "None") else None


def read(path: Path) -> dict:
    """(group, head, metric) -> the Interval of its paired difference, from a paired.csv."""
    from marginface.report.stats import Interval

    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = set(COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise ValueError(
                f"{path} is not a report's paired.csv: no column(s) {sorted(missing)} "
                f"(expected {COLUMNS})"
            )
        out = {}
        for r in reader:
            n, mean = int(r["n_pairs"]), number(r["mean_diff"])
            out[(r["group"], r["row"], r["metric"])] = Interval(
                n, mean, number(r["ci95_lo"]), number(r["ci95_hi"]), None
            )
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", type=Path, nargs="+", help="paired.csv files of disjoint pairs")
    parser.add_argument("--out", type=Path, help="write the pooled rows here (paired.csv columns)")
    args = parser.parse_args()
    for path in args.parts:
        if not path.is_file():
            parser.error(f"no such file: {path} (pass the paired.csv that scripts/report.py wrote)")

    from marginface.report.stats import pool_intervals

    try:
        parts = [read(p) for p in args.parts]
        keys = [k for k in parts[0] if all(k in p for p in parts[1:])]
        rows = []
        for key in keys:
            pooled = pool_intervals([p[key] for p in parts])
            rows.append([*key, pooled.n, pooled.mean, pooled.lo, pooled.hi, pooled.excludes_zero()])
    except ValueError as err:
        parser.error(str(err))
    if not args.out:
        writer = csv.writer(sys.stdout)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
        return
    with open(args.out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    print(f"{len(rows)} pooled rows -> {args.out}")


if __name__ == "__main__":
    main()
