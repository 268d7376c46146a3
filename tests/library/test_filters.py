import numpy as np
import pytest

from perceptual_audio_loss.filters import filter_bank
from perceptual_audio_loss.scales import erb_hz

SAMPLE_RATE = 11025


@pytest.fixture(scope="module")
def seed_bank():
    return filter_bank(SAMPLE_RATE)


def test_seed_bank_shape_and_first_band_does_not_crash(seed_bank):
    filters, centres = seed_bank
    assert filters.shape == (512, 512)
    assert np.all(np.isfinite(filters))
    # The lowest bands' ERB reaches below 0 Hz: the repeated frequency 0 was nudged, not refused.
    assert centres[0] - erb_hz(centres[0]) / 2 < 0


@pytest.mark.slow
def test_responses_peak_at_their_band_centres(seed_bank):
    filters, centres = seed_bank
    n_fft = 1 << 16
    response = np.abs(np.fft.rfft(filters, n_fft, axis=1))
    peaks_hz = np.fft.rfftfreq(n_fft, 1 / SAMPLE_RATE)[response.argmax(axis=1)]
    # Bands a 512-tap filter can resolve (a few frequency bins wide) and not clipped at Nyquist.
    resolvable = (centres > 150) & (centres + erb_hz(centres) / 2 < SAMPLE_RATE / 2)
    assert resolvable.sum() > 400
    relative_error = np.abs(peaks_hz[resolvable] - centres[resolvable]) / centres[resolvable]
    # A few percent where a band is only ~2 FFT bins of a 512-tap filter wide, far less above 1 kHz.
    assert relative_error.max() < 0.03
    assert relative_error[centres[resolvable] > 1000].max() < 0.005


def test_a_tone_passes_its_own_band_and_is_stopped_by_a_distant_one(seed_bank):
    filters, centres = seed_bank
    t = np.arange(4096) / SAMPLE_RATE
    own = int(np.argmin(np.abs(centres - 1000.0)))
    tone = np.sin(2 * np.pi * centres[own] * t)
    energy = [np.sum(np.correlate(tone, filters[band], mode="valid") ** 2) for band in (own, own - 60, own + 60)]
    assert energy[0] > 1000 * energy[1] and energy[0] > 1000 * energy[2]


def test_high_hz_above_nyquist_is_refused():
    with pytest.raises(ValueError, match="Nyquist"):
        filter_bank(SAMPLE_RATE, n_bands=4, taps=32, high_hz=6000)
