"""Means with t-distribution confidence intervals, plain and paired, without scipy.

Runs of one head over identity folds x seeds are treated as independent draws; the interval is
mean +- t(1 - (1 - level)/2, n - 1) * s / sqrt(n) with s the sample standard deviation (ddof 1).
Folds share identities with each other's training sets, so the interval is, if anything, narrow.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


def t_two_sided_mass(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with integer `df` >= 1 (Abramowitz & Stegun 26.7.3 and 26.7.4)."""
    if df < 1 or int(df) != df:
        raise ValueError(f"degrees of freedom must be an integer >= 1, got {df!r}")
    if t <= 0:
        return 0.0
    theta = math.atan(t / math.sqrt(df))
    s, c = math.sin(theta), math.cos(theta)
    c2 = c * c
    if df % 2:  # odd: (2/pi) (theta + sin cos (1 + 2/3 cos^2 + 2*4/(3*5) cos^4 + ...))
        if df == 1:
            return 2.0 * theta / math.pi
        term = total = c
        for k in range(1, (df - 1) // 2):
            term *= c2 * (2 * k) / (2 * k + 1)
            total += term
        return 2.0 / math.pi * (theta + s * total)
    term = total = 1.0  # even: sin (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...)
    for k in range(1, df // 2):
        term *= c2 * (2 * k - 1) / (2 * k)
        total += term
    return s * total


def t_quantile(level: float, df: int) -> float:
    """The t with P(|T| <= t) = level: the multiplier of s/sqrt(n) for a two-sided `level` interval."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    low, high = 0.0, 1.0
    while t_two_sided_mass(high, df) < level:
        low, high = high, high * 2.0
    for _ in range(200):  # bisection to the last bit of a double
        middle = 0.5 * (low + high)
        if middle in (low, high):
            break
        if t_two_sided_mass(middle, df) < level:
            low = middle
        else:
            high = middle
    return 0.5 * (low + high)


@dataclass(frozen=True)
class Interval:
    """Mean of n values and its two-sided confidence interval (lo, hi are None when n < 2)."""

    n: int
    mean: float | None
    lo: float | None
    hi: float | None
    std: float | None

    @property
    def half_width(self) -> float | None:
        return None if self.lo is None or self.hi is None else (self.hi - self.lo) / 2.0

    def excludes_zero(self) -> bool:
        """True when the whole interval lies on one side of zero (needs n >= 2)."""
        return self.lo is not None and self.hi is not None and (self.lo > 0 or self.hi < 0)


def finite(values: Iterable[Any]) -> list[float]:
    """The values that are real finite numbers (None, NaN and Inf are unmeasured, not zero)."""
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float):
            continue
        if math.isfinite(v):
            out.append(float(v))
    return out


def mean_ci(values: Iterable[Any], level: float = 0.95) -> Interval:
    """Mean and t-interval of the finite values (None / NaN skipped)."""
    xs = finite(values)
    n = len(xs)
    if n == 0:
        return Interval(0, None, None, None, None)
    mean = math.fsum(xs) / n
    if n == 1:
        return Interval(1, mean, None, None, None)
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t_quantile(level, n - 1) * std / math.sqrt(n)
    return Interval(n, mean, mean - half, mean + half, std)


def paired_ci(
    a: Mapping[Any, Any], b: Mapping[Any, Any], level: float = 0.95
) -> tuple[Interval, list[Any]]:
    """Interval of a[k] - b[k] over keys measured in both (e.g. (fold, seed)); also the keys used."""
    keys = [k for k in a if k in b and finite([a[k]]) and finite([b[k]])]
    keys.sort(key=repr)
    return mean_ci([a[k] - b[k] for k in keys], level), keys


def pool_intervals(parts: Iterable[Interval], level: float = 0.95) -> Interval:
    """The t-interval of all values of several samples, from each sample's n, mean and interval.

    Exact, not an approximation: the pooled sum of squares is the samples' own (n_i - 1) s_i^2
    plus n_i (mean_i - mean)^2 each, and s_i comes from the interval's half-width (the same
    `level`) where `std` is not given. For a study run in halves whose runs were not all kept
    (only the halves' paired.csv): the 40-pair interval from two 20-pair ones.
    """
    parts = [p for p in parts if p.n > 0 and p.mean is not None]
    n = sum(p.n for p in parts)
    if n == 0:
        return Interval(0, None, None, None, None)
    mean = math.fsum(p.n * p.mean for p in parts) / n
    if n == 1:
        return Interval(1, mean, None, None, None)
    squares = []
    for p in parts:
        if p.n == 1:
            std = 0.0
        elif p.std is not None:
            std = p.std
        elif p.half_width is not None:
            std = p.half_width * math.sqrt(p.n) / t_quantile(level, p.n - 1)
        else:
            raise ValueError(
                f"a sample of n={p.n} values needs its std or its interval to be pooled"
            )
        squares.append((p.n - 1) * std * std + p.n * (p.mean - mean) ** 2)
    std = math.sqrt(math.fsum(squares) / (n - 1))
    half = t_quantile(level, n - 1) * std / math.sqrt(n)
    return Interval(n, mean, mean - half, mean + half, std)
