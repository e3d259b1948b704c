"""t-intervals without scipy, checked against scipy."""

import math

import numpy as np
import pytest
from scipy import stats

from marginface.report.stats import mean_ci, paired_ci, t_quantile


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
