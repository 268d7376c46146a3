"""pal.measures.stats against values worked by hand and published tables."""

import math

import pytest

from pal.measures.stats import binomial_p_value, mean_interval, wilson_interval


def test_mean_interval_by_hand():
    # values 1, 2, 3: mean 2, sample sd 1; t(0.975, 2) = 4.302653 (Student's t table)
    estimate = mean_interval([1.0, 2.0, 3.0, float("nan")])
    assert estimate.n == 3 and estimate.mean == 2.0
    assert estimate.half_width == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert math.isnan(mean_interval([5.0]).half_width) and mean_interval([]).n == 0


def test_wilson_interval_of_7_in_10():
    # Wilson (1927) score interval, z = 1.959964: 0.396778 to 0.892209 (statsmodels' proportion_confint, method="wilson")
    share, low, high = wilson_interval(7, 10)
    assert share == 0.7
    assert low == pytest.approx(0.396778, abs=1e-6) and high == pytest.approx(0.892209, abs=1e-6)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_binomial_p_value_by_hand():
    # 9 of 10 against one half, two-sided: 2 * (C(10,9) + C(10,10)) / 2^10 = 22 / 1024
    assert binomial_p_value(9, 10) == pytest.approx(22 / 1024, rel=1e-12)
    assert binomial_p_value(5, 10) == pytest.approx(1.0)
    assert math.isnan(binomial_p_value(0, 0))
