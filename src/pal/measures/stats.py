"""The statistics every summary uses: claims, the listening test and sweeps.

- :func:`mean_interval`: a mean with the half-width of its 95 % Student-t interval; :func:`apart`,
  whether two such intervals do not overlap.
- :func:`wilson_interval`: a proportion with its 95 % Wilson score interval (Wilson, 1927,
  "Probable inference, the law of succession, and statistical inference", JASA 22).
- :func:`binomial_p_value`: the two-sided exact binomial test against one half, which is also
  the sign test over paired differences that are not ties.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

CONFIDENCE = 0.95


@dataclass
class Estimate:
    mean: float
    half_width: float  # of the 95 % interval; NaN with a single value
    n: int

    def __str__(self) -> str:
        if math.isnan(self.mean):
            return "n/a"
        if math.isnan(self.half_width):
            return f"{self.mean:.3g}"
        return f"{self.mean:.3g} ± {self.half_width:.2g}"


def mean_interval(values: list[float]) -> Estimate:
    """Mean of the finite values and the half-width of its 95 % Student-t interval (NaN for n = 1)."""
    finite = [v for v in values if math.isfinite(v)]
    n = len(finite)
    if n == 0:
        return Estimate(math.nan, math.nan, 0)
    mean = sum(finite) / n
    if n == 1:
        return Estimate(mean, math.nan, 1)
    variance = sum((v - mean) ** 2 for v in finite) / (n - 1)
    return Estimate(mean, stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * math.sqrt(variance / n), n)


def apart(a: Estimate, b: Estimate) -> bool:
    """Whether the 95 % intervals of ``a`` and ``b`` do not overlap (never with a single seed)."""
    if any(math.isnan(x) for x in (a.mean, b.mean, a.half_width, b.half_width)):
        return False
    return abs(a.mean - b.mean) > a.half_width + b.half_width


def wilson_interval(successes: int, trials: int) -> tuple[float, float, float]:
    """The share ``successes / trials`` and its 95 % Wilson score interval (NaNs for no trials)."""
    if trials == 0:
        return math.nan, math.nan, math.nan
    p, z = successes / trials, stats.norm.ppf(0.5 + CONFIDENCE / 2)
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return p, centre - half, centre + half


def binomial_p_value(successes: int, trials: int) -> float:
    """Two-sided exact binomial test of ``successes`` in ``trials`` against one half (NaN for none)."""
    return stats.binomtest(successes, trials, 0.5).pvalue if trials else math.nan
