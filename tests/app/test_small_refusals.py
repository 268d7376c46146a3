"""The smaller problems of issue 22 (class 7): two seed flags, a claims table with one loss, a
warning before a one-line refusal, a failed shard's reason under ``--no-progress``."""

import math
import subprocess
import sys
import warnings

import pytest

import pal.sweeps
from pal.measures.claims import claims_table, format_table
from pal.cli import main
from pal.sweeps.run import SweepOutcome


def test_seed_and_seeds_together_are_refused(tmp_path, capsys):
    assert main(["run", "drums", "--seed", "1", "--seeds", "2", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--seed or --seeds" in err
    assert not (tmp_path / "out").exists()


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


WARNING_LOSS = '''
import warnings
import torch

class Warns(torch.nn.Module):
    def __init__(self, sample_rate):
        super().__init__()

    def forward(self, input, target):
        warnings.warn("a user's loss warning", UserWarning)
        return torch.nn.functional.mse_loss(input[..., :4], target[..., :4].reshape(-1)) * float("nan")
'''


def test_a_refusal_is_one_line_without_the_warnings_on_the_way(tmp_path):
    """The loss warns (and so does torch, on its broadcast and on pal turning the value into a
    number) before pal refuses its NaN: stderr is the refusal alone. In a process of its own, as
    pytest would catch the warnings itself."""
    (tmp_path / "warns.py").write_text(WARNING_LOSS)
    finished = subprocess.run([sys.executable, "-m", "pal.cli", "run", "drums", "--losses", "warns.py:Warns",
                               "--out", "out", "--no-progress"], cwd=tmp_path, capture_output=True, text=True)
    assert finished.returncode == 2
    assert finished.stderr.count("\n") == 1 and finished.stderr.startswith("pal: error: "), finished.stderr
    assert "returned nan" in finished.stderr


def test_warnings_of_a_command_that_succeeds_are_still_shown(tmp_path, monkeypatch):
    def warn_and_finish(args):
        warnings.warn("kept for after the command", UserWarning)
        return 0

    monkeypatch.setattr("pal.cli.command_summarize", warn_and_finish)
    with pytest.warns(UserWarning, match="kept for after the command"):
        assert main(["summarize", str(tmp_path)]) == 0


def test_a_failed_shards_reason_is_shown_without_progress(tmp_path, capsys, monkeypatch):
    reasons = {"shard-0001": "pal sweep: shard-0001: loss 'x.py:L' raised ValueError at iteration 3: boom"}
    monkeypatch.setattr(pal.sweeps, "run_sweep", lambda *args, **kwargs: SweepOutcome(2, 0, dict(reasons), "summary"))
    assert main(["sweep", str(tmp_path), "--out", str(tmp_path / "s"), "--no-progress"]) == 3
    err = capsys.readouterr().err
    assert f"shard-0001: {reasons['shard-0001']}" in err and "1 of 2 shard(s) failed" in err
