"""The claims table against intervals and verdicts worked out by hand."""

import math

import pytest
from scipy import stats

from pal.measures.claims import claims_table, format_table
from pal.measures.registry import CLAIMED, iterations_to_final
from pal.measures.stats import mean_interval


def test_mean_interval_is_the_student_t_interval():
    values = [1.0, 2.0, 4.0]
    estimate = mean_interval(values)
    sd = math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 2)
    assert estimate.mean == pytest.approx(7 / 3)
    assert estimate.half_width == pytest.approx(4.302652729911275 * sd / math.sqrt(3))  # t(0.975, 2) from tables
    assert estimate.half_width == pytest.approx(stats.t.ppf(0.975, 2) * sd / math.sqrt(3))
    single = mean_interval([5.0])
    assert single.mean == 5.0 and math.isnan(single.half_width)
    assert mean_interval([math.nan, 2.0]).n == 1


def test_iterations_to_final():
    assert iterations_to_final([(250, 10.0), (500, 6.5), (750, 6.0), (1000, 5.8)]) == 500.0
    assert iterations_to_final([(250, 5.9), (500, 6.5), (1000, 5.8)]) == 250.0


def rows(clip, loss, values, metric="lsd_high_db", iteration=250):
    return [dict(clip=clip, loss=loss, seed=seed, iteration=iteration, metric=metric, value=value)
            for seed, value in enumerate(values)]


def test_winner_margin_and_direction():
    data = rows("drums", "mse", [10.0, 11.0, 12.0]) + rows("drums", "perceptual", [5.0, 6.0, 7.0])
    data += rows("drums", "mse", [0.5, 0.6, 0.7], metric="stoi") + rows("drums", "perceptual", [0.8, 0.8, 0.9], metric="stoi")
    table = {row.measure.key: row for row in claims_table(data, ["mse", "perceptual"]) if row.iteration == 250}
    high = table["lsd_high_db"]  # lower is better
    assert high.winner == "perceptual" and high.margin == pytest.approx(5.0) and high.separated
    assert table["stoi"].winner == "perceptual"  # higher is better
    assert table["stoi"].margin == pytest.approx(0.8333333 - 0.6, rel=1e-5)


def test_overlapping_intervals_are_not_apart_and_equal_means_tie():
    data = rows("a", "mse", [1.0, 5.0, 9.0]) + rows("a", "l1", [2.0, 6.0, 10.0])
    row = [r for r in claims_table(data, ["mse", "l1"]) if r.measure.key == "lsd_high_db"][0]
    assert row.winner == "mse" and not row.separated
    tied = rows("a", "mse", [1.0, 2.0]) + rows("a", "l1", [2.0, 1.0])
    assert [r for r in claims_table(tied, ["mse", "l1"]) if r.measure.key == "lsd_high_db"][0].winner == "tie"


def test_single_seed_is_called_an_anecdote():
    data = rows("a", "mse", [1.0]) + rows("a", "l1", [2.0])
    text = format_table(claims_table(data, ["mse", "l1"]), ["mse", "l1"], seeds=1)
    assert "anecdote" in text and "mse 1" in text
    assert {measure.key for measure in CLAIMED} >= {"lsd_high_db", "noise_floor_db", "stoi", "mrstft"}


# With one loss, or one whose mean is not finite, there is nothing to compare.
def _rows(values: dict[str, list[float]]) -> list[dict]:
    return [dict(clip="drums", loss=loss, seed=seed, iteration=250, metric="lsd_high_db", value=value)
            for loss, per_seed in values.items() for seed, value in enumerate(per_seed)]


@pytest.mark.parametrize("values", [{"mse": [10.0, 12.0]}, {"mse": [10.0, 12.0], "perceptual": [math.nan] * 2}])
def test_with_no_runner_up_there_is_no_winner_and_no_margin(values):
    """One loss, or one with a finite mean: no comparison, so nothing is "mse by nan"."""
    table = claims_table(_rows(values), list(values))
    row = next(r for r in table if r.measure.key == "lsd_high_db")
    assert row.winner is None and math.isnan(row.margin)
    assert row.estimates["mse"].mean == pytest.approx(11.0)  # the value is still shown
    text = format_table(table, list(values), 2)
    assert "by nan" not in text and "->" not in text.split("@ 250")[1].splitlines()[0]


def test_two_losses_still_have_a_winner_and_its_margin():
    table = claims_table(_rows({"mse": [10.0, 12.0], "perceptual": [7.0, 8.0]}), ["mse", "perceptual"])
    row = next(r for r in table if r.measure.key == "lsd_high_db")
    assert row.winner == "perceptual" and row.margin == pytest.approx(3.5)
