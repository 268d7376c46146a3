"""CDPAM, the optional judge (pal.measures.judges, ``pal run --cdpam``): its values against cdpam's own code
and fixed goldens, and a run with it and without the package."""

import csv
import functools
import sys

import numpy as np
import soundfile as sf
import pytest
import torch
from scipy import signal

from pal.cli import main
from pal.measures.judges import CDPAM_JUDGE

NOT_INSTALLED = CDPAM_JUDGE.not_installed

RATE = 11025
NEEDS_CDPAM = "the cdpam extra is not installed (pip install 'perceptual-audio-loss[cdpam]')"


@pytest.fixture(scope="module")
def judge():
    """pal.measures.judges with its model built (once for the module)."""
    pytest.importorskip("cdpam", reason=NEEDS_CDPAM)
    import pal.measures.judges

    pal.measures.judges.cdpam_model()
    return pal.measures.judges


@functools.cache
def score(level: float) -> float:
    """CDPAM's distance from :func:`tone` to :func:`noisy` ``(level)`` at 11025 Hz (a second or two each)."""
    from pal.measures.judges import cdpam_distance

    return cdpam_distance(tone(), noisy(level), RATE)


def tone() -> np.ndarray:
    """440 Hz at half scale, 0.75 s at 11025 Hz."""
    t = np.arange(int(0.75 * RATE)) / RATE
    return 0.5 * np.sin(2 * np.pi * 440 * t)


def noisy(level: float) -> np.ndarray:
    """:func:`tone` with white noise of standard deviation ``level`` (fixed seed) added."""
    return tone() + level * np.random.default_rng(0).standard_normal(int(0.75 * RATE))


@pytest.mark.slow  # the model: seconds per distance on a CPU
def test_the_weights_are_the_ones_cdpam_itself_loads_and_so_is_the_distance(judge, monkeypatch):
    # cdpam's own constructor, its torch.load allowed to run any pickle (what torch did before
    # 2.6): the same weights as the restricted loader reads, and the same distance for a pair.
    import cdpam

    monkeypatch.setattr(torch, "load", functools.partial(torch.load, weights_only=False))
    theirs = cdpam.CDPAM(dev="cpu")
    ours = judge.cdpam_model()
    expected = theirs.model.state_dict()
    assert {name: tensor.shape for name, tensor in ours.model.state_dict().items()} == {
        name: tensor.shape for name, tensor in expected.items()}
    assert all(torch.equal(tensor, expected[name]) for name, tensor in ours.model.state_dict().items())
    with torch.no_grad():
        reference = theirs.forward(judge.cdpam_input(tone(), RATE), judge.cdpam_input(noisy(0.05), RATE))
    assert score(0.05) == pytest.approx(float(reference), rel=1e-6)


@pytest.mark.slow  # the model: seconds per distance on a CPU
def test_a_tone_and_its_noisy_copy_score_the_golden_value(judge):
    # Computed once with pal.measures.judges.cdpam_distance on 2026-12-04 (cdpam 0.0.6, torch 2.13.0 CPU,
    # soxr 1.1.0), and equal to cdpam's own CDPAM().forward on the same inputs (test above). The
    # tolerance allows other CPUs' convolution rounding.
    assert score(0.05) == pytest.approx(1.6401033, rel=2e-3)
    assert score(0.01) == pytest.approx(0.3837548, rel=2e-3)


@pytest.mark.slow  # the model: seconds per distance on a CPU
def test_identical_clips_are_at_distance_zero(judge):
    assert judge.cdpam_distance(noisy(0.05), noisy(0.05), RATE) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.slow  # the model: seconds per distance on a CPU
def test_the_distance_grows_with_the_noise(judge):
    # 0.38, 1.35 and 1.72 when the goldens were computed.
    distances = [score(level) for level in (0.01, 0.03, 0.1)]
    assert distances[0] < distances[1] < distances[2]
    assert distances[1] - distances[0] > 0.5 and distances[2] - distances[1] > 0.1


@pytest.mark.slow  # the model: seconds per distance on a CPU
def test_a_pair_scores_the_same_at_11025_as_resampled_to_22050_by_scipy(judge):
    # At 22050 Hz nothing is resampled inside; at 11025 soxr does it. Scored without resampling
    # (the 11025 Hz clips read as 22050), the pair scores 0.72 instead of 1.64.
    doubled = functools.partial(signal.resample_poly, up=2, down=1)
    at_22050 = judge.cdpam_distance(doubled(tone()), doubled(noisy(0.05)), 2 * RATE)
    assert score(0.05) == pytest.approx(at_22050, rel=0.03)


def test_the_input_is_cdpams_int16_range_at_22050():
    # cdpam.load_audio: librosa.load(path, sr=22050), then np.round(samples * 32768), (1, time).
    from pal.measures import judges as judge

    prepared = judge.cdpam_input(np.array([0.5, -0.25, 1.0, 1e-5]), 22050)
    np.testing.assert_array_equal(prepared, np.array([[16384.0, -8192.0, 32768.0, 0.0]], np.float32))
    assert judge.cdpam_input(tone(), RATE).shape == (1, 2 * tone().size)


def metrics(out) -> list[dict]:
    with open(out / "metrics.csv") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow  # the model: seconds per distance on a CPU
def test_pal_run_with_cdpam_scores_every_checkpoint_and_shows_it(judge, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "speech", "--losses", "mse", "--iterations", "2", "--checkpoint-every", "1", "--cdpam",
                 "--out", str(out), "--no-progress"]) == 0
    scores = [row for row in metrics(out) if row["metric"] == "cdpam"]
    assert sorted(int(row["iteration"]) for row in scores) == [1, 2]
    assert all(float(row["value"]) > 0 for row in scores)  # an untrained generator is far from speech
    page = (out / "report.html").read_text()
    assert "CDPAM distance (lower better)" in page  # its chart against iterations
    assert "CDPAM distance (a judge no loss optimises)" in page  # its row among the claims
    assert "CDPAM" not in capsys.readouterr().err


@pytest.mark.slow
def test_a_finished_run_asked_for_cdpam_later_scores_its_saved_checkpoints(judge, tmp_path):
    out = tmp_path / "run"
    command = ["run", "speech", "--losses", "mse", "--iterations", "2", "--checkpoint-every", "1", "--out", str(out),
               "--no-progress"]
    assert main(command) == 0
    before = metrics(out)
    assert main(command + ["--cdpam"]) == 0
    after = metrics(out)
    assert [row for row in after if row["metric"] != "cdpam"] == before  # nothing measured before changes
    original = sf.read(out / "clips" / "speech" / "original.wav", dtype="float64")[0]
    for row in (row for row in after if row["metric"] == "cdpam"):
        saved = sf.read(out / "clips" / "speech" / "mse" / "seed-0" / f"iter-{int(row['iteration']):04d}.wav",
                        dtype="float64")[0]
        assert float(row["value"]) == pytest.approx(judge.cdpam_distance(original, saved, 11025), rel=1e-6)


def test_pal_run_without_cdpam_installed_says_so_in_one_line_and_runs_on(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "cdpam", None)  # `import cdpam` now fails, as where it is absent
    out = tmp_path / "run"
    assert main(["run", "speech", "--losses", "mse", "--iterations", "1", "--checkpoint-every", "1", "--cdpam",
                 "--out", str(out), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if "CDPAM" in line] == [NOT_INSTALLED]
    assert "pip install 'perceptual-audio-loss[cdpam]'" in NOT_INSTALLED
    names = {row["metric"] for row in metrics(out)}
    assert "snr_db" in names and "cdpam" not in names
    assert "CDPAM" not in (out / "report.html").read_text()  # no chart, no claim row


def test_a_sweep_takes_cdpam_to_its_shards_and_old_plans_read_without_it():
    from pal.sweeps.plan import SweepSettings

    assert SweepSettings(cdpam=True).experiment().cdpam is True
    assert SweepSettings().cdpam is False  # a plan saved before the setting existed
