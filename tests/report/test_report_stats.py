"""t-intervals without scipy, checked against scipy."""

import csv
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from marginface.report.stats import Interval, mean_ci, paired_ci, pool_intervals, t_quantile


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 7, 10, 11, 29, 100, 1001])
@pytest.mark.parametrize("level", [0.9, 0.95, 0.99])
def test_t_quantile_matches_scipy(df, level):
    assert t_quantile(level, df) == pytest.approx(stats.t.ppf(0.5 + level / 2, df), rel=1e-10)


def test_mean_ci_matches_scipy_and_skips_unmeasured():
    values = [0.81, 0.86, 0.79, 0.90, 0.84, 0.88]
    got = mean_ci([*values, None, float("nan")])
    lo, hi = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert got.n == 6
    assert got.mean == pytest.approx(np.mean(values), abs=1e-15)
    assert (got.lo, got.hi) == pytest.approx((lo, hi), abs=1e-12)
    assert got.std == pytest.approx(np.std(values, ddof=1))


def test_small_samples_have_no_interval():
    assert mean_ci([]).mean is None
    one = mean_ci([0.5])
    assert one.mean == 0.5 and one.lo is None and not one.excludes_zero()


def test_paired_ci_uses_only_keys_measured_on_both_sides():
    a = {(0, 0): 0.90, (0, 1): 0.93, (1, 0): 0.88, (1, 1): None, (2, 0): 0.91}
    b = {(0, 0): 0.85, (0, 1): 0.86, (1, 0): 0.86, (1, 1): 0.80}
    got, keys = paired_ci(a, b)
    diff = [0.05, 0.07, 0.02]
    lo, hi = stats.t.interval(0.95, 2, loc=np.mean(diff), scale=stats.sem(diff))
    assert sorted(keys) == [(0, 0), (0, 1), (1, 0)]
    assert got.mean == pytest.approx(np.mean(diff))
    assert (got.lo, got.hi) == pytest.approx((lo, hi), abs=1e-12)
    assert got.excludes_zero() == (lo > 0)
    assert math.isclose(got.half_width, (hi - lo) / 2)


@pytest.mark.parametrize("sizes", [(20, 20), (3, 11, 1), (2, 2)])
def test_pooled_interval_is_the_interval_of_all_values_against_scipy(sizes):
    rng = np.random.default_rng(sum(sizes))
    parts = [rng.normal(loc=i, scale=1 + i, size=n) for i, n in enumerate(sizes)]
    values = np.concatenate(parts)
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    # from the parts' own intervals, as a paired.csv holds them (std not given), and with std
    from_csv = [
        Interval(i.n, i.mean, i.lo, i.hi, None) for i in (mean_ci(p.tolist()) for p in parts)
    ]
    for given in (from_csv, [mean_ci(p.tolist()) for p in parts]):
        pooled = pool_intervals(given)
        assert pooled.n == len(values)
        assert pooled.mean == pytest.approx(values.mean(), abs=1e-12)
        assert (pooled.lo, pooled.hi) == pytest.approx(
            (values.mean() - half, values.mean() + half), abs=1e-10
        )


def test_pooling_needs_each_part_spread():
    with pytest.raises(ValueError, match="std or its interval"):
        pool_intervals([Interval(3, 0.1, None, None, None), Interval(2, 0.2, 0.0, 0.4, None)])
    assert pool_intervals([]).n == 0
    assert pool_intervals([Interval(1, 0.5, None, None, None)]).lo is None


def test_pool_paired_script_pools_two_reports_csvs(tmp_path):
    rng = np.random.default_rng(7)
    halves = [rng.normal(-0.01, 0.01, size=20), rng.normal(-0.012, 0.008, size=20)]
    columns = ["group", "row", "metric", "n_pairs", "mean_diff", "ci95_lo", "ci95_hi", "shown"]
    files = []
    for k, half in enumerate(halves):
        i = mean_ci(half.tolist())
        path = tmp_path / f"paired{k}.csv"
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            writer.writerow(["ORL, 56x48 px", "arcface", "EER", i.n, i.mean, i.lo, i.hi, True])
            writer.writerow(["ORL, 56x48 px", "arcface", "rank-1", 0, None, None, None, False])
        files.append(str(path))
    script = Path(__file__).resolve().parents[2] / "scripts" / "pool_paired.py"
    out = subprocess.run(
        [sys.executable, str(script), *files], capture_output=True, text=True, check=True
    ).stdout
    rows = list(csv.DictReader(out.splitlines()))
    eer = next(r for r in rows if r["metric"] == "EER")
    values = np.concatenate(halves)
    half = stats.t.ppf(0.975, 39) * values.std(ddof=1) / math.sqrt(40)
    assert int(eer["n_pairs"]) == 40
    assert float(eer["mean_diff"]) == pytest.approx(values.mean(), abs=1e-12)
    assert float(eer["ci95_lo"]) == pytest.approx(values.mean() - half, abs=1e-10)
    assert float(eer["ci95_hi"]) == pytest.approx(values.mean() + half, abs=1e-10)
    assert next(r for r in rows if r["metric"] == "rank-1")["n_pairs"] == "0"
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    failed = subprocess.run([sys.executable, str(script), str(bad)], capture_output=True, text=True)
    assert failed.returncode != 0 and "not a report's paired.csv" in failed.stderr
