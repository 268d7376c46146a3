"""The run page's pieces against independent values: cell images against scipy's STFT and
matplotlib's colour maps, chart ticks and coordinates worked by hand, and the claims matrix
against the rows it is read from."""

import math
import re

import numpy as np
import pytest
from matplotlib import colormaps
from PIL import Image
from scipy import signal

from pal.measures import claims, registry
from pal.report import charts, page as report
from pal.measures.stats import Estimate

RATE = 11025


def pixels(path):
    with Image.open(path) as picture:
        return np.asarray(picture.convert("RGB"), dtype=int)


def colour(name, fraction):
    return np.round(np.array(colormaps[name](fraction)[:3]) * 255).astype(int)


def test_a_spectrogram_cell_is_scipys_stft_on_the_colour_scale(tmp_path):
    t = np.arange(8192) / RATE
    tone = np.sin(2 * np.pi * 1000.0 * t)
    freqs, _, db = report.log_spectrogram_db(tone, RATE)
    reference = signal.stft(tone, fs=RATE, nperseg=256, noverlap=192)
    np.testing.assert_allclose(db, 20 * np.log10(np.abs(reference[2]) + 1e-10))
    report.save_spectrogram(db, db.max(), tmp_path / "cell.png")
    image = pixels(tmp_path / "cell.png")
    assert image.shape[:2] == db.shape
    loudest = int(np.argmin(np.abs(freqs - 1000.0)))
    row = db.shape[0] - 1 - loudest  # low frequencies at the bottom of the image
    middle = db.shape[1] // 2
    assert np.abs(image[row, middle] - colour("magma", (db[loudest, middle] - db.max()) / 80.0 + 1.0)).max() <= 2
    silent = int(np.argmin(np.abs(freqs - 4000.0)))  # far from the tone: the colour map's bottom
    if db[silent, middle] < db.max() - 80.0:
        assert np.abs(image[db.shape[0] - 1 - silent, middle] - colour("magma", 0.0)).max() <= 2


def test_an_error_cell_is_the_difference_in_db(tmp_path):
    db = np.random.default_rng(0).uniform(-60.0, 0.0, (129, 129))
    report.save_error_spectrogram(db, db, 0.0, tmp_path / "same.png")
    assert np.abs(pixels(tmp_path / "same.png") - colour("RdBu_r", 128 / 255)).max() <= 1  # 0 dB: the middle
    report.save_error_spectrogram(db + 20.0, db, 20.0, tmp_path / "louder.png")  # +20 dB of 40: three quarters
    assert np.abs(pixels(tmp_path / "louder.png") - colour("RdBu_r", 191 / 255)).max() <= 1
    # Below the floor (the original's peak - 80 dB) both count as the floor: no error there.
    quiet = np.full((129, 129), -150.0)
    report.save_error_spectrogram(quiet - 30.0, quiet, 0.0, tmp_path / "floor.png")
    assert np.abs(pixels(tmp_path / "floor.png") - colour("RdBu_r", 128 / 255)).max() <= 1


@pytest.mark.parametrize("low, high, expected", [
    (0.0, 1.0, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
    (2.0, 1000.0, [200.0, 400.0, 600.0, 800.0, 1000.0]),
    (-7.3, 2.1, [-6.0, -4.0, -2.0, 0.0, 2.0]),
    (0.13, 0.87, [0.2, 0.4, 0.6, 0.8]),
])
def test_ticks_are_round_numbers_inside_the_range(low, high, expected):
    assert charts.nice_ticks(low, high) == pytest.approx(expected)


def test_log_ticks_are_decades_or_one_two_five():
    assert charts.log_ticks(0.002, 3.0) == pytest.approx([0.01, 0.1, 1.0])
    assert charts.log_ticks(0.15, 0.9) == pytest.approx([0.2, 0.5])


def test_a_line_lands_where_its_values_say():
    svg = charts.line_chart([charts.Series("a", "#000", np.array([0.0, 10.0]), np.array([0.0, 1.0]))],
                            "t", "x", "y", width=300, height=200)
    points = re.search(r'<polyline points="([^"]+)"', svg).group(1).split()
    (x0, y0), (x1, y1) = [tuple(map(float, p.split(","))) for p in points]
    plot_h = 200 - charts.TOP - charts.BOTTOM
    pad = 0.04 * plot_h / 1.08  # the value axis is padded by 4 % of the range at each end
    assert (x0, x1) == (charts.LEFT, 300 - charts.RIGHT)
    assert y0 == pytest.approx(charts.TOP + plot_h - pad, abs=0.06)
    assert y1 == pytest.approx(charts.TOP + pad, abs=0.06)


def test_a_long_curve_is_thinned_keeping_its_ends():
    x = np.arange(10_000.0)
    kept, y = charts.thin(x, x * 2)
    assert len(kept) <= charts.MAX_POINTS + 1 and kept[0] == 0 and kept[-1] == 9999
    np.testing.assert_array_equal(y, kept * 2)


def row(claim, clip, iteration, means):
    estimates = {loss: Estimate(mean, 0.1, 3) for loss, mean in means.items()}
    return claims.judge(claims.ClaimRow(claim, clip, iteration, estimates))


def test_the_matrix_reads_the_last_checkpoint_and_stoi_at_the_first():
    high, stoi = registry.LSD_HIGH, registry.STOI
    table = [row(high, clip, it, {"mse": 20.0 + it / 250, "perceptual": 18.0}) for clip in ("speech", "drums")
             for it in (250, 500)]
    table += [row(stoi, "speech", it, {"mse": 0.5, "perceptual": 0.6 + it / 5000}) for it in (250, 500)]
    clips, matrix = claims.claims_matrix(table)
    assert clips == ["speech", "drums"]
    assert [(r.measure.key, r.iteration) for r in matrix] == [("lsd_high_db", 500), ("stoi", 250), ("stoi", 500)]
    assert set(matrix[0].cells) == {"speech", "drums"} and set(matrix[1].cells) == {"speech"}
    cell = matrix[0].cells["drums"]
    assert cell.winner == "perceptual" and cell.margin == pytest.approx(4.0) and cell.separated
    assert matrix[1].cells["speech"].margin == pytest.approx(0.15) and matrix[1].label.endswith("at 250")
    assert not math.isnan(matrix[2].cells["speech"].margin)
