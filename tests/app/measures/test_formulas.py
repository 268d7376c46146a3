"""Each measure against a value worked out by hand or an independent property."""

import math

import numpy as np
import pytest

from pal.measures import formulas as metrics

RATE = 11025


def tone(hz, n=8192, amplitude=0.5, rate=RATE):
    return amplitude * np.sin(2 * np.pi * hz * np.arange(n) / rate)


def test_snr_of_a_signal_plus_noise_of_known_power():
    rng = np.random.default_rng(0)
    x = tone(440, n=200_000)
    noise = rng.standard_normal(x.size)
    noise *= np.sqrt(np.mean(x ** 2) / 100.0 / np.mean(noise ** 2))  # exactly 20 dB below
    assert metrics.snr_db(x, x + noise) == pytest.approx(20.0, abs=1e-9)
    assert metrics.snr_db(x, x) == math.inf


def test_band_distance_of_signals_differing_only_above_2500_hz():
    x = tone(300) + tone(1500)
    y = x + tone(4000, amplitude=0.3)
    distances = metrics.log_spectral_distance_db(x, y, RATE)
    assert distances["low"] < 0.01
    assert distances["high"] > 10
    assert metrics.log_spectral_distance_db(x, x, RATE) == {"overall": 0.0, "low": 0.0, "mid": 0.0, "high": 0.0}


def test_lsd_of_a_pure_gain_is_the_gain_in_db():
    x = np.random.default_rng(4).standard_normal(8192)  # every cell far above the -100 dB floor
    # Doubling every sample raises every cell's power by exactly 20 log10(2) dB.
    assert metrics.log_spectral_distance_db(x, 2 * x, RATE)["overall"] == pytest.approx(20 * math.log10(2), rel=1e-3)


def test_mrstft_of_a_doubled_signal_is_one_plus_ln_two():
    # |Y| = 2|X| in every cell: spectral convergence 1 and log-magnitude distance ln 2 at every size.
    x = np.random.default_rng(1).standard_normal(8192)
    assert metrics.multi_resolution_stft_distance(x, 2 * x) == pytest.approx(1 + math.log(2), rel=1e-4)
    assert metrics.multi_resolution_stft_distance(x, x) == 0.0


def test_noise_floor_measures_noise_where_the_original_is_silent():
    rng = np.random.default_rng(2)
    # A tone with a short fade-out, then silence. The fade's last frames are quiet cells too, so a
    # perfect copy scores the original's own quiet energy, not minus infinity.
    ramp = np.ones(4096)
    ramp[-256:] = np.hanning(512)[256:]
    x = np.concatenate([tone(440, n=4096) * ramp, np.zeros(4096)])
    own = metrics.noise_floor_db(x, x, RATE)
    # Hann sidelobes of the steady tone, each cell just under -40 dB, add up to about -40 dB.
    assert own < -35
    noise = np.concatenate([np.zeros(4096 + 1024), rng.standard_normal(4096 - 1024)])  # frames apart from the tone
    noise *= np.sqrt(1e-3 * np.sum(x ** 2) / np.sum(noise ** 2))  # 30 dB below the original's energy
    # Both sides are STFT energies of the same window and hop, so the window's gain cancels, and
    # the noise's cells are apart from the tone's: the two energies add.
    expected = 10 * math.log10(10 ** (own / 10) + 1e-3)
    assert metrics.noise_floor_db(x, x + noise, RATE) == pytest.approx(expected, abs=0.5)
    assert metrics.noise_floor_db(x, np.zeros_like(x), RATE) == -math.inf


def test_stoi_and_pesq_score_a_copy_best_and_noise_lower():
    from pal.clips import builtin_clip
    from pal.core.audio import prepare_clip

    speech = prepare_clip("speech", *builtin_clip("speech"), "speech").samples.astype(float)
    noisy = speech + 0.3 * np.random.default_rng(3).standard_normal(speech.size)
    assert metrics.stoi(speech, speech, RATE) == pytest.approx(1.0, abs=1e-6)
    assert metrics.stoi(speech, noisy, RATE) < 0.9
    assert metrics.pesq_wideband(speech, speech, RATE) > 4.5  # P.862.2's ceiling is 4.64
    assert metrics.pesq_wideband(speech, noisy, RATE) < 2.5
